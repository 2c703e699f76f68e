"""CancelMigration: who asked for it, kept on the live migration while the
source aborts the copy (the migration ends FAILED once it has)."""

STATEMENTS = [
    "ALTER TABLE live_migration ADD COLUMN cancelled_by VARCHAR(255) NOT NULL DEFAULT ''",
]
