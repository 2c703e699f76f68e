"""A node's desired state as deltas: how a change is expressed (the
controller's diff) and how a node applies one (kumo-noded's apply).

NodeDesiredState has node-level fields (scalars, always sent whole) and
resource lists: repeated fields of messages with an `id` (instances, disks,
networks, volumes, added by the features that own them). A delta carries every
node-level field, the resource entries that are new or changed, and the ids of
the removed ones. The helpers work from the message descriptor, so a new
resource list needs no code here; nor do they name the generated message
classes, so they work on any message of that shape."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Protocol, TypeVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


class StateUpdate(Protocol):
    """What apply reads of a DesiredStateUpdate: a full state or a delta."""

    @property
    def full(self) -> bool: ...

    @property
    def state(self) -> Message: ...

    @property
    def removed_ids(self) -> Iterable[str]: ...


def _is_resource_list(field: FieldDescriptor) -> bool:
    return (
        field.is_repeated
        and field.type == FieldDescriptor.TYPE_MESSAGE
        and "id" in field.message_type.fields_by_name
    )


@cache
def _split(descriptor: Descriptor) -> tuple[tuple[FieldDescriptor, ...], tuple[FieldDescriptor, ...]]:
    """(node-level fields, resource lists) of a message type, worked out once
    per type: the controller diffs a node's state on every change it sends."""
    fields = descriptor.fields
    return (
        tuple(f for f in fields if not _is_resource_list(f)),
        tuple(f for f in fields if _is_resource_list(f)),
    )


def _resource_fields(msg: Message) -> tuple[FieldDescriptor, ...]:
    return _split(msg.DESCRIPTOR)[1]


def _node_fields(msg: Message) -> tuple[FieldDescriptor, ...]:
    return _split(msg.DESCRIPTOR)[0]


def _copy_field(src: Message, dst: Message, field: FieldDescriptor) -> None:
    name = field.name
    if field.is_repeated:
        dst.ClearField(name)
        getattr(dst, name).extend(getattr(src, name))
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        if src.HasField(name):
            getattr(dst, name).CopyFrom(getattr(src, name))
        else:
            dst.ClearField(name)
    else:
        setattr(dst, name, getattr(src, name))


def diff(old: M, new: M) -> tuple[M, list[str], bool]:
    """(delta, removed ids, anything changed) taking `old` to `new`."""
    delta = type(new)()
    removed: list[str] = []
    changed = False
    for field in _node_fields(new):
        _copy_field(new, delta, field)
        if getattr(old, field.name) != getattr(new, field.name):
            changed = True
    for field in _resource_fields(new):
        olds, news = getattr(old, field.name), getattr(new, field.name)
        if olds == news:  # the common case (one message compare, in C): nothing to walk
            continue
        before = {m.id: m for m in olds}
        after = {m.id: m for m in news}
        out = getattr(delta, field.name)
        for rid, item in after.items():
            if before.get(rid) != item:
                out.append(item)
                changed = True
        for rid in before:
            if rid not in after:
                removed.append(rid)
                changed = True
    return delta, removed, changed


def apply(current: M, update: StateUpdate) -> M:
    """The state a node has after `update` (a full state or a delta)."""
    if update.full:
        out = type(current)()
        out.CopyFrom(update.state)
        return out
    return apply_delta(current, update.state, list(update.removed_ids))  # type: ignore[arg-type]


def apply_delta(current: M, delta: M, removed_ids: list[str]) -> M:
    """`current` with the delta's node-level fields, its entries upserted and
    `removed_ids` dropped; resource lists come out sorted by id."""
    out = type(current)()
    out.CopyFrom(current)
    for field in _node_fields(out):
        _copy_field(delta, out, field)
    gone = set(removed_ids)
    for field in _resource_fields(out):
        changed = {m.id: m for m in getattr(delta, field.name)}
        kept = [m for m in getattr(out, field.name) if m.id not in gone and m.id not in changed]
        seen = {m.id for m in kept}
        merged = kept + [m for rid, m in changed.items() if rid not in seen]
        out.ClearField(field.name)
        getattr(out, field.name).extend(sorted(merged, key=lambda m: m.id))
    return out
