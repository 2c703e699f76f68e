"""Flavors, keypairs and server groups: what an instance is made from."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from controller import clock
from controller.auth.principal import Principal
from controller.db import compute as store
from controller.db import identity as identity_store
from controller.db import instances as instance_store
from controller.db.models import Flavor, Keypair, ServerGroup
from controller.domain.idempotency import RequestKey, idempotent_create
from controller.errors import AlreadyExists, FailedPrecondition, InvalidArgument, not_found
from kumo.ids import is_uuid

MAX_VCPUS = 256
MAX_RAM_MB = 4 * 1024 * 1024
MAX_DISK_GB = 64 * 1024
MAX_PUBLIC_KEY = 16 * 1024


_Row = TypeVar("_Row", Flavor, store.LaunchFlavor)


def check_sizes(vcpus: int, ram_mb: int, disk_gb: int) -> None:
    if not 1 <= vcpus <= MAX_VCPUS:
        raise InvalidArgument(f"vcpus must be between 1 and {MAX_VCPUS}, got {vcpus}")
    if not 16 <= ram_mb <= MAX_RAM_MB:
        raise InvalidArgument(f"ram_mb must be between 16 and {MAX_RAM_MB}, got {ram_mb}")
    if not 0 <= disk_gb <= MAX_DISK_GB:
        raise InvalidArgument(f"disk_gb must be between 0 and {MAX_DISK_GB}, got {disk_gb}")


def ssh_fingerprint(public_key_line: str) -> str:
    """SHA256:<base64>, as `ssh-keygen -l` prints it."""
    blob = base64.b64decode(public_key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse_public_key(line: str) -> str:
    """Checks an OpenSSH public key line and returns it normalised (type, key, comment)."""
    line = line.strip()
    if not line or len(line) > MAX_PUBLIC_KEY or "\n" in line:
        raise InvalidArgument(
            "public_key must be one OpenSSH public key line (e.g. 'ssh-ed25519 AAAA... me@host')"
        )
    try:
        serialization.load_ssh_public_key(line.encode())
    except (ValueError, TypeError, IndexError, UnsupportedAlgorithm):
        raise InvalidArgument("public_key is not a valid OpenSSH public key") from None
    return line


class ComputeCatalog:
    # Flavors

    def _flavor_visible(self, caller: Principal, row: Flavor | store.LaunchFlavor) -> bool:
        return caller.is_admin or row.is_public or caller.project_id in store.flavor_access(row.id)

    def _seen(self, caller: Principal, flavor_id: str, row: _Row | None) -> _Row:
        """`row` (the flavor `flavor_id` as read) if the caller may use it;
        NOT_FOUND otherwise, exactly as for a missing one."""
        if row is None or not self._flavor_visible(caller, row):
            raise not_found("flavor", flavor_id)
        return row

    def get_flavor(self, caller: Principal, flavor_id: str) -> Flavor:
        return self._seen(caller, flavor_id, store.get_flavor(flavor_id))

    def find_flavor(self, caller: Principal, ref: str) -> store.LaunchFlavor:
        """A flavor the caller may use, by id or name: only the columns a
        create or a resize needs (store.LaunchFlavor)."""
        if is_uuid(ref):
            return self._seen(caller, ref, store.launch_flavor(ref))
        row = store.flavor_by_name(ref, None if caller.is_admin else caller.project_id)
        if row is None:
            raise not_found("flavor", ref)
        return row

    def flavor_access(self, flavor_ids: list[str]) -> dict[str, list[str]]:
        """flavor id -> the projects a private flavor is shared with, for a page at once."""
        return store.flavor_access_of(flavor_ids)

    def list_flavors(
        self, caller: Principal, page_size: int, page_token: str, name: str
    ) -> tuple[list[Flavor], str]:
        return store.list_flavors(page_size, page_token, name, None if caller.is_admin else caller.project_id)

    def _check_projects(self, project_ids: list[str]) -> list[str]:
        for pid in project_ids:
            if identity_store.get_project(pid) is None:
                raise not_found("project", pid)
        return project_ids

    def create_flavor(
        self, fields: dict[str, Any], project_ids: list[str], request_key: RequestKey
    ) -> Flavor:
        check_sizes(fields["vcpus"], fields["ram_mb"], fields["disk_gb"])
        self._check_projects(project_ids)
        name = fields.pop("name")
        return idempotent_create(
            "flavor",
            "",
            request_key,
            lambda: store.insert_flavor(clock.new_id(), name, clock.now(), project_ids, **fields),
            lambda fid: store.get_flavor(fid),
            lambda f: f.id,
        )

    def update_flavor(self, flavor_id: str, fields: dict[str, Any], project_ids: list[str] | None) -> Flavor:
        row = store.get_flavor(flavor_id)
        if row is None:
            raise not_found("flavor", flavor_id)
        if project_ids is not None:
            store.set_flavor_access(row.id, self._check_projects(project_ids))
        return store.update_flavor(row, fields, clock.now())

    def delete_flavor(self, flavor_id: str) -> None:
        """Instances keep their sizes, so a flavor in use may still go."""
        if store.delete_flavor(flavor_id) == 0:
            raise not_found("flavor", flavor_id)

    # Keypairs

    def create_keypair(
        self, caller: Principal, name: str, public_key: str, request_key: RequestKey
    ) -> tuple[Keypair, str]:
        """Returns the keypair and, when the server made it, the private key.
        Keys are scoped to the user, as keypairs are. The private key is never
        stored, so replaying a create that made one cannot answer it again."""

        def replayed(keypair_id: str) -> tuple[Keypair, str]:
            row = self.get_keypair(caller, keypair_id)
            if not public_key:
                raise AlreadyExists(
                    f"request_id {request_key.request_id!r} already made keypair {row.name!r} ({row.id}); "
                    "its private key was shown once and is not kept: delete it and create a new one",
                    reason="SECRET_SHOWN_ONCE",
                    id=row.id,
                )
            return row, ""

        return idempotent_create(
            "keypair",
            caller.user_id,
            request_key,
            lambda: self._make_keypair(caller, name, public_key),
            replayed,
            lambda made: made[0].id,
        )

    def _make_keypair(self, caller: Principal, name: str, public_key: str) -> tuple[Keypair, str]:
        private_pem = ""
        if public_key:
            line = parse_public_key(public_key)
        else:
            key = ed25519.Ed25519PrivateKey.generate()
            private_pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            ).decode()
            line = (
                key.public_key()
                .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
                .decode()
                + f" {name}"
            )
        row = store.insert_keypair(
            clock.new_id(), caller.user_id, name, line, ssh_fingerprint(line), clock.now()
        )
        return row, private_pem

    def get_keypair(self, caller: Principal, keypair_id: str) -> Keypair:
        row = store.get_keypair(keypair_id)
        if row is None or row.user_id != caller.user_id:
            raise not_found("keypair", keypair_id)
        return row

    def find_keypair(self, caller: Principal, ref: str) -> Keypair:
        """By id or name, the caller's own only."""
        row = store.get_keypair(ref) or store.find_keypair(caller.user_id, ref)
        if row is None or row.user_id != caller.user_id:
            raise not_found("keypair", ref)
        return row

    def list_keypairs(
        self, caller: Principal, page_size: int, page_token: str, name: str
    ) -> tuple[list[Keypair], str]:
        return store.list_keypairs(page_size, page_token, name, caller.user_id)

    def delete_keypair(self, caller: Principal, keypair_id: str) -> None:
        store.delete_keypair(self.get_keypair(caller, keypair_id).id)

    # Server groups

    def create_server_group(
        self, caller: Principal, name: str, policy: int, request_key: RequestKey
    ) -> ServerGroup:
        return idempotent_create(
            "server_group",
            caller.project_id,
            request_key,
            lambda: store.insert_server_group(clock.new_id(), caller.project_id, name, policy, clock.now()),
            lambda gid: self.get_server_group(caller, gid),
            lambda g: g.id,
        )

    def get_server_group(self, caller: Principal, group_id: str) -> ServerGroup:
        row = store.get_server_group(group_id)
        if row is None or not caller.can_see(row.project_id):
            raise not_found("server group", group_id)
        return row

    def list_server_groups(
        self, caller: Principal, page_size: int, page_token: str, name: str
    ) -> tuple[list[ServerGroup], str]:
        return store.list_server_groups(
            page_size, page_token, name, None if caller.is_admin else caller.project_id
        )

    def members(self, group_id: str) -> list[str]:
        """The ids of the group's instances."""
        return self.members_of([group_id]).get(group_id, [])

    def members_of(self, group_ids: list[str]) -> dict[str, list[str]]:
        """group id -> its instance ids, for a page of groups at once."""
        return instance_store.members_of_groups(group_ids)

    def delete_server_group(self, caller: Principal, group_id: str) -> None:
        row = self.get_server_group(caller, group_id)
        members = self.members(row.id)
        if members:
            raise FailedPrecondition(
                f"server group {row.name!r} still has {len(members)} instance(s); delete them first",
                reason="SERVER_GROUP_IN_USE",
            )
        store.delete_server_group(row.id)
