"""Compute: scheduling throughput and boot latency.

1. Scheduling: 1,000 simulated nodes (the real agent with the fake driver, in
   client processes of their own) heartbeat into one controller; clients
   create 5,000 instances as fast as the controller places them. Prints
   placements per second and p50/p99 CreateInstance latency (placement is the
   claim committed: the call returns BUILDING). Anchors: Nova's scheduler
   ~4 placements/s, Kubernetes ~100 pods/s at 5,000 nodes; goal 500/s.
   Controller CPU per placement is printed too (less noisy than the rate on a
   shared machine), also net of what the controller spends idle (measured for
   IDLE_SECONDS before the creates), and the same run on PostgreSQL
   (bench/pg.py) after it. docs/nodes.md ("Scale: what a create costs") has figures.
2. Boot latency of one real TCG guest: CreateInstance to the test image's
   marker on its serial console, next to `virsh create` of the same domain XML
   on copies of the same disks, and the ratio (kumo's overhead), median of
   BOOTS; kumo's path broken down by stage from the node's log (`desired
   state` and `guest defined` carry their times).

KUMO_BENCH_NODES, KUMO_BENCH_INSTANCES and KUMO_BENCH_CLIENTS change the sizes."""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MARKER = b"KUMO-TEST-IMAGE-BOOTED"
BOOTS = 5
IDLE_SECONDS = 5.0


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")


def _client_proc(conn: Any, endpoint: str, ca: bytes, token: str, image: str, names: list[str]) -> None:
    import grpc

    from kumo.client import Client
    from kumo.v1 import compute_pb2 as pb

    stub = Client.connect(endpoint, ca, token, timeout=120).compute
    conn.send("ready")
    conn.recv()
    lat, errors = [], 0
    for name in names:
        t = time.perf_counter()
        try:
            stub.CreateInstance(pb.CreateInstanceRequest(name=name, image=image, flavor="b.small"))
            lat.append(time.perf_counter() - t)
        except grpc.RpcError:
            errors += 1
    conn.send((lat, errors))


