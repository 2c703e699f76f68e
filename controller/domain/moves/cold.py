"""MigrateInstance with live = false: the target picked with the filters of a
create, server groups included (or named by the admin, and still filtered),
claimed atomically (move_target.py, as live migrations do), then the move's
state machine (engine.py) stops, copies and starts the guest."""

from __future__ import annotations

from collections.abc import Callable

from controller.auth.principal import Principal
from controller.db.database import write_transaction
from controller.db.models import Instance
from controller.domain.instances import ACTIVE, STOPPED, visible_instance
from controller.domain.move_target import MoveTargets
from controller.domain.moves.engine import MoveEngine, wrong_state
from controller.domain.moves.plan import MIGRATE, Sizes
from controller.domain.node_registry import NodeRegistry
from controller.domain.nodes import find_node
from controller.errors import InvalidArgument


def movable(row: Instance, verb: str) -> None:
    if row.state not in (ACTIVE, STOPPED) or row.task:
        raise wrong_state(row, verb)


class ColdMigration:
    def __init__(self, engine: MoveEngine, targets: MoveTargets, registry: NodeRegistry) -> None:
        self.engine = engine
        self.targets = targets
        self.registry = registry

    def migrate(self, caller: Principal, ref: str, node_ref: str) -> Instance:
        row = self.engine.find(caller, ref)
        required = ""
        if node_ref:
            required = find_node(node_ref).id
            if required == row.node_id:
                raise InvalidArgument("node: the instance already runs there", reason="SAME_NODE")
        self.begin(caller, row, required)
        return visible_instance(caller, row.id)

    def begin(
        self,
        caller: Principal | None,
        row: Instance,
        required: str = "",
        during: Callable[[], None] | None = None,
    ) -> str:
        """Starts the cold migration of `row` (to `required`, or the best other
        node); `during` runs in the transaction that claims the target (a
        drain counts it). `caller` None: the controller's own (a drain)."""
        movable(row, "migrate")
        backend = self.engine.constraint(row)
        sizes = Sizes(row.vcpus, row.ram_mb, row.disk_gb)
        chosen = self.claim_elsewhere(caller, row, row.flavor_id, sizes, required, backend, MIGRATE, during)
        self.registry.notify_threadsafe(row.node_id)
        return chosen

    def claim_elsewhere(
        self,
        caller: Principal | None,
        row: Instance,
        flavor_id: str,
        sizes: Sizes,
        required: str,
        backend: str,
        kind: str,
        charge: Callable[[], None] | None = None,
    ) -> str:
        """Ranks the other nodes for `sizes` outside the write lock, then in one
        transaction claims the best that still fits and starts the move.
        `charge`, when given, runs first in that transaction (a quota growth)."""
        ranked = self.targets.rank(row, sizes.vcpus, sizes.ram_mb, sizes.disk_gb, required, backend)
        with write_transaction():
            if charge is not None:
                charge()
            chosen = self.targets.claim(ranked)
            self.engine.start(caller, row, kind, flavor_id, sizes, chosen, sizes, True)
        self.targets.placed(ranked)
        return chosen
