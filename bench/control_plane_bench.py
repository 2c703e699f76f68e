"""The control plane: 1, 2 and 3 controllers on one PostgreSQL database (and
one shared directory), with a fleet of simulated nodes (the real agent with
the fake driver, in client processes of their own, as node_fleet_bench) whose
sessions are spread over the controllers (node n starts with controller
n mod count and fails over to the others).

For each count: heartbeats handled per second and their round trip as the
nodes see it, with the controllers' CPU (all of them, % of one core) and the
CPU per 1,000 heartbeats; placements per second and CreateInstance p50/p99
with client processes spread over the controllers. With 2 and 3: failover
time, from `kill -9` of the controller holding a third (or half) of the
sessions until every node's session is open again on another controller.
Everything shares this machine's cores, so more controllers add fail-over,
not throughput, here.

KUMO_BENCH_CP_NODES (300), KUMO_BENCH_CP_INSTANCES (600), KUMO_BENCH_CP_CLIENTS
(6), KUMO_BENCH_CP_COUNTS (1,2,3) change the sizes."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.compute_bench import _client_proc
from bench.fakecloud import cpu_seconds, load, pct
from bench.node_fleet_bench import _raise_fd_limit, worker

HEARTBEAT_SECONDS = 2
WORKERS = 3
WINDOW_SECONDS = 10.0


def _env(n: str, default: int) -> int:
    return int(os.environ.get(n, default))


def _sessions(conns: list[Any]) -> list[tuple[bool, str]]:
    out: list[tuple[bool, str]] = []
    for c in conns:
        c.send(("sessions", None))
        out.extend(c.recv()[1])
    return out


def run_one(pg: Any, count: int, n_nodes: int, n_instances: int, n_clients: int, base: Path) -> None:
    from bench.procs import ControllerProc, make_image, start_control_plane
    from kumo.v1 import compute_pb2 as cpb
    from kumo.v1 import compute_pb2_grpc
    from kumo.v1 import image_pb2 as ipb
    from kumo.v1 import node_pb2 as npb

    url = pg.create_database(f"kumo_cp_bench_{count}")
    env = {
        "KUMO_NODE_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "KUMO_NODE_GRACE_SECONDS": "30",
        "KUMO_CONTROLLER_HEARTBEAT_SECONDS": "1",
        "KUMO_WORKERS": "16",
        "KUMO_QUOTA_INSTANCES": "1000000",
        "KUMO_QUOTA_VCPUS": "1000000",
        "KUMO_QUOTA_RAM_MB": "1000000000",
        "KUMO_NODE_STATS_LOG_SECONDS": "0",
    }
    ctx = mp.get_context("spawn")
    procs, conns = [], []
    plane = start_control_plane(url, base / f"plane{count}", count=count, extra_env=env)
    ctls: list[ControllerProc] = next(plane)
    try:
        admin = ctls[0].login()
        token = admin.nodes.CreateJoinToken(
            npb.CreateJoinTokenRequest(join_token=npb.JoinToken(max_uses=n_nodes + 10))
        ).token
        ports = tuple(c.node_endpoint for c in ctls)
        per = [n_nodes // WORKERS + (1 if i < n_nodes % WORKERS else 0) for i in range(WORKERS)]
        for i in range(WORKERS):
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=worker,
                args=(child, ctls[0].endpoint, token, ctls[0].info["ca_fingerprint"], i, "", ports),
                daemon=True,
            )
            p.start()
            procs.append(p)
            conns.append(parent)
        for c, n in zip(conns, per, strict=True):
            c.send(("grow", n))
        for c in conns:
            c.recv()
        time.sleep(HEARTBEAT_SECONDS + 2)  # the connect burst is over
        # Heartbeats.
        for c in conns:
            c.send(("measure", None))
            c.recv()
        pids = [c.proc.pid for c in ctls]  # type: ignore[union-attr]
        cpu0, w0 = sum(cpu_seconds(p) for p in pids), time.monotonic()
        time.sleep(WINDOW_SECONDS)
        cpu1, w1 = sum(cpu_seconds(p) for p in pids), time.monotonic()
        rtts: list[float] = []
        for c in conns:
            c.send(("collect", None))
            rtts.extend(c.recv()[1]["rtts"])
        rate = len(rtts) / (w1 - w0)
        cpu = (cpu1 - cpu0) / (w1 - w0)
        print(
            f"  {count} controller(s), {n_nodes} nodes: {rate:.0f} heartbeats/s, rtt p50 "
            f"{pct(rtts, 0.5) * 1000:.1f} ms p99 {pct(rtts, 0.99) * 1000:.1f} ms; controllers' CPU "
            f"{cpu * 100:.0f}% of a core, {1000 * cpu / max(rate, 1e-9):.2f} CPU-s per 1,000 heartbeats "
            f"(~{rate / max(cpu, 1e-9):.0f} heartbeats/s per core)",
            flush=True,
        )
        # Placements.
        tiny = base / "tiny.qcow2"
        if not tiny.exists():
            import subprocess

            subprocess.run(
                ["qemu-img", "create", "-f", "qcow2", str(tiny), "64M"], check=True, capture_output=True
            )
        image = make_image(
            admin, "bench", tiny.read_bytes(), ipb.DISK_FORMAT_QCOW2, visibility=ipb.IMAGE_VISIBILITY_PUBLIC
        ).id
        admin.stub(compute_pb2_grpc.ComputeServiceStub).CreateFlavor(
            cpb.CreateFlavorRequest(
                flavor=cpb.Flavor(name="b.small", vcpus=1, ram_mb=512, disk_gb=1, is_public=True)
            )
        )
        names = [f"i{k}" for k in range(n_instances)]
        clients = []
        for k in range(n_clients):
            ctl = ctls[k % count]
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=_client_proc,
                args=(child, ctl.endpoint, ctl.ca_pem, admin.token, image, names[k::n_clients]),
                daemon=True,
            )
            p.start()
            clients.append((p, parent))
        for _, c in clients:
            c.recv()
        start = time.perf_counter()
        for _, c in clients:
            c.send("go")
        lat: list[float] = []
        errors = 0
        for p, c in clients:
            got, errs = c.recv()
            lat.extend(got)
            errors += errs
            p.join(10)
        wall = time.perf_counter() - start
        print(
            f"  {count} controller(s): {len(lat) / wall:.0f} placements/s ({len(lat)} in {wall:.1f} s, "
            f"{n_clients} client processes over {count} controller(s)); CreateInstance p50 "
            f"{pct(lat, 0.5) * 1000:.0f} ms p99 {pct(lat, 0.99) * 1000:.0f} ms; {errors} errors",
            flush=True,
        )
        # Failover.
        if count > 1:
            victim = ctls[0]
            before = _sessions(conns)
            held = sum(1 for _, ep in before if ep == victim.node_endpoint)
            t0 = time.monotonic()
            victim.stop(signal.SIGKILL)
            while True:
                now = _sessions(conns)
                if all(ok and ep != victim.node_endpoint for ok, ep in now):
                    break
                if time.monotonic() - t0 > 120:
                    raise RuntimeError("sessions did not come back within 120 s")
                time.sleep(0.05)
            took = time.monotonic() - t0
            print(
                f"  {count} controllers: kill -9 of one holding {held} of {n_nodes} sessions -> every "
                f"session open again on another in {took:.2f} s",
                flush=True,
            )
    finally:
        for c in conns:
            try:
                c.send(("stop", None))
                if c.poll(30):
                    c.recv()
            except (OSError, EOFError, BrokenPipeError):
                pass
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        plane.close()


def main() -> None:
    from bench.pg import PostgresServer

    _raise_fd_limit()
    n_nodes = _env("KUMO_BENCH_CP_NODES", 300)
    n_instances = _env("KUMO_BENCH_CP_INSTANCES", 600)
    n_clients = _env("KUMO_BENCH_CP_CLIENTS", 6)
    counts = [int(x) for x in os.environ.get("KUMO_BENCH_CP_COUNTS", "1,2,3").split(",") if x.strip()]
    base = Path(tempfile.mkdtemp(prefix="kumo-cp-bench-"))
    base.chmod(0o755)
    pg = PostgresServer(base / "pg").start()
    try:
        print(f"  ({load()}; heartbeat every {HEARTBEAT_SECONDS} s)", flush=True)
        for count in counts:
            run_one(pg, count, n_nodes, n_instances, n_clients, base)
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
