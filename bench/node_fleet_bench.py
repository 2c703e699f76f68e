"""Node fleet: simulated nodes (bench/wirenode.py: the node's session
protocol with the fake hypervisor driver's inventory, usage and guests)
enroll with a join token and heartbeat at the production interval (the
controller's default, 5 s; KUMO_BENCH_FLEET_HEARTBEAT overrides it) into one
controller process.

The fleet grows 1,000 -> 5,000 -> 10,000 nodes (KUMO_BENCH_FLEET sets the
steps). The nodes live in a few client processes (asyncio, one mTLS channel
and session per node, as real nodes), never in the controller's, so the
controller's CPU and memory are its own; CPU and RSS per 1,000 nodes are
printed too. For each size:
heartbeats handled per second, the time to process one as a node sees it
(heartbeat sent -> ack received: controller queueing and handling included)
and the controller's own handler time, the controller's CPU (% of one core)
and resident memory. The simulated nodes share this machine's cores with the
controller, so the load generator's own event-loop lag and CPU are printed
too, with the sessions still open at the end of each window.
Connections are paced (CONNECT_RATE nodes a second), as hosts come up in a
real fleet. Why sessions failed while the fleet grew is printed by kind
(before or after the welcome, gRPC code, how long after the attempt began),
with one sample of each's details."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kumo.heartbeats import DEFAULT_NODE_HEARTBEAT_SECONDS

# The production interval (the controller's default), unless KUMO_BENCH_FLEET_HEARTBEAT says otherwise.
HEARTBEAT_SECONDS = float(os.environ.get("KUMO_BENCH_FLEET_HEARTBEAT", "0")) or DEFAULT_NODE_HEARTBEAT_SECONDS
# Client processes holding the simulated nodes: 8 keep each at 1,250 nodes at 10,000 (with 4,
# each process's event loop ran 2,500 and its lag, which the rtt includes, grew with them).
WORKERS = int(os.environ.get("KUMO_BENCH_FLEET_WORKERS", "8"))
WINDOW_SECONDS = 20.0
# Enrolments at once per worker: 16 in all, as many as the public port's workers.
ENROLL_CONCURRENCY = max(1, 16 // WORKERS)
# Nodes start at CONNECT_RATE a second in all (each worker every WORKERS / CONNECT_RATE s).
CONNECT_RATE = 100.0
CONNECT_SPACING = WORKERS / CONNECT_RATE
# How long the nodes of one step may take to connect after the last has started.
CONNECT_DEADLINE = 180.0


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# The client side: one process holding many simulated nodes.


def worker(
    conn: Any,
    endpoint: str,
    token: str,
    fingerprint: str,
    index: int,
    log_dir: str = "",
    controllers: tuple[str, ...] = (),
    wire: bool = False,
) -> None:
    """`controllers`: node ports of several controllers; node n starts with
    the (n mod count)-th and fails over to the others (control_plane_bench).
    `wire`: the nodes are bench/wirenode.py's (light), not the real agent."""
    import logging

    from kumo.logs import TextFormatter

    _raise_fd_limit()
    handler: logging.Handler = (
        logging.FileHandler(Path(log_dir) / f"fleet-worker-{index}.log") if log_dir else logging.NullHandler()
    )
    handler.setFormatter(TextFormatter())
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(logging.WARNING)
    asyncio.run(_worker(conn, endpoint, token, fingerprint, index, controllers, wire))


