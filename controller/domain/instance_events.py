"""What the instance sync's changes mean as events: the state an instance
reached by itself (active, stopped, rebooted, error), a fault the node
reported, a snapshot the node finished, the final delete."""

from __future__ import annotations

from typing import Any

from controller.db.instances import SyncRow
from controller.db.models import Instance
from controller.domain.events import OK, Outcome
from kumo.v1 import compute_pb2 as cpb

# A state the sync moved an instance to -> the action of its event.
REACHED = {
    cpb.INSTANCE_STATE_ACTIVE: "active",
    cpb.INSTANCE_STATE_STOPPED: "stopped",
    cpb.INSTANCE_STATE_ERROR: "error",
}


def observed(row: Instance | SyncRow, update: dict[str, Any]) -> list[tuple[str, Outcome, str]]:
    """(action, outcome, message) for each thing a sync update of `row` says."""
    out: list[tuple[str, Outcome, str]] = []
    node = f"on node {row.node_id}"
    if row.task == "image_uploading" and update.get("task") == "" and row.snapshot_image_id:
        if update.get("fault"):
            out.append(("snapshot", Outcome.failed("SNAPSHOT_FAILED"), str(update["fault"])))
        else:
            out.append(("snapshot", OK, f"snapshot image {row.snapshot_image_id} uploaded"))
    state = update.get("state")
    if state == cpb.INSTANCE_STATE_ERROR:
        out.append(("error", Outcome.failed("INSTANCE_FAULT"), str(update.get("fault", ""))))
    elif state == cpb.INSTANCE_STATE_ACTIVE and row.state == cpb.INSTANCE_STATE_REBOOTING:
        out.append(("rebooted", OK, f"running again {node}"))
    elif state in REACHED and state != row.state:
        out.append((REACHED[state], OK, f"{REACHED[state]} {node}"))
    elif update.get("fault") and not any(a == "snapshot" for a, _, _ in out):
        out.append(("fault", Outcome.failed("INSTANCE_FAULT"), str(update["fault"])))
    return out
