"""Live migrations as the CLI shows them: `kumo server migrate`'s and
`kumo node drain`'s progress lines, and `kumo server migration list`."""

from __future__ import annotations

import time
from typing import Any

import typer

from cli.client import PAGE_SIZE, list_all
from cli.errors import CliError
from cli.output import enum_text
from kumo.v1 import compute_pb2 as pb

COLUMNS = [
    ("id", "id"),
    ("server", "instance_id"),
    ("state", "state"),
    ("from", "source_node_id"),
    ("to", "target_node_id"),
    ("bytes", "bytes_processed"),
    ("of", "bytes_total"),
    ("downtime ms", "downtime_ms"),
    ("fault", "fault"),
]
DONE = {pb.LIVE_MIGRATION_STATE_COMPLETED, pb.LIVE_MIGRATION_STATE_FAILED}


def _mib(n: int) -> str:
    return f"{n / 1024**2:.1f} MiB"


def line(m: pb.LiveMigration) -> str:
    """One migration's phase and bytes, e.g. "running 12.0/256.0 MiB"."""
    state = enum_text(pb.LiveMigrationState.DESCRIPTOR, m.state)
    if m.state == pb.LIVE_MIGRATION_STATE_COMPLETED:
        return f"{state} ({_mib(m.bytes_processed)} copied, downtime {m.downtime_ms} ms)"
    if m.state == pb.LIVE_MIGRATION_STATE_FAILED:
        return f"{state}: {m.fault}"
    if m.bytes_total:
        return f"{state} {_mib(m.bytes_processed)} of {_mib(m.bytes_total)}"
    return state


def migrations(s: Any, instance_id: str = "", node_id: str = "") -> list[pb.LiveMigration]:
    req = pb.ListLiveMigrationsRequest(page_size=PAGE_SIZE, instance_id=instance_id, node_id=node_id)
    return list_all(s.ListLiveMigrations, req, "live_migrations")


def follow(s: Any, instance: pb.Instance, timeout: float) -> pb.LiveMigration:
    """Polls the instance's newest migration until it ends, printing each
    phase and the bytes copied to stderr; fails when it failed."""
    deadline = time.monotonic() + timeout if timeout else None
    shown = ""
    while True:
        found = migrations(s, instance_id=instance.id)
        if not found:
            raise CliError(f"server {instance.name} has no live migration")
        m = found[-1]
        text = line(m)
        if text != shown:
            typer.echo(f"{instance.name}: {text}", err=True)
            shown = text
        if m.state in DONE:
            if m.state == pb.LIVE_MIGRATION_STATE_FAILED:
                raise CliError(f"live migration of server {instance.name} failed: {m.fault}")
            return m
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"live migration of server {instance.name} is still {text} after {timeout:.0f} s")
        time.sleep(0.5)
