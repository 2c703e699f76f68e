"""CancelMigration for every kind of move: a live migration goes to
LiveMigrations.cancel; a cold migration or a resize is reverted by the move's
state machine while it is still stopping on its source (MoveEngine.cancel),
and refused past that point. Migrations are admins' (as MigrateInstance); a
member may cancel a resize of their project's instance (as ResizeInstance)."""

from __future__ import annotations

from controller.auth.principal import Principal
from controller.db import live_migrations as live_store
from controller.db import moves as move_store
from controller.db.models import Instance
from controller.domain.instances import MIGRATING
from controller.domain.migrations.drain import DRAINING
from controller.domain.migrations.live import LiveMigrations
from controller.domain.moves.engine import RESIZING, VERIFY_RESIZE, MoveEngine, not_moving
from controller.domain.moves.plan import MIGRATE
from controller.errors import PermissionDenied


def _admin_only(caller: Principal, what: str) -> None:
    if not caller.is_admin:
        raise PermissionDenied(f"only admins may cancel {what} (migrations are admin-only)")


class MoveCancels:
    def __init__(self, engine: MoveEngine, live: LiveMigrations) -> None:
        self.engine = engine
        self.live = live

    def cancel(self, caller: Principal, ref: str) -> Instance:
        row = self.live.find_instance(caller, ref)  # another project's: NOT_FOUND
        if live_store.unfinished_of(row.id) is not None:
            _admin_only(caller, "a live migration")
            return self.live.cancel(caller, row.id)
        move = move_store.get_move(row.id)
        if move is None or row.state not in (MIGRATING, RESIZING, VERIFY_RESIZE):
            raise not_moving(row)
        if move.kind == MIGRATE:
            _admin_only(caller, "a cold migration")
        self.engine.cancel(caller, row, self._drain_gives_up)
        return self.live.instances.get(caller, row.id)

    def _drain_gives_up(self, row: Instance, fault: str) -> None:
        """A cancelled move of a node being drained: the drain leaves that
        guest where it is (a FAILED entry, as for a guest it cannot move)
        instead of starting the move again."""
        drain = live_store.get_drain(row.node_id)
        if drain is not None and drain.state == DRAINING:
            self.live.record_refusal(row, row.node_id, f"{fault}; the drain leaves it on its node")
