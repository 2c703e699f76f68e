"""HA evacuation on a simulated fleet: 100 `ha` instances on one node of 20
(the real controller process; the real agents with the fake driver, in this
process: bench/fleet.py). The node's daemon stops (its death); with
`ha_auto_fence` the controller fences it itself once it is DOWN past the HA
grace period, and evacuates every HA instance. Figures: from the death to
DOWN (the node grace period), and from the death to each instance ACTIVE
on another node (p50, max), and the same counted from DOWN (what the
controller's own work costs).

Settings: node grace KUMO_BENCH_GRACE (5 s), HA grace 0 s, the HA pass
every 0.5 s, heartbeats every 1 s, the instance sync every 0.3 s."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.fakecloud import load, pct, table
from bench.fleet import Fleet
from bench.procs import ControllerProc, make_image, make_token, wait_for
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import compute_pb2_grpc, node_pb2
from kumo.v1 import image_pb2 as ipb

INSTANCES = 100
NODES = 20


def main() -> None:
    grace = float(os.environ.get("KUMO_BENCH_GRACE", "5"))
    base = Path(tempfile.mkdtemp(prefix="kumo-evac-bench-"))
    (base / "ctl").mkdir()
    env = {
        "KUMO_NODE_GRACE_SECONDS": str(grace),
        "KUMO_NODE_HEARTBEAT_SECONDS": "1",
        "KUMO_INSTANCE_SYNC_SECONDS": "0.3",
        "KUMO_HA_GRACE_SECONDS": "0",
        "KUMO_HA_CHECK_SECONDS": "0.5",
        "KUMO_HA_AUTO_FENCE": "true",
        "KUMO_QUOTA_INSTANCES": "1000",
        "KUMO_QUOTA_VCPUS": "4000",
        "KUMO_LOG_LEVEL": "WARNING",
    }
    ctl = ControllerProc(base / "ctl", extra_env=env).start()
    admin = ctl.login()
    compute = admin.stub(compute_pb2_grpc.ComputeServiceStub)
    fleet = Fleet(base / "nodes", vcpus=4, memory_mb=8192)
    try:
        big = fleet.add(ctl.endpoint, make_token(admin), 1, "big", vcpus=32, memory_mb=64 * 1024)[0]
        fleet.add(ctl.endpoint, make_token(admin, uses=NODES - 1), NODES - 1, "small")
        others = [n for n in fleet.nodes if n != big.node_id]

        def nodes() -> list[node_pb2.Node]:
            return list(admin.nodes.ListNodes(node_pb2.ListNodesRequest(page_size=100)).nodes)

        wait_for(lambda: sum(n.state == node_pb2.NODE_STATE_READY for n in nodes()) == NODES, what="READY")
        for n in others:
            admin.nodes.DisableNode(node_pb2.DisableNodeRequest(id=n))
        img = base / "tiny.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M"], check=True)
        image = make_image(
            admin, "bench", img.read_bytes(), ipb.DISK_FORMAT_QCOW2, visibility=ipb.IMAGE_VISIBILITY_PUBLIC
        )
        flavor = compute.CreateFlavor(
            cpb.CreateFlavorRequest(
                flavor=cpb.Flavor(name="b.1", vcpus=1, ram_mb=256, disk_gb=1, is_public=True)
            )
        )
        ids = {
            compute.CreateInstance(
                cpb.CreateInstanceRequest(name=f"ha{i}", image=image.id, flavor=flavor.id, ha=True)
            ).id
            for i in range(INSTANCES)
        }

        def listed() -> list[cpb.Instance]:
            return [
                i
                for i in compute.ListInstances(cpb.ListInstancesRequest(page_size=1000)).instances
                if i.id in ids
            ]

        wait_for(
            lambda: all(i.state == cpb.INSTANCE_STATE_ACTIVE for i in listed()),
            timeout=120,
            what="100 instances ACTIVE",
        )
        for n in others:
            admin.nodes.EnableNode(node_pb2.EnableNodeRequest(id=n))

        died = time.monotonic()
        fleet.kill(big.node_id)
        down_at = 0.0
        active_at: dict[str, float] = {}
        while len(active_at) < INSTANCES and time.monotonic() - died < 300:
            now = time.monotonic()
            if not down_at and admin.nodes.GetNode(node_pb2.GetNodeRequest(id=big.node_id)).state == (
                node_pb2.NODE_STATE_DOWN
            ):
                down_at = now
            for i in listed():
                if (
                    i.id not in active_at
                    and i.node_id != big.node_id
                    and i.state == cpb.INSTANCE_STATE_ACTIVE
                ):
                    active_at[i.id] = now - died
            time.sleep(0.05)
        from_death = list(active_at.values())
        after_down = [t - (down_at - died) for t in from_death]
        spread = Counter(i.node_id for i in listed())
        copies = Counter(
            g for n in fleet.nodes.values() if n.agent is not None for g in n.guests() if g in ids
        )
        print(
            f"{INSTANCES} HA instances, 1 node of {NODES} dies; node grace {grace:g} s, HA grace 0 s, {load()}"
        )
        table(
            [
                ("restarted elsewhere", f"{len(active_at)} of {INSTANCES}"),
                ("death -> node DOWN", f"{down_at - died:.2f} s"),
                ("death -> ACTIVE elsewhere p50", f"{pct(from_death, 0.5):.2f} s"),
                ("death -> ACTIVE elsewhere max", f"{max(from_death):.2f} s"),
                ("DOWN -> ACTIVE elsewhere p50", f"{pct(after_down, 0.5):.2f} s"),
                ("DOWN -> ACTIVE elsewhere max", f"{max(after_down):.2f} s"),
                (
                    "nodes used, per node min/max",
                    f"{len(spread)}, {min(spread.values())}/{max(spread.values())}",
                ),
                ("guests running twice", str(sum(1 for c in copies.values() if c > 1))),
            ]
        )
    finally:
        fleet.stop()
        ctl.stop()
