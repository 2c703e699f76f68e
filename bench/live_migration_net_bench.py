"""Live migration as the network sees it: real TCG guests with a NIC on a
tenant network between two libvirt "hosts", each in its own network
namespace on a test LAN (bench/host_cloud.py), through the API.

ROUNDS migrations back and forth (KUMO_BENCH_ROUNDS, default 5) of each of
two idle 256 MiB guests: one booted from the image (its 1 GiB overlay
copied: copy-storage), one booted from a shared-fs volume (nothing copied
but the config drive). Per kind: wall time (MigrateInstance to COMPLETED),
libvirt's downtime, and the ping downtime (the longest gap between replies
to pings every 50 ms from both hosts' namespaces, i.e. from the guest's
gateway on either host, from the migration's start until the guest answers
again after it), p50 and max."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.fakecloud import pct, table
from bench.host_cloud import TEST_IMAGE, HostCloud, fixed_ip, host_cloud
from bench.host_lan import worktree_tag
from bench.live_migration_bench import migrate
from bench.pinger import Pinger, downtime
from bench.procs import ROOT, wait_for
from kumo.v1 import compute_pb2 as pb
from kumo.v1 import node_pb2 as npb
from kumo.v1 import volume_pb2 as vpb

ROUNDS = int(os.environ.get("KUMO_BENCH_ROUNDS", "5"))
FLAVOR = "bn.small"


def _load_scaled(seconds: float) -> float:
    return seconds * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def _guest(cloud: HostCloud, name: str, **kw: str) -> tuple[str, str]:
    """A guest on host a with a NIC, once it has its address: (id, fixed IP)."""
    admin = cloud.admin
    inst = admin.compute.CreateInstance(
        pb.CreateInstanceRequest(
            name=name, flavor=FLAVOR, networks=[pb.NetworkRequest(network=cloud.network_id)], **kw
        )
    )
    ip = fixed_ip(admin, inst.id)
    wait_for(
        lambda: (
            f"KUMO-IP: {ip}" in admin.compute.GetConsoleOutput(pb.GetConsoleOutputRequest(id=inst.id)).output
        ),
        timeout=_load_scaled(180),
        step=0.5,
        what=f"{name} booted with its address",
    )
    return inst.id, ip


def _migrate(cloud: HostCloud, iid: str, ip: str, to: str, files: Path) -> tuple[float, int, float]:
    """(wall s, libvirt downtime ms, ping downtime s) of one live migration to host `to`."""
    admin = cloud.admin
    pinger = Pinger(ip, [cloud.netns("a"), cloud.netns("b")], files).start()
    try:
        t0 = time.time()
        wait_for(lambda: pinger.answered_since(t0), timeout=_load_scaled(60), what="ping answered before")
        t_began = time.time()
        wall, downtime_ms = migrate(admin, iid, cloud.node_ids[to], timeout=_load_scaled(300))
        t_done = time.time()
        wait_for(
            lambda: pinger.answered_since(t_done + 0.5), timeout=_load_scaled(90), what="ping answered after"
        )
        t_after = time.time()
    finally:
        pinger.stop()
    return wall, downtime_ms, downtime(pinger.replies(), t_began, t_after)


def main() -> None:
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-test-image.sh"), str(TEST_IMAGE)], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    subprocess.run([str(ROOT / "scripts" / "start-libvirt.sh")], check=True)
    with host_cloud(worktree_tag("lmb"), FLAVOR) as cloud, tempfile.TemporaryDirectory() as tmp:
        admin = cloud.admin
        admin.volumes.CreateVolumeType(
            vpb.CreateVolumeTypeRequest(volume_type=vpb.VolumeType(name="bn-nfs", backend="shared-fs"))
        )
        boot = admin.volumes.CreateVolume(
            vpb.CreateVolumeRequest(
                volume=vpb.Volume(
                    name="bn-boot", size_gb=1, volume_type_id="bn-nfs", source_image_id=cloud.image_id
                )
            )
        )
        wait_for(
            lambda: (
                admin.volumes.GetVolume(vpb.GetVolumeRequest(id=boot.id)).state == vpb.VOLUME_STATE_AVAILABLE
            ),
            timeout=_load_scaled(120),
            what="boot volume",
        )
        admin.nodes.DisableNode(npb.DisableNodeRequest(id=cloud.node_ids["b"], reason="bench: place on a"))
        kinds = {
            "overlay copied (copy-storage)": _guest(cloud, "bn-copy", image="kumo-test"),
            "shared-fs boot volume": _guest(cloud, "bn-shared", boot_volume=boot.id),
        }
        admin.nodes.EnableNode(npb.EnableNodeRequest(id=cloud.node_ids["b"]))
        for kind, (iid, ip) in kinds.items():
            walls, downs, pings = [], [], []
            for r in range(ROUNDS):
                files = Path(tmp) / f"{iid}-{r}"
                files.mkdir()
                wall, down, gap = _migrate(cloud, iid, ip, "b" if r % 2 == 0 else "a", files)
                walls.append(wall)
                downs.append(down)
                pings.append(gap * 1000)
            print(f"live migration, idle 256 MiB guest with a NIC, {kind}, {ROUNDS} rounds:")
            table(
                [
                    ("wall p50", f"{pct(walls, 0.5):.2f} s"),
                    ("wall max", f"{max(walls):.2f} s"),
                    ("libvirt downtime p50", f"{pct(downs, 0.5):.0f} ms"),
                    ("libvirt downtime max", f"{max(downs):.0f} ms"),
                    ("ping downtime p50", f"{pct(pings, 0.5):.0f} ms"),
                    ("ping downtime max", f"{max(pings):.0f} ms"),
                ]
            )
