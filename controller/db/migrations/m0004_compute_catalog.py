"""Flavors (with per-project access), keypairs, server groups."""

STATEMENTS = [
    """CREATE TABLE flavor (
        id VARCHAR(36) PRIMARY KEY,
        name VARCHAR(64) NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        vcpus INTEGER NOT NULL,
        ram_mb INTEGER NOT NULL,
        disk_gb INTEGER NOT NULL,
        is_public BOOLEAN NOT NULL DEFAULT TRUE,
        create_time DOUBLE PRECISION NOT NULL,
        update_time DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE flavor_access (
        flavor_id VARCHAR(36) NOT NULL REFERENCES flavor(id) ON DELETE CASCADE,
        project_id VARCHAR(36) NOT NULL REFERENCES project(id) ON DELETE CASCADE,
        PRIMARY KEY (flavor_id, project_id))""",
    """CREATE TABLE keypair (
        id VARCHAR(36) PRIMARY KEY,
        user_id VARCHAR(36) NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
        name VARCHAR(64) NOT NULL,
        public_key TEXT NOT NULL,
        fingerprint VARCHAR(128) NOT NULL,
        create_time DOUBLE PRECISION NOT NULL,
        UNIQUE (user_id, name))""",
    """CREATE TABLE server_group (
        id VARCHAR(36) PRIMARY KEY,
        project_id VARCHAR(36) NOT NULL REFERENCES project(id) ON DELETE CASCADE,
        name VARCHAR(64) NOT NULL,
        policy INTEGER NOT NULL,
        create_time DOUBLE PRECISION NOT NULL,
        UNIQUE (project_id, name))""",
]
