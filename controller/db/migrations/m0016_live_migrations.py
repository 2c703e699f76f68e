"""Live migrations (one row per attempt, with the source's progress) and node
maintenance: a node being drained takes no new placements, and its last
drain's state."""

STATEMENTS = [
    "CREATE TABLE live_migration ("
    " id VARCHAR(36) PRIMARY KEY,"
    " instance_id VARCHAR(36) NOT NULL,"
    " project_id VARCHAR(36) NOT NULL,"
    " source_node_id VARCHAR(36) NOT NULL,"
    " target_node_id VARCHAR(36) NOT NULL DEFAULT '',"
    " state INTEGER NOT NULL,"
    " bytes_total BIGINT NOT NULL DEFAULT 0,"
    " bytes_processed BIGINT NOT NULL DEFAULT 0,"
    " downtime_ms BIGINT NOT NULL DEFAULT 0,"
    " fault TEXT NOT NULL DEFAULT '',"
    " drain_node_id VARCHAR(36) NOT NULL DEFAULT '',"
    " deadline DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " vcpus INTEGER NOT NULL DEFAULT 0,"
    " ram_mb INTEGER NOT NULL DEFAULT 0,"
    " disk_gb INTEGER NOT NULL DEFAULT 0,"
    " create_time DOUBLE PRECISION NOT NULL,"
    " update_time DOUBLE PRECISION NOT NULL,"
    " end_time DOUBLE PRECISION NOT NULL DEFAULT 0)",
    "CREATE INDEX live_migration_instance ON live_migration (instance_id)",
    "CREATE INDEX live_migration_state ON live_migration (state)",
    # At most one unfinished migration per instance (PREPARING or RUNNING).
    "CREATE UNIQUE INDEX live_migration_one_active ON live_migration (instance_id) WHERE state IN (1, 2)",
    "CREATE TABLE node_drain ("
    " node_id VARCHAR(36) PRIMARY KEY REFERENCES node (id) ON DELETE CASCADE,"
    " state INTEGER NOT NULL,"
    " instances_total INTEGER NOT NULL DEFAULT 0,"
    " start_time DOUBLE PRECISION NOT NULL,"
    " end_time DOUBLE PRECISION NOT NULL DEFAULT 0)",
    "ALTER TABLE node ADD COLUMN maintenance BOOLEAN NOT NULL DEFAULT FALSE",
]
