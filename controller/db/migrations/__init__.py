"""Versioned schema migrations.

Each module here named mNNNN_<what>.py holds `STATEMENTS`, a list of portable
SQL (SQLite and PostgreSQL). Versions are the NNNN numbers, unique and applied
in order. Applied versions are recorded in schema_migrations; a start applies
every version not recorded yet, each in its own transaction (so migrations
written on parallel branches all apply). Never edit an applied migration: add
a new one.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import time

import peewee

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
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


def applied_versions() -> set[int]:
    if "schema_migrations" not in db.get_tables():
        return set()
    return {int(r[0]) for r in db.execute_sql("SELECT version FROM schema_migrations").fetchall()}


# pg_advisory_lock key held while migrating ("kumo" in ASCII): controllers that
# start together on one PostgreSQL database apply each migration once, the
# others wait and then find it recorded. (Without it two concurrent CREATE
# TABLE IF NOT EXISTS can both pass the check and one fails.)
MIGRATION_LOCK_KEY = 0x6B756D6F


def migrate() -> int:
    """Brings the schema up to date; returns the highest version."""
    if isinstance(db.obj, peewee.PostgresqlDatabase):
        db.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            return _migrate()
        finally:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return _migrate()


def _migrate() -> int:
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL,"
        " applied_at DOUBLE PRECISION NOT NULL)"
    )
    migrations = discover()
    have = applied_versions()
    unknown = have - {v for v, _, _ in migrations}
    if unknown:
        raise RuntimeError(
            f"database has schema versions {sorted(unknown)} that this code does not know "
            "(it is newer than this code); refusing to start"
        )
    for version, name, statements in migrations:
        if version in have:
            continue
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
    return max((v for v, _, _ in migrations), default=0)