async def _worker(
    conn: Any,
    endpoint: str,
    token: str,
    fingerprint: str,
    index: int,
    controllers: tuple[str, ...] = (),
    wire: bool = False,
) -> None:
    import grpc

    from bench.wirenode import WireNode
    from kumo.keys import key_pem, make_csr, new_key
    from kumo.v1 import node_agent_pb2 as pb
    from kumo.v1 import node_agent_pb2_grpc
    from noded.agent import Agent
    from noded.enroll import fetch_pinned_ca, join_address, split_address
    from noded.hypervisor.fake import FakeDriver
    from noded.state import Credentials, NodeIdentity

    loop = asyncio.get_running_loop()
    ca_pem = fetch_pinned_ca(endpoint, fingerprint)
    public = grpc.aio.secure_channel(endpoint, grpc.ssl_channel_credentials(ca_pem))
    stub = node_agent_pb2_grpc.NodeAgentServiceStub(public)
    agents: list[Any] = []  # Agent, or WireNode
    tasks: list[asyncio.Task[None]] = []
    rtts: list[float] = []
    lags: list[float] = []
    measuring = False
    cpu_start = 0.0

    async def lag_probe() -> None:
        # How late this process's loop runs: load-generator lag that inflates the RTTs.
        while True:
            start = time.monotonic()
            await asyncio.sleep(0.05)
            if measuring:
                lags.append(time.monotonic() - start - 0.05)

    probe = asyncio.create_task(lag_probe())

    def on_rtt(seconds: float) -> None:
        if measuring:
            rtts.append(seconds)

    async def enroll(n: int) -> Credentials:
        name = f"sim-{index}-{n}"
        key = new_key()
        resp = await stub.Enroll(
            pb.EnrollRequest(token=token, csr_pem=make_csr(key, name).decode(), name=name), timeout=120
        )
        ep = resp.node_endpoint
        if ep.startswith(":"):
            ep = join_address(split_address(endpoint)[0], int(ep[1:]))
        if controllers:
            k = n % len(controllers)
            ep = ",".join(controllers[k:] + controllers[:k])
        return Credentials(
            NodeIdentity(resp.node_id, name, endpoint, ep, time.time()),
            key_pem(key),
            resp.certificate_pem.encode(),
            resp.ca_pem.encode(),
        )

    while True:
        cmd, arg = await loop.run_in_executor(None, conn.recv)
        if cmd == "grow":
            start = len(agents)
            sem = asyncio.Semaphore(ENROLL_CONCURRENCY)

            async def one(n: int, sem: asyncio.Semaphore = sem) -> Credentials:
                async with sem:
                    return await enroll(n)

            t0 = time.monotonic()
            creds = await asyncio.gather(*(one(n) for n in range(start, start + arg)))
            enroll_s = time.monotonic() - t0
            new: list[Any] = []
            for c in creds:
                driver = FakeDriver(hostname=c.identity.name)
                for g in range(4):  # a few guests per host, as a real fleet reports
                    driver.add_guest(f"{c.identity.node_id[:8]}-{g}", vcpus=2, memory_mb=2048)
                if wire:
                    new.append(WireNode(c, driver, on_rtt))
                else:
                    new.append(Agent(c, driver, None, on_rtt=on_rtt, reconcile_seconds=300))
            agents.extend(new)
            t1 = time.monotonic()
            for agent in new:
                tasks.append(asyncio.create_task(agent.run()))
                await asyncio.sleep(CONNECT_SPACING)  # nodes come up over time, not in one instant
            # Every node connected, or the deadline passed (then the figures say how many).
            deadline = time.monotonic() + CONNECT_DEADLINE
            while time.monotonic() < deadline and not all(a.connected.is_set() for a in new):
                await asyncio.sleep(0.5)
            conn.send(
                (
                    "grown",
                    {
                        "enroll_s": enroll_s,
                        "connect_s": time.monotonic() - t1,
                        "unconnected": sum(not a.connected.is_set() for a in new),
                        "errors": _errors(new),
                        "details": _details(new),
                    },
                )
            )
        elif cmd == "measure":
            rtts.clear()
            lags.clear()
            measuring = True
            cpu_start = _own_cpu_seconds()
            conn.send(("ok", None))
        elif cmd == "collect":
            measuring = False
            reconnects = sum(max(0, a.sessions - 1) for a in agents)
            conn.send(
                (
                    "rtts",
                    {
                        "rtts": list(rtts),
                        "lags": list(lags),
                        "reconnects": reconnects,
                        "cpu_s": _own_cpu_seconds() - cpu_start,
                        "held": sum(a.connected.is_set() for a in agents),
                    },
                )
            )
        elif cmd == "sessions":
            # Per node: session open, and with which controller (control_plane_bench).
            conn.send(("sessions", [(a.connected.is_set(), a.endpoints.current()) for a in agents]))
        elif cmd == "stop":
            for a in agents:
                a.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            probe.cancel()
            await public.close()
            conn.send(("stopped", None))
            return


