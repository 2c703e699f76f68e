"""Volume types: admin-defined kinds of volume, each naming the storage
backend that holds its volumes ("local", "rbd", "shared-fs"). Exactly one is
the default (a unique partial index). Existing volumes get the default type,
`local`, made here with a fixed id,
and each volume keeps a copy of its type's backend."""

LOCAL_TYPE_ID = "00000000-0000-4000-8000-00000000000a"

STATEMENTS = [
    """CREATE TABLE volume_type (
        id VARCHAR(36) PRIMARY KEY,
        name VARCHAR(64) NOT NULL UNIQUE,
        backend VARCHAR(32) NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        is_default BOOLEAN NOT NULL DEFAULT FALSE,
        create_time DOUBLE PRECISION NOT NULL)""",
    "CREATE UNIQUE INDEX volume_type_one_default ON volume_type (is_default) WHERE is_default",
    f"""INSERT INTO volume_type (id, name, backend, description, is_default, create_time)
        VALUES ('{LOCAL_TYPE_ID}', 'local', 'local', 'qcow2 files on one node', TRUE, 0)""",
    f"ALTER TABLE volume ADD COLUMN type_id VARCHAR(36) NOT NULL DEFAULT '{LOCAL_TYPE_ID}'",
    "CREATE INDEX volume_type_id ON volume (type_id)",
    # The type's backend, copied (a type's backend never changes): the node
    # projection and the attach rule need it on every volume.
    "ALTER TABLE volume ADD COLUMN backend VARCHAR(32) NOT NULL DEFAULT 'local'",
]
