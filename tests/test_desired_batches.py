"""Node sessions read desired states in batches that share their networks'
and groups' reads (controller/domain/desired_batches.py), and send each node
the delta against what it last got. Checked here against real kumo-noded
processes (fake driver) and an in-process controller: after a random run of
port creates, deletes, moves between nodes and group changes, each node's
state, kept by applying those deltas, equals its state read from scratch;
and a batch reads the same states as one node at a time."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.json_format import MessageToDict

from controller.config import load_config
from controller.server import Controller
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import identity_pb2_grpc
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import network_pb2 as npb
from kumo.v1 import node_pb2 as nodepb
from tests.harness import Client
from tests.nodeutil import NodedProc, make_token, run_noded, wait_for
from tests.test_compute_fake import compute, wait_gone
from tests.test_images import make_image, qcow2_bytes
from tests.test_networks import make_network, make_subnet, net
from tests.test_query_counts import InProcess

NODES = 3
STEPS = 14
WAIT = 120.0


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("batches")
    cfg = load_config(
        overrides={
            "data_dir": base / "ctl",
            "listen": "127.0.0.1:0",
            "node_listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "log_format": "text",
            "node_heartbeat_seconds": 0.5,
            "instance_sync_seconds": 0.2,
        },
        environ={},
    )
    ctl = Controller(cfg)
    ctl.start()
    procs: list[NodedProc] = []
    try:
        endpoint = InProcess(f"127.0.0.1:{ctl.port}", (cfg.pki_dir / "ca.crt").read_bytes())
        password = (
            os.environ.get("KUMO_ADMIN_PASSWORD") or (cfg.data_dir / "admin-password").read_text().strip()
        )
        channel = endpoint.channel()
        resp = identity_pb2_grpc.IdentityServiceStub(channel).Authenticate(
            idpb.AuthenticateRequest(user="admin", password=password)
        )
        admin = Client(channel, resp.token, resp.identity)
        states: dict[str, Path] = {}
        for i in range(NODES):
            state = base / f"node{i}"
            joined = run_noded(
                [
                    "join",
                    endpoint.endpoint,
                    make_token(admin),
                    "--name",
                    f"batch{i}",
                    "--state-dir",
                    str(state),
                ]
            )
            assert joined.returncode == 0, joined.stderr
            fake = ["--driver", "fake", "--fake-vcpus", "16", "--fake-memory-mb", "16384"]
            procs.append(NodedProc(state, [*fake, "--fake-disk-gb", "200"]).start())
        nodes = wait_for(
            lambda: (
                (ns := admin.nodes.ListNodes(nodepb.ListNodesRequest(page_size=100)).nodes)
                and sum(n.state == nodepb.NODE_STATE_READY for n in ns) == NODES
                and ns
            ),
            what="fake nodes READY",
            timeout=WAIT,
        )
        for n in nodes:
            states[n.id] = base / f"node{n.name.removeprefix('batch')}"
        image = make_image(
            admin,
            "batch-img",
            qcow2_bytes(base, "tiny.qcow2", size="64M"),
            ipb.DISK_FORMAT_QCOW2,
            visibility=ipb.IMAGE_VISIBILITY_PUBLIC,
        )
        compute(admin).CreateFlavor(
            cpb.CreateFlavorRequest(
                flavor=cpb.Flavor(name="batch-f", vcpus=1, ram_mb=64, disk_gb=1, is_public=True)
            )
        )
        yield {"ctl": ctl, "admin": admin, "states": states, "image": image.id}
    finally:
        for p in procs:
            p.stop()
        ctl.stop()


def by_id(state: dict[str, Any]) -> dict[str, Any]:
    """The state with each resource list in id order (a node keeps them so after a delta)."""
    return {k: sorted(v, key=lambda m: m["id"]) if isinstance(v, list) else v for k, v in state.items()}


def applied(path: Path) -> tuple[int, dict[str, Any]]:
    """(revision, state) the node applied (what its reconciler recorded)."""
    try:
        got = json.loads((path / "desired.json").read_text())
    except (OSError, ValueError):
        return -1, {}
    return got["revision"], by_id(got["state"])


def from_scratch(ctl: Controller, node_id: str) -> tuple[int, dict[str, Any]]:
    revision, state = ctl.parts.desired.for_node(node_id)
    return revision, by_id(MessageToDict(state))


def settle(admin: Client, ids: set[str]) -> None:
    """Every instance left ACTIVE with its guest reported running (creates and
    moves done; a live move needs the node's report of a running guest)."""

    def done() -> bool:
        for i in ids:
            row = compute(admin).GetInstance(cpb.GetInstanceRequest(id=i))
            if row.state != cpb.INSTANCE_STATE_ACTIVE or row.power_state != cpb.POWER_STATE_RUNNING:
                return False
        return True

    wait_for(done, timeout=WAIT, what="instances ACTIVE and running")


def converged(cloud: dict[str, Any]) -> bool:
    """Each node's state, kept by applying deltas, is the one read from scratch.
    True when some node had VXLAN peers (ports of a network on two nodes)."""
    ctl, states = cloud["ctl"], cloud["states"]
    peers = False
    for node_id, path in states.items():
        wait_for(
            lambda path=path, node_id=node_id: applied(path) == from_scratch(ctl, node_id),
            timeout=WAIT,
            what=f"node {node_id} at its state read from scratch",
        )
        got = applied(path)
        assert got == from_scratch(ctl, node_id)
        peers = peers or any(n.get("peers") for n in got[1].get("networks", []))
    return peers


def test_random_port_changes_converge_to_the_full_state(cloud: dict[str, Any]) -> None:
    admin = cloud["admin"]
    rnd = random.Random(20)
    nets = []
    for k in range(2):
        n = make_network(admin, f"batch-net{k}")
        make_subnet(admin, n.id, f"batch-net{k}-v4", f"10.{90 + k}.0.0/24")
        nets.append(n)
    extra = net(admin).CreateSecurityGroup(
        npb.CreateSecurityGroupRequest(security_group=npb.SecurityGroup(name="batch-extra"))
    )
    node_ids = sorted(cloud["states"])
    live: set[str] = set()
    ops = {"create": 0, "delete": 0, "move": 0, "group": 0}
    saw_peers = False
    for step in range(STEPS):
        first = ["create", "create", "create", "group", "move", "delete"]  # each kind at least once
        op = first[step] if step < len(first) else rnd.choice(["create", "create", "delete", "move", "group"])
        op = op if live else "create"
        if op == "create":
            wanted = rnd.sample(nets, rnd.choice([1, 1, 2]))
            row = compute(admin).CreateInstance(
                cpb.CreateInstanceRequest(
                    name=f"batch{step}",
                    image=cloud["image"],
                    flavor="batch-f",
                    networks=[cpb.NetworkRequest(network=n.name) for n in wanted],
                )
            )
            live.add(row.id)
        elif op == "delete":
            gone = rnd.choice(sorted(live))
            compute(admin).DeleteInstance(cpb.DeleteInstanceRequest(id=gone))
            wait_gone(admin, gone, timeout=WAIT)
            live.discard(gone)
        elif op == "move":
            settle(admin, live)  # a move starts from ACTIVE
            moving = rnd.choice(sorted(live))
            here = compute(admin).GetInstance(cpb.GetInstanceRequest(id=moving)).node_id
            target = rnd.choice([n for n in node_ids if n != here])
            compute(admin).MigrateInstance(cpb.MigrateInstanceRequest(name=moving, live=True, node=target))
            wait_for(
                lambda moving=moving, target=target: (
                    (i := compute(admin).GetInstance(cpb.GetInstanceRequest(id=moving))).node_id == target
                    and i.state == cpb.INSTANCE_STATE_ACTIVE
                ),
                timeout=WAIT,
                what="instance moved",
            )
        else:  # a port joins or leaves a second group: every member's peers learn its address
            ports = net(admin).ListPorts(npb.ListPortsRequest(page_size=100)).ports
            port = rnd.choice([p for p in ports if p.instance_id in live])
            groups = list(port.security_group_ids)
            groups = [g for g in groups if g != extra.id] if extra.id in groups else [*groups, extra.id]
            net(admin).UpdatePort(
                npb.UpdatePortRequest(
                    port=npb.Port(id=port.id, security_group_ids=groups),
                    update_mask={"paths": ["security_group_ids"]},
                )
            )
        ops[op] += 1
        if step in (4, STEPS // 2):
            settle(admin, live)
            saw_peers = converged(cloud) or saw_peers
    assert min(ops.values()) > 0, ops
    settle(admin, live)
    saw_peers = converged(cloud) or saw_peers
    # Some check saw nodes as each other's peers (ports of one network on two nodes).
    assert saw_peers


def test_a_batch_reads_what_single_reads_do(cloud: dict[str, Any]) -> None:
    ctl = cloud["ctl"]
    node_ids = sorted(cloud["states"])
    batch = ctl.parts.desired.for_nodes([*node_ids, "no-such-node"])
    for node_id in node_ids:
        revision, state = batch[node_id]  # type: ignore[misc]
        assert (revision, by_id(MessageToDict(state))) == from_scratch(ctl, node_id)
    missing = batch["no-such-node"]
    assert (
        isinstance(missing, Exception) and getattr(missing, "code", None) == grpc.StatusCode.UNAUTHENTICATED
    )
