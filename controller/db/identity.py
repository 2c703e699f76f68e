"""Queries for projects, users, role assignments, tokens and idempotency keys."""

from __future__ import annotations

from typing import Any

import peewee

from controller.db.database import db, insert_unique, write_transaction
from controller.db.models import IdempotencyKey, Project, RoleAssignment, Token, User
from controller.db.paging import paginate
from controller.errors import AlreadyExists


def _update_unique(row: peewee.Model, kind: str, fields: dict[str, Any]) -> Any:
    for key, value in fields.items():
        setattr(row, key, value)
    try:
        with db.atomic():
            row.save()
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"a {kind} named {fields.get('name')!r} already exists", reason=f"{kind.upper()}_EXISTS"
        ) from None
    return row


# Projects


def get_project(project_id: str) -> Project | None:
    return Project.get_or_none(Project.id == project_id)


def find_project(name: str) -> Project | None:
    return Project.get_or_none(Project.name == name)


def insert_project(project_id: str, name: str, description: str, enabled: bool, now: float) -> Project:
    return insert_unique(
        Project,
        "project",
        name,
        id=project_id,
        description=description,
        enabled=enabled,
        create_time=now,
        update_time=now,
    )


def update_project(row: Project, fields: dict[str, Any], now: float) -> Project:
    return _update_unique(row, "project", {**fields, "update_time": now})


def delete_project(project_id: str) -> int:
    return Project.delete().where(Project.id == project_id).execute()


def list_projects(
    page_size: int, page_token: str, name: str = "", only_ids: set[str] | None = None
) -> tuple[list[Project], str]:
    query = Project.select()
    if name:
        query = query.where(Project.name == name)
    if only_ids is not None:
        query = query.where(Project.id.in_(list(only_ids)))
    return paginate(query, (Project.name, Project.id), page_size, page_token)


# Users


def get_user(user_id: str) -> User | None:
    return User.get_or_none(User.id == user_id)


def find_user(name: str) -> User | None:
    return User.get_or_none(User.name == name)


def count_users() -> int:
    return User.select().count()


def count_project_members(project_id: str) -> int:
    """Users with a role on the project (however many roles each has)."""
    return (
        RoleAssignment.select(RoleAssignment.user)
        .where(RoleAssignment.project == project_id)
        .distinct()
        .count()
    )


def count_default_project_users(project_id: str) -> int:
    """Users whose default project it is."""
    return User.select().where(User.default_project_id == project_id).count()


def insert_user(user_id: str, name: str, password_hash: str, now: float, **fields: Any) -> User:
    return insert_unique(
        User,
        "user",
        name,
        id=user_id,
        password_hash=password_hash,
        create_time=now,
        update_time=now,
        **fields,
    )


def update_user(row: User, fields: dict[str, Any], now: float) -> User:
    return _update_unique(row, "user", {**fields, "update_time": now})


def delete_user(user_id: str) -> int:
    return User.delete().where(User.id == user_id).execute()


def list_users(
    page_size: int, page_token: str, name: str = "", in_project: str | None = None
) -> tuple[list[User], str]:
    query = User.select()
    if name:
        query = query.where(User.name == name)
    if in_project is not None:
        members = RoleAssignment.select(RoleAssignment.user).where(RoleAssignment.project == in_project)
        query = query.where(User.id.in_(members))
    return paginate(query, (User.name, User.id), page_size, page_token)


# Role assignments


def highest_role(user_id: str, project_id: str) -> int:
    row = (
        RoleAssignment.select(peewee.fn.MAX(RoleAssignment.role).alias("top"))
        .where((RoleAssignment.user == user_id) & (RoleAssignment.project == project_id))
        .dicts()
        .get()
    )
    return int(row["top"] or 0)


def projects_of_user(user_id: str) -> list[str]:
    rows = RoleAssignment.select(RoleAssignment.project).where(RoleAssignment.user == user_id).distinct()
    return [r.project_id for r in rows]


def grant_role(user_id: str, project_id: str, role: int, now: float) -> RoleAssignment:
    with write_transaction():
        row = RoleAssignment.get_or_none(
            (RoleAssignment.user == user_id)
            & (RoleAssignment.project == project_id)
            & (RoleAssignment.role == role)
        )
        if row is not None:
            return row
        try:
            with db.atomic():
                RoleAssignment.insert(user=user_id, project=project_id, role=role, create_time=now).execute()
        except peewee.IntegrityError:
            pass  # a concurrent grant of the same role won; same outcome
    return RoleAssignment.get(
        (RoleAssignment.user == user_id)
        & (RoleAssignment.project == project_id)
        & (RoleAssignment.role == role)
    )


def revoke_role(user_id: str, project_id: str, role: int) -> int:
    return (
        RoleAssignment.delete()
        .where(
            (RoleAssignment.user == user_id)
            & (RoleAssignment.project == project_id)
            & (RoleAssignment.role == role)
        )
        .execute()
    )


def list_role_assignments(
    page_size: int, page_token: str, user_id: str = "", project_id: str = ""
) -> tuple[list[RoleAssignment], str]:
    query = (
        RoleAssignment.select(RoleAssignment, User, Project).join(User).switch(RoleAssignment).join(Project)
    )
    if user_id:
        query = query.where(RoleAssignment.user == user_id)
    if project_id:
        query = query.where(RoleAssignment.project == project_id)
    return paginate(
        query,
        (RoleAssignment.project, RoleAssignment.user, RoleAssignment.role),
        page_size,
        page_token,
    )


# Tokens


def insert_token(token_id: str, user_id: str, project_id: str, now: float, expire_time: float) -> Token:
    return Token.create(
        id=token_id, user=user_id, project=project_id, issue_time=now, expire_time=expire_time
    )


def token_context(token_id: str) -> tuple[Token, User, Project] | None:
    """The token row with its user and project in one query."""
    row = (
        Token.select(Token, User, Project)
        .join(User)
        .switch(Token)
        .join(Project)
        .where(Token.id == token_id)
        .first()
    )
    if row is None:
        return None
    return row, row.user, row.project


def revoke_token(token_id: str) -> int:
    return Token.update(revoked=True).where(Token.id == token_id).execute()


def revoke_user_tokens(user_id: str) -> int:
    return Token.update(revoked=True).where(Token.user == user_id).execute()


def prune_tokens(before: float) -> int:
    return Token.delete().where(Token.expire_time < before).execute()


# Idempotency


def idempotent_lookup(request_id: str, kind: str, scope: str) -> tuple[str, str] | None:
    """(resource id, request digest) of a recorded key, or None."""
    row = IdempotencyKey.get_or_none(
        (IdempotencyKey.request_id == request_id)
        & (IdempotencyKey.kind == kind)
        & (IdempotencyKey.project_id == scope)
    )
    return (row.resource_id, row.request_digest) if row else None


def idempotent_record(
    request_id: str, kind: str, scope: str, resource_id: str, digest: str, now: float
) -> None:
    IdempotencyKey.insert(
        request_id=request_id,
        kind=kind,
        project_id=scope,
        resource_id=resource_id,
        request_digest=digest,
        create_time=now,
    ).execute()