def _own_cpu_seconds() -> float:
    """This process's CPU, every thread's (grpc-core's TLS and HTTP/2 included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _errors(nodes: list[Any]) -> dict[str, int]:
    """Why the nodes' sessions ended or failed to open, summed (wire nodes count them)."""
    out: dict[str, int] = {}
    for node in nodes:
        for why, n in getattr(node, "errors", {}).items():
            out[why] = out.get(why, 0) + n
    return out


def _details(nodes: list[Any]) -> dict[str, str]:
    """One sample of the details of each kind of failure in `_errors`."""
    out: dict[str, str] = {}
    for node in nodes:
        for why, text in getattr(node, "error_details", {}).items():
            out.setdefault(why, text)
    return out


# The controller side.


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


_STATS = re.compile(
    r"node sessions .*?loop_lag_p99_ms=([\d.]+) .*?per_second=([\d.]+) handler_p50_us=([\d.]+) handler_p99_us=([\d.]+)"
)


def _server_stats(log: Path, since: int) -> tuple[int, list[tuple[float, float, float, float]]]:
    """(per second, handler p50 us, handler p99 us, loop lag p99 ms) of each stats line after `since`."""
    text = log.read_text(errors="replace")
    out = [(float(m[2]), float(m[3]), float(m[4]), float(m[1])) for m in _STATS.finditer(text, since)]
    return len(text), out


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


