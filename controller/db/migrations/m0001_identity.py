"""Projects, users, role assignments, tokens, idempotency keys."""

STATEMENTS = [
    """CREATE TABLE project (
        id VARCHAR(36) PRIMARY KEY,
        name VARCHAR(64) NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        enabled BOOLEAN NOT NULL DEFAULT TRUE,
        create_time DOUBLE PRECISION NOT NULL,
        update_time DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE "user" (
        id VARCHAR(36) PRIMARY KEY,
        name VARCHAR(64) NOT NULL UNIQUE,
        email VARCHAR(255) NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        enabled BOOLEAN NOT NULL DEFAULT TRUE,
        password_hash VARCHAR(255) NOT NULL,
        default_project_id VARCHAR(36) NOT NULL DEFAULT '',
        create_time DOUBLE PRECISION NOT NULL,
        update_time DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE role_assignment (
        user_id VARCHAR(36) NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
        project_id VARCHAR(36) NOT NULL REFERENCES project(id) ON DELETE CASCADE,
        role INTEGER NOT NULL,
        create_time DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (user_id, project_id, role))""",
    "CREATE INDEX role_assignment_project ON role_assignment (project_id)",
    """CREATE TABLE token (
        id VARCHAR(36) PRIMARY KEY,
        user_id VARCHAR(36) NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
        project_id VARCHAR(36) NOT NULL REFERENCES project(id) ON DELETE CASCADE,
        issue_time DOUBLE PRECISION NOT NULL,
        expire_time DOUBLE PRECISION NOT NULL,
        revoked BOOLEAN NOT NULL DEFAULT FALSE)""",
    "CREATE INDEX token_user ON token (user_id)",
    "CREATE INDEX token_expire ON token (expire_time)",
    """CREATE TABLE idempotency_key (
        request_id VARCHAR(128) NOT NULL,
        kind VARCHAR(32) NOT NULL,
        project_id VARCHAR(36) NOT NULL,
        resource_id VARCHAR(36) NOT NULL,
        create_time DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (request_id, kind, project_id))""",
]
