"""Instances: create (quota, schedule, atomic claim), the verbs that change
what a node should run, and the sync that folds what nodes observe back into
instance states (libvirt is the truth for power state).

State and the node's desired state:
- BUILDING, ACTIVE, REBOOTING: the node should run the guest;
- STOPPED, or task "powering_off": the node should keep it stopped;
- DELETING, ERROR: the guest is not in the node's desired state any more, so
  the node removes it; a DELETING instance is forgotten (and its claim freed)
  once its connected node no longer reports it, or once the node is fenced
  or deleted; never while the node is only disconnected or DOWN, since it
  may still run the guest.
- A snapshot the node gave up on (GuestStatus.snapshot_fault) KILLs its
  image, the fault as the reason, in the transaction that clears the task.
Every change to what a node should run bumps that node's desired revision in
the same transaction and tells its session after the commit."""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import peewee

from controller import clock
from controller.auth.principal import Principal, Role
from controller.config import ControllerConfig
from controller.db import images as image_store
from controller.db import instances as store
from controller.db import live_migrations as migration_store
from controller.db import nodes as node_store
from controller.db.database import write_transaction
from controller.db.models import Instance, ServerGroup
from controller.db.nodes import NodeHead
from controller.domain import idempotency
from controller.domain.compute_catalog import ComputeCatalog
from controller.domain.events import CONTROLLER, OK, Cause, EventLog, Outcome
from controller.domain.extensions import BootVolumes, InstanceExtension
from controller.domain.idempotency import NO_REQUEST_ID, RequestKey
from controller.domain.images import Images
from controller.domain.instance_events import observed
from controller.domain.move_target import group_request
from controller.domain.node_registry import DOWN as NODE_DOWN
from controller.domain.node_registry import LiveView
from controller.domain.nodes import Nodes
from controller.domain.periodic import Periodic
from controller.domain.placement import Placement
from controller.domain.quotas import Quotas
from controller.domain.scheduler import Request, schedule
from controller.errors import FailedPrecondition, InvalidArgument, KumoError, ResourceExhausted, not_found
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import node_agent_pb2 as npb

log = logging.getLogger("kumo.compute")

BUILDING = cpb.INSTANCE_STATE_BUILDING
ACTIVE = cpb.INSTANCE_STATE_ACTIVE
STOPPED = cpb.INSTANCE_STATE_STOPPED
REBOOTING = cpb.INSTANCE_STATE_REBOOTING
DELETING = cpb.INSTANCE_STATE_DELETING
ERROR = cpb.INSTANCE_STATE_ERROR
MIGRATING = cpb.INSTANCE_STATE_MIGRATING
STATE_NAMES = {v: k.removeprefix("INSTANCE_STATE_").lower() for k, v in cpb.InstanceState.items()}

POWERING_ON = "powering_on"
POWERING_OFF = "powering_off"
SNAPSHOTTING = "image_uploading"

RUNNING = npb.GUEST_POWER_STATE_RUNNING
OFF = (npb.GUEST_POWER_STATE_STOPPED, npb.GUEST_POWER_STATE_SHUTDOWN, npb.GUEST_POWER_STATE_CRASHED)
MAX_USER_DATA = 64 * 1024
CONSOLE_LIMIT = 1024 * 1024


def desired_power(row: Instance | store.DesiredRow) -> int:
    if row.state == STOPPED and row.task != POWERING_ON:
        return npb.DESIRED_POWER_STOPPED
    if row.task == POWERING_OFF:
        return npb.DESIRED_POWER_STOPPED
    return npb.DESIRED_POWER_RUNNING


def desired_instance(row: Instance | store.DesiredRow) -> npb.DesiredInstance:
    return npb.DesiredInstance(
        id=row.id,
        hostname=row.name,
        image_id=row.image_id,
        image_sha256=row.image_sha256,
        image_format=row.image_format,
        image_size_bytes=row.image_size_bytes,
        vcpus=row.vcpus,
        ram_mb=row.ram_mb,
        disk_gb=row.disk_gb,
        power=desired_power(row),
        reboot_generation=row.reboot_generation,
        reboot_hard=row.reboot_hard,
        user_data=base64.b64decode(row.user_data) if row.user_data else b"",
        public_keys=[row.public_key] if row.public_key else [],
        snapshot_image_id=row.snapshot_image_id,
    )


