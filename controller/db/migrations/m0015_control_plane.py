"""The control plane's shared identity (the CA fingerprint and token-key
checks a joining controller must match) and its controllers, each with when
it was last seen and how many node sessions it holds."""

STATEMENTS = [
    "CREATE TABLE control_plane_fact ("
    " name VARCHAR(128) PRIMARY KEY,"
    " value TEXT NOT NULL,"
    " create_time DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE controller ("
    " id VARCHAR(36) PRIMARY KEY,"
    " hostname VARCHAR(255) NOT NULL,"
    " endpoint VARCHAR(255) NOT NULL,"
    " node_endpoint VARCHAR(255) NOT NULL,"
    " version VARCHAR(32) NOT NULL,"
    " start_time DOUBLE PRECISION NOT NULL,"
    " last_seen_time DOUBLE PRECISION NOT NULL,"
    " node_sessions INTEGER NOT NULL DEFAULT 0)",
]
