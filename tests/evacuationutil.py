"""The real-guest evacuation scenario's parts, shared by the shared-fs and
the rbd e2e tests (tests/test_evacuation_e2e.py, test_evacuation_rbd_e2e.py):
two node daemons on this host's libvirt ("hosts" A and B, each with its own
state and instances directory), host A lost, fenced and evacuated, then
back and dropping its stale copy."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

from kumo.v1 import node_pb2, node_pb2_grpc
from tests.cloudutil import destroy_guests, libvirt_and_test_image, libvirt_cloud, ready_nodes, virsh
from tests.netutil import state_dir
from tests.nodeutil import NodedProc, make_token, run_noded
from tests.test_volumes_e2e import Api
from tests.waits import diagnose, wait_until

GRACE = 4  # a silent node is DOWN after this


def node_args(backend_args: list[str]) -> list[str]:
    return ["--virt-type", "qemu", "--reconcile-seconds", "3", *backend_args]


@contextlib.contextmanager
def two_hosts(prefix: str, backend_args: list[str], base: Path | None = None) -> Iterator[dict]:
    """A controller, node "<prefix>-a" (libvirt_cloud's: `state`, `node`)
    and node "<prefix>-b" (`state_b`), both run with `backend_args`, both
    READY; node A's daemon as the test last restarted it is stopped after."""
    libvirt_and_test_image()
    base = base or state_dir(f"kumo-{prefix}-e2e-")
    second = None
    env: dict = {}
    try:
        with libvirt_cloud(
            base,
            f"{prefix}-a",
            "vol.small",
            reconcile_seconds=3,
            node_args=backend_args,
            ctl_env={"KUMO_NODE_GRACE_SECONDS": str(GRACE)},
        ) as c:
            state_b = base / "node-b"
            joined = run_noded(
                [
                    "join",
                    c["ctl"].endpoint,
                    make_token(c["admin"]),
                    "--name",
                    f"{prefix}-b",
                    "--state-dir",
                    str(state_b),
                ]
            )
            assert joined.returncode == 0, joined.stderr
            second = NodedProc(state_b, node_args(backend_args)).start()
            wait_until(lambda: len(ready_nodes(c["admin"])) == 2, what="both nodes READY", base=60, step=0.2)
            # `restarted` is shared by every shallow copy a fixture makes of this dict.
            env = {**c, "state_b": state_b, "prefix": prefix, "backend_args": backend_args, "restarted": []}
            yield env
    finally:
        if second is not None:
            second.stop()
        for restarted in env.get("restarted", ()):
            restarted.stop()  # node A's daemon as the test started it again
        destroy_guests(str(base))
        shutil.rmtree(base, ignore_errors=True)


class Evacuation:
    """One server's evacuation from host A to host B, step by step."""

    def __init__(self, cloud: dict, server_id: str) -> None:
        self.cloud = cloud
        self.api = Api(cloud["admin"])
        self.nodes = self.api.admin.stub(node_pb2_grpc.NodeServiceStub)
        listed = {n.name: n for n in ready_nodes(self.api.admin)}
        self.a, self.b = listed[f"{cloud['prefix']}-a"].id, listed[f"{cloud['prefix']}-b"].id
        self.server_id = server_id
        self.domain = f"kumo-{server_id}"
        self.a_dir = cloud["state"] / "instances" / server_id

    def node(self, node_id: str) -> node_pb2.Node:
        return self.nodes.GetNode(node_pb2.GetNodeRequest(id=node_id))

    def lose_and_evacuate(self) -> None:
        """Host A is lost (its daemon SIGKILLed): DOWN, the server keeps its
        state with power UNKNOWN. The operator powers A off (here: its
        domain destroyed and undefined, the two "hosts" sharing one
        libvirtd), fences it and evacuates it: the server moves to B."""
        api, cpb = self.api, self.api.cpb
        assert self.a_dir.exists()
        self.cloud["node"].stop(signal.SIGKILL)
        wait_until(
            lambda: self.node(self.a).state == node_pb2.NODE_STATE_DOWN, what="host A DOWN", base=GRACE * 5
        )
        lost = api.compute.GetInstance(cpb.GetInstanceRequest(id=self.server_id))
        assert (lost.state, lost.power_state) == (cpb.INSTANCE_STATE_ACTIVE, cpb.POWER_STATE_UNKNOWN)
        virsh("destroy", self.domain)
        virsh("undefine", self.domain)
        assert self.nodes.FenceNode(node_pb2.FenceNodeRequest(id=self.a)).fenced
        done = self.nodes.EvacuateNode(node_pb2.EvacuateNodeRequest(id=self.a)).evacuations
        assert [(e.instance_id, e.outcome, e.target_node_id) for e in done] == [
            (self.server_id, node_pb2.EVACUATION_OUTCOME_MOVED, self.b)
        ], done
        api.wait_instance(self.server_id, "ACTIVE")
        assert api.compute.GetInstance(cpb.GetInstanceRequest(id=self.server_id)).node_id == self.b

    def on_b(self, pattern: str) -> str:
        """B's own console log once it matches (the API's copy may still be A's last report)."""
        console = self.cloud["state_b"] / "instances" / self.server_id / "console.log"
        return wait_until(
            lambda: (
                console.exists() and re.search(pattern, t := console.read_text(errors="replace"), re.M) and t
            ),
            what=f"{pattern!r} on B's console",
            base=120,
            step=0.5,
            explain=lambda: diagnose(self.api.admin, self.server_id),
        )

    def return_and_drop_copy(self, volumes_kept: Callable[[], bool]) -> None:
        """A returns while fenced: refused, it touches nothing. Re-admitted,
        it removes its stale copy (its instance directory) but not the shared
        volumes (`volumes_kept`), and exactly one guest runs."""
        again = NodedProc(self.cloud["state"], node_args(self.cloud["backend_args"])).start()
        self.cloud["node"] = again
        self.cloud["restarted"].append(again)
        wait_until(lambda: "NODE_FENCED" in again.log(), what="host A refused (fenced)", base=30)
        assert not self.node(self.a).connected and self.a_dir.exists()
        self.nodes.UnfenceNode(node_pb2.UnfenceNodeRequest(id=self.a))
        wait_until(
            lambda: not self.a_dir.exists(),
            what="host A removing its stale copy",
            base=60,
            explain=lambda: diagnose(self.api.admin, self.server_id),
        )
        assert self.node(self.a).state == node_pb2.NODE_STATE_READY
        assert volumes_kept(), "the returning node let go of the shared volumes, never deleted them"
        assert [n for n in virsh("list", "--name").split() if n == self.domain] == [self.domain]
        got = self.api.compute.GetInstance(self.api.cpb.GetInstanceRequest(id=self.server_id))
        assert (got.state, got.node_id) == (self.api.cpb.INSTANCE_STATE_ACTIVE, self.b)

    def delete(self) -> None:
        self.api.compute.DeleteInstance(self.api.cpb.DeleteInstanceRequest(id=self.server_id))
        wait_until(
            lambda: self.domain not in virsh("list", "--all", "--name").split(),
            what="the guest gone",
            base=60,
        )