def scheduling(database_url: str = "", label: str = "SQLite") -> None:
    from bench.fakecloud import cpu_seconds, load
    from bench.node_fleet_bench import _raise_fd_limit, worker
    from bench.procs import ControllerProc, make_image
    from kumo.v1 import compute_pb2 as pb
    from kumo.v1 import compute_pb2_grpc, node_pb2_grpc
    from kumo.v1 import image_pb2 as ipb
    from kumo.v1 import node_pb2 as npb

    n_nodes = int(os.environ.get("KUMO_BENCH_NODES", "1000"))
    n_inst = int(os.environ.get("KUMO_BENCH_INSTANCES", "5000"))
    n_clients = int(os.environ.get("KUMO_BENCH_CLIENTS", "8"))
    _raise_fd_limit()
    tmp = Path(tempfile.mkdtemp(prefix="kumo-sched-"))
    data = tmp / "data"
    data.mkdir()
    ctl = ControllerProc(
        data,
        extra_env={
            "KUMO_NODE_HEARTBEAT_SECONDS": "10",
            "KUMO_WORKERS": "32",
            "KUMO_QUOTA_INSTANCES": "1000000",
            "KUMO_QUOTA_VCPUS": "1000000",
            "KUMO_QUOTA_RAM_MB": "1000000000",
            "KUMO_NODE_STATS_LOG_SECONDS": "0",
            "KUMO_INSTANCE_SYNC_SECONDS": "5",
        },
        extra_args=["--database-url", database_url] if database_url else [],
    ).start()
    ctx = mp.get_context("spawn")
    procs: list[Any] = []
    conns: list[Any] = []
    try:
        admin = ctl.login()
        token = (
            admin.stub(node_pb2_grpc.NodeServiceStub)
            .CreateJoinToken(npb.CreateJoinTokenRequest(join_token=npb.JoinToken(max_uses=n_nodes + 10)))
            .token
        )
        workers = 4
        for i in range(workers):
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=worker, args=(child, ctl.endpoint, token, ctl.info["ca_fingerprint"], i), daemon=True
            )
            p.start()
            procs.append(p)
            conns.append(parent)
        t0 = time.monotonic()
        for i, c in enumerate(conns):
            c.send(("grow", n_nodes // workers + (1 if i < n_nodes % workers else 0)))
        for c in conns:
            c.recv()
        print(
            f"{n_nodes} simulated nodes enrolled and connected in {time.monotonic() - t0:.0f} s", flush=True
        )
        nodes = admin.stub(node_pb2_grpc.NodeServiceStub)
        while sum(
            x.state == npb.NODE_STATE_READY
            for x in nodes.ListNodes(npb.ListNodesRequest(page_size=1000)).nodes
        ) < min(n_nodes, 1000):
            time.sleep(1)
        img = tmp / "tiny.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-f", "qcow2", str(img), "64M"], check=True, capture_output=True
        )
        image = make_image(admin, "bench", img.read_bytes(), ipb.DISK_FORMAT_QCOW2)
        admin.stub(compute_pb2_grpc.ComputeServiceStub).CreateFlavor(
            pb.CreateFlavorRequest(
                flavor=pb.Flavor(name="b.small", vcpus=1, ram_mb=512, disk_gb=1, is_public=True)
            )
        )
        # Clients in processes of their own, so the client side is not the bottleneck.
        clients, cconns = [], []
        for k in range(n_clients):
            parent, child = ctx.Pipe()
            names = [f"b-{k}-{j}" for j in range(n_inst // n_clients)]
            p = ctx.Process(
                target=_client_proc,
                args=(child, ctl.endpoint, ctl.ca_pem, admin.token, image.id, names),
                daemon=True,
            )
            p.start()
            clients.append(p)
            cconns.append(parent)
        for c in cconns:
            c.recv()
        # What the controller spends with no creates (heartbeats, syncs): taken
        # out of the CPU per placement too, since it grows with the run's length.
        idle0 = cpu_seconds(ctl.proc.pid)  # type: ignore[union-attr]
        time.sleep(IDLE_SECONDS)
        cpu0 = cpu_seconds(ctl.proc.pid)  # type: ignore[union-attr]
        idle_rate = (cpu0 - idle0) / IDLE_SECONDS
        gen_pids = [p.pid for p in clients], [p.pid for p in procs]
        gen0 = [sum(cpu_seconds(pid) for pid in pids) for pids in gen_pids]
        start = time.perf_counter()
        for c in cconns:
            c.send("go")
        lat: list[float] = []
        errors = 0
        for c in cconns:
            got, err = c.recv()
            lat.extend(got)
            errors += err
        wall = time.perf_counter() - start
        cpu = cpu_seconds(ctl.proc.pid) - cpu0  # type: ignore[union-attr]
        client_cpu, node_cpu = (
            sum(cpu_seconds(pid) for pid in pids) - before
            for pids, before in zip(gen_pids, gen0, strict=True)
        )
        print(
            f"scheduling ({label}): {len(lat)} instances on {n_nodes} nodes with {n_clients} clients in "
            f"{wall:.1f} s: {len(lat) / wall:.0f} placements/s; CreateInstance p50 "
            f"{_pct(lat, 0.5) * 1000:.1f} ms, p99 {_pct(lat, 0.99) * 1000:.1f} ms; {errors} errors; "
            f"controller CPU {cpu * 1000 / max(1, len(lat)):.1f} ms per placement "
            f"({max(0.0, cpu - idle_rate * wall) * 1000 / max(1, len(lat)):.1f} ms net of its idle "
            f"{100 * idle_rate:.0f}% of a core; {100 * cpu / wall:.0f}% of a core in all); {load()}",
            flush=True,
        )
        # The load generators share this machine's cores: what they spend per
        # placement bounds the rate any controller could show here.
        per = [x * 1000 / max(1, len(lat)) for x in (cpu, client_cpu, node_cpu)]
        print(
            f"  CPU per placement: controller {per[0]:.1f} ms, the {n_clients} client processes "
            f"{per[1]:.1f} ms, the simulated nodes {per[2]:.1f} ms; at that cost {os.cpu_count()} cores "
            f"could place at most {(os.cpu_count() or 1) * 1000 / max(1e-9, sum(per)):.0f}/s here, and "
            f"{(os.cpu_count() or 1) * 1000 / max(1e-9, per[1] + per[2]):.0f}/s with a controller that cost nothing",
            flush=True,
        )
        for p in clients:
            p.join(5)
    finally:
        for c in conns:
            try:
                c.send(("stop", None))
                c.poll(30) and c.recv()
            except (OSError, EOFError, BrokenPipeError):
                pass
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
        ctl.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _load_scale() -> float:
    """How much slower than an idle machine to expect this one (at least 1):
    a TCG guest on a machine with a load of 30 on 2 CPUs boots many times slower."""
    return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def _wait_marker(path: Path, timeout: float = 300, first_byte: list[float] | None = None) -> float:
    """When MARKER shows in the console log (perf_counter); `first_byte` gets
    when the log first held anything (time.time(), for the stage breakdown).
    `timeout` is for an idle machine, scaled by the load when the wait starts."""
    deadline = time.perf_counter() + timeout * _load_scale()
    while time.perf_counter() < deadline:
        try:
            data = path.read_bytes()
            if data and first_byte is not None and not first_byte:
                first_byte.append(time.time())
            if MARKER in data:
                return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"no marker in {path}")


def _wait_gone(virsh: list[str], domain: str, timeout: float = 120) -> None:
    """Until libvirt no longer has `domain` (the node removed the deleted guest)."""
    deadline = time.perf_counter() + timeout * _load_scale()
    while time.perf_counter() < deadline:
        if subprocess.run([*virsh, "domstate", domain], capture_output=True).returncode != 0:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{domain} was not removed")


_FIELD = re.compile(r"(\w+)=(\S+)")
STAGES = ("image_cache_ms", "disk_ms", "config_drive_ms", "define_ms", "start_ms")


def _log_fields(log: str, message: str) -> list[dict[str, str]]:
    """The key=value fields of each text-format log line with `message`."""
    return [dict(_FIELD.findall(line)) for line in log.splitlines() if f" {message} " in f"{line} "]


def _stages(
    log: str, instance_id: str, called: float, answered: float, first_byte: float
) -> dict[str, float]:
    """One kumo boot by stage, in seconds, from the node's log (its `at`
    times are time.time(), as `called` and `answered` are)."""
    pushed = min(
        (float(f["at"]) for f in _log_fields(log, "desired state") if float(f.get("at", 0)) >= called),
        default=float("nan"),
    )
    defined = next((f for f in _log_fields(log, "guest defined") if f.get("instance") == instance_id), {})
    began = float(defined.get("at", "nan"))
    ms = {k: float(defined.get(k, 0)) / 1000 for k in STAGES}
    return {
        "API call (CreateInstance: schedule, claim, commit)": answered - called,
        "desired state reaches the node (session push)": pushed - called,
        "node starts the guest's reconcile": began - pushed,
        "image cache": ms["image_cache_ms"],
        "disk (qcow2 overlay)": ms["disk_ms"],
        "config drive": ms["config_drive_ms"],
        "define (libvirt)": ms["define_ms"],
        "start (libvirt)": ms["start_ms"],
        "start -> first console byte": first_byte - (began + sum(ms.values())),
    }


def boot_latency() -> None:
    from bench.procs import ControllerProc, NodedProc, make_image, make_token, run_noded
    from kumo.v1 import compute_pb2 as pb
    from kumo.v1 import compute_pb2_grpc, node_pb2_grpc
    from kumo.v1 import image_pb2 as ipb
    from kumo.v1 import node_pb2 as npb

    image_file = ROOT / "images" / "kumo-test.qcow2"
    subprocess.run(
        [str(ROOT / "scripts" / "build-test-image.sh"), str(image_file)], check=True, capture_output=True
    )
    subprocess.run([str(ROOT / "scripts" / "start-libvirt.sh")], check=True, capture_output=True)
    base = Path(tempfile.mkdtemp(prefix="kumo-boot-", dir="/var/tmp"))
    base.chmod(0o755)
    (base / "ctl").mkdir()
    ctl = ControllerProc(
        base / "ctl", extra_env={"KUMO_NODE_HEARTBEAT_SECONDS": "1", "KUMO_INSTANCE_SYNC_SECONDS": "0.2"}
    ).start()
    node = None
    virsh = ["virsh", "-c", "qemu:///system"]
    # The libvirtd may be shared (other tests, other benchmarks): this run
    # destroys only the domains it made, by name, never every kumo- one.
    mine: list[str] = []
    try:
        admin = ctl.login()
        state = base / "node"
        run_noded(["join", ctl.endpoint, make_token(admin), "--name", "bench", "--state-dir", str(state)])
        node = NodedProc(state, ["--virt-type", "qemu"]).start()
        nodes = admin.stub(node_pb2_grpc.NodeServiceStub)
        while not any(x.state == npb.NODE_STATE_READY for x in nodes.ListNodes(npb.ListNodesRequest()).nodes):
            time.sleep(0.2)
        image = make_image(admin, "kumo-test", image_file.read_bytes(), ipb.DISK_FORMAT_QCOW2)
        c = admin.stub(compute_pb2_grpc.ComputeServiceStub)
        c.CreateFlavor(
            pb.CreateFlavorRequest(flavor=pb.Flavor(name="t", vcpus=1, ram_mb=256, disk_gb=1, is_public=True))
        )
        # A first guest warms the node's image cache (a download is not boot latency).
        warm = c.CreateInstance(pb.CreateInstanceRequest(name="warm", image=image.id, flavor="t"))
        mine.append(f"kumo-{warm.id}")
        _wait_marker(state / "instances" / warm.id / "console.log", 600)
        c.DeleteInstance(pb.DeleteInstanceRequest(id=warm.id))
        _wait_gone(virsh, f"kumo-{warm.id}")
        kumo_s, virsh_s = [], []
        stages: list[dict[str, float]] = []
        for i in range(BOOTS):
            t0 = time.perf_counter()
            called = time.time()
            inst = c.CreateInstance(pb.CreateInstanceRequest(name=f"boot{i}", image=image.id, flavor="t"))
            answered = time.time()
            mine.append(f"kumo-{inst.id}")
            first: list[float] = []
            marker = _wait_marker(state / "instances" / inst.id / "console.log", first_byte=first)
            kumo_s.append(marker - t0)
            stage = _stages(node.log(), inst.id, called, answered, first[0] if first else float("nan"))
            stage["first console byte -> marker (the guest booting)"] = (
                called + (marker - t0) - (first[0] if first else float("nan"))
            )
            stages.append(stage)
            # The same domain XML on copies of the same disks, started by virsh.
            xml = subprocess.run(
                [*virsh, "dumpxml", f"kumo-{inst.id}"], capture_output=True, text=True, check=True
            ).stdout
            twin = base / f"twin{i}"
            twin.mkdir()
            twin.chmod(0o755)
            idir = state / "instances" / inst.id
            for f in ("disk.qcow2", "config.iso"):
                shutil.copy(idir / f, twin / f)
            twin_name = f"twin-{base.name}-{i}"  # unique to this run
            mine.append(twin_name)
            xml = xml.replace(str(idir), str(twin)).replace(f"kumo-{inst.id}", twin_name)
            xml = "\n".join(ln for ln in xml.splitlines() if "<uuid>" not in ln)
            (twin / "d.xml").write_text(xml)
            t0 = time.perf_counter()
            subprocess.run([*virsh, "create", str(twin / "d.xml")], check=True, capture_output=True)
            virsh_s.append(_wait_marker(twin / "console.log") - t0)
            subprocess.run([*virsh, "destroy", twin_name], capture_output=True)
            c.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
            # The next boot starts on an idle node: else its reconcile waits for this guest's removal.
            _wait_gone(virsh, f"kumo-{inst.id}")
        k, v = statistics.median(kumo_s), statistics.median(virsh_s)
        print(
            f"boot latency (TCG, median of {BOOTS}): kumo API call -> console marker {k:.2f} s; "
            f"virsh create -> marker {v:.2f} s; ratio {k / v:.2f} (kumo overhead {k - v:.2f} s)",
            flush=True,
        )
        print(f"  kumo's path by stage (median of {BOOTS}; the stages overlap where a row says so):")
        for name in stages[0]:
            print(f"    {name:<52} {statistics.median(s[name] for s in stages) * 1000:8.0f} ms", flush=True)
    finally:
        if node is not None:
            node.stop()
        ctl.stop()
        out = subprocess.run([*virsh, "list", "--all", "--name"], capture_output=True, text=True).stdout
        for name in set(out.split()) & set(mine):
            subprocess.run([*virsh, "destroy", name], capture_output=True)
            subprocess.run([*virsh, "undefine", name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def scheduling_postgres() -> None:
    """The same run with the controller on a real PostgreSQL server."""
    from bench.pg import PostgresServer

    base = Path(tempfile.mkdtemp(prefix="kumo-sched-pg-"))
    base.chmod(0o755)  # the server runs as the postgres user
    try:
        server = PostgresServer(base / "pg").start()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"scheduling (PostgreSQL): skipped: {exc}", flush=True)
        return
    try:
        scheduling(server.create_database("kumo_sched"), "PostgreSQL")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    boot_latency()
    scheduling()
    scheduling_postgres()


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
