"""Shared by the network and volume benchmarks: a real controller (SQLite, as
`make up` uses) and real `kumo-noded run --driver fake` processes, with the
helpers to time calls and print the machine's load. Not a benchmark itself
(the runner only picks up *_bench modules)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import wait_for


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))] if s else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}", flush=True)


def run_threads(n: int, fn: Callable[[int], Any]) -> tuple[list[Any], float]:
    """Runs fn(k) for k in range(n) in n threads started together; (results, wall seconds)."""
    barrier = threading.Barrier(n + 1)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def body(k: int) -> None:
        barrier.wait()
        try:
            results[k] = fn(k)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    return results, wall


@dataclass
class Cloud:
    base: Path
    ctl: Any
    admin: Any
    image_id: str = ""
    nodes: list[Any] = field(default_factory=list)  # NodedProc
    node_ids: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.ctl.proc.pid  # type: ignore[no-any-return]

    def client(self) -> Any:
        """A fresh admin client on a channel (a connection) of its own."""
        from bench.procs import ADMIN_PASSWORD

        return self.ctl.login("admin", ADMIN_PASSWORD)


@contextmanager
def fake_cloud(
    prefix: str,
    n_nodes: int,
    env: dict[str, str],
    node_args: list[str],
    flavor: tuple[str, int, int, int] | None = ("b.small", 1, 512, 1),
) -> Iterator[Cloud]:
    """A controller with `env`, n_nodes fake nodes READY, a tiny public image
    and a flavor (name, vCPUs, RAM MiB, disk GiB)."""
    from bench.procs import ControllerProc, NodedProc, make_image, make_token, run_noded
    from kumo.v1 import compute_pb2 as cpb
    from kumo.v1 import compute_pb2_grpc, node_pb2
    from kumo.v1 import image_pb2 as ipb

    base = Path(tempfile.mkdtemp(prefix=prefix))
    data = base / "ctl"
    data.mkdir()
    ctl = ControllerProc(data, extra_env=env).start()
    cloud = Cloud(base, ctl, ctl.login())
    try:
        if n_nodes:
            token = make_token(cloud.admin, uses=n_nodes)

            def join(i: int) -> None:
                state = base / f"node{i}"
                out = run_noded(
                    ["join", ctl.endpoint, token, "--name", f"bench{i}", "--state-dir", str(state)],
                    timeout=120,
                )
                if out.returncode != 0:
                    raise RuntimeError(f"join of node {i} failed: {out.stderr}")

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(join, range(n_nodes)))
            for i in range(n_nodes):
                cloud.nodes.append(
                    NodedProc(
                        base / f"node{i}", ["--driver", "fake", "--log-level", "WARNING", *node_args]
                    ).start()
                )
            listed = wait_for(
                lambda: (
                    (ns := cloud.admin.nodes.ListNodes(node_pb2.ListNodesRequest(page_size=1000)).nodes)
                    and sum(n.state == node_pb2.NODE_STATE_READY for n in ns) == n_nodes
                    and ns
                ),
                timeout=120,
                what="fake nodes READY",
            )
            cloud.node_ids = [n.id for n in listed]
        img = base / "tiny.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-f", "qcow2", str(img), "64M"], check=True, capture_output=True
        )
        cloud.image_id = make_image(
            cloud.admin,
            "bench",
            img.read_bytes(),
            ipb.DISK_FORMAT_QCOW2,
            visibility=ipb.IMAGE_VISIBILITY_PUBLIC,
        ).id
        if flavor:
            name, vcpus, ram, disk = flavor
            cloud.admin.stub(compute_pb2_grpc.ComputeServiceStub).CreateFlavor(
                cpb.CreateFlavorRequest(
                    flavor=cpb.Flavor(name=name, vcpus=vcpus, ram_mb=ram, disk_gb=disk, is_public=True)
                )
            )
        yield cloud
    finally:
        for p in cloud.nodes:
            p.stop()
        if ctl.proc is not None:
            ctl.stop()
        if not os.environ.get("KUMO_BENCH_KEEP"):
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"  (kept {base})", flush=True)
