"""Whole clouds for tests: a controller with a few real kumo-noded processes
on the fake driver, or one real noded on libvirt and qemu (TCG) for the end
to end tests, with an image and a flavor to boot from."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import make_image
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import compute_pb2_grpc, node_pb2
from kumo.v1 import image_pb2 as ipb
from tests.harness import ROOT, Client, ControllerProc
from tests.netutil import state_dir
from tests.nodeutil import NodedProc, make_token, nodes, run_noded, wait_for
from tests.test_images import qcow2_bytes

TEST_IMAGE = ROOT / "images" / "kumo-test.qcow2"


def make_flavor(admin: Client, name: str, vcpus: int, ram_mb: int, disk_gb: int = 1) -> cpb.Flavor:
    """A public flavor."""
    return admin.stub(compute_pb2_grpc.ComputeServiceStub).CreateFlavor(
        cpb.CreateFlavorRequest(
            flavor=cpb.Flavor(name=name, vcpus=vcpus, ram_mb=ram_mb, disk_gb=disk_gb, is_public=True)
        )
    )


def ready_nodes(admin: Client) -> list[node_pb2.Node]:
    return [
        n
        for n in nodes(admin).ListNodes(node_pb2.ListNodesRequest()).nodes
        if n.state == node_pb2.NODE_STATE_READY
    ]


@dataclass
class FakeCloud:
    """A controller and `len(procs)` noded processes on the fake driver."""

    base: Path
    ctl: ControllerProc
    admin: Client
    procs: list[NodedProc] = field(default_factory=list)
    node_states: dict[str, Path] = field(default_factory=dict)  # node id -> its state dir
    _tiny: bytes = b""

    def public_image(self, name: str, **kw: Any) -> ipb.Image:
        """A public image: the same empty 64 MiB qcow2 each time."""
        self._tiny = self._tiny or qcow2_bytes(self.base, "tiny.qcow2", size="64M")
        return make_image(
            self.admin, name, self._tiny, ipb.DISK_FORMAT_QCOW2, visibility=ipb.IMAGE_VISIBILITY_PUBLIC, **kw
        )

    def flavor(self, name: str, vcpus: int, ram_mb: int, disk_gb: int = 1) -> cpb.Flavor:
        return make_flavor(self.admin, name, vcpus, ram_mb, disk_gb)


@contextlib.contextmanager
def fake_cloud(
    base: Path,
    count: int,
    name_prefix: str,
    env: dict[str, str],
    disk_gb: int = 50,
    extra_args: list[str] | None = None,
    node_args: list[str] | None = None,
) -> Iterator[FakeCloud]:
    """A controller (SQLite, or what `extra_args` say; `env` on top of the
    defaults) and `count` fake nodes of 2 vCPUs, 4096 MiB and `disk_gb` GiB
    (`node_args` added to each `kumo-noded run`), named `name_prefix` +
    index, joined and READY."""
    data = base / "ctl"
    data.mkdir()
    ctl = ControllerProc(data, extra_env=env, extra_args=extra_args or []).start()
    cloud = FakeCloud(base, ctl, ctl.login())
    try:
        for i in range(count):
            state, name = base / f"node{i}", f"{name_prefix}{i}"
            joined = run_noded(
                ["join", ctl.endpoint, make_token(cloud.admin), "--name", name, "--state-dir", str(state)]
            )
            assert joined.returncode == 0, joined.stderr
            fake = ["--driver", "fake", "--fake-vcpus", "2", "--fake-memory-mb", "4096"]
            args = [*fake, "--fake-disk-gb", str(disk_gb), *(node_args or [])]
            cloud.procs.append(NodedProc(state, args).start())
        listed = wait_for(
            lambda: (ready := ready_nodes(cloud.admin)) and len(ready) == count and ready,
            what="fake nodes READY",
        )
        for n in listed:
            cloud.node_states[n.id] = base / f"node{n.name.removeprefix(name_prefix)}"
        yield cloud
    finally:
        for p in cloud.procs:
            p.stop()
        ctl.stop()


# End to end: real libvirt and qemu


def virsh(*args: str) -> str:
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True, text=True).stdout


def libvirt_and_test_image() -> None:
    """Starts libvirtd and builds the test image (asserting both worked)."""
    start = subprocess.run([str(ROOT / "scripts" / "start-libvirt.sh")], capture_output=True, text=True)
    assert start.returncode == 0, f"libvirtd must run for this test: {start.stderr}"
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-test-image.sh"), str(TEST_IMAGE)], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr


def destroy_guests(owner: str = "") -> None:
    """Destroys and undefines the kumo- guests whose libvirt XML names
    `owner` (a path), or all kumo- guests when `owner` is empty."""
    for name in virsh("list", "--all", "--name").split():
        if name.startswith("kumo-") and (not owner or owner in virsh("dumpxml", name)):
            virsh("destroy", name)
            virsh("undefine", name)


@contextlib.contextmanager
def libvirt_cloud(
    base: Path,
    node_name: str,
    flavor: str,
    reconcile_seconds: int,
    node_args: list[str] | None = None,
    ctl_env: dict[str, str] | None = None,
) -> Iterator[dict]:
    """A controller (`ctl_env` on top of its test settings) and one real
    noded (libvirt driver, virt type qemu; `node_args` added to `kumo-noded
    run`) under `base`, with the test image uploaded as "kumo-test" and
    `flavor` (1 vCPU, 256 MiB, 1 GiB). Yields ctl, admin, image, state (the
    node's state dir) and node; the caller cleans up guests and `base`."""
    data = base / "ctl"
    data.mkdir()
    ctl = ControllerProc(
        data,
        extra_env={
            "KUMO_NODE_HEARTBEAT_SECONDS": "1",
            "KUMO_INSTANCE_SYNC_SECONDS": "0.3",
            **(ctl_env or {}),
        },
    )
    ctl.start()
    node = None
    state = base / "node"
    try:
        admin = ctl.login()
        joined = run_noded(
            ["join", ctl.endpoint, make_token(admin), "--name", node_name, "--state-dir", str(state)]
        )
        assert joined.returncode == 0, joined.stderr
        node = NodedProc(
            state, ["--virt-type", "qemu", "--reconcile-seconds", str(reconcile_seconds), *(node_args or [])]
        ).start()
        wait_for(lambda: ready_nodes(admin), what="node READY")
        image = make_image(admin, "kumo-test", TEST_IMAGE.read_bytes(), ipb.DISK_FORMAT_QCOW2)
        make_flavor(admin, flavor, vcpus=1, ram_mb=256)
        yield {"ctl": ctl, "admin": admin, "image": image, "state": state, "node": node}
    finally:
        if node is not None:
            node.stop()
        ctl.stop()


@contextlib.contextmanager
def e2e_cloud(prefix: str, node_name: str, flavor: str, reconcile_seconds: int) -> Iterator[dict]:
    """`libvirt_cloud` in a fresh directory named `prefix`... (libvirtd
    started, the test image built first); its guests and files go after."""
    libvirt_and_test_image()
    base = state_dir(prefix)
    try:
        with libvirt_cloud(base, node_name, flavor, reconcile_seconds) as c:
            yield c
    finally:
        destroy_guests(str(base))
        shutil.rmtree(base, ignore_errors=True)
