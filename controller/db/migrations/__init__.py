"""Versioned schema migrations.

Each module here named mNNNN_<what>.py holds `STATEMENTS`, a list of portable
SQL (SQLite and PostgreSQL). Versions are the NNNN numbers, contiguous from 1.
Applied versions are recorded in schema_migrations; a start applies the rest,
each in its own transaction. Never edit an applied migration: add a new one.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import time

from controller.db.database import db

log = logging.getLogger(__name__)
_NAME = re.compile(r"^m(\d{4})_(\w+)$")


def discover() -> list[tuple[int, str, list[str]]]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        m = _NAME.match(info.name)
        if not m:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append((int(m.group(1)), m.group(2), list(module.STATEMENTS)))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must be contiguous from 1, got {versions}")
    return found


def current_version() -> int:
    if "schema_migrations" not in db.get_tables():
        return 0
    row = db.execute_sql("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate() -> int:
    """Brings the schema up to date; returns the version it ends at."""
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL,"
        " applied_at DOUBLE PRECISION NOT NULL)"
    )
    migrations = discover()
    have = current_version()
    if have > len(migrations):
        raise RuntimeError(
            f"database schema is version {have}, newer than this code knows "
            f"({len(migrations)}); refusing to start"
        )
    for version, name, statements in migrations[have:]:
        with db.atomic():
            for sql in statements:
                db.execute_sql(sql)
            db.execute_sql(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)".replace(
                    "%s", db.param
                ),
                (version, name, time.time()),
            )
        log.info("applied migration", extra={"version": version, "migration": name})
    return len(migrations)
