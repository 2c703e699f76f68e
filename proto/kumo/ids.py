"""Resource ids: server-made UUIDs. Shared because the controller and the CLI
both tell an id from a name the same way."""

from __future__ import annotations

import uuid


def is_uuid(value: str) -> bool:
    """True when `value` parses as a UUID (any case, with or without hyphens)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
