"""Outgoing live migrations: one worker thread per guest the desired state
sends away. How each ended is kept in the instance's state file (through
`record`), so heartbeats keep saying it after the guest left and after a
noded restart; the controller switches the instance over on that word."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from kumo.v1 import node_agent_pb2 as pb
from noded.compute.migration_tunnel import MigrationTunnel
from noded.hypervisor.base import HypervisorDriver, MigrationStats, MigrationTarget

log = logging.getLogger("kumo.noded.migration")

JOB_RUNNING = pb.MIGRATION_JOB_STATE_RUNNING
JOB_COMPLETED = pb.MIGRATION_JOB_STATE_COMPLETED
JOB_FAILED = pb.MIGRATION_JOB_STATE_FAILED

# record(instance id, outcome): keeps the outcome in the instance's state file.
Record = Callable[[str, dict[str, object]], None]


@dataclass
class _Job:
    migration_id: str
    stats: MigrationStats = field(default_factory=MigrationStats)


def progress_pb(data: dict[str, object]) -> pb.MigrationProgress:
    """A recorded outcome (or a running job's figures) as the heartbeat says it."""
    return pb.MigrationProgress(
        migration_id=str(data.get("id", "")),
        state=int(data.get("state", 0) or 0),  # type: ignore[call-overload]
        bytes_total=int(data.get("bytes_total", 0) or 0),  # type: ignore[call-overload]
        bytes_processed=int(data.get("bytes_processed", 0) or 0),  # type: ignore[call-overload]
        downtime_ms=int(data.get("downtime_ms", 0) or 0),  # type: ignore[call-overload]
        error=str(data.get("error", "")),
    )


class OutgoingMigrations:
    def __init__(
        self, record: Record, max_bandwidth_mib: int = 0, tunnel: MigrationTunnel | None = None
    ) -> None:
        self.record = record
        self.max_bandwidth_mib = max_bandwidth_mib
        # The TLS tunnel the streams go through (None: a fake driver, no streams).
        self.tunnel = tunnel
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}

    def running(self, instance_id: str) -> str:
        """The id of the guest's migration under way ("" when none)."""
        with self._lock:
            job = self._jobs.get(instance_id)
            return job.migration_id if job else ""

    def progress(self, instance_id: str) -> pb.MigrationProgress | None:
        with self._lock:
            job = self._jobs.get(instance_id)
            if job is None:
                return None
            s = job.stats
            return pb.MigrationProgress(
                migration_id=job.migration_id,
                state=JOB_RUNNING,
                bytes_total=s.bytes_total,
                bytes_processed=s.bytes_processed,
            )

    def start(
        self,
        instance_id: str,
        order: pb.OutgoingMigration,
        copy_disks: tuple[str, ...],
        driver: HypervisorDriver,
    ) -> None:
        """Starts the migration unless one runs for the guest already."""
        with self._lock:
            if instance_id in self._jobs:
                return
            job = self._jobs[instance_id] = _Job(order.migration_id)
        target = MigrationTarget(
            order.target_uri,
            order.target_address,
            copy_disks if order.copy_storage else (),
            order.timeout_seconds,
            self.max_bandwidth_mib,
        )
        threading.Thread(
            target=self._run,
            args=(instance_id, job, target, order.target_node_id, order.target_port, driver),
            name=f"migrate-{instance_id}",
            daemon=True,
        ).start()

    def abort_others(self, orders: dict[str, str], driver: HypervisorDriver) -> None:
        """Aborts the migrations the desired state no longer asks for
        (`orders`: instance id -> migration id)."""
        with self._lock:
            stale = [iid for iid, job in self._jobs.items() if orders.get(iid) != job.migration_id]
        for iid in stale:
            log.info("live migration withdrawn: aborting", extra={"instance": iid})
            try:
                driver.abort_migration(iid)
            except Exception as exc:
                log.warning("abort failed", extra={"instance": iid, "error": str(exc)})

    def _run(
        self,
        instance_id: str,
        job: _Job,
        target: MigrationTarget,
        node_id: str,
        port: int,
        driver: HypervisorDriver,
    ) -> None:
        def progress(stats: MigrationStats) -> None:
            with self._lock:
                job.stats = stats

        outcome: dict[str, object] = {"id": job.migration_id}
        try:
            log.info("live migration started", extra={"instance": instance_id, "target": target.uri})
            if self.tunnel is None:
                final = driver.migrate_guest(instance_id, target, progress)
            else:
                with self.tunnel.outgoing(job.migration_id, target.address, port, node_id) as ends:
                    secured = replace(target, memory_socket=ends.memory, disks_socket=ends.disks)
                    final = driver.migrate_guest(instance_id, secured, progress)
            outcome.update(
                state=JOB_COMPLETED,
                bytes_total=final.bytes_total,
                bytes_processed=final.bytes_processed,
                downtime_ms=final.downtime_ms,
            )
            log.info(
                "live migration completed", extra={"instance": instance_id, "downtime_ms": final.downtime_ms}
            )
        except Exception as exc:
            outcome.update(state=JOB_FAILED, error=str(exc)[:1000] or type(exc).__name__)
            log.warning("live migration failed", extra={"instance": instance_id, "error": outcome["error"]})
        try:
            self.record(instance_id, outcome)
        except OSError as exc:  # the instance left this node meanwhile (switched over)
            log.info("migration outcome not kept", extra={"instance": instance_id, "error": str(exc)})
        finally:
            with self._lock:
                self._jobs.pop(instance_id, None)
