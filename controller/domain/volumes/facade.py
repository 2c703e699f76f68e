"""`Volumes`, the one object the rest of the controller holds for the
feature: it builds the parts and hands out their methods, so callers need
not know which part does what."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.auth.principal import Principal
from controller.config import ControllerConfig
from controller.db import nodes as node_store
from controller.db import volumes as store
from controller.db.models import Instance, Volume
from controller.domain.events import EventLog
from controller.domain.extensions import CreateBind, MoveNeeds
from controller.domain.images import Images
from controller.domain.nodes import Nodes
from controller.domain.placement import Placement
from controller.domain.quotas import Quotas
from controller.domain.volumes import lookups
from controller.domain.volumes.lifecycle import VolumeLifecycle
from controller.domain.volumes.projection import VolumeProjection
from controller.domain.volumes.snapshots import Snapshots
from controller.domain.volumes.sync import VolumeSync
from controller.domain.volumes.types import VolumeTypes, is_shared


class Volumes:
    """Volumes, volume snapshots and volume types, as one
    facade over the state machine, snapshots, node projection and sync. To
    instances it is an InstanceExtension (frees an instance's volumes when it
    goes, lets nodes read the image blobs of volumes made from images) and
    their BootVolumes; to nodes a DesiredStateContributor."""

    def __init__(
        self,
        cfg: ControllerConfig,
        images: Images,
        placement: Placement,
        nodes: Nodes,
        quotas: Quotas,
        events: EventLog | None = None,
    ) -> None:
        self.nodes = nodes
        self.ratios = placement.ratios
        self.sync_period = cfg.instance_sync_seconds
        self.types = VolumeTypes()
        self.lifecycle = VolumeLifecycle(quotas, images, placement, nodes.registry, self.types)
        self.snapshots = Snapshots(quotas, nodes.registry)
        self.projection = VolumeProjection()
        self.sync = VolumeSync(nodes.registry, self.sync_period, quotas, events)

        # Lookups
        self.get = lookups.get_volume
        self.find = lookups.find_volume
        self.list = lookups.list_volumes
        self.get_snapshot = lookups.get_snapshot
        self.find_snapshot = lookups.find_snapshot
        self.list_snapshots = lookups.list_snapshots
        # The state machine
        self.create = self.lifecycle.create
        self.update = self.lifecycle.update
        self.delete = self.lifecycle.delete
        self.extend = self.lifecycle.extend
        self.attach = self.lifecycle.attach
        self.detach = self.lifecycle.detach
        # Boot from volume (called by Instances.create)
        self.boot_source = self.lifecycle.boot_source
        self.lock = self.lifecycle.lock
        self.bind_boot = self.lifecycle.bind_boot
        self.release_instance = self.lifecycle.release_instance
        # Volume types (admin-defined, global)
        self.create_type = self.types.create
        self.find_type = self.types.find
        self.list_types = self.types.list
        self.delete_type = self.types.delete
        # Snapshots
        self.create_snapshot = self.snapshots.create_snapshot
        self.delete_snapshot = self.snapshots.delete_snapshot
        # Node-facing
        self.may_read_blob = self.projection.may_read_blob
        self.contribute = self.projection.contribute
        # Sync: what nodes observe -> volume and snapshot states
        self.start_sync = self.sync.start
        self.stop_sync = self.sync.stop
        self.sync_once = self.sync.sync_once

    # As an InstanceExtension (domain/extensions.py); BootVolumes above

    def prepare_create(self, caller: Principal, options: Mapping[str, Any]) -> CreateBind | None:
        """A boot volume is bound through BootVolumes (Instances.create asks for it)."""
        return None

    def instance_gone(self, row: Instance) -> set[str]:
        self.release_instance(row.id)
        return set()

    # As an InstanceMoves (domain/extensions.py)

    @staticmethod
    def move_needs(row: Instance) -> MoveNeeds:
        """An instance moves with its volumes only if they are all on a shared
        backend (the new node must reach each); a node-local one stays behind
        with its node, so the instance cannot move."""
        vols = store.volumes_of_instance(row.id)
        local = [v for v in vols if not is_shared(v.backend)]
        if local:
            names = ", ".join(sorted(v.name for v in local))
            return MoveNeeds(
                blocker=f"its volume(s) {names} are node-local (backend local) and cannot leave its node"
            )
        backends = tuple(sorted({v.backend for v in vols}))
        return MoveNeeds(backends=backends, keeps_root=any(v.boot for v in vols))

    @staticmethod
    def lock_moving(row: Instance) -> None:
        """Its volumes, locked before the move claims node usage: the order a
        boot-from-volume create and an attach take (else, on PostgreSQL, a
        create of one of them racing the move deadlocks with it)."""
        store.lock_volumes_of_instance(row.id)

    @staticmethod
    def instance_moved(row: Instance, source: str, target: str, now: float) -> set[str]:
        """The instance's (shared) volumes, attached as before, are worked
        by its new node; their snapshots follow them."""
        vols = store.volumes_of_instance(row.id)
        for v in vols:
            store.update_volume(v.id, {"node": target}, now)
            store.move_snapshots(v.id, target)
        if not vols:
            return set()
        for node_id in (source, target):
            node_store.bump_desired_revision(node_id, now)
        return {source, target}

    def of_instances(self, instance_ids: list[str]) -> list[Volume]:
        """The volumes attached to (or booting) these instances, in attach order."""
        return store.volumes_of_instances(instance_ids)
