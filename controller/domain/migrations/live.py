"""Live migration: MigrateInstance(live=true) claims a target through
placement (the filters of a create, plus not the source and only nodes that
take migrations), records the migration and tells both nodes; a periodic pass
folds what they report into the record, level-triggered, so a controller
restart mid-migration simply carries on from the nodes' reports.

The phases, as the nodes see them:
- PREPARING: the target's desired state holds the instance with
  `incoming_migration_id` (ports, networks, disk files; the guest is not
  started). Once the target reports it PREPARED (GuestStatus.migration): RUNNING.
- RUNNING: the source's desired instance carries an `outgoing_migration`; it
  migrates peer to peer and reports progress in GuestStatus.migration.
- COMPLETED (the source says so, or the target runs the guest): in one
  transaction the instance's node becomes the target (its ports' binding,
  the networks projection and overlays follow the instance's node), shared
  volumes follow, the source's claim is freed.
- FAILED (the source says so, the target went DOWN, the deadline passed, the
  instance was deleted): the guest stays on the source, the target's claim is
  freed, the instance's fault and the event log say why.
- CancelMigration: PREPARING fails at once; RUNNING records who cancelled and
  withdraws the source's order (its daemon aborts the copy), then fails once
  the source says the copy stopped (or completes, if it finished first)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from controller import clock
from controller.auth.principal import Principal
from controller.db import instances as instance_store
from controller.db import live_migrations as store
from controller.db import nodes as node_store
from controller.db.database import write_transaction
from controller.db.models import Instance, LiveMigration
from controller.db.nodes import NodeHead
from controller.domain.events import CONTROLLER, OK, Cause, EventLog, Outcome
from controller.domain.extensions import InstanceMoves, combined_needs
from controller.domain.instances import (
    ACTIVE,
    DELETING,
    MIGRATING,
    RUNNING,
    STATE_NAMES,
    Instances,
    desired_instance,
)
from controller.domain.move_target import MoveTargets
from controller.domain.node_registry import DOWN as NODE_DOWN
from controller.domain.node_registry import LiveView
from controller.domain.nodes import find_node
from controller.domain.periodic import Periodic
from controller.errors import FailedPrecondition, InvalidArgument, KumoError, not_found
from kumo.ids import is_uuid
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import node_agent_pb2 as npb

log = logging.getLogger("kumo.migrations")

PREPARING = cpb.LIVE_MIGRATION_STATE_PREPARING
RUNNING_MIGRATION = cpb.LIVE_MIGRATION_STATE_RUNNING
COMPLETED = cpb.LIVE_MIGRATION_STATE_COMPLETED
FAILED = cpb.LIVE_MIGRATION_STATE_FAILED
UNFINISHED = (PREPARING, RUNNING_MIGRATION)
JOB_COMPLETED = npb.MIGRATION_JOB_STATE_COMPLETED
JOB_FAILED = npb.MIGRATION_JOB_STATE_FAILED
JOB_PREPARED = npb.MIGRATION_JOB_STATE_PREPARED
# How long the target may take to make ports and disk files, on top of the
# migration's own timeout, before the controller gives up on its own.
PREPARE_SECONDS = 120.0


@dataclass(frozen=True)
class MigrationSettings:
    timeout_seconds: int = 300  # the source aborts the copy after this long
    period_seconds: float = 1.0  # how often the pass folds node reports


def _guest(live: LiveView | None, instance_id: str) -> npb.GuestStatus | None:
    if live is None:
        return None
    return next((g for g in live.guests if g.instance_id == instance_id), None)


def _reporting(live: LiveView | None) -> bool:
    return live is not None and live.status != NODE_DOWN and live.connected and live.heard


class LiveMigrations:
    """MigrateInstance(live), the nodes' part of it (a DesiredStateContributor
    that runs right after the instances one) and the pass that follows it."""

    def __init__(
        self,
        settings: MigrationSettings,
        instances: Instances,
        targets: MoveTargets,
        events: EventLog,
        moves: Sequence[InstanceMoves],
    ) -> None:
        self.settings = settings
        self.moves = tuple(moves)
        self.instances = instances
        self.targets = targets
        self.registry = instances.nodes.registry
        self.events = events
        self._pass = Periodic("live-migrations", settings.period_seconds, self.sync_once, log)

    # Lookups

    def find_instance(self, caller: Principal, ref: str) -> Instance:
        if is_uuid(ref):
            return self.instances.get(caller, ref)
        rows, _ = self.instances.list(caller, 2, "", ref, 0)
        if not rows:
            raise not_found("instance", ref)
        if len(rows) > 1:
            raise InvalidArgument(f"name: {ref!r} names instances in several projects; give the id")
        return rows[0]

    def list(
        self, page_size: int, page_token: str, instance_id: str, node_id: str, state: int
    ) -> tuple[list[LiveMigration], str]:
        return store.list_migrations(page_size, page_token, instance_id, node_id, state)

    # Start

    def migrate(self, caller: Principal, ref: str, node_ref: str) -> Instance:
        row = self.find_instance(caller, ref)
        target = find_node(node_ref).id if node_ref else ""
        self.begin(row, target, Cause.of(caller))
        return self.instances.get(caller, row.id)

    def check_movable(self, row: Instance) -> str:
        """The storage backend a target must reach ('' for none), or why the
        instance cannot go live now."""
        if row.state != ACTIVE or row.task:
            busy = f" (busy: {row.task})" if row.task else ""
            raise FailedPrecondition(
                f"cannot live-migrate instance {row.name!r}: it is {STATE_NAMES.get(row.state)}{busy}",
                reason="INSTANCE_WRONG_STATE",
                state=STATE_NAMES.get(row.state),
            )
        source = self.registry.snapshot(row.node_id)
        if not _reporting(source):
            raise FailedPrecondition(
                f"cannot live-migrate instance {row.name!r}: its node is not reporting", reason="NODE_DOWN"
            )
        guest = _guest(source, row.id)
        if guest is None or guest.power_state != RUNNING:
            raise FailedPrecondition(
                f"cannot live-migrate instance {row.name!r}: its guest is not running",
                reason="INSTANCE_NOT_RUNNING",
            )
        needs = combined_needs(self.moves, row)
        if needs.blocker:
            raise FailedPrecondition(
                f"cannot live-migrate instance {row.name!r}: {needs.blocker} (only shared-fs and rbd "
                "volumes move)",
                reason="INSTANCE_HAS_LOCAL_VOLUMES",
            )
        return needs.backends[0] if needs.backends else ""

    def begin(self, row: Instance, target: str, cause: Cause, drain_node: str = "") -> LiveMigration:
        """Claims a target (`target`, or the scheduler's pick) and records the
        migration, in one transaction with the instance's move to MIGRATING."""
        if target and target == row.node_id:
            raise InvalidArgument("node: the instance already runs there", reason="SAME_NODE")
        backend = self.check_movable(row)
        ranked = self.targets.rank(row, row.vcpus, row.ram_mb, row.disk_gb, target, backend, live=True)
        req = ranked.req
        with write_transaction():
            now = clock.now()
            chosen = self.targets.claim(ranked)
            if (
                instance_store.update_instance_if(row.id, ACTIVE, {"state": MIGRATING}, now, expect_task="")
                != 1
            ):
                raise FailedPrecondition(
                    f"instance {row.name!r} changed state; try again", reason="INSTANCE_WRONG_STATE"
                )
            node_store.bump_desired_revision(row.node_id, now)
            node_store.bump_desired_revision(chosen, now)
            m = store.insert(
                id=clock.new_id(),
                instance_id=row.id,
                project_id=row.project_id,
                source_node_id=row.node_id,
                target_node_id=chosen,
                state=PREPARING,
                drain_node_id=drain_node,
                deadline=now + self.settings.timeout_seconds + PREPARE_SECONDS,
                vcpus=req.vcpus,
                ram_mb=req.ram_mb,
                disk_gb=req.disk_gb,
                create_time=now,
                update_time=now,
            )
            self.events.record(
                "instance",
                row.id,
                "live_migrate",
                row.project_id,
                cause,
                message=f"live migration {m.id} from node {row.node_id} to node {chosen}",
            )
        self.targets.placed(ranked)
        self.registry.notify_threadsafe(row.node_id)
        self.registry.notify_threadsafe(chosen)
        log.info("live migration started", extra={"instance": row.id, "migration": m.id, "node": chosen})
        return m

    def record_refusal(self, row: Instance, drain_node: str, fault: str) -> None:
        """A FAILED entry for an instance a drain could not move (no target)."""
        now = clock.now()
        store.insert(
            id=clock.new_id(),
            instance_id=row.id,
            project_id=row.project_id,
            source_node_id=row.node_id,
            state=FAILED,
            fault=fault[:2000],
            drain_node_id=drain_node,
            create_time=now,
            update_time=now,
            end_time=now,
        )

    # Cancel

    def cancel(self, caller: Principal, ref: str) -> Instance:
        row = self.find_instance(caller, ref)
        m = store.unfinished_of(row.id)
        if row.state != MIGRATING or m is None:
            raise FailedPrecondition(
                f"instance {row.name!r} has no live migration under way",
                reason="NOT_LIVE_MIGRATING",
                state=STATE_NAMES.get(row.state, ""),
            )
        who = caller.user_name or caller.user_id
        if m.state == PREPARING:  # no copy runs yet: the target's files go with its order
            self.fail(m, f"cancelled by {who}", cancelled=True, cause=Cause.of(caller))
        elif not m.cancelled_by:
            now = clock.now()
            with write_transaction():
                if store.update_if(m.id, (RUNNING_MIGRATION,), {"cancelled_by": who}, now) == 1:
                    node_store.bump_desired_revision(m.source_node_id, now)
                    self.events.record(
                        "instance",
                        row.id,
                        "live_migrate_cancel",
                        row.project_id,
                        Cause.of(caller),
                        message=f"live migration {m.id}: cancelling (the source aborts the copy)",
                    )
            self.registry.notify_threadsafe(m.source_node_id)
            log.info("live migration cancelling", extra={"instance": row.id, "migration": m.id})
        return self.instances.get(caller, row.id)

    # The nodes' part

    def contribute(self, node: NodeHead, state: npb.NodeDesiredState) -> None:
        """Incoming guests (to prepare) and outgoing orders, after the instances contributor."""
        if not store.any_unfinished_on_node(node.id):  # the cheap answer for almost every node
            return
        moving = store.unfinished_on_node(node.id)
        if not moving:
            return
        for m, row in store.incoming(node.id):
            if row.state == MIGRATING:
                inst = desired_instance(row)
                inst.incoming_migration_id = m.id
                state.instances.append(inst)
        outgoing = {
            m.instance_id: m
            for m in moving
            if m.source_node_id == node.id and m.state == RUNNING_MIGRATION and not m.cancelled_by
        }  # a withdrawn order (cancelled) makes the source abort the copy
        for inst in state.instances:
            m = outgoing.get(inst.id)
            if m is None:
                continue
            target = self.registry.snapshot(m.target_node_id)
            inv = target.inventory if target is not None else None
            inst.outgoing_migration.CopyFrom(
                npb.OutgoingMigration(
                    migration_id=m.id,
                    target_node_id=m.target_node_id,
                    target_address=inv.migration_address if inv is not None else "",
                    target_uri=inv.migration_uri if inv is not None else "",
                    copy_storage=m.disk_gb > 0,
                    timeout_seconds=self.settings.timeout_seconds,
                    target_port=inv.migration_port if inv is not None else 0,
                )
            )

    # The pass

    def start_sync(self) -> None:
        self._pass.start()

    def stop_sync(self) -> None:
        self._pass.stop()

    def sync_once(self) -> int:
        changed = 0
        for m in store.unfinished():
            try:
                changed += self._follow(m)
            except KumoError as exc:  # a lost race: the next pass looks again
                log.info("live migration pass", extra={"migration": m.id, "error": str(exc)})
        return changed

    def end_moves_on(self, lost_node: str) -> int:
        """As an UnfinishedMoves: a migration from or to a lost (fenced) node
        fails at once: the target's claim goes, the instance stays on its
        source (evacuated next when the source is the lost node)."""
        return sum(
            self.fail(m, f"node {lost_node} was lost (fenced) during the migration")
            for m in store.unfinished_on_node(lost_node)
        )

    def _follow(self, m: LiveMigration) -> int:
        row = instance_store.get_instance(m.instance_id)
        if row is None or row.state != MIGRATING:
            gone = row is None or row.state == DELETING
            return self.fail(m, "the instance was deleted" if gone else "the instance changed state")
        source = self.registry.snapshot(m.source_node_id)
        target = self.registry.snapshot(m.target_node_id)
        src_guest = _guest(source, m.instance_id)
        prog = (
            src_guest.migration
            if src_guest is not None and src_guest.migration.migration_id == m.id
            else None
        )
        tgt_guest = _guest(target, m.instance_id)
        if prog is not None and prog.state == JOB_COMPLETED:
            return self.complete(m, row, prog)
        if (
            m.state == RUNNING_MIGRATION
            and _reporting(target)
            and tgt_guest is not None
            and tgt_guest.power_state == RUNNING
            and (not _reporting(source) or src_guest is None)
        ):  # the source's word (with the downtime) first, while it can give it
            return self.complete(m, row, prog)
        source_has_it = _reporting(source) and src_guest is not None and src_guest.power_state == RUNNING
        if m.cancelled_by and (prog is None or prog.state == JOB_FAILED) and source_has_it:
            return self.fail(m, f"cancelled by {m.cancelled_by}", cancelled=True)  # the copy stopped
        if (
            m.cancelled_by
            and source is not None
            and source.status == NODE_DOWN
            and _reporting(target)
            and (tgt_guest is None or tgt_guest.power_state != RUNNING)
        ):  # the target has not taken the guest over: its incoming side goes, the copy cannot end there
            return self.fail(
                m, f"cancelled by {m.cancelled_by} (source node {m.source_node_id} down)", cancelled=True
            )
        if prog is not None and prog.state == JOB_FAILED:
            return self.fail(m, prog.error or "the source node gave up")
        source_sure = _reporting(source) and src_guest is not None and src_guest.power_state != 0
        if target is None or target.status == NODE_DOWN:
            if source_sure or target is not None:
                return self.fail(m, f"target node {m.target_node_id} is down")
            return 0
        if m.state == PREPARING:
            if tgt_guest is not None and tgt_guest.fault and _reporting(target):
                return self.fail(m, f"the target could not prepare: {tgt_guest.fault}")
            ready = tgt_guest is not None and tgt_guest.migration.migration_id == m.id
            if _reporting(target) and ready and tgt_guest.migration.state == JOB_PREPARED:
                now = clock.now()
                with write_transaction():
                    if store.update_if(m.id, (PREPARING,), {"state": RUNNING_MIGRATION}, now) != 1:
                        return 0
                    node_store.bump_desired_revision(m.source_node_id, now)
                self.registry.notify_threadsafe(m.source_node_id)
                return 1
        elif prog is not None and (
            prog.bytes_processed != m.bytes_processed or prog.bytes_total != m.bytes_total
        ):
            store.update_if(
                m.id,
                (RUNNING_MIGRATION,),
                {"bytes_total": prog.bytes_total, "bytes_processed": prog.bytes_processed},
                clock.now(),
            )
        if clock.now() > m.deadline and source_sure:
            return self.fail(m, f"timed out after {self.settings.timeout_seconds + PREPARE_SECONDS:g} s")
        return 0

    def complete(self, m: LiveMigration, row: Instance, prog: npb.MigrationProgress | None) -> int:
        now = clock.now()
        with write_transaction():
            fields = {"state": COMPLETED, "end_time": now, "fault": ""}
            if prog is not None:
                fields.update(
                    bytes_total=prog.bytes_total,
                    bytes_processed=prog.bytes_processed,
                    downtime_ms=prog.downtime_ms,
                )
            if store.update_if(m.id, UNFINISHED, fields, now) != 1:
                return 0
            instance_store.update_instance(
                row.id, {"node": m.target_node_id, "state": ACTIVE, "fault": ""}, now
            )
            instance_store.release(m.source_node_id, m.vcpus, m.ram_mb, m.disk_gb)
            tell = {m.source_node_id, m.target_node_id}
            for node_id in tell:
                node_store.bump_desired_revision(node_id, now)
            moved = instance_store.get_instance(row.id) or row
            for ext in self.moves:  # ports, SNAT addresses, shared volumes
                tell |= ext.instance_moved(moved, m.source_node_id, m.target_node_id, now)
            self.events.record(
                "instance",
                row.id,
                "live_migrated",
                row.project_id,
                CONTROLLER,
                OK,
                f"live migration {m.id} done: now on node {m.target_node_id}"
                + (f", downtime {prog.downtime_ms} ms" if prog is not None else ""),
            )
        for node_id in tell:
            self.registry.notify_threadsafe(node_id)
        log.info("live migration completed", extra={"instance": row.id, "migration": m.id})
        return 1

    def fail(self, m: LiveMigration, reason: str, cancelled: bool = False, cause: Cause = CONTROLLER) -> int:
        now = clock.now()
        fault = (f"live migration {reason}" if cancelled else f"live migration failed: {reason}")[:2000]
        with write_transaction():
            if (
                store.update_if(
                    m.id, UNFINISHED, {"state": FAILED, "fault": reason[:2000], "end_time": now}, now
                )
                != 1
            ):
                return 0
            instance_store.update_instance_if(
                m.instance_id, MIGRATING, {"state": ACTIVE, "fault": fault}, now
            )
            instance_store.release(m.target_node_id, m.vcpus, m.ram_mb, m.disk_gb)
            node_store.bump_desired_revision(m.source_node_id, now)
            node_store.bump_desired_revision(m.target_node_id, now)
            self.events.record(
                "instance",
                m.instance_id,
                "live_migrate_cancelled" if cancelled else "live_migrate_failed",
                m.project_id,
                cause,
                Outcome.failed("LIVE_MIGRATION_CANCELLED" if cancelled else "LIVE_MIGRATION_FAILED"),
                f"live migration {m.id} to node {m.target_node_id}: {reason}",
            )
        self.registry.notify_threadsafe(m.source_node_id)
        self.registry.notify_threadsafe(m.target_node_id)
        log.warning(
            "live migration failed", extra={"instance": m.instance_id, "migration": m.id, "error": reason}
        )
        return 1
