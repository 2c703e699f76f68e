"""Quotas as resources: per-project limits that override the cloud defaults,
and per-(project, resource) usage counters, backfilled from the rows that
exist (what the old SUM-based checks counted: every instance, volume, volume
snapshot; images not deleted; networks, ports, non-default security groups)."""


def _backfill(resource: str, select: str) -> str:
    return f"INSERT INTO quota_usage (project_id, resource, used) SELECT project_id, '{resource}', {select}"


STATEMENTS = [
    """CREATE TABLE quota_limit (
        project_id VARCHAR(36) NOT NULL REFERENCES project(id) ON DELETE CASCADE,
        resource VARCHAR(32) NOT NULL,
        hard_limit BIGINT NOT NULL,
        update_time DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (project_id, resource))""",
    """CREATE TABLE quota_usage (
        project_id VARCHAR(36) NOT NULL REFERENCES project(id) ON DELETE CASCADE,
        resource VARCHAR(32) NOT NULL,
        used BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (project_id, resource))""",
    _backfill("instances", "COUNT(*) FROM instance GROUP BY project_id"),
    _backfill("vcpus", "SUM(vcpus) FROM instance GROUP BY project_id"),
    _backfill("ram_mb", "SUM(ram_mb) FROM instance GROUP BY project_id"),
    _backfill("volumes", "COUNT(*) FROM volume GROUP BY project_id"),
    _backfill("volume_gb", "SUM(size_gb) FROM volume GROUP BY project_id"),
    _backfill("snapshots", "COUNT(*) FROM volume_snapshot GROUP BY project_id"),
    _backfill("images", "COUNT(*) FROM image WHERE status <> 5 GROUP BY project_id"),
    _backfill("networks", "COUNT(*) FROM network GROUP BY project_id"),
    _backfill("ports", "COUNT(*) FROM port GROUP BY project_id"),
    _backfill("security_groups", "COUNT(*) FROM security_group WHERE is_default = FALSE GROUP BY project_id"),
]
