"""Evacuation: a node an admin declared fenced (refused a session until
re-admitted; its instances may be moved), and the instances the controller
evacuates by itself when their node is lost (`ha`)."""

STATEMENTS = [
    "ALTER TABLE node ADD COLUMN fenced BOOLEAN NOT NULL DEFAULT FALSE",
    "ALTER TABLE node ADD COLUMN fence_time DOUBLE PRECISION NOT NULL DEFAULT 0",
    "ALTER TABLE instance ADD COLUMN ha BOOLEAN NOT NULL DEFAULT FALSE",
]
