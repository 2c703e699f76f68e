"""Live migration and drain messages: MigrateInstance and ListLiveMigrations
(ComputeService), DrainNode and UndrainNode and Node.drain (NodeService)."""

from __future__ import annotations

from controller import validation as v
from controller.api.convert import ts
from controller.db.models import LiveMigration, NodeDrain
from controller.errors import InvalidArgument
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import node_pb2 as npb


def live_migration_pb(row: LiveMigration) -> cpb.LiveMigration:
    out = cpb.LiveMigration(
        id=row.id,
        instance_id=row.instance_id,
        project_id=row.project_id,
        source_node_id=row.source_node_id,
        target_node_id=row.target_node_id,
        state=row.state,
        bytes_total=row.bytes_total,
        bytes_processed=row.bytes_processed,
        downtime_ms=row.downtime_ms,
        fault=row.fault,
        drain_node_id=row.drain_node_id,
        cancelled_by=row.cancelled_by,
        create_time=ts(row.create_time),
        update_time=ts(row.update_time),
    )
    if row.end_time:
        out.end_time.CopyFrom(ts(row.end_time))
    return out


def migrate_args(request: cpb.MigrateInstanceRequest) -> tuple[str, str, bool]:
    """(instance reference, target node reference or "", live), checked."""
    return (
        v.reference(request.name, "name"),
        v.reference(request.node, "node", required=False),
        request.live,
    )


def list_args(request: cpb.ListLiveMigrationsRequest) -> tuple[str, str, int]:
    if request.state and request.state not in cpb.LiveMigrationState.values():
        raise InvalidArgument(f"state {request.state} is not a LiveMigrationState")
    return (
        v.optional_id(request.instance_id, "instance_id"),
        v.optional_id(request.node_id, "node_id"),
        request.state,
    )


def node_drain_pb(drain: NodeDrain, migrated: int, failed: int) -> npb.NodeDrain:
    out = npb.NodeDrain(
        state=drain.state,
        instances_total=drain.instances_total,
        migrated=migrated,
        failed=failed,
        start_time=ts(drain.start_time),
        cold=drain.cold,
        cold_started=drain.cold_started,
    )
    if drain.end_time:
        out.end_time.CopyFrom(ts(drain.end_time))
    return out
