"""A node's several storage backends (noded/storage/backends.py) and the rbd
settings, without a cluster: routing per volume, node-local volumes deleted
by absence and shared ones only when told, an unknown backend as the
volume's fault, and the rbd settings' parsing. (The rbd backend itself runs
against a real Ceph cluster in tests/test_volumes_rbd_e2e.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from kumo.v1 import node_agent_pb2 as pb
from noded.hypervisor.fake import FakeDriver
from noded.storage.backend import StorageError
from noded.storage.backends import Backends
from noded.storage.local import LocalBackend
from noded.storage.memory import MemoryBackend
from noded.storage.rbd import RbdSettings
from noded.storage.step import VolumeStep

V1 = "0b1d0000-0000-4000-8000-000000000001"
V2 = "0b1d0000-0000-4000-8000-000000000002"
GiB = 1024**3


def test_backends_route_and_shared_volumes_go_only_when_told(tmp_path: Path) -> None:
    local, shared = MemoryBackend(), LocalBackend(tmp_path / "shared", shared=True)
    step = VolumeStep(Backends({"local": local, "shared-fs": shared}), None)
    drv = FakeDriver()
    state = pb.NodeDesiredState(
        volumes=[pb.DesiredVolume(id=V1, size_gb=1), pb.DesiredVolume(id=V2, size_gb=1, backend="shared-fs")]
    )
    step(state, drv)
    assert local.volumes() == [V1] and shared.volumes() == [V2]
    assert step.backend.disk_source(V2).path == tmp_path / "shared" / f"{V2}.qcow2"
    assert step.backend.volumes() == [V1], "only node-local volumes are the node's own"
    assert {s.volume_id for s in step.report()} == {V1, V2}

    # Neither desired: the local one goes, the shared one (another node's now) stays.
    step(pb.NodeDesiredState(), drv)
    assert local.volumes() == [] and shared.volumes() == [V2]
    assert {s.volume_id for s in step.report()} == set(), "a shared volume not desired here is not reported"

    # Told to delete it: gone, and no longer reported.
    step(pb.NodeDesiredState(volumes=[pb.DesiredVolume(id=V2, backend="shared-fs", delete=True)]), drv)
    assert shared.volumes() == [] and step.report() == []

    # A restarted node finds a shared volume for the instances step by asking each backend.
    shared.create_empty(V1, GiB)
    fresh = Backends({"local": MemoryBackend(), "shared-fs": shared})
    assert fresh.of(V1) is shared and fresh.is_shared(V1)


def test_an_unknown_backend_is_the_volume_fault(tmp_path: Path) -> None:
    step = VolumeStep(MemoryBackend(), None)
    with pytest.raises(RuntimeError, match="no 'rbd' storage backend"):
        step(pb.NodeDesiredState(volumes=[pb.DesiredVolume(id=V1, size_gb=1, backend="rbd")]), FakeDriver())
    (status,) = step.report()
    assert status.volume_id == V1 and "no 'rbd' storage backend" in status.fault and status.size_gb == 0
    with pytest.raises(ValueError):
        Backends({"rbd": MemoryBackend()})


def test_rbd_settings(tmp_path: Path) -> None:
    assert RbdSettings.parse_monitors("10.0.0.1:6789, mon2 ,mon3:3300") == (
        ("10.0.0.1", 6789),
        ("mon2", 6789),
        ("mon3", 3300),
    )
    for bad in ("", ",", "h:0", "h:99999", ":6789", "h:x"):
        with pytest.raises(StorageError):
            RbdSettings.parse_monitors(bad)
    keyring = tmp_path / "k"
    keyring.write_text("[client.kumo]\n\tkey = AQBRoA5rWj44BRAA5VdUcgjLHkTb7NvBCASb+w==\n")
    s = RbdSettings((("127.0.0.1", 6789),), "rbd", "kumo", keyring)
    assert s.key() == "AQBRoA5rWj44BRAA5VdUcgjLHkTb7NvBCASb+w=="
    assert s.secret_uuid() == RbdSettings((("127.0.0.1", 6789),), "other-pool", "kumo", keyring).secret_uuid()
    assert s.secret_uuid() != RbdSettings((("127.0.0.1", 6789),), "rbd", "admin", keyring).secret_uuid()
    keyring.write_text("[client.kumo]\n")
    with pytest.raises(StorageError, match="no key"):
        s.key()
    with pytest.raises(StorageError, match="cannot read"):
        RbdSettings(s.monitors, "rbd", "kumo", tmp_path / "missing").key()
