"""Networks: IPAM under concurrent port creates, exhaustion, the cost of NICs
at instance create, and the time to build a node's desired state.

One real controller (SQLite, as `make up` uses) and fake nodes (real
`kumo-noded run --driver fake` processes):

(a) CLIENTS threads (a channel each) create ports on one /16 subnet until
    PORTS exist: ports/s (overall, first and last quarter, since IPAM reads
    the subnet's taken addresses on every create), p50/p99 CreatePort
    latency, and a check that every IP and every MAC is distinct.
(b) the same on a /26 (61 addresses) with more attempts than addresses: how
    many succeed, and that every other one got RESOURCE_EXHAUSTED
    (IP_POOL_EXHAUSTED), with distinct addresses.
(c) INSTANCES CreateInstance calls with one NIC each (`networks`) against the
    same number without, on NODES fake nodes, in alternating rounds:
    placements/s, p50/p99 latency and the controller's CPU seconds for each,
    then the time until all are ACTIVE.
(d) the time to build one node's desired state (Nodes.desired_state, all
    contributors, and the networks contributor alone), in a separate process
    on an online copy of the SQLite file (the controller keeps running and
    holds the file's controller lock), after (c)
    and again after EXTRA_MEMBERS more ports join the instances' security
    group (members are sent to every node with a port in the group).

(a) and (b) run in a project of their own, so their ports are not members of
the instances' default security group in (c).

KUMO_BENCH_PORTS (2000), KUMO_BENCH_CLIENTS (8), KUMO_BENCH_NODES (20),
KUMO_BENCH_INSTANCES (300 with and 300 without NICs), KUMO_BENCH_SG_EXTRA
(1000) change the sizes. About 3 minutes at the defaults on 2 cores (20
noded processes take ~40 s to come up; NIC creates run at ~5/s there)."""

from __future__ import annotations

import ipaddress
import multiprocessing as mp
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from bench.fakecloud import cpu_seconds, fake_cloud, load, ms, pct, run_threads, table, wait_for

PORTS = int(os.environ.get("KUMO_BENCH_PORTS", "2000"))
CLIENTS = int(os.environ.get("KUMO_BENCH_CLIENTS", "8"))
NODES = int(os.environ.get("KUMO_BENCH_NODES", "20"))
INSTANCES = int(os.environ.get("KUMO_BENCH_INSTANCES", "300"))
SG_EXTRA = int(os.environ.get("KUMO_BENCH_SG_EXTRA", "1000"))
HEARTBEAT = "2"


def _net(client: Any) -> Any:
    from kumo.v1 import network_pb2_grpc

    return client.stub(network_pb2_grpc.NetworkServiceStub)


def _compute(client: Any) -> Any:
    from kumo.v1 import compute_pb2_grpc

    return client.stub(compute_pb2_grpc.ComputeServiceStub)


def _network(client: Any, name: str, cidr: str) -> tuple[str, str]:
    from kumo.v1 import network_pb2 as pb

    n = _net(client).CreateNetwork(pb.CreateNetworkRequest(network=pb.Network(name=name)))
    s = _net(client).CreateSubnet(
        pb.CreateSubnetRequest(subnet=pb.Subnet(name=f"{name}-v4", network_id=n.id, cidr=cidr))
    )
    return n.id, s.id


def _all_ports(client: Any, network_id: str) -> list[Any]:
    from kumo.v1 import network_pb2 as pb

    out, token = [], ""
    while True:
        page = _net(client).ListPorts(
            pb.ListPortsRequest(network_id=network_id, page_size=1000, page_token=token)
        )
        out.extend(page.ports)
        token = page.next_page_token
        if not token:
            return out


def _create_ports(
    clients: list[Any], network_id: str, total: int
) -> tuple[list[tuple[float, float]], dict[str, int], float]:
    """Threads take the next index until `total` attempts; ((done at, latency) of
    each success, error counts by code/reason, wall seconds)."""
    import grpc

    from kumo.errorinfo import error_reason
    from kumo.v1 import network_pb2 as pb

    lock = threading.Lock()
    counter = iter(range(total))
    errors: dict[str, int] = {}
    t0 = time.perf_counter()

    def body(k: int) -> list[tuple[float, float]]:
        stub = _net(clients[k])
        done = []
        while True:
            with lock:
                if next(counter, None) is None:
                    return done
            t = time.perf_counter()
            try:
                stub.CreatePort(pb.CreatePortRequest(port=pb.Port(network_id=network_id)))
                now = time.perf_counter()
                done.append((now - t0, now - t))
            except grpc.RpcError as exc:
                key = f"{exc.code().name}/{error_reason(exc)}"
                with lock:
                    errors[key] = errors.get(key, 0) + 1

    results, wall = run_threads(len(clients), body)
    return [x for r in results for x in r], errors, wall


