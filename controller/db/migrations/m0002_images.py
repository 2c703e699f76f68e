"""The image catalog: images and the content-addressed blobs they point to."""

STATEMENTS = [
    """CREATE TABLE image_blob (
        sha256 VARCHAR(64) PRIMARY KEY,
        size_bytes BIGINT NOT NULL,
        create_time DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE image (
        id VARCHAR(36) PRIMARY KEY,
        project_id VARCHAR(36) NOT NULL REFERENCES project(id) ON DELETE CASCADE,
        name VARCHAR(64) NOT NULL,
        disk_format INTEGER NOT NULL,
        visibility INTEGER NOT NULL,
        status INTEGER NOT NULL,
        status_reason TEXT NOT NULL DEFAULT '',
        size_bytes BIGINT NOT NULL DEFAULT 0,
        virtual_size_bytes BIGINT NOT NULL DEFAULT 0,
        checksum_sha256 VARCHAR(64) NOT NULL DEFAULT '',
        min_disk_gb INTEGER NOT NULL DEFAULT 0,
        min_ram_mb INTEGER NOT NULL DEFAULT 0,
        protected BOOLEAN NOT NULL DEFAULT FALSE,
        properties TEXT NOT NULL DEFAULT '{}',
        create_time DOUBLE PRECISION NOT NULL,
        update_time DOUBLE PRECISION NOT NULL,
        delete_time DOUBLE PRECISION NOT NULL DEFAULT 0)""",
    "CREATE INDEX image_project ON image (project_id, status)",
    "CREATE INDEX image_visibility ON image (visibility, status)",
    "CREATE INDEX image_name ON image (name, id)",
    "CREATE INDEX image_checksum ON image (checksum_sha256)",
]
