"""`Volumes`, the one object the rest of the controller holds for the
feature: it builds the parts and hands out their methods, so callers need
not know which part does what."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.auth.principal import Principal
from controller.config import ControllerConfig
from controller.db import volumes as store
from controller.db.models import Instance, Volume
from controller.domain.extensions import CreateBind
from controller.domain.images import Images
from controller.domain.nodes import Nodes
from controller.domain.placement import Placement
from controller.domain.quotas import Quotas
from controller.domain.volumes import lookups
from controller.domain.volumes.lifecycle import VolumeLifecycle
from controller.domain.volumes.projection import VolumeProjection
from controller.domain.volumes.snapshots import Snapshots
from controller.domain.volumes.sync import VolumeSync


class Volumes:
    """Volumes and volume snapshots on the local storage backend, as one
    facade over the state machine, snapshots, node projection and sync. To
    instances it is an InstanceExtension (frees an instance's volumes when it
    goes, lets nodes read the image blobs of volumes made from images) and
    their BootVolumes; to nodes a DesiredStateContributor."""

    def __init__(
        self, cfg: ControllerConfig, images: Images, placement: Placement, nodes: Nodes, quotas: Quotas
    ) -> None:
        self.nodes = nodes
        self.ratios = placement.ratios
        self.sync_period = cfg.instance_sync_seconds
        self.lifecycle = VolumeLifecycle(quotas, images, placement, nodes.registry)
        self.snapshots = Snapshots(quotas, nodes.registry)
        self.projection = VolumeProjection()
        self.sync = VolumeSync(nodes.registry, self.sync_period, quotas)

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

    def of_instances(self, instance_ids: list[str]) -> list[Volume]:
        """The volumes attached to (or booting) these instances, in attach order."""
        return store.volumes_of_instances(instance_ids)
