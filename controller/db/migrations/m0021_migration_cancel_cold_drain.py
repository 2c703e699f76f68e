"""CancelMigration: who asked for it, kept on the live migration while the
source aborts the copy (the migration ends FAILED once it has). Drains with
cold moves (DrainNode cold = true): whether the drain cold-migrates the
guests that cannot go live, and how many cold moves it started."""

STATEMENTS = [
    "ALTER TABLE live_migration ADD COLUMN cancelled_by VARCHAR(255) NOT NULL DEFAULT ''",
    "ALTER TABLE node_drain ADD COLUMN cold BOOLEAN NOT NULL DEFAULT FALSE",
    "ALTER TABLE node_drain ADD COLUMN cold_started INTEGER NOT NULL DEFAULT 0",
]
