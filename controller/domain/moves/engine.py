"""The state machine every move (cold migration, resize) goes through, one
transaction per phase change, so a controller restart simply resumes: the
move's row says where it is, and the sync below advances it from what the
nodes report (the token of the phase they applied, the guest's power).

    start      claim the target (or the growth on the same node), charge the
               quota growth, MIGRATING/RESIZING, phase stopping
    stopping   the source stops the guest; a node-local root disk is
               flattened and uploaded to the blob store (UploadSnapshot with a
               move id); once the source echoes the token:
    switch     one transaction: the instance's node, sizes and flavor change,
               its ports and shared volumes follow (InstanceMoves), phase
               arriving; the target downloads the disk, makes a new config
               drive, defines the guest and starts it if it ran before
    arriving   once the target echoes the token with the guest's power as
               before: a migration ends (the source's claim and the disk blob
               go); a resize waits in VERIFY_RESIZE
    confirm    frees the old claim and the old disk
    revert     the old node and sizes again, the disk from before imported,
               phase reverting; once the source echoes: the new claim goes"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from controller import clock
from controller.auth.principal import Principal
from controller.db import instances as instance_store
from controller.db import moves as store
from controller.db import nodes as node_store
from controller.db.database import write_transaction
from controller.db.models import Instance, InstanceMove
from controller.db.nodes import NodeHead
from controller.domain.events import CONTROLLER, Cause, EventLog, Outcome
from controller.domain.extensions import CreateBind, InstanceMoves, combined_needs
from controller.domain.images import Images
from controller.domain.instances import ACTIVE, OFF, RUNNING, STATE_NAMES, STOPPED, visible_instance
from controller.domain.moves.plan import (
    ARRIVING,
    MIGRATE,
    RESIZE,
    REVERTING,
    STOPPING,
    VERIFY,
    Sizes,
    extra_quota,
    new_sizes,
    old_sizes,
    token,
)
from controller.domain.node_registry import NodeRegistry
from controller.domain.periodic import Periodic
from controller.domain.quotas import Quotas
from controller.errors import Aborted, FailedPrecondition, not_found
from kumo.ids import is_uuid
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import node_agent_pb2 as npb

log = logging.getLogger("kumo.moves")

MIGRATING = cpb.INSTANCE_STATE_MIGRATING
RESIZING = cpb.INSTANCE_STATE_RESIZING
VERIFY_RESIZE = cpb.INSTANCE_STATE_VERIFY_RESIZE


def wrong_state(row: Instance, verb: str) -> FailedPrecondition:
    busy = f" (busy: {row.task})" if row.task else ""
    return FailedPrecondition(
        f"cannot {verb} instance {row.name!r}: it is {STATE_NAMES.get(row.state)}{busy}",
        reason="INSTANCE_WRONG_STATE",
        state=STATE_NAMES.get(row.state, ""),
    )


def not_moving(row: Instance) -> FailedPrecondition:
    return FailedPrecondition(
        f"instance {row.name!r} has no migration or resize under way",
        reason="NOT_MOVING",
        state=STATE_NAMES.get(row.state, ""),
    )


def not_cancellable(row: Instance, move: InstanceMove) -> FailedPrecondition:
    """Past the switch the instance is recorded on its target, which holds
    (and may already run) the guest: a cancel would lose what it wrote."""
    if move.phase == VERIFY:
        why = "it waits in verify_resize: RevertResize returns it to the old flavor"
    elif move.phase == REVERTING:
        why = "its resize is being reverted"
    else:
        why = f"it is already on node {move.target_node_id}, starting there: wait for the move to end"
        if move.kind == RESIZE:
            why += ", then revert the resize"
    return FailedPrecondition(
        f"cannot cancel the {'cold migration' if move.kind == MIGRATE else 'resize'} of instance "
        f"{row.name!r}: {why}",
        reason="MOVE_NOT_CANCELLABLE",
        phase=move.phase,
    )


class MoveEngine:
    """Moves under way. To instances it is an InstanceExtension (a deleted
    instance's move frees its other claim; nodes may read a move's disk blob),
    to nodes a DesiredStateContributor (after the instances one: it amends
    their entries with the move's power, disk export and import)."""

    def __init__(
        self,
        registry: NodeRegistry,
        images: Images,
        quotas: Quotas,
        extensions: Sequence[InstanceMoves],
        events: EventLog,
        sync_period: float,
    ) -> None:
        self.registry = registry
        self.images = images
        self.quotas = quotas
        self.extensions = tuple(extensions)
        self.events = events
        self._sync = Periodic("move-sync", sync_period, self.sync_once, log)
        # Disk blobs of moves that ended inside another feature's transaction
        # (an instance's final delete): dropped by the next sync pass.
        self._orphans: set[str] = set()

    # Lookups

    @staticmethod
    def find(caller: Principal, ref: str) -> Instance:
        """An instance by id or by name in the caller's project."""
        row = instance_store.get_instance(ref) if is_uuid(ref) else _by_name(caller.project_id, ref)
        if row is None or not caller.can_see(row.project_id):
            raise not_found("instance", ref)
        return row

    def constraint(self, row: Instance) -> str:
        """The storage backend a new node must reach ('' for none); raises when
        something of the instance cannot leave its node."""
        needs = combined_needs(self.extensions, row)
        if needs.blocker:
            raise FailedPrecondition(
                f"instance {row.name!r} cannot move: {needs.blocker}; detach them first "
                "(shared-fs and rbd volumes move with it)",
                reason="INSTANCE_HAS_LOCAL_VOLUMES",
            )
        return needs.backends[0] if needs.backends else ""

    # Start

    def start(
        self,
        caller: Principal | None,
        row: Instance,
        kind: str,
        flavor_id: str,
        new: Sizes,
        target: str,
        extra: Sizes,
        extra_instance: bool,
    ) -> Instance:
        """In the caller's write transaction, after its claim on `target`
        (`extra`: what that claim holds): the move's row and the instance's
        new state, compare-and-set on the state it was checked in."""
        now = clock.now()
        if store.get_move(row.id) is not None:
            raise wrong_state(row, kind)
        state = MIGRATING if kind == MIGRATE else RESIZING
        if instance_store.update_instance_if(row.id, row.state, {"state": state, "fault": ""}, now, "") != 1:
            raise Aborted(f"instance {row.name!r} changed meanwhile; try again", reason="INSTANCE_CHANGED")
        move = store.insert_move(
            id=clock.new_id(),
            instance_id=row.id,
            kind=kind,
            phase=STOPPING,
            source_node_id=row.node_id,
            target_node_id=target,
            old_flavor_id=row.flavor_id,
            old_vcpus=row.vcpus,
            old_ram_mb=row.ram_mb,
            old_disk_gb=row.disk_gb,
            new_flavor_id=flavor_id,
            new_vcpus=new.vcpus,
            new_ram_mb=new.ram_mb,
            new_disk_gb=new.disk_gb,
            was_running=row.state == ACTIVE,
            copy_disk=row.disk_gb > 0,
            extra_node_id=target,
            extra_vcpus=extra.vcpus,
            extra_ram_mb=extra.ram_mb,
            extra_disk_gb=extra.disk_gb,
            extra_instance=extra_instance,
            create_time=now,
            update_time=now,
        )
        node_store.bump_desired_revision(row.node_id, now)
        where = "on its node" if target == row.node_id else f"to node {target}"
        self._event(row, f"{kind}_started", f"{kind} {where} started: stopping the guest", Cause.of(caller))
        log.info("move started", extra={"instance": row.id, "move": move.id, "kind": kind, "target": target})
        return row

    # ConfirmResize, RevertResize

    def confirm(self, caller: Principal, ref: str) -> Instance:
        with write_transaction():
            row, move = self._verifying(caller, ref, "confirm the resize of")
            self._finish(
                row,
                move,
                "resize_confirmed",
                f"resize confirmed; the old claim on node {move.extra_node_id} freed",
            )
        self._after_finish(row.node_id, move)
        return visible_instance(caller, row.id)

    def revert(self, caller: Principal, ref: str) -> Instance:
        with write_transaction():
            row, move = self._verifying(caller, ref, "revert the resize of")
            now = clock.now()
            source, target = move.source_node_id, row.node_id
            old = old_sizes(move)
            fields: dict[str, Any] = {"extra_node_id": target}
            if source != target:
                fields.update(
                    extra_vcpus=row.vcpus,
                    extra_ram_mb=row.ram_mb,
                    extra_disk_gb=row.disk_gb,
                    extra_instance=True,
                )
            else:  # the node keeps holding the growth until the revert is done
                growth = new_sizes(move).minus(old)
                fields.update(
                    extra_vcpus=growth.vcpus, extra_ram_mb=growth.ram_mb, extra_disk_gb=growth.disk_gb
                )
            fields["phase"] = REVERTING
            if store.update_move_if(move.id, VERIFY, fields, now) != 1:
                raise Aborted("the resize changed meanwhile; try again", reason="INSTANCE_CHANGED")
            instance_store.update_instance(
                row.id,
                {
                    "node": source,
                    "vcpus": old.vcpus,
                    "ram_mb": old.ram_mb,
                    "disk_gb": old.disk_gb,
                    "flavor_id": move.old_flavor_id,
                    "state": RESIZING,
                },
                now,
            )
            others = self._moved(row, target, source)
            for node_id in {source, target, *others}:
                node_store.bump_desired_revision(node_id, now)
            self._event(
                row, "resize_reverting", "reverting the resize: back to the old flavor", Cause.of(caller)
            )
        for node_id in {source, target, *others}:
            self.registry.notify_threadsafe(node_id)
        return visible_instance(caller, row.id)

    # CancelMigration

    def cancel(
        self, caller: Principal, row: Instance, during: Callable[[Instance, str], None] | None = None
    ) -> None:
        """Reverts a move still stopping on its source (before the switch:
        the target has nothing yet): the move's row, the target's claim (or
        the growth on the same node) and the quota growth go in one
        transaction, and the instance is ACTIVE or STOPPED as before, on its
        source, which starts the guest again if it ran. Past the switch the
        guest is the target's: FAILED_PRECONDITION MOVE_NOT_CANCELLABLE.
        `during` runs in that transaction (a drain gives the guest up)."""
        who = caller.user_name or caller.user_id
        with write_transaction():
            move = store.locked_move(row.id)
            if move is None:
                raise not_moving(row)
            if move.phase != STOPPING:
                raise not_cancellable(row, move)
            if store.delete_move_if(move.id, STOPPING) != 1:
                raise Aborted("the move changed meanwhile; try again", reason="INSTANCE_CHANGED")
            now = clock.now()
            what = "cold migration" if move.kind == MIGRATE else "resize"
            power = ACTIVE if move.was_running else STOPPED
            moving = MIGRATING if move.kind == MIGRATE else RESIZING
            fields: dict[str, Any] = {"state": power, "fault": f"{what} cancelled by {who}"}
            if instance_store.update_instance_if(row.id, moving, fields, now) != 1:
                raise Aborted(
                    f"instance {row.name!r} changed meanwhile; try again", reason="INSTANCE_CHANGED"
                )
            self._release_extra(row, move)
            for node_id in {move.source_node_id, move.target_node_id}:
                node_store.bump_desired_revision(node_id, now)
            where = "" if move.target_node_id == move.source_node_id else f" to node {move.target_node_id}"
            again = ", started again" if move.was_running else ""
            self.events.record(
                "instance",
                row.id,
                f"{move.kind}_cancelled",
                row.project_id,
                Cause.of(caller),
                Outcome.failed("MOVE_CANCELLED"),
                f"{what}{where} cancelled by {who}: the guest stays on node {move.source_node_id}{again}",
            )
            if during is not None:
                during(row, fields["fault"])
        self.registry.notify_threadsafe(move.source_node_id)
        if move.disk_sha256:
            self.images.drop_blob(move.disk_sha256)
        log.info("move cancelled", extra={"instance": row.id, "move": move.id, "by": who})

    def _verifying(self, caller: Principal, ref: str, verb: str) -> tuple[Instance, InstanceMove]:
        row = self.find(caller, ref)
        move = store.get_move(row.id)
        if row.state != VERIFY_RESIZE or move is None or move.phase != VERIFY:
            raise wrong_state(row, verb)
        return row, move

    # Node-facing

    def contribute(self, node: NodeHead, state: npb.NodeDesiredState) -> None:
        """Amends the instances part of a node's desired state for the moves
        of its instances."""
        if not store.any_move_touching(node.id):  # the cheap answer for almost every node
            return
        moves = {m.instance_id: m for m in store.moves_touching(node.id)}
        if not moves:
            return
        for d in state.instances:
            move = moves.get(d.id)
            if move is None:
                continue
            d.move_step = token(move)
            if move.phase == STOPPING:
                d.power = npb.DESIRED_POWER_STOPPED
                if move.copy_disk and not move.disk_sha256:
                    d.export_disk_move_id = move.id
                continue
            d.power = npb.DESIRED_POWER_RUNNING if move.was_running else npb.DESIRED_POWER_STOPPED
            moved_disk = move.phase == ARRIVING and move.target_node_id != move.source_node_id
            if move.copy_disk and move.disk_sha256 and (moved_disk or move.phase == REVERTING):
                d.import_disk_sha256 = move.disk_sha256
                d.import_disk_size_bytes = move.disk_size_bytes

    def receive_disk(self, node_id: str, instance_id: str, move_id: str, chunks: Iterable[bytes]) -> str:
        """A source node's flattened root disk for a move: into the blob store,
        recorded on the move in the same transaction. A retry after the
        answer was lost gets the blob already recorded."""
        move = store.get_move(instance_id)
        row = instance_store.get_instance(instance_id)
        if move is None or row is None or move.id != move_id or row.node_id != node_id or not move.copy_disk:
            raise not_found("move", f"{instance_id}/{move_id}")
        if move.disk_sha256 or move.phase != STOPPING:
            for _ in chunks:  # already have it
                pass
            return move.disk_sha256

        def commit(sha: str, size: int) -> None:
            fields = {"disk_sha256": sha, "disk_size_bytes": size}
            if store.update_move_if(move.id, STOPPING, fields, clock.now()) != 1:
                raise Aborted(f"move {move.id} changed during the upload", reason="INSTANCE_CHANGED")

        sha = self.images.store_blob(chunks, commit)
        log.info("move disk received", extra={"instance": instance_id, "move": move_id, "sha256": sha})
        self.registry.notify_threadsafe(node_id)  # the export is done: its desired state drops it
        return sha

    # As an InstanceExtension

    def prepare_create(self, caller: Principal, options: Any) -> CreateBind | None:
        return None

    def instance_gone(self, row: Instance) -> set[str]:
        """The instance's final delete: the move's other claim and quota go."""
        move = store.get_move(row.id)
        if move is None:
            return set()
        self._release_extra(row, move)
        store.delete_move(move.id)
        if move.disk_sha256:
            self._orphans.add(move.disk_sha256)
        return {move.extra_node_id} - {row.node_id}

    def end_moves_on(self, lost_node: str) -> int:
        """As an UnfinishedMoves: a move whose instance is recorded on the lost
        node, or still stopping on its source for a lost target, fails: the
        other claim and quota go, the instance stays where it is recorded.
        (A move past its switch whose source was lost goes on: the target
        has it, and ending it frees the lost source's claim.)"""
        ended = 0
        for move in store.moves_touching(lost_node):
            row = instance_store.get_instance(move.instance_id)
            if row is None or not (
                row.node_id == lost_node or (move.phase == STOPPING and move.target_node_id == lost_node)
            ):
                continue
            with write_transaction():
                current = store.get_move(row.id)
                if current is None or current.id != move.id:
                    continue
                row = instance_store.get_instance(row.id) or row
                self._finish(row, move, "move_failed", f"move failed: node {lost_node} was lost (fenced)")
            self.registry.notify_threadsafe(row.node_id)
            if move.disk_sha256:
                self._orphans.add(move.disk_sha256)
            ended += 1
        return ended

    def may_read_blob(self, node_id: str, sha256: str) -> bool:
        """A move's disk, for the node its instance is on now."""
        return store.node_may_read_disk(node_id, sha256)

    # Sync: what nodes report -> the next phase

    def start_sync(self) -> None:
        self._sync.start()

    def stop_sync(self) -> None:
        self._sync.stop()

    def sync_once(self) -> int:
        changed = 0
        for sha in list(self._orphans):
            self._orphans.discard(sha)
            self.images.drop_blob(sha)
        for move in store.all_moves():
            row = instance_store.get_instance(move.instance_id)
            if row is None or move.phase == VERIFY or row.state not in (MIGRATING, RESIZING):
                continue  # waiting for the user, or being deleted (the delete frees the move)
            live = self.registry.snapshot(row.node_id)
            guest = next((g for g in live.guests if g.instance_id == row.id), None) if live else None
            if (
                guest is None
                or guest.move_step != token(move)
                or not (live and live.connected and live.heard)
            ):
                continue
            if move.phase == STOPPING:
                if guest.power_state in OFF and (move.disk_sha256 or not move.copy_disk):
                    changed += self._switch(row, move)
            elif move.was_running == (guest.power_state == RUNNING) and (
                move.was_running or guest.power_state in OFF
            ):
                changed += self._arrived(row, move)
        return changed

    def _switch(self, row: Instance, move: InstanceMove) -> int:
        """The guest is stopped (and its disk uploaded): the instance goes to
        its target with its new sizes, in one transaction with its ports and
        volumes."""
        source, target = move.source_node_id, move.target_node_id
        new = new_sizes(move)
        with write_transaction():
            now = clock.now()
            fields: dict[str, Any] = {"phase": ARRIVING, "extra_node_id": source}
            if source != target:  # the source's claim becomes the extra one
                fields.update(
                    extra_vcpus=row.vcpus,
                    extra_ram_mb=row.ram_mb,
                    extra_disk_gb=row.disk_gb,
                    extra_instance=True,
                )
            else:  # the node's claim already holds the growth: the row now counts it all
                fields.update(extra_vcpus=0, extra_ram_mb=0, extra_disk_gb=0, extra_instance=False)
            if store.update_move_if(move.id, STOPPING, fields, now) != 1:
                return 0
            instance_store.update_instance(
                row.id,
                {
                    "node": target,
                    "vcpus": new.vcpus,
                    "ram_mb": new.ram_mb,
                    "disk_gb": new.disk_gb,
                    "flavor_id": move.new_flavor_id,
                },
                now,
            )
            others = self._moved(row, source, target) if source != target else set()
            for node_id in {source, target, *others}:
                node_store.bump_desired_revision(node_id, now)
            where = f"moved to node {target}" if source != target else "new sizes applied on its node"
            self._event(
                row, "moved", f"guest stopped; {where}, starting there" if move.was_running else where
            )
        for node_id in {source, target, *others}:
            self.registry.notify_threadsafe(node_id)
        return 1

    def _arrived(self, row: Instance, move: InstanceMove) -> int:
        if move.kind == RESIZE and move.phase == ARRIVING:
            with write_transaction():
                now = clock.now()
                if store.update_move_if(move.id, ARRIVING, {"phase": VERIFY}, now) != 1:
                    return 0
                instance_store.update_instance(row.id, {"state": VERIFY_RESIZE}, now)
                self._event(row, "resized", "resized: confirm or revert the resize")
            return 1
        with write_transaction():
            current = store.get_move(row.id)
            if current is None or current.id != move.id or current.phase != move.phase:
                return 0
            done = "migrated" if move.kind == MIGRATE else "resize_reverted"
            self._finish(
                row, move, done, f"{done.replace('_', ' ')}; its claim on node {move.extra_node_id} freed"
            )
        self._after_finish(row.node_id, move)
        return 1

    def _finish(self, row: Instance, move: InstanceMove, action: str, message: str) -> None:
        """Ends a move in the caller's transaction: the extra claim and quota
        go, the instance is ACTIVE or STOPPED as before."""
        now = clock.now()
        self._release_extra(row, move)
        store.delete_move(move.id)
        instance_store.update_instance(row.id, {"state": ACTIVE if move.was_running else STOPPED}, now)
        node_store.bump_desired_revision(row.node_id, now)
        self._event(row, action, message)
        log.info("move done", extra={"instance": row.id, "move": move.id, "phase": move.phase})

    def _after_finish(self, node_id: str, move: InstanceMove) -> None:
        self.registry.notify_threadsafe(node_id)
        if move.disk_sha256:
            self.images.drop_blob(move.disk_sha256)

    def _release_extra(self, row: Instance, move: InstanceMove) -> None:
        if move.extra_instance:
            instance_store.release(
                move.extra_node_id, move.extra_vcpus, move.extra_ram_mb, move.extra_disk_gb
            )
        else:
            store.release_growth(move.extra_node_id, move.extra_vcpus, move.extra_ram_mb, move.extra_disk_gb)
        held = {k: n for k, n in extra_quota(move, row).items() if n > 0}
        if held:
            self.quotas.release(row.project_id, held)

    def _moved(self, row: Instance, source: str, target: str) -> set[str]:
        others: set[str] = set()
        for ext in self.extensions:
            others |= ext.instance_moved(row, source, target, clock.now())
        return others

    def _event(self, row: Instance, action: str, message: str, cause: Cause = CONTROLLER) -> None:
        self.events.record("instance", row.id, action, row.project_id, cause, message=message)


def _by_name(project_id: str, name: str) -> Instance | None:
    return Instance.get_or_none((Instance.project == project_id) & (Instance.name == name))
