"""`Moves`: cold migration, resize, confirm and revert as one object for the
composition root and the servicer. It is built before Instances, which take
it as an InstanceExtension (a deleted instance's move frees its claims), and
it is a DesiredStateContributor after the instances one."""

from __future__ import annotations

from collections.abc import Sequence

from controller.domain.compute_catalog import ComputeCatalog
from controller.domain.events import EventLog
from controller.domain.extensions import InstanceMoves
from controller.domain.images import Images
from controller.domain.move_target import MoveTargets
from controller.domain.moves.cold import ColdMigration
from controller.domain.moves.engine import MoveEngine
from controller.domain.moves.resize import Resizes
from controller.domain.node_registry import NodeRegistry
from controller.domain.placement import Placement
from controller.domain.quotas import Quotas


class Moves:
    def __init__(
        self,
        registry: NodeRegistry,
        catalog: ComputeCatalog,
        images: Images,
        placement: Placement,
        targets: MoveTargets,
        quotas: Quotas,
        extensions: Sequence[InstanceMoves],
        events: EventLog,
        sync_period: float,
    ) -> None:
        self.engine = MoveEngine(registry, images, quotas, extensions, events, sync_period)
        self.cold = ColdMigration(self.engine, targets, registry)
        self.resizes = Resizes(self.engine, self.cold, catalog, placement, quotas)
        self.migrate = self.cold.migrate
        self.resize = self.resizes.resize
        self.confirm = self.engine.confirm
        self.revert = self.engine.revert
        # Node-facing
        self.contribute = self.engine.contribute
        self.receive_disk = self.engine.receive_disk
        self.start_sync = self.engine.start_sync
        self.stop_sync = self.engine.stop_sync
        self.sync_once = self.engine.sync_once
        # As an InstanceExtension
        self.prepare_create = self.engine.prepare_create
        self.instance_gone = self.engine.instance_gone
        self.may_read_blob = self.engine.may_read_blob
        # As an UnfinishedMoves (an evacuation ends the moves of a lost node)
        self.end_moves_on = self.engine.end_moves_on
