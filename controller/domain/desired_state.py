"""A node's desired state: how a change is expressed as a delta, and how a
node applies one.

NodeDesiredState has node-level fields (scalars, always sent whole) and
resource lists: repeated fields of messages with an `id` (instances, disks,
networks, volumes, added by the features that own them). A delta carries every
node-level field, the resource entries that are new or changed, and the ids of
the removed ones. The helpers below work from the message descriptor, so a new
resource list needs no code here: add the field to node_agent.proto and a contributor
that fills it (a DesiredStateContributor, controller/assembly.py)."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from kumo.v1 import node_agent_pb2 as pb

M = TypeVar("M", bound=Message)


def _is_resource_list(field: FieldDescriptor) -> bool:
    return (
        field.is_repeated
        and field.type == FieldDescriptor.TYPE_MESSAGE
        and "id" in field.message_type.fields_by_name
    )


def _resource_fields(msg: Message) -> list[FieldDescriptor]:
    return [f for f in msg.DESCRIPTOR.fields if _is_resource_list(f)]


def _node_fields(msg: Message) -> list[FieldDescriptor]:
    return [f for f in msg.DESCRIPTOR.fields if not _is_resource_list(f)]


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
        before = {m.id: m for m in getattr(old, field.name)}
        after = {m.id: m for m in getattr(new, field.name)}
        for rid, item in after.items():
            if before.get(rid) != item:
                getattr(delta, field.name).append(item)
                changed = True
        for rid in before:
            if rid not in after:
                removed.append(rid)
                changed = True
    return delta, removed, changed


def apply(current: pb.NodeDesiredState, update: pb.DesiredStateUpdate) -> pb.NodeDesiredState:
    """The state a node has after `update` (a full state or a delta)."""
    if update.full:
        out = pb.NodeDesiredState()
        out.CopyFrom(update.state)
        return out
    return apply_delta(current, update.state, list(update.removed_ids))


def apply_delta(current: M, delta: M, removed_ids: list[str]) -> M:
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
