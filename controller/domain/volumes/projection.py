"""The volumes part of a node's desired state, and which image blobs a node
may download for its volumes."""

from __future__ import annotations

from controller.db import volumes as store
from controller.db.models import Volume
from controller.db.nodes import NodeHead
from controller.domain.volumes.states import (
    ATTACHED_STATES,
    DELETING,
    DETACHING,
    SNAP_AVAILABLE,
    SNAP_CREATING,
)
from controller.domain.volumes.types import is_shared
from kumo.v1 import node_agent_pb2 as npb


class VolumeProjection:
    def may_read_blob(self, node_id: str, sha256: str) -> bool:
        return store.uses_image_blob(node_id, sha256)

    def contribute(self, node_row: NodeHead, state: npb.NodeDesiredState) -> None:
        """The volumes part of a node's desired state, and the volumes of the
        instances the instances contributor put there (it runs first)."""
        instance_ids = {i.id for i in state.instances}
        if not store.any_volume_for_node(node_row.id, sorted(instance_ids)):
            return  # most nodes: one cheap probe
        both = store.volumes_for_node(node_row.id, sorted(instance_ids))
        on_node = sorted((v for v in both if v.node_id == node_row.id), key=lambda v: v.id)
        snaps: dict[str, list[str]] = {}
        if on_node:  # a volume's snapshots are on its node: no volumes there, none to read
            for s in store.snapshots_on_node(node_row.id):
                if s.state in (SNAP_CREATING, SNAP_AVAILABLE):
                    snaps.setdefault(s.volume_id, []).append(s.id)
        for v in on_node:
            gone = v.state == DELETING
            if gone and not is_shared(v.backend):  # a local volume goes by its absence
                continue
            state.volumes.append(
                npb.DesiredVolume(
                    id=v.id,
                    backend=v.backend,
                    delete=gone,
                    size_gb=v.size_gb,
                    image_sha256=v.image_sha256,
                    image_format=v.image_format,
                    image_size_bytes=v.image_size_bytes,
                    source_snapshot_id=v.source_snapshot_id,
                    snapshot_ids=snaps.get(v.id, []),
                )
            )
        by_instance: dict[str, list[Volume]] = {}
        attached = (v for v in both if v.instance_id in instance_ids)
        for v in sorted(attached, key=lambda v: (v.device, v.id)):
            by_instance.setdefault(v.instance_id, []).append(v)
        for inst in state.instances:
            for v in by_instance.get(inst.id, []):
                if v.boot:
                    inst.boot_volume_id = v.id
                    inst.image_sha256 = ""
                elif v.state in ATTACHED_STATES and v.state != DETACHING:
                    inst.volume_ids.append(v.id)
