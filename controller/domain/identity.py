"""Identity rules: bootstrap admin, passwords, tokens, who may see and change
which project, user and role assignment."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from controller import clock
from controller.auth.principal import Principal, Role
from controller.auth.principal_cache import PrincipalCache
from controller.auth.tokens import TokenClaims, TokenSigner
from controller.db import identity as store
from controller.db.database import write_transaction
from controller.db.models import Project, RoleAssignment, User
from controller.domain.extensions import InUseCheck
from controller.domain.idempotency import RequestKey, idempotent_create
from controller.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    not_found,
)
from kumo.keys import write_private

log = logging.getLogger(__name__)

BOOTSTRAP_PROJECT = "admin"
BOOTSTRAP_USER = "admin"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024

T = TypeVar("T")


def check_password(password: str, field: str = "password") -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidArgument(f"{field} must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidArgument(f"{field} must be at most {MAX_PASSWORD} characters")
    return password


@dataclass
class IssuedToken:
    token: str
    principal: Principal


class Identity:
    def __init__(
        self,
        signer: TokenSigner,
        token_ttl: float,
        in_use: Sequence[InUseCheck] = (),
        principals: PrincipalCache | None = None,
    ) -> None:
        self.signer = signer
        self.token_ttl = token_ttl
        # Recent token checks (bounded staleness; cleared by every change made here).
        self.principals = principals or PrincipalCache(0)
        # What keeps a project from being deleted (every feature's resources).
        self.in_use = tuple(in_use)
        self.hasher = PasswordHasher()
        # A hash to verify against when the user does not exist, so a login
        # for a missing user costs as long as one with a wrong password.
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))

    # Bootstrap

    def bootstrap(self, data_dir: Path, password: str | None) -> Path | None:
        """Makes the first admin on an empty database. Returns where the
        generated password was written, or None if nothing was made or it came
        from the environment."""
        if store.count_users() > 0:
            return None
        written: Path | None = None
        if not password:
            password = secrets.token_urlsafe(18)
            written = data_dir / "admin-password"
            write_private(written, (password + "\n").encode())
        now = clock.now()
        with write_transaction():
            project = store.find_project(BOOTSTRAP_PROJECT) or store.insert_project(
                clock.new_id(), BOOTSTRAP_PROJECT, "Cloud administrators", True, now
            )
            user = store.insert_user(
                clock.new_id(),
                BOOTSTRAP_USER,
                self.hasher.hash(password),
                now,
                description="Bootstrap administrator",
                default_project_id=project.id,
            )
            store.grant_role(user.id, project.id, int(Role.ADMIN), now)
        log.info(
            "bootstrap admin created",
            extra={
                "user": BOOTSTRAP_USER,
                "project": BOOTSTRAP_PROJECT,
                "password_file": str(written or "(from KUMO_ADMIN_PASSWORD)"),
            },
        )
        return written

    # Tokens

    def _resolve(
        self, ident: str, by_id: Callable[[str], T | None], by_name: Callable[[str], T | None]
    ) -> T | None:
        return by_id(ident) or by_name(ident)

    def authenticate(self, user: str, password: str, project: str) -> IssuedToken:
        bad = Unauthenticated("user name or password is wrong", reason="INVALID_CREDENTIALS")
        if not user or not password or len(password) > MAX_PASSWORD or len(user) > 255:
            raise bad
        row = self._resolve(user, store.get_user, store.find_user)
        try:
            self.hasher.verify(row.password_hash if row else self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            raise bad from None
        if row is None:
            raise bad
        if not row.enabled:
            raise Unauthenticated(f"user {row.name!r} is disabled", reason="USER_DISABLED")
        if self.hasher.check_needs_rehash(row.password_hash):
            store.update_user(row, {"password_hash": self.hasher.hash(password)}, clock.now())

        if project:
            proj = self._resolve(project, store.get_project, store.find_project)
        elif row.default_project_id:
            proj = store.get_project(row.default_project_id)
        else:
            projects = store.projects_of_user(row.id)
            if len(projects) > 1:
                raise InvalidArgument(
                    f"user {row.name!r} has roles on {len(projects)} projects; name one with project"
                )
            proj = store.get_project(projects[0]) if projects else None
        if proj is None or store.highest_role(row.id, proj.id) == 0:
            raise Unauthenticated(
                f"user {row.name!r} has no role on project {project or '(default)'!r}",
                reason="NO_ROLE_ON_PROJECT",
            )
        if not proj.enabled:
            raise Unauthenticated(f"project {proj.name!r} is disabled", reason="PROJECT_DISABLED")

        now = clock.now()
        token_id = clock.new_id()
        expire = now + self.token_ttl
        store.insert_token(token_id, row.id, proj.id, now, expire)
        if secrets.randbelow(100) == 0:
            store.prune_tokens(now - 86400)
        token = self.signer.issue(TokenClaims(token_id, row.id, proj.id, expire))
        return IssuedToken(token, self.principal_for(token))

    def principal_for(self, token: str) -> Principal:
        """What the interceptor calls on every RPC: signature and expiry first
        (no I/O), then revocation, user, project and role from the database,
        or from what it said less than `principals.max_age` seconds ago."""
        now = clock.now()
        claims = self.signer.verify(token, now)
        cached = self.principals.get(token)
        if cached is not None:
            return cached
        generation, checked_at = self.principals.generation(), self.principals.now()
        principal = self._check(claims)
        self.principals.put(token, principal, generation, checked_at)
        return principal

    def _check(self, claims: TokenClaims) -> Principal:
        found = store.token_context(claims.token_id)
        if found is None:
            raise Unauthenticated("token is not known (revoked or expired)", reason="TOKEN_REVOKED")
        row, user, project = found
        if row.revoked:
            raise Unauthenticated("token has been revoked; log in again", reason="TOKEN_REVOKED")
        if row.user_id != claims.user_id or row.project_id != claims.project_id:
            raise Unauthenticated("token is not valid", reason="TOKEN_INVALID")
        if not user.enabled:
            raise Unauthenticated(f"user {user.name!r} is disabled", reason="USER_DISABLED")
        if not project.enabled:
            raise Unauthenticated(f"project {project.name!r} is disabled", reason="PROJECT_DISABLED")
        role = store.highest_role(user.id, project.id)
        if role == 0:
            raise Unauthenticated(
                "user no longer has a role on the token's project", reason="NO_ROLE_ON_PROJECT"
            )
        return Principal(user.id, user.name, project.id, project.name, Role(role), row.id, row.expire_time)

    def revoke(self, caller: Principal, token_id: str) -> None:
        if not token_id or token_id == caller.token_id:
            store.revoke_token(caller.token_id)
            self.principals.clear()
            return
        if not caller.is_admin:
            raise PermissionDenied("only admins can revoke other tokens")
        revoked = store.revoke_token(token_id)
        self.principals.clear()
        if revoked == 0:
            raise not_found("token", token_id)

    # Projects

    def get_project(self, caller: Principal, project_id: str) -> Project:
        row = store.get_project(project_id)
        if row is None or not caller.can_see(row.id):
            raise not_found("project", project_id)
        return row

    def list_projects(
        self, caller: Principal, page_size: int, page_token: str, name: str
    ) -> tuple[list[Project], str]:
        only = None if caller.is_admin else {caller.project_id}
        return store.list_projects(page_size, page_token, name, only)

    def create_project(self, name: str, description: str, enabled: bool, request_key: RequestKey) -> Project:
        return idempotent_create(
            "project",
            "",
            request_key,
            lambda: store.insert_project(clock.new_id(), name, description, enabled, clock.now()),
            lambda pid: self._must_project(pid),
            lambda p: p.id,
        )

    def _must_project(self, project_id: str) -> Project:
        row = store.get_project(project_id)
        if row is None:
            raise not_found("project", project_id)
        return row

    def update_project(self, caller: Principal, project_id: str, fields: dict[str, Any]) -> Project:
        row = self._must_project(project_id)
        if fields.get("enabled") is False and project_id == caller.project_id:
            raise FailedPrecondition("you cannot disable the project your token is scoped to")
        updated = store.update_project(row, fields, clock.now())
        self.principals.clear()
        return updated

    def delete_project(self, caller: Principal, project_id: str) -> None:
        """Deletes an empty project: no resources, no members (the caller's
        own roles there count too: revoke them first), nobody's default
        project, so no user is left with a dangling default. Checked and
        deleted in one write transaction, so a racing grant cannot slip in."""
        with write_transaction():
            row = self._must_project(project_id)
            if row.id == caller.project_id:
                raise FailedPrecondition("you cannot delete the project your token is scoped to")
            for check in self.in_use:
                n = check.count(row.id)
                if n:
                    raise FailedPrecondition(
                        f"project {row.name!r} still has {n} {check.kind}(s); {check.remedy}",
                        reason="PROJECT_IN_USE",
                        kind=check.kind,
                        count=n,
                    )
            store.delete_project(row.id)
        self.principals.clear()

    # Users

    def _visible_user(self, caller: Principal, user_id: str) -> User:
        row = store.get_user(user_id)
        if row is None:
            raise not_found("user", user_id)
        if (
            not caller.is_admin
            and row.id != caller.user_id
            and store.highest_role(row.id, caller.project_id) == 0
        ):
            raise not_found("user", user_id)
        return row

    def get_user(self, caller: Principal, user_id: str) -> User:
        return self._visible_user(caller, user_id)

    def list_users(
        self, caller: Principal, page_size: int, page_token: str, name: str
    ) -> tuple[list[User], str]:
        return store.list_users(page_size, page_token, name, None if caller.is_admin else caller.project_id)

    def create_user(self, fields: dict[str, Any], password: str, request_key: RequestKey) -> User:
        check_password(password)
        if fields.get("default_project_id"):
            self._must_project(fields["default_project_id"])
        name = fields.pop("name")
        return idempotent_create(
            "user",
            "",
            request_key,
            lambda: store.insert_user(
                clock.new_id(), name, self.hasher.hash(password), clock.now(), **fields
            ),
            lambda uid: self._must_user(uid),
            lambda u: u.id,
        )

    def _must_user(self, user_id: str) -> User:
        row = store.get_user(user_id)
        if row is None:
            raise not_found("user", user_id)
        return row

    def update_user(self, caller: Principal, user_id: str, fields: dict[str, Any]) -> User:
        row = self._must_user(user_id)
        if fields.get("default_project_id"):
            self._must_project(fields["default_project_id"])
        if fields.get("enabled") is False and row.id == caller.user_id:
            raise FailedPrecondition("you cannot disable yourself")
        updated = store.update_user(row, fields, clock.now())
        if fields.get("enabled") is False:
            store.revoke_user_tokens(row.id)
        self.principals.clear()
        return updated

    def delete_user(self, caller: Principal, user_id: str) -> None:
        row = self._must_user(user_id)
        if row.id == caller.user_id:
            raise FailedPrecondition("you cannot delete yourself")
        store.delete_user(row.id)
        self.principals.clear()

    def set_password(self, caller: Principal, user_id: str, new_password: str, current_password: str) -> None:
        check_password(new_password, "new_password")
        if caller.is_admin:
            row = self._must_user(user_id)
        else:
            if user_id != caller.user_id:
                raise PermissionDenied("only admins can set another user's password")
            row = self._must_user(user_id)
            try:
                self.hasher.verify(row.password_hash, current_password or "-")
            except (VerificationError, InvalidHashError):
                raise PermissionDenied("current_password is wrong", reason="WRONG_CURRENT_PASSWORD") from None
        store.update_user(row, {"password_hash": self.hasher.hash(new_password)}, clock.now())
        store.revoke_user_tokens(row.id)
        self.principals.clear()

    # Role assignments

    def grant(self, user_id: str, project_id: str, role: Role, request_key: RequestKey) -> RoleAssignment:
        """Granting is idempotent by itself; a request_id (cloud-wide, as the
        admin grants) also catches an id reused for another grant, and a
        replay after a revoke answers NOT_FOUND like any deleted resource."""

        def make() -> RoleAssignment:
            user, project = self._must_user(user_id), self._must_project(project_id)
            store.grant_role(user.id, project.id, int(role), clock.now())
            self.principals.clear()
            return self._assignment(user.id, project.id, role)

        return idempotent_create(
            "role_assignment",
            "",
            request_key,
            make,
            lambda _user_id: self._assignment(user_id, project_id, role),
            lambda r: r.user_id,
        )

    def _assignment(self, user_id: str, project_id: str, role: Role) -> RoleAssignment:
        rows, _ = store.list_role_assignments(1000, "", user_id, project_id)
        found = next((r for r in rows if r.role == int(role)), None)
        if found is None:
            raise NotFound(
                f"user {user_id!r} has no {role.name.lower()} role on project {project_id!r}",
                reason="ROLE_ASSIGNMENT_NOT_FOUND",
            )
        return found

    def list_assignments(
        self, caller: Principal, user_id: str, project_id: str, page_size: int, page_token: str
    ) -> tuple[list[RoleAssignment], str]:
        if not caller.is_admin:
            if project_id and project_id != caller.project_id:
                raise not_found("project", project_id)
            project_id = caller.project_id
        return store.list_role_assignments(page_size, page_token, user_id, project_id)

    def revoke_role(self, caller: Principal, user_id: str, project_id: str, role: Role) -> None:
        if user_id == caller.user_id and project_id == caller.project_id and role == Role.ADMIN:
            raise FailedPrecondition("you cannot remove your own admin role on the project you are using")
        revoked = store.revoke_role(user_id, project_id, int(role))
        self.principals.clear()
        if revoked == 0:
            raise NotFound(
                f"user {user_id!r} has no {role.name.lower()} role on project {project_id!r}",
                reason="ROLE_ASSIGNMENT_NOT_FOUND",
            )


def admin_password_from_env() -> str | None:
    return os.environ.get("KUMO_ADMIN_PASSWORD") or None