# How the sync sees an instance's node: connected and heard from since this
# controller started (its guest list is the truth); away (within its grace
# period, or DOWN but not fenced: it may still run the guest, so wait for it);
# fenced or deleted (its guests are lost for certain).
NODE_REPORTING = "reporting"
NODE_AWAY = "away"
NODE_GONE = "gone"


def node_presence(live: LiveView | None, fenced: bool = False) -> str:
    """The NODE_* presence of a node from its live state (None: no such node)
    and whether an admin fenced it."""
    if live is None or fenced:
        return NODE_GONE
    return NODE_REPORTING if live.connected and live.heard and live.status != NODE_DOWN else NODE_AWAY


def power_state(row: Instance, live: LiveView | None, powers: Mapping[str, int] | None = None) -> int:
    """The instance's kumo.v1.PowerState: what its node last reported, or
    UNKNOWN when that report cannot be trusted (node DOWN, or not heard from
    since this controller started, nor by the controller holding its session). `powers`: the
    node's guests' power states by instance id, made once for a page of rows."""
    if not row.node_id:
        return cpb.POWER_STATE_NO_GUEST
    if live is None or live.status == NODE_DOWN or not (live.heard or live.elsewhere):
        return cpb.POWER_STATE_UNKNOWN
    if powers is not None:
        return powers.get(row.id) or cpb.POWER_STATE_NO_GUEST
    for guest in live.guests:
        if guest.instance_id == row.id:
            # GuestPowerState and PowerState share their numbers (1..5).
            return guest.power_state or cpb.POWER_STATE_NO_GUEST
    return cpb.POWER_STATE_NO_GUEST


class Created(NamedTuple):
    """What Instances.create gives: the instance, and whether this call made
    it (False: an earlier create of the same request_id, as it is now)."""

    row: Instance
    new: bool


@dataclass(frozen=True)
class Observation:
    """What the sync does for one instance: `update` (fields, "delete" or
    None), `bump` (the node's desired state changes), `failed_snapshot` (the
    image of a snapshot the node gave up on, KILLED in the same transaction
    with `snapshot_fault`, the node's words, as its reason)."""

    update: dict[str, Any] | str | None
    bump: bool = False
    failed_snapshot: str = ""
    snapshot_fault: str = ""


def visible_instance(caller: Principal, instance_id: str) -> Instance:
    """The instance, if the caller's project may see it (another project's is as good as missing)."""
    row = store.get_instance(instance_id)
    if row is None or not caller.can_see(row.project_id):
        raise not_found("instance", instance_id)
    return row


def _holds(vcpus: int, ram_mb: int) -> dict[str, int]:
    """What one instance counts against its project's quota."""
    return {"instances": 1, "vcpus": vcpus, "ram_mb": ram_mb}


def tail_lines(text: str, lines: int) -> str:
    """The last `lines` lines of a console log (0: all of it)."""
    return "\n".join(text.splitlines()[-lines:]) if lines else text


