"""Field-mask updates for the `set` commands: only the options given are sent and named in the mask."""

from __future__ import annotations

from typing import Any

from google.protobuf import field_mask_pb2
from google.protobuf.message import Message


def mask(changed: Message, **values: Any) -> field_mask_pb2.FieldMask:
    """Sets each field whose value is not None on `changed` (a repeated field gets the values as its
    whole content) and returns the mask naming those fields, in the order given."""
    paths = []
    for field, value in values.items():
        if value is None:
            continue
        if isinstance(value, list):
            getattr(changed, field).extend(value)
        else:
            setattr(changed, field, value)
        paths.append(field)
    return field_mask_pb2.FieldMask(paths=paths)
