"""Node certificate renewal: the certificate a node was issued but has not yet
opened a session with (the old one stays accepted until it does), and an
admin's request for a rotation, told to the node in its desired state."""

STATEMENTS = [
    "ALTER TABLE node ADD COLUMN pending_cert_serial VARCHAR(64) NOT NULL DEFAULT ''",
    "ALTER TABLE node ADD COLUMN pending_cert_expire_time DOUBLE PRECISION NOT NULL DEFAULT 0",
    "ALTER TABLE node ADD COLUMN cert_rotate_requested BOOLEAN NOT NULL DEFAULT FALSE",
]