class Instances:
    """Instances, extended by the features given at construction: `extensions`
    (NICs, volumes) take part in every create and final delete, in that order;
    `boot_volumes` resolves CreateInstance's boot_volume."""

    def __init__(
        self,
        cfg: ControllerConfig,
        catalog: ComputeCatalog,
        images: Images,
        nodes: Nodes,
        placement: Placement,
        quotas: Quotas,
        extensions: Sequence[InstanceExtension] = (),
        boot_volumes: BootVolumes | None = None,
        events: EventLog | None = None,
    ) -> None:
        self.catalog = catalog
        self.events = events  # what the controller does to instances by itself
        self.images = images
        self.nodes = nodes
        self.placement = placement
        self.extensions = tuple(extensions)
        self.boot_volumes = boot_volumes
        self.quotas = quotas
        self.sync_period = cfg.instance_sync_seconds
        self._sync = Periodic("instance-sync", self.sync_period, self.sync_once, log)

    # Lookups

    def get(self, caller: Principal, instance_id: str) -> Instance:
        return visible_instance(caller, instance_id)

    def list(
        self,
        caller: Principal,
        page_size: int,
        page_token: str,
        name: str,
        state: int,
        project_id: str = "",
        node_id: str = "",
    ) -> tuple[list[Instance], str]:
        """What the caller may see, filtered; another project's id is not an
        error for a member, it just matches nothing they may see."""
        viewer = None if caller.is_admin else caller.project_id
        return store.list_instances(page_size, page_token, viewer, name, state, project_id, node_id)

    def power_states(self, rows: Sequence[Instance]) -> list[int]:
        """Each row's power_state(), one registry snapshot per node."""
        lives = {nid: self.nodes.registry.snapshot(nid) for nid in {r.node_id for r in rows if r.node_id}}
        powers = {
            nid: {g.instance_id: g.power_state for g in live.guests}
            for nid, live in lives.items()
            if live is not None
        }
        return [power_state(r, lives.get(r.node_id), powers.get(r.node_id)) for r in rows]

    # Create

    def create(
        self,
        caller: Principal,
        name: str,
        image_ref: str,
        flavor_ref: str,
        keypair_ref: str,
        user_data: bytes,
        group_id: str,
        request_key: RequestKey,
        options: Mapping[str, Any] | None = None,
        ha: bool = False,
    ) -> Created:
        if request_key:
            existing = idempotency.lookup(request_key, "instance", caller.project_id)
            if existing:
                return Created(self.get(caller, existing), False)
        if len(user_data) > MAX_USER_DATA:
            raise InvalidArgument(f"user_data must be at most {MAX_USER_DATA} bytes, got {len(user_data)}")
        boot_ref = (options or {}).get("boot_volume", "")
        boot = self.boot_volumes.boot_source(caller, boot_ref) if boot_ref and self.boot_volumes else None
        image = boot.image if boot is not None else self.images.find_active(caller, image_ref)
        flavor = self.catalog.find_flavor(caller, flavor_ref)
        keypair = self.catalog.find_keypair(caller, keypair_ref) if keypair_ref else None
        group = self.catalog.get_server_group(caller, group_id) if group_id else None
        if flavor.ram_mb < image.min_ram_mb:
            raise InvalidArgument(
                f"flavor {flavor.name!r} has {flavor.ram_mb} MiB RAM; image {image.name!r} needs at least "
                f"{image.min_ram_mb} MiB",
                reason="FLAVOR_RAM_TOO_SMALL",
            )
        image_gb = math.ceil(image.virtual_size_bytes / 1024**3)
        if flavor.disk_gb and flavor.disk_gb < max(image.min_disk_gb, image_gb):
            raise InvalidArgument(
                f"flavor {flavor.name!r} has a {flavor.disk_gb} GiB disk; image {image.name!r} needs at least "
                f"{max(image.min_disk_gb, image_gb)} GiB",
                reason="FLAVOR_DISK_TOO_SMALL",
            )
        disk_gb = max(flavor.disk_gb, image.min_disk_gb, image_gb)
        if boot is not None:  # boots from its volume (claimed by the volume): no root disk here
            disk_gb = 0
        req = Request(
            flavor.vcpus,
            flavor.ram_mb,
            disk_gb,
            required_node=boot.required_node if boot else "",
            required_backend=boot.required_backend if boot else "",
        )
        binds = [b for ext in self.extensions if (b := ext.prepare_create(caller, options or {})) is not None]

        # Rank nodes outside the write lock (reads do not block in WAL mode);
        # the claim inside it re-checks capacity and group membership, so a
        # ranking that went stale meanwhile costs a retry, never an overcommit.
        ranked_for = self.group_request(group, req) if group is not None else req
        placement = self.placement
        outcome, sampled = placement.rank(ranked_for)
        with write_transaction():
            image_store.lock_project(caller.project_id)
            # After the lock: a racing twin's key is committed or not begun.
            existing = idempotency.lookup(request_key, "instance", caller.project_id)
            if existing:
                return Created(self.get(caller, existing), False)
            if (
                boot is not None and self.boot_volumes is not None
            ):  # lock order: project, volume, node usage, node
                self.boot_volumes.lock(boot.volume.id)
            self.quotas.charge(caller.project_id, _holds(flavor.vcpus, flavor.ram_mb), caller.project_name)
            if group is not None:
                req = self.group_request(group, req, lock=True)
            try:
                chosen = placement.claim(outcome, req, final=not sampled)
            except ResourceExhausted:
                if not sampled:
                    raise
                # Nothing in the sample fits: look at every node before saying no.
                outcome = schedule(placement.candidates(), req, placement.ratios, placement.weigher)
                chosen = placement.claim(outcome, req)
            now = clock.now()
            row = store.insert_instance(
                id=clock.new_id(),
                project=caller.project_id,
                user_id=caller.user_id,
                name=name,
                image_id=image.id,
                image_sha256=image.checksum_sha256,
                image_format=image.disk_format,
                image_size_bytes=image.size_bytes,
                flavor_id=flavor.id,
                keypair_id=keypair.id if keypair else "",
                public_key=keypair.public_key if keypair else "",
                server_group_id=group.id if group else "",
                node=chosen,
                state=BUILDING,
                vcpus=flavor.vcpus,
                ram_mb=flavor.ram_mb,
                disk_gb=disk_gb,
                user_data=base64.b64encode(user_data).decode(),
                ha=ha,
                create_time=now,
                update_time=now,
            )
            node_store.bump_desired_revision(chosen, now)
            if boot is not None and self.boot_volumes is not None:
                self.boot_volumes.bind_boot(boot.volume.id, row.id, now, chosen)
            others: set[str] = set()
            for bind in binds:
                others |= bind(row)
            if request_key:
                idempotency.record(request_key, "instance", caller.project_id, row.id)
            if self.events is not None:
                self.events.record(
                    "instance",
                    row.id,
                    "schedule",
                    row.project_id,
                    Cause.of(caller, request_key.request_id),
                    message=f"scheduled on node {chosen}",
                )
        placement.record("instance", outcome, True)  # committed
        self.nodes.registry.notify_many_threadsafe({chosen, *others})
        log.info(
            "instance scheduled", extra={"instance": row.id, "node": chosen, "project": caller.project_id}
        )
        return Created(row, True)

    def group_request(self, group: ServerGroup, req: Request, lock: bool = False) -> Request:
        return group_request(group, req, lock)

    # Verbs

    def _change(
        self,
        caller: Principal,
        instance_id: str,
        allowed: tuple[int, ...],
        verb: str,
        fields: Callable[[Instance], dict[str, Any]],
    ) -> Instance:
        with write_transaction():
            row = self.get(caller, instance_id)
            if row.state not in allowed or (row.task and row.task != SNAPSHOTTING):
                busy = f" (busy: {row.task})" if row.task else ""
                raise FailedPrecondition(
                    f"cannot {verb} instance {row.name!r}: it is {STATE_NAMES.get(row.state)}{busy}",
                    reason="INSTANCE_WRONG_STATE",
                    state=STATE_NAMES.get(row.state),
                )
            now = clock.now()
            store.update_instance(row.id, fields(row), now)
            node_store.bump_desired_revision(row.node_id, now)
        self.nodes.registry.notify_threadsafe(row.node_id)
        return self.get(caller, instance_id)

    def start(self, caller: Principal, instance_id: str) -> Instance:
        return self._change(caller, instance_id, (STOPPED,), "start", lambda r: {"task": POWERING_ON})

    def stop(self, caller: Principal, instance_id: str) -> Instance:
        return self._change(caller, instance_id, (ACTIVE,), "stop", lambda r: {"task": POWERING_OFF})

    def reboot(self, caller: Principal, instance_id: str, hard: bool) -> Instance:
        return self._change(
            caller,
            instance_id,
            (ACTIVE,),
            "reboot",
            lambda r: {"state": REBOOTING, "reboot_generation": r.reboot_generation + 1, "reboot_hard": hard},
        )

    def update(self, caller: Principal, instance_id: str, fields: Mapping[str, Any]) -> Instance:
        """UpdateInstance: the fields an owner may change (`ha`); nothing a
        node runs changes, so no desired revision moves."""
        with write_transaction():
            row = self.get(caller, instance_id)
            store.update_instance(row.id, dict(fields), clock.now())
        return self.get(caller, instance_id)

    def delete(self, caller: Principal, instance_id: str) -> Instance:
        with write_transaction():
            row = self.get(caller, instance_id)
            if row.state == DELETING:
                return row
            now = clock.now()
            store.update_instance(row.id, {"state": DELETING, "task": ""}, now)
            node_store.bump_desired_revision(row.node_id, now)
        self.nodes.registry.notify_threadsafe(row.node_id)
        return self.get(caller, instance_id)

    def snapshot(self, caller: Principal, instance_id: str, name: str, request_key: RequestKey) -> str:
        """The new image's id. The image and the instance's task change in one
        transaction, so a snapshot refused for the instance's state (or a
        racing twin's) leaves no image behind."""
        row = self.get(caller, instance_id)
        existing = idempotency.lookup(request_key, "instance_snapshot", caller.project_id)
        if existing:
            return existing
        if row.state not in (ACTIVE, STOPPED) or row.task:
            raise FailedPrecondition(
                f"cannot snapshot instance {row.name!r}: it is {STATE_NAMES.get(row.state)}"
                + (f" (busy: {row.task})" if row.task else ""),
                reason="INSTANCE_WRONG_STATE",
            )
        owner = Principal(
            caller.user_id, caller.user_name, row.project_id, caller.project_name, Role.MEMBER, "", 0.0
        )
        try:
            with write_transaction():
                image = self.images.create(
                    owner,
                    {
                        "name": name,
                        "disk_format": ipb.DISK_FORMAT_QCOW2,
                        "visibility": ipb.IMAGE_VISIBILITY_PRIVATE,
                        "min_disk_gb": row.disk_gb,
                        "min_ram_mb": 0,
                    },
                    {"source_instance_id": row.id},
                    NO_REQUEST_ID,
                )
                now = clock.now()
                if (
                    store.update_instance_if(
                        row.id,
                        row.state,
                        {"task": SNAPSHOTTING, "snapshot_image_id": image.id},
                        now,
                        expect_task="",
                    )
                    != 1
                ):
                    raise FailedPrecondition(
                        f"instance {row.name!r} changed state; try again", reason="INSTANCE_WRONG_STATE"
                    )
                node_store.bump_desired_revision(row.node_id, now)
                idempotency.record(request_key, "instance_snapshot", caller.project_id, image.id)
        except (peewee.IntegrityError, KumoError):
            # A racing twin with the same request_id won: its image is the answer.
            existing = idempotency.lookup(request_key, "instance_snapshot", caller.project_id)
            if existing:
                return existing
            raise
        self.nodes.registry.notify_threadsafe(row.node_id)
        return image.id

    # Node-facing

    def contribute(self, node: NodeHead, state: npb.NodeDesiredState) -> None:
        """The instances part of a node's desired state (the first contributor)."""
        for row in store.desired_rows_on_node(node.id):
            if row.state not in (DELETING, ERROR):
                state.instances.append(desired_instance(row))

    def node_may_read_blob(self, node_id: str, sha256: str) -> bool:
        if any(r.image_sha256 == sha256 for r in store.instances_on_node(node_id)):
            return True
        if any(r.image_sha256 == sha256 for _, r in migration_store.incoming(node_id)):
            return True  # a live migration's target makes the guest's overlay on it
        return any(ext.may_read_blob(node_id, sha256) for ext in self.extensions)

    def snapshot_target(self, node_id: str, instance_id: str, image_id: str) -> Instance:
        row = store.get_instance(instance_id)
        if row is None or row.node_id != node_id or not image_id or row.snapshot_image_id != image_id:
            raise not_found("snapshot", f"{instance_id}/{image_id}")
        return row

    def report_console(self, node_id: str, instance_id: str, data: bytes) -> None:
        row = store.get_instance(instance_id)
        if row is None or row.node_id != node_id:
            raise not_found("instance", instance_id)
        store.put_console(row.id, data[-CONSOLE_LIMIT:].decode("utf-8", "replace"), clock.now())

    # Sync: what nodes observe -> instance states

    def start_sync(self) -> None:
        self._sync.start()

    def stop_sync(self) -> None:
        self._sync.stop()

    def sync_once(self) -> int:
        """One pass over every instance; returns how many changed."""
        changed = 0
        by_node: dict[str, list[store.SyncRow]] = {}
        for row in store.sync_rows():
            by_node.setdefault(row.node_id, []).append(row)
        fenced = node_store.fenced_nodes()
        for node_id, rows in by_node.items():
            live = self.nodes.registry.snapshot(node_id)
            guests = {g.instance_id: g for g in live.guests} if live is not None else {}
            node = node_presence(live, node_id in fenced)
            notify = False
            others: set[str] = set()
            observed_rows = ((row, self._observe(row, guests.get(row.id), node)) for row in rows)
            seen_rows = [(row, seen) for row, seen in observed_rows if seen.update is not None]
            if not seen_rows:
                continue
            freed = False
            # One transaction per node, not per instance: a pass after a burst
            # of creates marks each new guest ACTIVE, and a transaction each
            # was 8% of the controller's time under the network bench.
            with write_transaction():
                now = clock.now()
                for row, seen in seen_rows:
                    if seen.update == "delete":
                        # The whole row, for the features that free its parts
                        # (rare: once per instance deleted).
                        whole = store.get_instance(row.id)
                        if whole is not None and store.delete_instance(row.id):
                            store.release(node_id, row.vcpus, row.ram_mb, row.disk_gb)
                            self.quotas.release(row.project_id, _holds(row.vcpus, row.ram_mb))
                            if row.snapshot_image_id:  # its snapshot will never come
                                self.images.fail_snapshot(
                                    row.snapshot_image_id,
                                    row.id,
                                    "the instance was deleted before its snapshot",
                                )
                            for ext in self.extensions:
                                others |= ext.instance_gone(whole)
                            self._event(row, "deleted", f"deleted; its claim on node {node_id} freed")
                            log.info("instance deleted", extra={"instance": row.id})
                            freed = True
                    elif store.update_instance_if(row.id, row.state, seen.update, now) == 1:
                        for action, outcome, message in observed(row, seen.update):
                            self._event(row, action, message, outcome)
                        if seen.failed_snapshot:
                            self.images.fail_snapshot(seen.failed_snapshot, row.id, seen.snapshot_fault)
                        notify |= seen.bump
                if notify:
                    node_store.bump_desired_revision(node_id, now)
            if freed:  # committed: rankings read the freed room at once
                self.placement.usage.forget(node_id)
            changed += len(seen_rows)
            if notify:
                self.nodes.registry.notify_threadsafe(node_id)
            for other in others:
                self.nodes.registry.notify_threadsafe(other)
        return changed

    def _event(self, row: Instance | store.SyncRow, action: str, message: str, outcome: Outcome = OK) -> None:
        """A change the sync made, recorded in its transaction."""
        if self.events is not None:
            self.events.record("instance", row.id, action, row.project_id, CONTROLLER, outcome, message)

    @staticmethod
    def _observe(row: Instance | store.SyncRow, guest: npb.GuestStatus | None, node: str) -> Observation:
        """What a node's report means for one instance: the fields to change
        (or "delete", or None), whether the node's desired state changes, and
        the snapshot image to fail. `node` is a NODE_* presence."""
        if row.state == DELETING:
            # Freed without the node only once it is fenced or deleted: a node
            # that is away (even DOWN) may still run the guest and hold its
            # resources (its disk, its volumes' locks, its addresses).
            if node == NODE_GONE or (node == NODE_REPORTING and guest is None):
                return Observation("delete")
            return Observation(None)
        if guest is None or row.state == MIGRATING:  # a migration's progress: domain/migrations/
            return Observation(None)
        power = guest.power_state
        update: dict[str, Any] = {}
        bump = False
        failed_snapshot = snapshot_fault = ""
        if guest.snapshot_done_image_id and guest.snapshot_done_image_id == row.snapshot_image_id:
            update.update(task="", snapshot_image_id="")
            bump = True
            if guest.snapshot_fault:
                update["fault"] = snapshot_fault = guest.snapshot_fault
                failed_snapshot = row.snapshot_image_id
            elif guest.fault:
                update["fault"] = guest.fault
        if row.state == BUILDING:
            if guest.fault:
                return Observation({"state": ERROR, "fault": guest.fault}, True)
            if power == RUNNING:
                update.update(state=ACTIVE, launch_time=clock.now(), fault="")
        elif row.state == REBOOTING:
            if guest.reboot_generation >= row.reboot_generation and power == RUNNING:
                update.update(state=ACTIVE)
        elif row.task == POWERING_OFF and power in OFF:
            update.update(state=STOPPED, task="")
        elif row.task == POWERING_ON and power == RUNNING:
            update.update(state=ACTIVE, task="")
        elif not row.task or row.task == SNAPSHOTTING:
            # No power change asked for: libvirt is the truth.
            if row.state == ACTIVE and power in OFF:
                update.update(state=STOPPED)
                bump = True
            elif row.state == STOPPED and power == RUNNING:
                update.update(state=ACTIVE)
                bump = True
        if guest.fault and row.state != BUILDING and guest.fault != row.fault and "fault" not in update:
            update["fault"] = guest.fault
        if not update:
            return Observation(None)
        return Observation(update, bump, failed_snapshot, snapshot_fault)
