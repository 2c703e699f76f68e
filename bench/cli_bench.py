"""The CLI: `kumo server list` with SERVERS servers, the whole process
(interpreter start, imports, TLS connect, every page, the table), median of
RUNS; and the import time of the command line's modules alone. Anchor:
OpenStackClient takes about 2 s for a server list; goal 0.3 s.

A real controller (SQLite) and two fake nodes big enough for the servers; the
controller's CPU per list is printed too (the whole wall is the CLI's CPU, the
controller's and the waits between). KUMO_BENCH_CLI_SERVERS (1000) and
KUMO_BENCH_CLI_RUNS (5) change the size and the runs; KUMO_BENCH_CLI_COMPARE=DIR
(a checkout of another commit, with its proto stubs generated) times that
tree's CLI too, interleaved with this one's run by run, so the two figures are
a same-run pair on a shared machine."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.fakecloud import cpu_seconds, fake_cloud, load, table
from bench.procs import ROOT

SERVERS = int(os.environ.get("KUMO_BENCH_CLI_SERVERS", "1000"))
RUNS = int(os.environ.get("KUMO_BENCH_CLI_RUNS", "5"))
COMPARE = os.environ.get("KUMO_BENCH_CLI_COMPARE", "")
# What `kumo server list` imports before it talks to the controller (the
# command tree for that line; an older CLI without build_app imports it all).
IMPORTS = (
    "import cli.main as m; m.build_app(m.group_of(['server', 'list'])) if hasattr(m, 'build_app') else None"
)


def _env(cloud: object, root: Path = ROOT) -> dict[str, str]:
    env = dict(os.environ)
    # As installed (pip compiles bytecode): a CLI that recompiled its modules
    # on every run would time the compiler, not the CLI.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        {
            "PYTHONPATH": f"{root}:{root / 'proto'}",
            "KUMO_ENDPOINT": cloud.ctl.endpoint,  # type: ignore[attr-defined]
            "KUMO_CA_FILE": cloud.ctl.ca_file,  # type: ignore[attr-defined]
            "KUMO_TOKEN": cloud.admin.token,  # type: ignore[attr-defined]
            "KUMO_CONFIG_DIR": str(cloud.base / "cli"),  # type: ignore[attr-defined]
            "COLUMNS": "200",
        }
    )
    return env


def _run(args: list[str], env: dict[str, str], root: Path = ROOT) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process; the CPU figure is what a
    loaded machine moves least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {out.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    from kumo.v1 import compute_pb2 as pb

    per_node = SERVERS // 2 + 1
    with fake_cloud(
        "kumo-cli-",
        2,
        {
            "KUMO_QUOTA_INSTANCES": str(SERVERS * 2),
            "KUMO_QUOTA_VCPUS": str(SERVERS * 2),
            "KUMO_QUOTA_RAM_MB": str(SERVERS * 1024),
            "KUMO_INSTANCE_SYNC_SECONDS": "5",
        },
        ["--fake-vcpus", str(per_node), "--fake-memory-mb", str(per_node * 64), "--fake-disk-gb", "100000"],
        flavor=("b.cli", 1, 64, 1),
    ) as cloud:
        compute = cloud.admin.compute

        def create(i: int) -> None:
            compute.CreateInstance(
                pb.CreateInstanceRequest(name=f"cli-{i:05d}", image=cloud.image_id, flavor="b.cli")
            )

        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(SERVERS)))
        print(f"{SERVERS} servers created in {time.monotonic() - t0:.0f} s; {load()}", flush=True)
        trees = {"": ROOT, **({f" [{COMPARE}]": Path(COMPARE).resolve()} if COMPARE else {})}
        envs = {tag: _env(cloud, root) for tag, root in trees.items()}
        kumo = [sys.executable, "-m", "cli.main"]
        for tag, root in trees.items():
            _run([*kumo, "server", "list"], envs[tag], root)  # warm the page cache
        runs = {}
        for tag, root in trees.items():
            runs[f"kumo server list, {SERVERS} servers (whole process){tag}"] = (
                [*kumo, "server", "list"],
                tag,
                root,
            )
        runs["of it: python start-up alone"] = ([sys.executable, "-c", "pass"], "", ROOT)
        for tag, root in trees.items():
            runs[f"of it: python start-up + the CLI's imports{tag}"] = (
                [sys.executable, "-c", IMPORTS],
                tag,
                root,
            )
        got: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        controller: dict[str, float] = dict.fromkeys(trees, 0.0)
        for _ in range(RUNS):  # run by run across the trees: a same-run pair
            for name, (args, tag, root) in runs.items():
                cpu0 = cpu_seconds(cloud.pid)
                got[name].append(_run(args, envs[tag], root))
                if args[-2:] == ["server", "list"]:
                    controller[tag] += cpu_seconds(cloud.pid) - cpu0
        rows = []
        for name, results in got.items():
            wall = statistics.median(w for w, _ in results)
            cpu = statistics.median(c for _, c in results)
            rows.append((name, f"{wall:.2f} s wall, {cpu:.2f} s CPU"))
        for tag in trees:
            rows.append(
                (
                    f"of it: the controller's CPU per list{tag}",
                    f"{controller[tag] / RUNS * 1000:.0f} ms (mean)",
                )
            )
        table(rows)
        print(f"  (median of {RUNS}; {load()})", flush=True)
