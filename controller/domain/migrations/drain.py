"""Node drains: DrainNode puts a node in maintenance (the scheduler's
NodeMaintenanceFilter keeps new placements away) and a periodic pass
live-migrates its guests off, at most `parallel` at a time. A guest that
cannot go live (stopped, or its guest not running) is cold-migrated when the
drain was asked to (DrainNode cold), else it and any guest that cannot move
at all (no target with room, a local volume) gets a FAILED live migration
entry saying why. Targets are claimed like any migration, so drains racing
each other and creates never overcommit a node."""

from __future__ import annotations

import logging
import threading

from controller import clock
from controller.db import instances as instance_store
from controller.db import live_migrations as store
from controller.db import moves as move_store
from controller.db.database import write_transaction
from controller.db.models import Instance, NodeDrain
from controller.domain.events import CONTROLLER, EventLog
from controller.domain.instances import ACTIVE, DELETING, STOPPED
from controller.domain.migrations.live import FAILED, UNFINISHED, LiveMigrations
from controller.domain.moves.cold import ColdMigration
from controller.domain.moves.engine import MIGRATING, RESIZING
from controller.domain.moves.plan import MIGRATE
from controller.domain.node_registry import DOWN as NODE_DOWN
from controller.domain.nodes import Nodes, NodeView
from controller.domain.periodic import Periodic
from controller.errors import FailedPrecondition, KumoError
from kumo.v1 import node_pb2 as pb

log = logging.getLogger("kumo.migrations")

DRAINING = pb.NODE_DRAIN_STATE_DRAINING
DRAINED = pb.NODE_DRAIN_STATE_DRAINED
INCOMPLETE = pb.NODE_DRAIN_STATE_INCOMPLETE
CANCELLED = pb.NODE_DRAIN_STATE_CANCELLED
# Why a guest cannot go live where a cold migration still can move it.
NOT_LIVE = ("INSTANCE_WRONG_STATE", "INSTANCE_NOT_RUNNING")


class Drains:
    def __init__(
        self,
        nodes: Nodes,
        migrations: LiveMigrations,
        cold: ColdMigration,
        events: EventLog,
        parallel: int,
        period: float,
    ) -> None:
        self.nodes = nodes
        self.migrations = migrations
        self.cold = cold
        self.events = events
        self.parallel = max(1, parallel)
        self._pass = Periodic("node-drains", period, self.sync_once, log)
        self._passing = threading.Lock()

    def drain(self, node_id: str, cold: bool = False) -> NodeView:
        view = self.nodes.get_node(node_id)
        live = view.live
        if live is None or live.status == NODE_DOWN:
            raise FailedPrecondition(
                f"node {view.row.name!r} is down: its guests cannot move live", reason="NODE_DOWN"
            )
        with write_transaction():
            now = clock.now()
            store.set_maintenance(view.row.id, True, now)
            store.put_drain(view.row.id, DRAINING, instance_store.count_on_node(view.row.id), now, cold)
            how = " (cold-migrated if they cannot go live)" if cold else ""
            self.events.record(
                "node", view.row.id, "drain", message=f"maintenance: guests are being migrated off{how}"
            )
        log.info("node drain started", extra={"node_id": view.row.id})
        self.sync_once()
        return self.nodes.get_node(view.row.id)

    def undrain(self, node_id: str) -> NodeView:
        view = self.nodes.get_node(node_id)
        with write_transaction():
            row = self.nodes.get_node(node_id).row
            if not row.maintenance:
                raise FailedPrecondition(
                    f"node {row.name!r} is not in maintenance", reason="NODE_NOT_IN_MAINTENANCE"
                )
            now = clock.now()
            store.set_maintenance(row.id, False, now)
            store.end_drain(row.id, DRAINING, CANCELLED, now)
            self.events.record("node", row.id, "undrain", message="back in service")
        log.info("node undrained", extra={"node_id": view.row.id})
        return self.nodes.get_node(view.row.id)

    def status(self, node_ids: list[str]) -> dict[str, tuple[NodeDrain, int, int]]:
        """node id -> (its last drain, guests migrated, guests that could not
        go) for each node that was ever drained (two queries a page)."""
        drains = store.drains_of(node_ids)
        counts = store.drain_counts(node_ids, drains)
        return {nid: (d, *counts.get(nid, (0, 0))) for nid, d in drains.items()}

    # The pass

    def start_sync(self) -> None:
        self._pass.start()

    def stop_sync(self) -> None:
        self._pass.stop()

    def sync_once(self) -> int:
        """One pass; DrainNode's own pass and the periodic one never overlap
        (two passes moving the same guest: the loser would record it FAILED)."""
        with self._passing:
            started = 0
            for d in store.drains_in(DRAINING):
                started += self._step(d)
            return started

    def _step(self, d: NodeDrain) -> int:
        node_id = d.node_id
        # The instances first: a move that ends (or is cancelled) between the
        # two reads has its FAILED entry in the same transaction, so it is
        # seen as moving or as given up, never as one still to move.
        on_node = instance_store.instances_on_node(node_id)
        made = store.drain_migrations(node_id, d.start_time)
        running = sum(1 for m in made if m.state in UNFINISHED)
        gave_up = {m.instance_id for m in made if m.state == FAILED}
        busy = {m.instance_id for m in made if m.state in UNFINISHED}
        # Moving by other means (a cold move, a resize), or arriving elsewhere
        # from here: the drain waits for those moves to end.
        moving = {r.id for r in on_node if r.state in (MIGRATING, RESIZING)} - busy
        moving |= {
            m.instance_id
            for m in move_store.moves_touching(node_id)
            if m.source_node_id == node_id and m.kind == MIGRATE  # a resize may wait for its user
        }
        running += len(moving)
        left = [
            r
            for r in on_node
            if r.id not in gave_up | busy
            and r.state not in (DELETING, MIGRATING, RESIZING)  # deleting ones go by themselves
        ]
        started = 0
        for row in left:
            if running >= self.parallel:
                break
            try:
                self._move(d, row)
                running += 1
                started += 1
            except KumoError as exc:
                fault = str(exc)
                if getattr(exc, "reason", "") in NOT_LIVE and not d.cold:
                    fault += "; a drain moves only running guests unless asked to cold-migrate: kumo node drain --cold"
                with write_transaction():
                    self.migrations.record_refusal(row, node_id, fault)
        if running == 0 and started == 0 and not left and not moving:
            failed = len(
                {m.instance_id for m in made if m.state == FAILED}
                & {r.id for r in instance_store.instances_on_node(node_id)}
            )
            final = INCOMPLETE if failed else DRAINED
            with write_transaction():
                if store.end_drain(node_id, DRAINING, final, clock.now()) == 1:
                    self.events.record(
                        "node",
                        node_id,
                        "drained",
                        message="drained" if not failed else f"{failed} guest(s) could not move",
                    )
        return started

    def _move(self, d: NodeDrain, row: Instance) -> None:
        """Live if it can; else, when the drain was asked to, cold (a stopped
        guest, or one whose node does not report it running)."""
        try:
            self.migrations.begin(row, "", CONTROLLER, drain_node=d.node_id)
        except KumoError as exc:
            if not d.cold or getattr(exc, "reason", "") not in NOT_LIVE or row.state not in (ACTIVE, STOPPED):
                raise
            self.cold.begin(None, row, during=lambda: store.count_cold_start(d.node_id))
            log.info("drain: cold migration", extra={"node_id": d.node_id, "instance": row.id})
