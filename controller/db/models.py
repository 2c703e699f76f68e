"""peewee models. The schema itself is made by migrations (controller/db/migrations),
never by create_tables; tests/test_migrations.py checks that the two agree."""

from __future__ import annotations

import peewee

from controller.db.database import db


class BaseModel(peewee.Model):
    class Meta:
        database = db
        legacy_table_names = False


class Project(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    name = peewee.CharField(max_length=64, unique=True)
    description = peewee.TextField(default="")
    enabled = peewee.BooleanField(default=True)
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()


class User(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    name = peewee.CharField(max_length=64, unique=True)
    email = peewee.CharField(max_length=255, default="")
    description = peewee.TextField(default="")
    enabled = peewee.BooleanField(default=True)
    password_hash = peewee.CharField(max_length=255)
    default_project_id = peewee.CharField(max_length=36, default="")
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()


class RoleAssignment(BaseModel):
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", column_name="user_id")
    project = peewee.ForeignKeyField(Project, on_delete="CASCADE", column_name="project_id")
    role = peewee.IntegerField()
    create_time = peewee.DoubleField()

    class Meta:
        primary_key = peewee.CompositeKey("user", "project", "role")


class Token(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", column_name="user_id")
    project = peewee.ForeignKeyField(Project, on_delete="CASCADE", column_name="project_id")
    issue_time = peewee.DoubleField()
    expire_time = peewee.DoubleField()
    revoked = peewee.BooleanField(default=False)


class IdempotencyKey(BaseModel):
    """Remembers which resource a create with a request_id made."""

    request_id = peewee.CharField(max_length=128)
    kind = peewee.CharField(max_length=32)
    project_id = peewee.CharField(max_length=36)
    resource_id = peewee.CharField(max_length=36)
    create_time = peewee.DoubleField()

    class Meta:
        primary_key = peewee.CompositeKey("request_id", "kind", "project_id")


class Flavor(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    name = peewee.CharField(max_length=64, unique=True)
    description = peewee.TextField(default="")
    vcpus = peewee.IntegerField()
    ram_mb = peewee.IntegerField()
    disk_gb = peewee.IntegerField()
    is_public = peewee.BooleanField(default=True)
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()


class FlavorAccess(BaseModel):
    flavor = peewee.ForeignKeyField(Flavor, on_delete="CASCADE", column_name="flavor_id")
    project = peewee.ForeignKeyField(Project, on_delete="CASCADE", column_name="project_id")

    class Meta:
        primary_key = peewee.CompositeKey("flavor", "project")


class Keypair(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", column_name="user_id")
    name = peewee.CharField(max_length=64)
    public_key = peewee.TextField()
    fingerprint = peewee.CharField(max_length=128)
    create_time = peewee.DoubleField()

    class Meta:
        indexes = ((("user", "name"), True),)


class ServerGroup(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    project = peewee.ForeignKeyField(Project, on_delete="CASCADE", column_name="project_id")
    name = peewee.CharField(max_length=64)
    policy = peewee.IntegerField()
    create_time = peewee.DoubleField()

    class Meta:
        indexes = ((("project", "name"), True),)
