"""What kumo-dashboard is told at start: where the API is, how to serve."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dashboard.throttle import ThrottleLimits


@dataclass(frozen=True)
class DashboardConfig:
    endpoint: str  # the controller's gRPC address, host:port
    ca_file: Path | None  # the cloud's CA certificate (None: the system roots)
    listen: str = "127.0.0.1:8443"
    cert_file: Path | None = None  # the HTTPS certificate (signed by the cloud's CA, or the operator's)
    key_file: Path | None = None
    idle_seconds: float = 8 * 3600  # a session unused this long is forgotten
    api_timeout: float = 30.0
    state_dir: Path = Path("kumo-dashboard-state")  # the dashboard's own files (sessions.db), 0700
    login_limits: ThrottleLimits = field(default_factory=ThrottleLimits)
    device_seconds: float = 30 * 86400  # a browser stays a known device this long after a login

    @property
    def devices_file(self) -> Path:
        return self.state_dir / "devices.db"

    @property
    def sessions_file(self) -> Path:
        return self.state_dir / "sessions.db"

    @property
    def ca_pem(self) -> bytes | None:
        return self.ca_file.read_bytes() if self.ca_file else None
