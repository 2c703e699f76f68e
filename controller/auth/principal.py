"""Who is calling: the identity a valid token resolved to."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.IntEnum):
    """Numeric values match kumo.v1.Role; a higher role implies the lower ones."""

    READER = 1
    MEMBER = 2
    ADMIN = 3


@dataclass(frozen=True)
class Principal:
    user_id: str
    user_name: str
    project_id: str
    project_name: str
    role: Role
    token_id: str
    expire_time: float

    @property
    def is_admin(self) -> bool:
        return self.role >= Role.ADMIN

    def can_see(self, project_id: str) -> bool:
        """Admins see every project's resources; everyone else only their own."""
        return self.is_admin or project_id == self.project_id


@dataclass(frozen=True)
class NodePrincipal:
    """A node daemon, identified by the client certificate our CA gave it."""

    node_id: str
    cert_serial: str
