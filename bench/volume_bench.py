"""Volumes on fake nodes: create throughput, attach/detach cycles, racing
attaches.

One real controller (SQLite, as `make up` uses) and NODES fake nodes (real
`kumo-noded run --driver fake` processes, whose in-memory storage backend
makes volumes at once and whose guests report what they have attached):

1. CLIENTS threads (a channel each) create VOLUMES volumes of 1 GiB:
   volumes/s, p50/p99 CreateVolume latency, how they spread over the nodes,
   and the time until every one is AVAILABLE (the node has made it and the
   controller's volume sync has seen it in a heartbeat).
2. Attach/detach cycles: one thread per instance (up to CLIENTS instances,
   on different nodes), each CYCLES times: AttachVolume, wait IN_USE,
   DetachVolume, wait AVAILABLE (polling GetVolume every 50 ms). Cycles/s
   and the time each half takes; both are bounded by the node heartbeat
   and the controller's sync interval (printed).
3. Racing attaches: ROUNDS rounds, each of two AttachVolume calls at once
   (two threads, two channels) of one AVAILABLE volume to two instances on
   its node: how many rounds had exactly one winner (the loser must get
   FAILED_PRECONDITION VOLUME_WRONG_STATE), and that the volume names the
   winner. The winner is detached at once (from ATTACHING) and the next round
   takes another volume, so rounds do not wait for nodes.

KUMO_BENCH_NODES (10), KUMO_BENCH_VOLUMES (1000), KUMO_BENCH_CLIENTS (8),
KUMO_BENCH_CYCLES (5), KUMO_BENCH_ROUNDS (200), KUMO_BENCH_HEARTBEAT (1 s)
and KUMO_BENCH_SYNC (0.5 s) change the sizes and intervals."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, defaultdict
from typing import Any

from bench.fakecloud import cpu_seconds, fake_cloud, load, ms, pct, run_threads, table, wait_for

NODES = int(os.environ.get("KUMO_BENCH_NODES", "10"))
VOLUMES = int(os.environ.get("KUMO_BENCH_VOLUMES", "1000"))
CLIENTS = int(os.environ.get("KUMO_BENCH_CLIENTS", "8"))
CYCLES = int(os.environ.get("KUMO_BENCH_CYCLES", "5"))
ROUNDS = int(os.environ.get("KUMO_BENCH_ROUNDS", "200"))
HEARTBEAT = os.environ.get("KUMO_BENCH_HEARTBEAT", "1")
SYNC = os.environ.get("KUMO_BENCH_SYNC", "0.5")


def _vol(client: Any) -> Any:
    from kumo.v1 import volume_pb2_grpc

    return client.stub(volume_pb2_grpc.VolumeServiceStub)


def _compute(client: Any) -> Any:
    from kumo.v1 import compute_pb2_grpc

    return client.stub(compute_pb2_grpc.ComputeServiceStub)


def _list_volumes(client: Any, state: int = 0) -> list[Any]:
    from kumo.v1 import volume_pb2 as pb

    out, token = [], ""
    while True:
        page = _vol(client).ListVolumes(pb.ListVolumesRequest(page_size=1000, page_token=token, state=state))
        out.extend(page.volumes)
        token = page.next_page_token
        if not token:
            return out


def _wait_state(stub: Any, volume_id: str, state: int, timeout: float = 60) -> float:
    """Polls GetVolume every 50 ms; returns when it reached `state`."""
    from kumo.v1 import volume_pb2 as pb

    deadline = time.perf_counter() + timeout
    while True:
        v = stub.GetVolume(pb.GetVolumeRequest(id=volume_id))
        if v.state == state:
            return time.perf_counter()
        if v.state == pb.VOLUME_STATE_ERROR:
            raise RuntimeError(f"volume {volume_id} went to ERROR: {v.fault}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"volume {volume_id} still {pb.VolumeState.Name(v.state)}")
        time.sleep(0.05)


def creates(cloud: Any, clients: list[Any]) -> list[Any]:
    import grpc

    from kumo.errorinfo import error_reason
    from kumo.v1 import volume_pb2 as pb

    errors: Counter[str] = Counter()
    lock = threading.Lock()

    def body(k: int) -> list[tuple[float, float]]:
        stub = _vol(clients[k])
        lat = []
        for i in range(k, VOLUMES, len(clients)):
            t = time.perf_counter()
            try:
                stub.CreateVolume(pb.CreateVolumeRequest(volume=pb.Volume(name=f"v{i}", size_gb=1)))
                now = time.perf_counter()
                lat.append((now - t0, now - t))
            except grpc.RpcError as exc:
                with lock:
                    errors[f"{exc.code().name}/{error_reason(exc)}"] += 1
        return lat

    c0 = cpu_seconds(cloud.pid)
    t0 = time.perf_counter()
    results, wall = run_threads(len(clients), body)
    cpu = cpu_seconds(cloud.pid) - c0
    t_last = time.perf_counter()
    done_at = sorted(x for r in results for x in r)
    lat = [x[1] for x in done_at]
    q = max(1, len(done_at) // 4)
    first = q / done_at[q - 1][0] if done_at else float("nan")
    last = q / (done_at[-1][0] - done_at[-q - 1][0]) if len(done_at) > q else float("nan")
    try:
        wait_for(
            lambda: len(_list_volumes(clients[0], pb.VOLUME_STATE_AVAILABLE)) >= len(lat),
            timeout=120,
            step=0.25,
            what="volumes AVAILABLE",
        )
        done = time.perf_counter()
        settle = f"{done - t0:.1f} s after the first create, {done - t_last:.1f} s after the last"
    except TimeoutError:
        settle = "not all within 120 s"
    vols = _list_volumes(clients[0])
    per_node = Counter(v.node_id for v in vols)
    states = Counter(pb.VolumeState.Name(v.state).removeprefix("VOLUME_STATE_") for v in vols)
    print(
        f"1. volume creates (1 GiB) on {len(cloud.node_ids)} fake nodes, {len(clients)} clients:", flush=True
    )
    table(
        [
            ("created", f"{len(lat)} in {wall:.1f} s: {len(lat) / wall:.0f} volumes/s"),
            ("CreateVolume latency", f"p50 {ms(pct(lat, 0.5))}, p99 {ms(pct(lat, 0.99))}"),
            ("first / last quarter", f"{first:.0f} / {last:.0f} volumes/s"),
            ("controller CPU", f"{cpu:.1f} s ({ms(cpu / max(len(lat), 1))} per create)"),
            ("errors", str(dict(errors)) if errors else "none"),
            ("per node", f"min {min(per_node.values())}, max {max(per_node.values())}"),
            ("all AVAILABLE", settle),
            ("states now", str(dict(states))),
        ]
    )
    return vols


def _instances(cloud: Any, client: Any, pairs: int) -> list[tuple[Any, Any]]:
    """`pairs` pairs of ACTIVE instances, each pair on one node (an affinity group)."""
    from kumo.v1 import compute_pb2 as cpb

    c = _compute(client)
    made = []
    for p in range(pairs):
        group = c.CreateServerGroup(
            cpb.CreateServerGroupRequest(
                server_group=cpb.ServerGroup(name=f"pair{p}", policy=cpb.SERVER_GROUP_POLICY_AFFINITY)
            )
        )
        made.append(
            [
                c.CreateInstance(
                    cpb.CreateInstanceRequest(
                        name=f"vm{p}{x}", image=cloud.image_id, flavor="b.small", server_group_id=group.id
                    )
                )
                for x in "ab"
            ]
        )
    out = []
    for a, b in made:
        out.append(
            tuple(
                wait_for(
                    lambda i=i: (
                        (x := c.GetInstance(cpb.GetInstanceRequest(id=i.id))).state
                        == cpb.INSTANCE_STATE_ACTIVE
                        and x
                    ),
                    timeout=120,
                    what="instance ACTIVE",
                )
                for i in (a, b)
            )
        )
    return out  # type: ignore[return-value]


def cycles(clients: list[Any], pairs: list[tuple[Any, Any]], pools: dict[str, list[str]]) -> None:
    from kumo.v1 import volume_pb2 as pb

    n = min(len(clients), len(pairs))
    attach_s: list[float] = []
    detach_s: list[float] = []
    rpc_s: list[float] = []
    lock = threading.Lock()

    def body(k: int) -> None:
        stub = _vol(clients[k])
        vm = pairs[k][0]
        vol = pools[vm.node_id].pop()
        for _ in range(CYCLES):
            t = time.perf_counter()
            stub.AttachVolume(pb.AttachVolumeRequest(id=vol, instance_id=vm.id))
            r1 = time.perf_counter() - t
            a = _wait_state(stub, vol, pb.VOLUME_STATE_IN_USE) - t
            t = time.perf_counter()
            stub.DetachVolume(pb.DetachVolumeRequest(id=vol))
            r2 = time.perf_counter() - t
            d = _wait_state(stub, vol, pb.VOLUME_STATE_AVAILABLE) - t
            with lock:
                attach_s.append(a)
                detach_s.append(d)
                rpc_s.extend((r1, r2))

    _, wall = run_threads(n, body)
    total = len(attach_s)
    nodes = len({pairs[k][0].node_id for k in range(n)})
    print(f"2. attach/detach cycles: {n} instances on {nodes} nodes, {CYCLES} cycles each:", flush=True)
    table(
        [
            (
                "cycles",
                f"{total} in {wall:.1f} s: {total / wall:.2f} cycles/s ({total / wall / n:.2f} per volume)",
            ),
            ("attach -> IN_USE", f"p50 {ms(pct(attach_s, 0.5))}, max {ms(max(attach_s))}"),
            ("detach -> AVAILABLE", f"p50 {ms(pct(detach_s, 0.5))}, max {ms(max(detach_s))}"),
            ("Attach/Detach RPC", f"p50 {ms(pct(rpc_s, 0.5))}, p99 {ms(pct(rpc_s, 0.99))}"),
            ("intervals", f"node heartbeat {HEARTBEAT} s, controller volume sync {SYNC} s"),
        ]
    )


def races(clients: list[Any], pairs: list[tuple[Any, Any]], pools: dict[str, list[str]]) -> None:
    import grpc

    from kumo.errorinfo import error_reason
    from kumo.v1 import volume_pb2 as pb

    stubs = [_vol(clients[0]), _vol(clients[1])]
    outcomes: Counter[str] = Counter()
    losers: Counter[str] = Counter()
    mismatched = 0
    used: list[str] = []
    round_s: list[float] = []
    t_start = time.perf_counter()
    for r in range(ROUNDS):
        a, b = pairs[r % len(pairs)]
        pool = pools[a.node_id]
        if not pool:
            outcomes["skipped: no AVAILABLE volume left on the node"] += 1
            continue
        vol = pool.pop()
        used.append(vol)

        def attach(k: int, vms: tuple[Any, Any] = (a, b), vol: str = vol) -> tuple[str, str]:
            try:
                v = stubs[k].AttachVolume(pb.AttachVolumeRequest(id=vol, instance_id=vms[k].id))
                return ("ok", v.instance_id)
            except grpc.RpcError as exc:
                return (exc.code().name, error_reason(exc))

        got, took = run_threads(2, attach)
        round_s.append(took)
        wins = [g for g in got if g[0] == "ok"]
        outcomes[f"{len(wins)} winner(s)"] += 1
        for g in got:
            if g[0] != "ok":
                losers[f"{g[0]}/{g[1]}"] += 1
        if len(wins) == 1:
            now = stubs[0].GetVolume(pb.GetVolumeRequest(id=vol))
            if now.instance_id != wins[0][1]:
                mismatched += 1
            try:
                stubs[0].DetachVolume(pb.DetachVolumeRequest(id=vol))
            except grpc.RpcError as exc:
                outcomes[f"detach refused: {exc.code().name}/{error_reason(exc)}"] += 1
    wall = time.perf_counter() - t_start
    t0 = time.perf_counter()
    try:
        wait_for(
            lambda: all(
                stubs[0].GetVolume(pb.GetVolumeRequest(id=v)).state == pb.VOLUME_STATE_AVAILABLE for v in used
            ),
            timeout=120,
            step=0.5,
            what="raced volumes AVAILABLE",
        )
        settle = f"{time.perf_counter() - t0:.1f} s after the last round"
    except TimeoutError:
        settle = "not all within 120 s"
    ok = outcomes.get("1 winner(s)", 0)
    print(f"3. racing attaches: {ROUNDS} rounds of two AttachVolume of one volume at once:", flush=True)
    table(
        [
            (
                "exactly one winner",
                f"{ok} of {ROUNDS}" + ("  OK" if ok == ROUNDS and not mismatched else "  WRONG"),
            ),
            ("outcomes", str(dict(outcomes))),
            ("losers got", str(dict(losers))),
            ("volume names another instance than the winner", str(mismatched)),
            (
                "round (both calls)",
                f"p50 {ms(pct(round_s, 0.5))}, p99 {ms(pct(round_s, 0.99))}; {wall:.1f} s in all",
            ),
            ("raced volumes AVAILABLE again", settle),
        ]
    )


def main() -> None:
    from kumo.v1 import volume_pb2 as pb

    env = {
        "KUMO_NODE_HEARTBEAT_SECONDS": HEARTBEAT,
        "KUMO_INSTANCE_SYNC_SECONDS": SYNC,
        "KUMO_NODE_STATS_LOG_SECONDS": "0",
        "KUMO_WORKERS": "32",
        "KUMO_LOG_LEVEL": "WARNING",
        "KUMO_QUOTA_VOLUMES": "1000000",
        "KUMO_QUOTA_VOLUME_GB": "100000000",
        "KUMO_QUOTA_INSTANCES": "100000",
        "KUMO_QUOTA_VCPUS": "100000",
        "KUMO_QUOTA_RAM_MB": "100000000",
    }
    print(load(), flush=True)
    t0 = time.monotonic()
    with fake_cloud("kumo-volbench-", NODES, env, ["--fake-disk-gb", "4000"]) as cloud:
        print(f"controller and {NODES} fake nodes up in {time.monotonic() - t0:.0f} s; {load()}", flush=True)
        clients = [cloud.client() for _ in range(CLIENTS)]
        vols = creates(cloud, clients)
        print(load(), flush=True)
        pairs = _instances(cloud, clients[0], min(NODES, 10))
        pools: dict[str, list[str]] = defaultdict(list)
        for v in vols:
            if v.state == pb.VOLUME_STATE_AVAILABLE:
                pools[v.node_id].append(v.id)
        spread = len({a.node_id for a, _ in pairs})
        print(f"({len(pairs)} pairs of instances on {spread} nodes)", flush=True)
        cycles(clients, pairs, pools)
        print(load(), flush=True)
        races(clients, pairs, pools)
        print(load(), flush=True)


if __name__ == "__main__":
    main()
