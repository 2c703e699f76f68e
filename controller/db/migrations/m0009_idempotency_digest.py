"""Idempotency keys remember a digest of the request that made them, so a
request_id reused for a different request is refused (REQUEST_ID_REUSED).
Keys recorded before this have an empty digest and match any request."""

STATEMENTS = [
    "ALTER TABLE idempotency_key ADD COLUMN request_digest VARCHAR(64) NOT NULL DEFAULT ''",
]
