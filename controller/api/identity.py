"""IdentityService: validates requests, calls controller.domain.identity, builds responses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from google.protobuf import empty_pb2

from controller import validation as v
from controller.api.convert import ts
from controller.auth.interceptor import CallContext
from controller.auth.principal import Principal, Role
from controller.db.models import Project, RoleAssignment, User
from controller.domain.identity import Identity
from controller.domain.quotas import RESOURCES, Quotas, QuotaView, check_limit
from controller.errors import InvalidArgument
from kumo.v1 import identity_pb2 as pb
from kumo.v1 import identity_pb2_grpc


def project_pb(row: Project) -> pb.Project:
    return pb.Project(
        id=row.id,
        name=row.name,
        description=row.description,
        enabled=row.enabled,
        create_time=ts(row.create_time),
        update_time=ts(row.update_time),
    )


def user_pb(row: User) -> pb.User:
    return pb.User(
        id=row.id,
        name=row.name,
        email=row.email,
        description=row.description,
        enabled=row.enabled,
        default_project_id=row.default_project_id,
        create_time=ts(row.create_time),
        update_time=ts(row.update_time),
    )


def assignment_pb(row: RoleAssignment) -> pb.RoleAssignment:
    return pb.RoleAssignment(
        user_id=row.user_id,
        project_id=row.project_id,
        role=row.role,
        user_name=row.user.name,
        project_name=row.project.name,
        create_time=ts(row.create_time),
    )


def _quota_values(values: Mapping[str, int]) -> pb.QuotaValues:
    return pb.QuotaValues(**values)


def quota_pb(view: QuotaView) -> pb.Quota:
    return pb.Quota(
        project_id=view.project_id,
        limits=_quota_values(view.limits),
        usage=_quota_values(view.usage),
        defaults=_quota_values(view.defaults),
    )


def _limit_rule(resource: str) -> Callable[[pb.Quota], int | None]:
    """The new limit, or None (masked but absent: back to the cloud default)."""
    return lambda q: (
        check_limit(getattr(q.limits, resource), f"quota.limits.{resource}")
        if q.limits.HasField(resource)
        else None
    )


def identity_pb(p: Principal) -> pb.Identity:
    return pb.Identity(
        user_id=p.user_id,
        user_name=p.user_name,
        project_id=p.project_id,
        project_name=p.project_name,
        role=int(p.role),
        token_id=p.token_id,
        expire_time=ts(p.expire_time),
    )


def _role(value: int) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidArgument("role must be ROLE_READER, ROLE_MEMBER or ROLE_ADMIN") from None


def _email(value: str) -> str:
    v.text(value, "email", 254)
    if value and ("@" not in value or any(c.isspace() for c in value)):
        raise InvalidArgument(f"email {value!r} is not an email address")
    return value


PROJECT_UPDATES: v.UpdateRules = MappingProxyType(
    {
        "name": lambda p: v.name(p.name, "project.name"),
        "description": lambda p: v.text(p.description, "project.description"),
        "enabled": lambda p: p.enabled,
    }
)
QUOTA_UPDATES: v.UpdateRules = MappingProxyType({f"limits.{r}": _limit_rule(r) for r in RESOURCES})
USER_UPDATES: v.UpdateRules = MappingProxyType(
    {
        "name": lambda u: v.user_name(u.name, "user.name"),
        "email": lambda u: _email(u.email),
        "description": lambda u: v.text(u.description, "user.description"),
        "enabled": lambda u: u.enabled,
        "default_project_id": lambda u: v.optional_id(u.default_project_id, "user.default_project_id"),
    }
)


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, identity: Identity, quotas: Quotas) -> None:
        self.identity = identity
        self.quotas = quotas

    def Authenticate(self, request: pb.AuthenticateRequest, context: CallContext) -> pb.AuthenticateResponse:
        issued = self.identity.authenticate(request.user, request.password, request.project)
        return pb.AuthenticateResponse(
            token=issued.token,
            expire_time=ts(issued.principal.expire_time),
            identity=identity_pb(issued.principal),
        )

    def RevokeToken(self, request: pb.RevokeTokenRequest, context: CallContext) -> empty_pb2.Empty:
        self.identity.revoke(context.principal, v.optional_id(request.token_id, "token_id"))
        return empty_pb2.Empty()

    def GetCurrentIdentity(self, request: pb.GetCurrentIdentityRequest, context: CallContext) -> pb.Identity:
        return identity_pb(context.principal)

    # Projects

    def CreateProject(self, request: pb.CreateProjectRequest, context: CallContext) -> pb.Project:
        p = request.project
        row = self.identity.create_project(
            v.name(p.name, "project.name"),
            v.text(p.description, "project.description"),
            True,
            v.request_key(request),
        )
        return project_pb(row)

    def GetProject(self, request: pb.GetProjectRequest, context: CallContext) -> pb.Project:
        return project_pb(self.identity.get_project(context.principal, v.resource_id(request.id)))

    def ListProjects(self, request: pb.ListProjectsRequest, context: CallContext) -> pb.ListProjectsResponse:
        if request.name:
            v.name(request.name)
        rows, token = self.identity.list_projects(
            context.principal, request.page_size, request.page_token, request.name
        )
        return pb.ListProjectsResponse(projects=[project_pb(r) for r in rows], next_page_token=token)

    def UpdateProject(self, request: pb.UpdateProjectRequest, context: CallContext) -> pb.Project:
        p = request.project
        fields = v.updates(request.update_mask.paths, p, PROJECT_UPDATES)
        return project_pb(
            self.identity.update_project(context.principal, v.resource_id(p.id, "project.id"), fields)
        )

    def DeleteProject(self, request: pb.DeleteProjectRequest, context: CallContext) -> empty_pb2.Empty:
        self.identity.delete_project(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()

    # Quotas

    def GetQuota(self, request: pb.GetQuotaRequest, context: CallContext) -> pb.Quota:
        return quota_pb(self.quotas.show(context.principal, v.resource_id(request.project_id, "project_id")))

    def UpdateQuota(self, request: pb.UpdateQuotaRequest, context: CallContext) -> pb.Quota:
        q = request.quota
        limits = v.updates(request.update_mask.paths, q, QUOTA_UPDATES)
        project_id = v.resource_id(q.project_id, "quota.project_id")
        changes = {path.removeprefix("limits."): value for path, value in limits.items()}
        return quota_pb(self.quotas.update(context.principal, project_id, changes))

    # Users

    def CreateUser(self, request: pb.CreateUserRequest, context: CallContext) -> pb.User:
        u = request.user
        fields = {
            "name": v.user_name(u.name, "user.name"),
            "email": _email(u.email),
            "description": v.text(u.description, "user.description"),
            "default_project_id": v.optional_id(u.default_project_id, "user.default_project_id"),
        }
        return user_pb(self.identity.create_user(fields, request.password, v.request_key(request)))

    def GetUser(self, request: pb.GetUserRequest, context: CallContext) -> pb.User:
        return user_pb(self.identity.get_user(context.principal, v.resource_id(request.id)))

    def ListUsers(self, request: pb.ListUsersRequest, context: CallContext) -> pb.ListUsersResponse:
        if request.name:
            v.user_name(request.name)
        rows, token = self.identity.list_users(
            context.principal, request.page_size, request.page_token, request.name
        )
        return pb.ListUsersResponse(users=[user_pb(r) for r in rows], next_page_token=token)

    def UpdateUser(self, request: pb.UpdateUserRequest, context: CallContext) -> pb.User:
        u = request.user
        fields = v.updates(request.update_mask.paths, u, USER_UPDATES)
        return user_pb(self.identity.update_user(context.principal, v.resource_id(u.id, "user.id"), fields))

    def DeleteUser(self, request: pb.DeleteUserRequest, context: CallContext) -> empty_pb2.Empty:
        self.identity.delete_user(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()

    def SetUserPassword(self, request: pb.SetUserPasswordRequest, context: CallContext) -> empty_pb2.Empty:
        self.identity.set_password(
            context.principal,
            v.resource_id(request.user_id, "user_id"),
            request.new_password,
            request.current_password,
        )
        return empty_pb2.Empty()

    # Role assignments

    def CreateRoleAssignment(
        self, request: pb.CreateRoleAssignmentRequest, context: CallContext
    ) -> pb.RoleAssignment:
        row = self.identity.grant(
            v.resource_id(request.user_id, "user_id"),
            v.resource_id(request.project_id, "project_id"),
            _role(request.role),
            v.request_key(request),
        )
        return assignment_pb(row)

    def ListRoleAssignments(
        self, request: pb.ListRoleAssignmentsRequest, context: CallContext
    ) -> pb.ListRoleAssignmentsResponse:
        rows, token = self.identity.list_assignments(
            context.principal,
            v.optional_id(request.user_id, "user_id"),
            v.optional_id(request.project_id, "project_id"),
            request.page_size,
            request.page_token,
        )
        return pb.ListRoleAssignmentsResponse(
            role_assignments=[assignment_pb(r) for r in rows], next_page_token=token
        )

    def DeleteRoleAssignment(
        self, request: pb.DeleteRoleAssignmentRequest, context: CallContext
    ) -> empty_pb2.Empty:
        self.identity.revoke_role(
            context.principal,
            v.resource_id(request.user_id, "user_id"),
            v.resource_id(request.project_id, "project_id"),
            _role(request.role),
        )
        return empty_pb2.Empty()
