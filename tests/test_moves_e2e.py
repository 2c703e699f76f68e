"""Cold migration and resize with real libvirt and qemu (TCG) guests: two
kumo-noded daemons on this host's libvirt (two "hosts", each its own
instances directory), one controller. The guest's user-data reads a marker
from a spot of its root disk past the test image's file system, prints it
with the disk's size, and writes the next generation there; so each boot's
console line says which disk content the guest came up with:

    create            [] 1 GiB            writes gen-1
    cold migration    [gen-1] (the disk went through the blob store)
    resize to 2 GiB   [gen-2] 2 GiB       writes gen-3
    revert            [gen-2] 1 GiB       (the disk from before the resize)
    resize, confirm   [gen-3] 2 GiB"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from kumo.v1 import compute_pb2 as pb
from tests.cloudutil import destroy_guests, libvirt_and_test_image, libvirt_cloud, make_flavor, ready_nodes
from tests.netutil import state_dir
from tests.nodeutil import NodedProc, make_token, run_noded
from tests.test_compute_e2e import compute, wait_console, wait_state
from tests.waits import wait_gone, wait_until

pytestmark = pytest.mark.e2e

GIB_SECTORS = 2 * 1024 * 1024
# 100 MB into vda: past the test image's 32 MiB FAT file system, inside the 1 GiB disk.
USER_DATA = b"""#!/bin/sh
m=$(dd if=/dev/vda bs=512 skip=200000 count=1 2>/dev/null | tr -d '\\000' | head -c 16)
echo "KUMO-MARK: [$m] $(cat /sys/block/vda/size)"
n=${m#gen-}
[ -n "$n" ] || n=0
printf 'gen-%s' $((n + 1)) | dd of=/dev/vda bs=512 seek=200000 conv=notrunc 2>/dev/null
sync
echo "KUMO-MARK-WRITTEN gen-$((n + 1))"
"""


@pytest.fixture(scope="module")
def cloud() -> Iterator[dict]:
    libvirt_and_test_image()
    base = state_dir("kumo-moves-e2e-")
    second = None
    try:
        with libvirt_cloud(base, "move-a", "mv.small", reconcile_seconds=2) as c:
            state_b = base / "node-b"
            joined = run_noded(
                [
                    "join",
                    c["ctl"].endpoint,
                    make_token(c["admin"]),
                    "--name",
                    "move-b",
                    "--state-dir",
                    str(state_b),
                ]
            )
            assert joined.returncode == 0, joined.stderr
            second = NodedProc(state_b, ["--virt-type", "qemu", "--reconcile-seconds", "2"]).start()
            wait_until(lambda: len(ready_nodes(c["admin"])) == 2, what="both nodes READY", base=60, step=0.2)
            make_flavor(c["admin"], "mv.bigger", vcpus=1, ram_mb=320, disk_gb=2)
            yield c
            second.stop()
            second = None
    finally:
        if second is not None:
            second.stop()
        destroy_guests(str(base))
        shutil.rmtree(base, ignore_errors=True)


def mark(generation: int | None, sectors: int) -> str:
    seen = f"gen-{generation}" if generation else ""
    return rf"KUMO-MARK: \[{seen}\] {sectors}\b"


def test_cold_migration_and_resize_keep_the_disk(cloud: dict) -> None:
    admin = cloud["admin"]
    c = compute(admin)
    inst = c.CreateInstance(
        pb.CreateInstanceRequest(
            name="mover", image=cloud["image"].id, flavor="mv.small", user_data=USER_DATA
        )
    )
    wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE)
    wait_console(admin, inst.id, mark(None, GIB_SECTORS))
    wait_console(admin, inst.id, "KUMO-MARK-WRITTEN gen-1")

    # Cold migration: the stopped guest's disk goes through the blob store.
    c.MigrateInstance(pb.MigrateInstanceRequest(name=inst.id))
    moved = wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE, timeout=180)
    assert moved.node_id != inst.node_id
    wait_console(admin, inst.id, mark(1, GIB_SECTORS))
    wait_console(admin, inst.id, "KUMO-MARK-WRITTEN gen-2")

    # Resize (on its node: there is room): a bigger disk, more memory.
    c.ResizeInstance(pb.ResizeInstanceRequest(name="mover", flavor="mv.bigger"))
    resized = wait_state(admin, inst.id, pb.INSTANCE_STATE_VERIFY_RESIZE, timeout=180)
    assert (resized.node_id, resized.ram_mb, resized.disk_gb) == (moved.node_id, 320, 2)
    wait_console(admin, inst.id, mark(2, 2 * GIB_SECTORS))
    wait_console(admin, inst.id, "KUMO-MARK-WRITTEN gen-3")

    # Revert: the old flavor and the disk as it was before the resize (gen-2, not gen-3).
    c.RevertResize(pb.RevertResizeRequest(name=inst.id))
    back = wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE, timeout=180)
    assert (back.ram_mb, back.disk_gb) == (256, 1)
    wait_console(admin, inst.id, mark(2, GIB_SECTORS))
    wait_console(admin, inst.id, "KUMO-MARK-WRITTEN gen-3", count=2)

    # Resize again and confirm: the new flavor stays, with the disk it had.
    c.ResizeInstance(pb.ResizeInstanceRequest(name=inst.id, flavor="mv.bigger"))
    wait_state(admin, inst.id, pb.INSTANCE_STATE_VERIFY_RESIZE, timeout=180)
    wait_console(admin, inst.id, mark(3, 2 * GIB_SECTORS))
    done = c.ConfirmResize(pb.ConfirmResizeRequest(name=inst.id))
    assert (done.state, done.disk_gb) == (pb.INSTANCE_STATE_ACTIVE, 2)

    c.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    wait_gone(admin, inst.id)