def main() -> None:
    from bench.procs import ControllerProc
    from kumo.v1 import node_pb2 as pb
    from kumo.v1 import node_pb2_grpc

    sizes = [int(x) for x in os.environ.get("KUMO_BENCH_FLEET", "1000,5000,10000").split(",") if x.strip()]
    _raise_fd_limit()
    tmp = Path(tempfile.mkdtemp(prefix="kumo-fleet-"))
    data = tmp / "data"
    data.mkdir()
    ctl = ControllerProc(
        data,
        extra_env={
            "KUMO_NODE_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "KUMO_NODE_GRACE_SECONDS": "30",
            "KUMO_NODE_STATS_LOG_SECONDS": "5",
            "KUMO_WORKERS": "16",
        },
    ).start()
    log = data.parent / f"{data.name}-controller.log"
    pid = ctl.proc.pid  # type: ignore[union-attr]
    ctx = mp.get_context("spawn")
    procs, conns = [], []
    try:
        admin = ctl.login()
        token = (
            admin.stub(node_pb2_grpc.NodeServiceStub)
            .CreateJoinToken(
                pb.CreateJoinTokenRequest(join_token=pb.JoinToken(max_uses=sum([max(sizes)]) + 10))
            )
            .token
        )
        fingerprint = ctl.info["ca_fingerprint"]
        for i in range(WORKERS):
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=worker,
                args=(child, ctl.endpoint, token, fingerprint, i, str(tmp), (), True),
                daemon=True,
            )
            p.start()
            procs.append(p)
            conns.append(parent)
        print(
            f"{'nodes':>6} {'hb/s':>6} {'rtt p50':>8} {'rtt p99':>8} {'handler p50':>11} {'handler p99':>11} "
            f"{'ctl lag p99':>11} {'sim lag p99':>11} {'ctl CPU':>7} {'ctl RSS':>7} {'enroll/s':>8} "
            f"{'CPU/1k':>6} {'RSS/1k':>6}",
            flush=True,
        )
        have = 0
        for size in sizes:
            add = size - have
            per = [add // WORKERS + (1 if i < add % WORKERS else 0) for i in range(WORKERS)]
            t0 = time.monotonic()
            for c, n in zip(conns, per, strict=True):
                c.send(("grow", n))
            grown = [c.recv()[1] for c in conns]
            enroll_s = max(g["enroll_s"] for g in grown)
            unconnected = sum(g["unconnected"] for g in grown)
            errors: dict[str, int] = {}
            details: dict[str, str] = {}
            for g in grown:
                for why, text in g["details"].items():
                    details.setdefault(why, text)
                for why, n in g["errors"].items():
                    errors[why] = errors.get(why, 0) + n
            have = size
            time.sleep(HEARTBEAT_SECONDS + 2)  # every node has heartbeated; the connect burst is over
            for c in conns:
                c.send(("measure", None))
                c.recv()
            log_pos, _ = _server_stats(log, 0)
            cpu0, w0 = _cpu_seconds(pid), time.monotonic()
            time.sleep(WINDOW_SECONDS)
            cpu1, w1 = _cpu_seconds(pid), time.monotonic()
            rss = _rss_mb(pid)
            rtts: list[float] = []
            lags: list[float] = []
            reconnects = 0
            sim_cpu = 0.0
            held = 0
            for c in conns:
                c.send(("collect", None))
                got = c.recv()[1]
                rtts.extend(got["rtts"])
                lags.extend(got["lags"])
                reconnects += got["reconnects"]
                sim_cpu += got["cpu_s"]
                held += got["held"]
            _, server = _server_stats(log, log_pos)
            rate = len(rtts) / (w1 - w0)
            h50 = statistics.median([s[1] for s in server]) if server else float("nan")
            h99 = max((s[2] for s in server), default=float("nan"))
            lag99 = max((s[3] for s in server), default=float("nan"))
            print(
                f"{size:>6} {rate:>6.0f} {_pct(rtts, 0.5) * 1000:>6.1f}ms {_pct(rtts, 0.99) * 1000:>6.1f}ms "
                f"{h50:>9.0f}us {h99:>9.0f}us {lag99:>9.1f}ms {_pct(lags, 0.99) * 1000:>9.1f}ms "
                f"{100 * (cpu1 - cpu0) / (w1 - w0):>6.0f}% {rss:>5.0f}MB {add / enroll_s:>8.0f} "
                f"{100 * (cpu1 - cpu0) / (w1 - w0) / (size / 1000):>5.1f}% {rss / (size / 1000):>4.0f}MB",
                flush=True,
            )
            one, five, _ = os.getloadavg()
            print(
                f"       (load average {one:.1f} / {five:.1f} over 1 / 5 min on {os.cpu_count()} CPUs; "
                f"the {WORKERS} simulated-node processes took {100 * sim_cpu / (w1 - w0):.0f}% of one core; "
                f"{held} of {size} sessions open at the end of the window)",
                flush=True,
            )
            if unconnected:
                print(
                    f"       ({unconnected} nodes had no session {CONNECT_DEADLINE:g} s after starting)",
                    flush=True,
                )
            if errors:
                print(f"       (sessions that failed or ended while growing: {errors})", flush=True)
                for why, text in sorted(details.items()):
                    print(f"         {why}: {text}", flush=True)
            if reconnects:
                print(f"       ({reconnects} session reconnects during the run)", flush=True)
            print(
                f"       (grew by {add} in {time.monotonic() - t0 - WINDOW_SECONDS - HEARTBEAT_SECONDS - 2:.1f} s)",
                flush=True,
            )
        print(
            "rtt: heartbeat sent -> ack received, as the node sees it; handler: the controller's time per "
            "heartbeat (worst p99 of its 5 s windows); ctl lag: how late the controller's node loop runs "
            "(worst p99 of its 5 s windows); sim lag: the same in the simulated nodes' processes (p99), "
            "which inflates rtt; CPU in % of one core.",
            flush=True,
        )
    finally:
        for c in conns:
            try:
                c.send(("stop", None))
            except (OSError, BrokenPipeError):
                pass
        for c in conns:
            try:
                if c.poll(30):
                    c.recv()
            except (OSError, EOFError):
                pass
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        ctl.stop()


if __name__ == "__main__":
    sys.exit(main())
