"""The event log: one row per state-changing call and per change the
controller made by itself. No foreign keys: events outlive what they name."""

STATEMENTS = [
    """CREATE TABLE event (
        id VARCHAR(36) PRIMARY KEY,
        time DOUBLE PRECISION NOT NULL,
        request_id VARCHAR(128) NOT NULL DEFAULT '',
        user_id VARCHAR(36) NOT NULL DEFAULT '',
        user_name VARCHAR(64) NOT NULL DEFAULT '',
        project_id VARCHAR(36) NOT NULL DEFAULT '',
        resource_type VARCHAR(64) NOT NULL,
        resource_id VARCHAR(64) NOT NULL DEFAULT '',
        action VARCHAR(64) NOT NULL,
        ok BOOLEAN NOT NULL,
        error_code VARCHAR(32) NOT NULL DEFAULT '',
        error_reason VARCHAR(64) NOT NULL DEFAULT '',
        message TEXT NOT NULL DEFAULT '',
        method VARCHAR(128) NOT NULL DEFAULT '')""",
    "CREATE INDEX event_time ON event (time, id)",
    "CREATE INDEX event_resource ON event (resource_id, time)",
    "CREATE INDEX event_project ON event (project_id, time)",
]
