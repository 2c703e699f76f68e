"""ResizeInstance: a new flavor's sizes, on the instance's node when the
growth fits there (one conditional UPDATE claims it), else on another node by
a cold migration; the project's quota is charged the growth. A root disk
only grows. The move ends in VERIFY_RESIZE: ConfirmResize or RevertResize
(engine.py)."""

from __future__ import annotations

from controller.auth.principal import Principal
from controller.db import images as image_store
from controller.db import moves as store
from controller.db.database import write_transaction
from controller.db.models import Instance
from controller.domain.compute_catalog import ComputeCatalog
from controller.domain.instances import visible_instance
from controller.domain.moves.cold import ColdMigration, movable
from controller.domain.moves.engine import MoveEngine
from controller.domain.moves.plan import RESIZE, Sizes, growth_quota
from controller.domain.placement import Placement
from controller.domain.quotas import Quotas
from controller.errors import FailedPrecondition, InvalidArgument


class Resizes:
    def __init__(
        self,
        engine: MoveEngine,
        cold: ColdMigration,
        catalog: ComputeCatalog,
        placement: Placement,
        quotas: Quotas,
    ) -> None:
        self.engine = engine
        self.cold = cold
        self.catalog = catalog
        self.placement = placement
        self.quotas = quotas

    def resize(self, caller: Principal, ref: str, flavor_ref: str) -> Instance:
        row = self.engine.find(caller, ref)
        movable(row, "resize")
        flavor = self.catalog.find_flavor(caller, flavor_ref)
        if flavor.id == row.flavor_id:
            raise FailedPrecondition(
                f"instance {row.name!r} already has flavor {flavor.name!r}", reason="SAME_FLAVOR"
            )
        disk_gb = 0
        if row.disk_gb:  # a root disk on the node (not booted from a volume)
            if flavor.disk_gb and flavor.disk_gb < row.disk_gb:
                raise InvalidArgument(
                    f"flavor {flavor.name!r} has a {flavor.disk_gb} GiB disk; instance {row.name!r} has "
                    f"{row.disk_gb} GiB and a disk cannot shrink",
                    reason="FLAVOR_DISK_TOO_SMALL",
                    field="flavor",
                )
            disk_gb = max(flavor.disk_gb, row.disk_gb)
        old = Sizes(row.vcpus, row.ram_mb, row.disk_gb)
        new = Sizes(flavor.vcpus, flavor.ram_mb, disk_gb)
        growth = new.minus(old)

        def charge() -> None:  # lock order: project, node usage, node (as creates)
            image_store.lock_project(row.project_id)
            self.quotas.charge(row.project_id, growth_quota(old, new), caller.project_name)

        caps = self._caps(row.node_id)
        with write_transaction():  # nothing is written here unless the growth fits on the node
            image_store.lock_project(row.project_id)
            here = caps is not None and store.claim_growth(
                row.node_id, growth.vcpus, growth.ram_mb, growth.disk_gb, caps
            )
            if here:
                charge()
                self.engine.start(caller, row, RESIZE, flavor.id, new, row.node_id, growth, False)
        if not here:
            backend = self.engine.constraint(row)
            self.cold.claim_elsewhere(caller, row, flavor.id, new, "", backend, RESIZE, charge)
        self.engine.registry.notify_threadsafe(row.node_id)
        return visible_instance(caller, row.id)

    def _caps(self, node_id: str) -> tuple[float, float, float] | None:
        """The node's capacity times the allocation ratios, if it is READY."""
        ratios = self.placement.ratios
        for cand in self.placement.candidates([node_id]):
            if cand.ready:
                return (cand.vcpus * ratios.cpu, cand.ram_mb * ratios.ram, cand.disk_gb * ratios.disk)
        return None