def ports_16(cloud: Any, clients: list[Any]) -> None:
    net_id, _ = _network(clients[0], "bench16", "10.0.0.0/16")
    pid = cloud.pid
    c0 = cpu_seconds(pid)
    done, errors, wall = _create_ports(clients, net_id, PORTS)
    cpu = cpu_seconds(pid) - c0
    done.sort()
    lat = [x[1] for x in done]
    q = max(1, len(done) // 4)
    first = q / done[q - 1][0] if done else float("nan")
    last = q / (done[-1][0] - done[-q - 1][0]) if len(done) > q else float("nan")
    first_lat = statistics.median(x[1] for x in done[:q])
    last_lat = statistics.median(x[1] for x in done[-q:])
    ports = _all_ports(clients[0], net_id)
    ips = [ip.ip_address for p in ports for ip in p.fixed_ips]
    macs = [p.mac_address for p in ports]
    print(f"(a) port creates on a /16, {len(clients)} clients:", flush=True)
    table(
        [
            ("ports created", f"{len(done)} in {wall:.1f} s: {len(done) / wall:.0f} ports/s"),
            ("CreatePort latency", f"p50 {ms(pct(lat, 0.5))}, p99 {ms(pct(lat, 0.99))}"),
            (
                "first / last quarter",
                f"{first:.0f} / {last:.0f} ports/s (median latency {ms(first_lat)} / {ms(last_lat)})",
            ),
            ("controller CPU", f"{cpu:.1f} s ({100 * cpu / wall:.0f}% of one core)"),
            ("errors", str(errors or "none")),
            (
                "listed / distinct IPs / distinct MACs",
                f"{len(ports)} / {len(set(ips))} of {len(ips)} / {len(set(macs))} of {len(macs)}"
                + (
                    "  OK"
                    if len(set(ips)) == len(ips) == len(set(macs)) == len(ports) == len(done)
                    else "  WRONG"
                ),
            ),
        ]
    )


def ports_26(clients: list[Any]) -> None:
    net_id, _ = _network(clients[0], "bench26", "10.1.0.0/26")
    usable = 64 - 3  # network, broadcast, gateway
    attempts = usable + 5 * len(clients)
    done, errors, wall = _create_ports(clients, net_id, attempts)
    ports = _all_ports(clients[0], net_id)
    ips = [ip.ip_address for p in ports for ip in p.fixed_ips]
    inside = all(ipaddress.ip_address(i) in ipaddress.ip_network("10.1.0.0/26") for i in ips)
    exhausted = errors.get("RESOURCE_EXHAUSTED/IP_POOL_EXHAUSTED", 0)
    ok = len(done) == usable and exhausted == attempts - usable and len(set(ips)) == len(ips) == usable
    print(f"(b) port creates on a /26 ({usable} addresses), {attempts} attempts by {len(clients)} clients:")
    table(
        [
            ("succeeded", f"{len(done)} in {wall:.2f} s"),
            ("refused", ", ".join(f"{v} {k}" for k, v in sorted(errors.items())) or "none"),
            ("distinct IPs (all in the /26)", f"{len(set(ips))} of {len(ips)} ({inside})"),
            ("verdict", "OK" if ok else "WRONG"),
        ]
    )


def _create_instances(
    clients: list[Any], image: str, names: list[str], network: str
) -> tuple[list[float], dict[str, int], float]:
    import grpc

    from kumo.errorinfo import error_reason
    from kumo.v1 import compute_pb2 as cpb

    per = [names[k :: len(clients)] for k in range(len(clients))]
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def body(k: int) -> list[float]:
        stub = _compute(clients[k])
        lat = []
        for name in per[k]:
            req = cpb.CreateInstanceRequest(name=name, image=image, flavor="b.small")
            if network:
                req.networks.append(cpb.NetworkRequest(network=network))
            t = time.perf_counter()
            try:
                stub.CreateInstance(req, timeout=120)
                lat.append(time.perf_counter() - t)
            except grpc.RpcError as exc:
                key = f"{exc.code().name}/{error_reason(exc)}"
                with lock:
                    errors[key] = errors.get(key, 0) + 1
        return lat

    results, wall = run_threads(len(clients), body)
    return [x for r in results for x in r], errors, wall


def instances(cloud: Any, clients: list[Any]) -> None:
    from kumo.v1 import compute_pb2 as cpb

    _network(clients[0], "inst", "10.64.0.0/16")
    stats: dict[str, dict[str, Any]] = {
        k: {"lat": [], "wall": 0.0, "cpu": 0.0, "errors": {}} for k in ("without NICs", "with one NIC")
    }
    rounds = 2
    per_round = INSTANCES // rounds
    for r in range(rounds):
        for kind, network in (("without NICs", ""), ("with one NIC", "inst")):
            tag = "p" if not network else "n"
            names = [f"{tag}{r}-{i}" for i in range(per_round)]
            c0 = cpu_seconds(cloud.pid)
            lat, errors, wall = _create_instances(clients, cloud.image_id, names, network)
            s = stats[kind]
            s["cpu"] += cpu_seconds(cloud.pid) - c0
            s["lat"] += lat
            s["wall"] += wall
            for k, v in errors.items():
                s["errors"][k] = s["errors"].get(k, 0) + v
    t_last = time.perf_counter()
    total = sum(len(s["lat"]) for s in stats.values())

    def active() -> int:
        n, token = 0, ""
        while True:
            page = _compute(clients[0]).ListInstances(
                cpb.ListInstancesRequest(page_size=1000, page_token=token)
            )
            n += sum(i.state == cpb.INSTANCE_STATE_ACTIVE for i in page.instances)
            token = page.next_page_token
            if not token:
                return n

    try:
        wait_for(lambda: active() >= total, timeout=180, step=0.5, what="instances ACTIVE")
        settle = f"{time.perf_counter() - t_last:.1f} s after the last create"
    except AssertionError:  # wait_for's timeout
        settle = f"not all after 180 s ({active()} of {total})"
    print(
        f"(c) instance creates on {len(cloud.node_ids)} fake nodes, {len(clients)} clients, "
        f"{rounds} alternating rounds of {per_round}:",
        flush=True,
    )
    print(
        f"  {'':<14} {'placed':>6} {'placements/s':>12} {'p50':>9} {'p99':>9} {'ctl CPU/create':>14}  errors"
    )
    for kind, s in stats.items():
        n = len(s["lat"])
        print(
            f"  {kind:<14} {n:>6} {n / s['wall']:>12.0f} {ms(pct(s['lat'], 0.5)):>9} "
            f"{ms(pct(s['lat'], 0.99)):>9} {ms(s['cpu'] / max(n, 1)):>14}  {s['errors'] or 'none'}",
            flush=True,
        )
    table([("all ACTIVE", settle)])


# (d): in a process of its own, on a snapshot of the SQLite file (a running
# controller holds the file's controller lock, controller/db/sqlite_lock.py).


def _snapshot(data_dir: Path, dest: Path) -> Path:
    """A copy of the controller's data directory with a consistent copy of
    its database (SQLite's online backup, taken while the controller runs)."""
    import shutil
    import sqlite3

    shutil.copytree(data_dir, dest, ignore=shutil.ignore_patterns("kumo.db*"))
    src, dst = sqlite3.connect(data_dir / "kumo.db"), sqlite3.connect(dest / "kumo.db")
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return dest


def _desired_proc(conn: Any, data_dir: str, node_ids: list[str]) -> None:
    import logging

    logging.disable(logging.CRITICAL)
    from controller.config import load_config
    from controller.db import nodes as node_store
    from controller.db.database import db
    from controller.server import Controller

    ctl = Controller(load_config(overrides={"data_dir": data_dir}))
    out = []
    for node_id in node_ids:
        total, contrib = [], []
        state = None
        for _ in range(3):
            t = time.perf_counter()
            _, state = ctl.parts.desired.for_node(node_id)
            total.append(time.perf_counter() - t)
            with db.atomic():
                row = node_store.get_node(node_id)
                from kumo.v1 import node_agent_pb2 as npb

                s2 = npb.NodeDesiredState()
                t = time.perf_counter()
                ctl.parts.networks.contribute(row, s2)
                contrib.append(time.perf_counter() - t)
        assert state is not None
        out.append(
            {
                "total": min(total),
                "networks": min(contrib),
                "ports": len(state.ports),
                "instances": len(state.instances),
                "groups": len(state.security_groups),
                "members": sum(len(g.member_ips) for g in state.security_groups),
                "peers": sum(len(n.peers) for n in state.networks),
                "bytes": state.ByteSize(),
            }
        )
    conn.send(out)


def _report_desired(label: str, got: list[dict[str, Any]]) -> None:
    got = [g for g in got if g["ports"]] or got
    worst = max(got, key=lambda g: (g["ports"], g["total"]))
    tot = [g["total"] for g in got]
    print(f"  {label}", flush=True)
    table(
        [
            ("nodes with ports", str(len(got))),
            ("desired_state per node", f"median {ms(statistics.median(tot))}, max {ms(max(tot))}"),
            ("  of which networks", f"median {ms(statistics.median(g['networks'] for g in got))}"),
            (
                "node with most ports",
                f"{worst['ports']} ports, {worst['instances']} instances, {worst['groups']} groups, "
                f"{worst['members']} member IPs, {worst['peers']} peers, {worst['bytes'] / 1024:.0f} KiB: "
                f"{ms(worst['total'])}",
            ),
            ("all nodes once (one group change)", f"{sum(tot) * 1000:.0f} ms"),
        ]
    )


def _build_times(cloud: Any, snapshot: Path) -> list[dict[str, Any]]:
    """(d)'s figures for every node, built in a fresh process on `snapshot`."""
    import shutil

    _snapshot(cloud.ctl.data_dir, snapshot)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    env_before = dict(os.environ)
    os.environ.update(cloud.ctl.env())
    proc = ctx.Process(target=_desired_proc, args=(child, str(snapshot), cloud.node_ids), daemon=True)
    proc.start()
    os.environ.clear()
    os.environ.update(env_before)
    child.close()  # the child's end: recv() raises EOFError if the child dies
    try:
        return parent.recv()  # type: ignore[no-any-return]
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
        shutil.rmtree(snapshot, ignore_errors=True)


def desired(cloud: Any, clients: list[Any]) -> None:
    import grpc

    from kumo.v1 import network_pb2 as pb

    print(
        "(d) building a node's desired state (in another process, on a copy of the SQLite file):", flush=True
    )
    try:
        _report_desired("after (c)", _build_times(cloud, cloud.base / "snapshot-c"))
        if SG_EXTRA:
            net_id = _net(clients[0]).ListNetworks(pb.ListNetworksRequest(name="inst")).networks[0].id
            done, errors, wall = _create_ports(clients, net_id, SG_EXTRA)
            if errors:
                print(f"  (extra ports: errors {errors})")
            _report_desired(
                f"after {len(done)} more ports in the instances' default group "
                f"({len(done) / wall:.0f} ports/s on that network)",
                _build_times(cloud, cloud.base / "snapshot-extra"),
            )
    except (EOFError, grpc.RpcError) as exc:
        print(f"  (d) skipped: {exc!r}")


def main() -> None:
    from bench.procs import make_user
    from kumo.v1 import identity_pb2 as idpb

    env = {
        "KUMO_NODE_HEARTBEAT_SECONDS": HEARTBEAT,
        "KUMO_INSTANCE_SYNC_SECONDS": "1",
        "KUMO_NODE_STATS_LOG_SECONDS": "0",
        "KUMO_WORKERS": "32",
        "KUMO_LOG_LEVEL": "WARNING",
        "KUMO_QUOTA_INSTANCES": "1000000",
        "KUMO_QUOTA_VCPUS": "1000000",
        "KUMO_QUOTA_RAM_MB": "1000000000",
        "KUMO_QUOTA_PORTS": "1000000",  # (a) and (c) make more than the default 500
    }
    node_args = ["--fake-vcpus", "64", "--fake-memory-mb", str(256 * 1024), "--fake-disk-gb", "4000"]
    print(load(), flush=True)
    t0 = time.monotonic()
    with fake_cloud("kumo-netbench-", NODES, env, node_args) as cloud:
        print(f"controller and {NODES} fake nodes up in {time.monotonic() - t0:.0f} s; {load()}", flush=True)
        admin = cloud.admin
        project = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="ipam")))
        make_user(admin, project.id, "ipam-member", idpb.ROLE_MEMBER)
        members = [cloud.ctl.login("ipam-member", "password-123") for _ in range(CLIENTS)]
        ports_16(cloud, members)
        ports_26(members)
        print(load(), flush=True)
        admins = [cloud.client() for _ in range(CLIENTS)]
        instances(cloud, admins)
        print(load(), flush=True)
        desired(cloud, admins)
        print(load(), flush=True)


if __name__ == "__main__":
    main()
