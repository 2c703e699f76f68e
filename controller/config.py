"""Controller settings: defaults < TOML file < KUMO_* environment < command-line flags."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kumo.heartbeats import DEFAULT_NODE_HEARTBEAT_SECONDS


@dataclass
class ControllerConfig:
    data_dir: Path = Path(".kumo")
    # What every controller of one control plane shares: the CA (pki/), the
    # token keyring (token-keys/) and the image blobs (images/). A directory
    # all of them mount (NFS in production); empty: the data directory.
    shared_dir: str = ""
    # Public API (users, CLI, other-language clients): TLS, bearer tokens.
    listen: str = "0.0.0.0:7443"
    # Node API (node sessions): mutual TLS with certificates from our CA.
    node_listen: str = "0.0.0.0:7444"
    # Prometheus metrics (HTTP, or HTTPS with both files set); empty: off.
    # Loopback unless set otherwise: anything on it reads the fleet's figures.
    metrics_listen: str = "127.0.0.1:9464"
    metrics_cert_file: str = ""
    metrics_key_file: str = ""
    # Empty: SQLite file in the data directory. Else e.g. postgresql://user@host/db.
    database_url: str = ""
    token_ttl_seconds: int = 3600
    # How long a token's database check (revoked? user, project enabled? role)
    # is reused: a change made on another controller of the control plane takes
    # effect here within this bound (one made here, at once). 0: every call checks.
    token_check_cache_seconds: float = 2.0
    # How often this controller records that it is up (kumo controller list).
    controller_heartbeat_seconds: float = 5.0
    # Names and addresses put into the server certificate besides localhost.
    server_names: list[str] = field(default_factory=lambda: [socket.gethostname()])
    workers: int = 64
    # How long a thread may hold the GIL while another wants it
    # (sys.setswitchinterval). Python's 5 ms default makes every SQL statement
    # of a write transaction wait up to 5 ms for the GIL after the driver gave
    # it up, while the other RPC threads compute, and the write lock is held
    # all that time: a shorter slice keeps the serial part short.
    switch_interval_ms: float = 0.5
    log_level: str = "INFO"
    log_format: str = "json"  # json | text
    # Images
    image_max_upload_bytes: int = 20 * 1024**3
    image_quota_count: int = 100
    image_quota_bytes: int = 200 * 1024**3
    # An upload that sends nothing for this long is cancelled (back to QUEUED).
    image_upload_idle_seconds: float = 300.0
    # Image uploads and downloads at once (each holds an RPC worker); 0: workers / 2.
    image_max_streams: int = 0
    # Nodes
    node_grace_seconds: float = 30.0
    node_heartbeat_seconds: float = DEFAULT_NODE_HEARTBEAT_SECONDS
    # How long node client certificates last; nodes renew at 2/3 of it.
    node_cert_lifetime_seconds: float = 30 * 86400.0
    # Where nodes open their session (host:port), told to them at enrollment.
    # Empty: node_listen's host (the host the node enrolled through when that
    # is a wildcard) and the node port.
    node_advertise: str = ""
    # Several controllers (PostgreSQL): how often each reads the nodes whose
    # sessions live on the others from the database.
    node_peers_seconds: float = 1.0
    # How often the controller logs node-session figures (0: never).
    node_stats_log_seconds: float = 60.0
    # Compute: allocation ratios (how far a node's real capacity may be
    # overcommitted), the weigher (spread | pack), per-project quotas.
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    scheduler_weigher: str = "spread"
    quota_instances: int = 100
    quota_vcpus: int = 200
    quota_ram_mb: int = 512 * 1024
    # How often what nodes observe is folded into instance states.
    instance_sync_seconds: float = 1.0
    # Live migrations: how long the source may copy before it gives up (the
    # guest then stays), and how many guests a node drain moves at once.
    live_migration_timeout_seconds: int = 300
    drain_parallel: int = 2
    # HA: a fenced node's `ha` instances are evacuated once it has been DOWN
    # this long (checked every ha_check_seconds). ha_auto_fence: the HA pass
    # fences such a DOWN node itself first; dangerous without real power
    # fencing (a node that is only cut off keeps running its guests).
    ha_grace_seconds: float = 60.0
    ha_check_seconds: float = 5.0
    # An HA instance that could not move is tried again after two passes,
    # then twice as long each time up to this (sooner when capacity grew).
    ha_retry_max_seconds: float = 300.0
    ha_auto_fence: bool = False
    # Volumes: per-project quotas (volumes, their total GiB, volume snapshots).
    quota_volumes: int = 10
    quota_volume_gb: int = 1000
    quota_volume_snapshots: int = 10
    # Default per-project quotas of the other counted resources (-1: unlimited);
    # a project's own limits (UpdateQuota) override every default.
    quota_networks: int = 100
    quota_ports: int = 500
    quota_security_groups: int = 100
    quota_floating_ips: int = 50
    # Networks: the domain under which guests' names resolve inside their
    # network, `<name>.<network>.<dns_domain>` (docs/networks.md).
    dns_domain: str = "kumo"
    # The event log: events older than this are pruned (0: kept forever),
    # checked every event_prune_seconds.
    event_retention_seconds: float = 90 * 24 * 3600.0
    event_prune_seconds: float = 600.0

    @property
    def shared_path(self) -> Path:
        return Path(self.shared_dir).resolve() if self.shared_dir else self.data_dir

    @property
    def pki_dir(self) -> Path:
        """This controller's server certificate and a copy of the CA certificate."""
        return self.data_dir / "pki"

    @property
    def ca_dir(self) -> Path:
        return self.shared_path / "pki"

    @property
    def token_key_dir(self) -> Path:
        return self.shared_path / "token-keys"

    @property
    def image_dir(self) -> Path:
        return self.shared_path / "images"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "kumo.db"


