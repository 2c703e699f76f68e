"""Evacuation: restarting a lost node's instances on other nodes.

Only a fenced node is evacuated (FenceNode: an admin's word that it runs
nothing any more), so a guest never runs twice. Each instance moves in one
write transaction: the scheduler's claim on the new node (a conditional
UPDATE: racing evacuations never overcommit), the release of the old node's
claim, and a compare-and-set of the instance's node (`node == source`: of two
racing evacuations, or two controllers' HA passes, one moves it; the other's
claim rolls back). The target is ranked and claimed as for any move
(MoveTargets, which locks the shared volumes first, in a create's order);
its ports and shared volumes follow it (InstanceMoves).
Instances with a root disk on the lost node are rebuilt from their image,
and only when asked (`rebuild_local_disks`; HA instances always are: that
is what `ha` asks for). Every instance's outcome is an event.

The HA pass (periodic) evacuates a fenced node's `ha` instances once it has
been DOWN for `ha_grace_seconds`; with `ha_auto_fence` it also fences a DOWN
node itself first (dangerous without real power fencing: docs/nodes.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from controller import clock
from controller.auth.principal import Principal
from controller.config import ControllerConfig
from controller.db import instances as store
from controller.db import nodes as node_store
from controller.db.database import write_transaction
from controller.db.models import Instance
from controller.domain import instances as inst
from controller.domain.evacuation_retries import Retries, capacity
from controller.domain.events import CONTROLLER, OK, Cause, EventLog, Outcome
from controller.domain.extensions import InstanceMoves, MoveNeeds, UnfinishedMoves, combined_needs
from controller.domain.images import Images
from controller.domain.move_target import MoveTargets
from controller.domain.node_registry import DOWN
from controller.domain.nodes import Nodes
from controller.domain.periodic import Periodic
from controller.domain.placement import Placement
from controller.errors import FailedPrecondition, InvalidArgument, KumoError, not_found

log = logging.getLogger("kumo.evacuation")

MOVED = "MOVED"
REBUILT = "REBUILT"
FAILED = "FAILED"


@dataclass(frozen=True)
class Evacuated:
    """What an evacuation did with one instance."""

    instance_id: str
    instance_name: str
    outcome: str  # MOVED | REBUILT | FAILED
    target_node_id: str
    message: str
    reason: str = ""  # a failure's code and reason: what the HA pass says once


class _Lost(Exception):
    """The instance moved (or began deleting) meanwhile: roll back the claim."""


class Evacuations:
    def __init__(
        self,
        cfg: ControllerConfig,
        nodes: Nodes,
        placement: Placement,
        targets: MoveTargets,
        images: Images,
        moves: Sequence[InstanceMoves] = (),
        events: EventLog | None = None,
        unfinished: Sequence[UnfinishedMoves] = (),
    ) -> None:
        self.nodes = nodes
        self.unfinished = tuple(unfinished)
        self.placement = placement
        self.targets = targets
        self.images = images
        self.moves = tuple(moves)
        self.events = events
        self.node_grace = cfg.node_grace_seconds
        self.ha_grace = cfg.ha_grace_seconds
        self.auto_fence = cfg.ha_auto_fence
        # A failed HA move waits two passes, then twice as long each time.
        self.retries = Retries(2 * cfg.ha_check_seconds, cfg.ha_retry_max_seconds)
        self._ha = Periodic("ha-evacuate", cfg.ha_check_seconds, self.ha_pass, log)

    # The admin's call

    def evacuate(
        self, caller: Principal, node_id: str, rebuild_local: bool, target: str = ""
    ) -> list[Evacuated]:
        row = node_store.get_node(node_id)
        if row is None:
            raise not_found("node", node_id)
        if target:
            if target == node_id:
                raise InvalidArgument("target_node_id must be another node", field="target_node_id")
            if node_store.get_node(target) is None:
                raise not_found("node", target)
        if not row.fenced:
            state = self.nodes.get_node(node_id).state
            raise FailedPrecondition(
                f"node {row.name!r} is {state} and not fenced: make sure it runs nothing (power it off), "
                "then fence it (kumo node fence) before evacuating it",
                reason="NODE_NOT_FENCED",
                state=state,
            )
        self._end_moves(node_id)
        plans = [
            (r, combined_needs(self.moves, r)) for r in store.instances_to_evacuate(node_id, inst.DELETING)
        ]
        local = [r.name for r, needs in plans if not needs.blocker and not needs.keeps_root]
        if local and not rebuild_local:
            shown = ", ".join(sorted(local)[:5]) + (f" and {len(local) - 5} more" if len(local) > 5 else "")
            raise FailedPrecondition(
                f"{len(local)} instance(s) on node {row.name!r} have their root disk on it ({shown}): "
                "they can only be rebuilt from their image, losing that disk's content; pass "
                "rebuild_local_disks (kumo node evacuate --rebuild-local) to do so. Nothing was moved.",
                reason="EVACUATION_NEEDS_REBUILD",
                instances=str(len(local)),
            )
        cause = Cause.of(caller)
        out = [self._move(r, needs, node_id, target, cause) for r, needs in plans]
        log.info(
            "node evacuated",
            extra={
                "node_id": node_id,
                "moved": sum(e.outcome != FAILED for e in out),
                "failed": sum(e.outcome == FAILED for e in out),
            },
        )
        return out

    def _end_moves(self, node_id: str) -> None:
        """Moves from or to the lost node end first (failed; their other claim
        freed), so what is evacuated is an instance at rest on its recorded node."""
        for ext in self.unfinished:
            ext.end_moves_on(node_id)

    def _move(
        self, row: Instance, needs: MoveNeeds, source: str, target: str, cause: Cause, said: str = ""
    ) -> Evacuated:
        """Moves one instance; a failure is recorded unless its reason is `said` already."""
        if needs.blocker:
            return self._failed(row, source, f"cannot be moved: {needs.blocker}", cause, said=said)
        ranked = self.targets.rank(
            row,
            row.vcpus,
            row.ram_mb,
            row.disk_gb,  # 0 when it boots from a volume
            required=target,
            backend=needs.backends[0] if needs.backends else "",
            also_backends=needs.backends[1:],
        )
        rebuilt = not needs.keeps_root
        notify: set[str] = set()
        try:
            with write_transaction():
                chosen = self.targets.claim(ranked)  # locks the volumes first, as a create
                now = clock.now()
                stopped = row.state == inst.STOPPED and row.task != inst.POWERING_ON
                fields = {
                    "state": inst.STOPPED if stopped else inst.BUILDING,
                    "task": "",
                    "fault": "",
                    "snapshot_image_id": "",
                    "launch_time": 0 if not stopped else row.launch_time,
                }
                if store.move_instance(row.id, source, chosen, fields, now, inst.DELETING) != 1:
                    raise _Lost
                store.release(source, row.vcpus, row.ram_mb, row.disk_gb)
                if row.snapshot_image_id:
                    self.images.fail_snapshot(
                        row.snapshot_image_id, row.id, "the instance was evacuated before its snapshot"
                    )
                for node_id in (source, chosen):
                    node_store.bump_desired_revision(node_id, now)
                notify = {source, chosen}
                for ext in self.moves:
                    notify |= ext.instance_moved(row, source, chosen, now)
                message = (
                    f"rebuilt on node {chosen} from image {row.image_id}: its root disk on lost node "
                    f"{source} is gone"
                    if rebuilt
                    else f"moved from lost node {source} to node {chosen} with its volumes"
                )
                self._event(row, message, cause)
        except _Lost:
            current = store.get_instance(row.id)
            where = (
                f"is on node {current.node_id} now" if current and current.node_id != source else "is gone"
            )
            return Evacuated(row.id, row.name, FAILED, "", f"changed meanwhile: it {where}")
        except KumoError as exc:
            return self._failed(row, source, exc.message, cause, Outcome.of(exc), said)
        self.targets.placed(ranked)
        for node_id in notify:
            self.nodes.registry.notify_threadsafe(node_id)
        return Evacuated(row.id, row.name, REBUILT if rebuilt else MOVED, chosen, message)

    def _failed(
        self,
        row: Instance,
        source: str,
        why: str,
        cause: Cause,
        outcome: Outcome | None = None,
        said: str = "",
    ) -> Evacuated:
        """A failed move: recorded as the instance's fault and event (it stays
        where it was), once: not again when that reason was `said` already
        (the HA pass's earlier try) or the fault says it word for word."""
        outcome = outcome or Outcome.failed("EVACUATION_FAILED")
        reason = f"{outcome.error_code}/{outcome.error_reason}" + (
            f"/{why}" if not outcome.error_code else ""
        )
        message = f"evacuation from node {source} failed: {why}"
        if reason != said and row.fault != message[:1000]:
            with write_transaction():
                store.update_instance(row.id, {"fault": message[:1000]}, clock.now())
                self._event(row, message, cause, outcome)
        return Evacuated(row.id, row.name, FAILED, "", message, reason)

    def _event(self, row: Instance, message: str, cause: Cause, outcome: Outcome = OK) -> None:
        if self.events is not None:
            self.events.record("instance", row.id, "evacuate", row.project_id, cause, outcome, message)

    # The HA pass

    def start(self) -> None:
        self._ha.start()

    def stop(self) -> None:
        self._ha.stop()

    def ha_pass(self) -> int:
        """Evacuates the `ha` instances of every fenced node DOWN for longer
        than the HA grace period (fencing it first with `ha_auto_fence`);
        returns how many moved. Idempotent: a moved instance is no longer on
        the node, and the move itself is a compare-and-set."""
        now = clock.now()
        fenced = node_store.fenced_nodes()
        moved = 0
        seen: set[str] = set()
        lost = [node_id for node_id, down_for in self._lost_nodes(now, fenced) if down_for >= self.ha_grace]
        if not lost:  # nothing to move: no waits to keep either
            self.retries.keep_only(seen)
            return moved
        # The fleet's free capacity (a pass over every node) only when there is something to move:
        # the pass runs every ha_check_seconds, and on a healthy fleet that read was nearly all it did.
        free = capacity(self.placement.candidates(), self.placement.ratios)
        for node_id in lost:
            if node_id not in fenced:
                try:
                    self.nodes.fence(node_id)
                except KumoError:
                    continue  # it came back meanwhile
                log.warning("node fenced by the HA pass (ha_auto_fence)", extra={"node_id": node_id})
            self._end_moves(node_id)
            for row in store.instances_to_evacuate(node_id, inst.DELETING, ha_only=True):
                seen.add(row.id)
                due, early = self.retries.due(row.id, now, free)
                if not due:
                    continue
                if early:
                    log.info("HA evacuation retried early: capacity grew", extra={"instance_id": row.id})
                said = self.retries.said(row.id)
                done = self._move(row, combined_needs(self.moves, row), node_id, "", CONTROLLER, said)
                if done.outcome != FAILED or not done.reason:  # moved, or changed meanwhile
                    self.retries.forget(row.id)
                    moved += done.outcome != FAILED
                    continue
                delay = self.retries.failed(row.id, now, free, done.reason)
                log.info(
                    "HA evacuation failed; backing off",
                    extra={"instance_id": row.id, "retry_in_seconds": delay, "reason": done.reason},
                )
        self.retries.keep_only(seen)
        return moved

    def _lost_nodes(self, now: float, fenced: dict[str, float]) -> list[tuple[str, float]]:
        """(node id, seconds DOWN) of the nodes with HA instances that the pass
        may evacuate: fenced ones, and with auto-fence every DOWN one."""
        out = []
        for node_id in store.nodes_with_ha_instances(inst.DELETING):
            live = self.nodes.registry.snapshot(node_id)
            if live is not None and (live.status != DOWN or live.connected):
                continue
            if node_id not in fenced and not self.auto_fence:
                continue
            view = self.nodes.get_node(node_id)
            out.append((node_id, now - view.last_heartbeat_time - self.node_grace))
        return out