def _coerce(value: Any, current: Any) -> Any:
    if isinstance(current, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, Path):
        return Path(value)
    if isinstance(current, list):
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    return str(value)


def apply_switch_interval(cfg: ControllerConfig) -> None:
    """Sets the process's GIL switch interval (a controller process's, at its start)."""
    if cfg.switch_interval_ms > 0:
        sys.setswitchinterval(cfg.switch_interval_ms / 1000)


def load_config(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> ControllerConfig:
    """Builds the config. Unknown keys in the file are an error, so typos are not silent."""
    env = os.environ if environ is None else environ
    cfg = ControllerConfig()
    if env.get("KUMO_DATA_DIR"):
        cfg.data_dir = Path(env["KUMO_DATA_DIR"])
    if overrides and overrides.get("data_dir"):
        cfg.data_dir = Path(overrides["data_dir"])
    names = {f.name for f in dataclasses.fields(cfg)}

    path = config_file or (Path(env["KUMO_CONFIG"]) if env.get("KUMO_CONFIG") else None)
    if path is None and (cfg.data_dir / "controller.toml").exists():
        path = cfg.data_dir / "controller.toml"
    if path is not None:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{path}: unknown settings: {', '.join(sorted(unknown))}")
        for key, value in data.items():
            setattr(cfg, key, _coerce(value, getattr(cfg, key)))

    for name in names:
        env_key = f"KUMO_{name.upper()}"
        if name != "data_dir" and env_key in env:
            setattr(cfg, name, _coerce(env[env_key], getattr(cfg, name)))

    for key, value in (overrides or {}).items():
        if value is not None:
            if key not in names:
                raise ValueError(f"unknown setting {key!r}")
            setattr(cfg, key, _coerce(value, getattr(cfg, key)))
    cfg.data_dir = cfg.data_dir.resolve()
    cfg.dns_domain = cfg.dns_domain.strip(".").lower()
    if not re.fullmatch(
        r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*", cfg.dns_domain
    ):
        raise ValueError(f"dns_domain {cfg.dns_domain!r} is not a DNS domain (labels of a-z, 0-9 and '-')")
    return cfg
