"""Identity: CRUD, roles and tenancy, bad input, duplicates under races,
idempotent creates, pagination, persistence across a restart."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from kumo.v1 import identity_pb2 as pb
from tests.harness import ADMIN_PASSWORD, Client, ControllerProc, error_reason, make_user, rpc_error

UNKNOWN = "00000000-0000-4000-8000-000000000000"
OK = grpc.StatusCode.OK


def code(fn, *args, **kw) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    try:
        fn(*args, **kw)
    except grpc.RpcError as exc:
        assert exc.code() != grpc.StatusCode.INTERNAL, exc.details()
        assert exc.details(), "every error carries a message"
        return exc.code()
    return OK


@pytest.fixture(scope="module")
def tenants(controller: ControllerProc, admin: Client) -> dict[str, object]:
    """Two projects, A and B, each with a member and a reader."""
    a = admin.identity.CreateProject(pb.CreateProjectRequest(project=pb.Project(name="proj-a")))
    b = admin.identity.CreateProject(pb.CreateProjectRequest(project=pb.Project(name="proj-b")))
    users = {
        "a_member": make_user(admin, a.id, "alice", pb.ROLE_MEMBER),
        "a_reader": make_user(admin, a.id, "arthur", pb.ROLE_READER),
        "b_member": make_user(admin, b.id, "bob", pb.ROLE_MEMBER),
    }
    return {
        "a": a,
        "b": b,
        **users,
        "alice": controller.login("alice", "password-123"),
        "arthur": controller.login("arthur", "password-123"),
        "bob": controller.login("bob", "password-123"),
    }


# Roles


def test_member_cannot_create_users_or_projects(tenants) -> None:  # type: ignore[no-untyped-def]
    alice: Client = tenants["alice"]
    err = rpc_error(alice.identity.CreateProject, pb.CreateProjectRequest(project=pb.Project(name="nope")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "admin" in err.details()
    assert error_reason(err) == "ROLE_REQUIRED"
    err = rpc_error(
        alice.identity.CreateUser, pb.CreateUserRequest(user=pb.User(name="mallory"), password="password-123")
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def test_reader_cannot_change_anything(tenants) -> None:  # type: ignore[no-untyped-def]
    arthur: Client = tenants["arthur"]
    a, alice = tenants["a"], tenants["a_member"]
    mask = field_mask_pb2.FieldMask(paths=["description"])
    calls = [
        (arthur.identity.CreateProject, pb.CreateProjectRequest(project=pb.Project(name="x1"))),
        (
            arthur.identity.UpdateProject,
            pb.UpdateProjectRequest(project=pb.Project(id=a.id), update_mask=mask),
        ),
        (arthur.identity.DeleteProject, pb.DeleteProjectRequest(id=a.id)),
        (arthur.identity.CreateUser, pb.CreateUserRequest(user=pb.User(name="x2"), password="password-123")),
        (arthur.identity.UpdateUser, pb.UpdateUserRequest(user=pb.User(id=alice.id), update_mask=mask)),
        (arthur.identity.DeleteUser, pb.DeleteUserRequest(id=alice.id)),
        (
            arthur.identity.CreateRoleAssignment,
            pb.CreateRoleAssignmentRequest(user_id=alice.id, project_id=a.id, role=pb.ROLE_ADMIN),
        ),
        (
            arthur.identity.DeleteRoleAssignment,
            pb.DeleteRoleAssignmentRequest(user_id=alice.id, project_id=a.id, role=pb.ROLE_MEMBER),
        ),
        (
            arthur.identity.SetUserPassword,
            pb.SetUserPasswordRequest(user_id=alice.id, new_password="password-456"),
        ),
    ]
    for fn, req in calls:
        assert code(fn, req) == grpc.StatusCode.PERMISSION_DENIED, type(req).__name__


def test_reader_can_read_own_project(tenants) -> None:  # type: ignore[no-untyped-def]
    arthur: Client = tenants["arthur"]
    who = arthur.identity.GetCurrentIdentity(pb.GetCurrentIdentityRequest())
    assert who.role == pb.ROLE_READER and who.project_name == "proj-a"
    assert arthur.identity.GetProject(pb.GetProjectRequest(id=tenants["a"].id)).name == "proj-a"


def test_project_a_sees_nothing_of_project_b(tenants) -> None:  # type: ignore[no-untyped-def]
    alice: Client = tenants["alice"]
    b, bob = tenants["b"], tenants["b_member"]
    names = [p.name for p in alice.identity.ListProjects(pb.ListProjectsRequest()).projects]
    assert names == ["proj-a"]
    assert code(alice.identity.GetProject, pb.GetProjectRequest(id=b.id)) == grpc.StatusCode.NOT_FOUND
    users = {u.name for u in alice.identity.ListUsers(pb.ListUsersRequest()).users}
    assert users == {"alice", "arthur"}
    assert code(alice.identity.GetUser, pb.GetUserRequest(id=bob.id)) == grpc.StatusCode.NOT_FOUND
    assert not alice.identity.ListUsers(pb.ListUsersRequest(name="bob")).users
    assert code(alice.identity.ListRoleAssignments, pb.ListRoleAssignmentsRequest(project_id=b.id)) == (
        grpc.StatusCode.NOT_FOUND
    )
    seen = alice.identity.ListRoleAssignments(pb.ListRoleAssignmentsRequest()).role_assignments
    assert {r.project_name for r in seen} == {"proj-a"}
    # A missing project and another project's look exactly alike.
    e1 = rpc_error(alice.identity.GetProject, pb.GetProjectRequest(id=b.id))
    e2 = rpc_error(alice.identity.GetProject, pb.GetProjectRequest(id=UNKNOWN))
    assert e1.details().replace(b.id, "X") == e2.details().replace(UNKNOWN, "X")


def test_user_cannot_scope_token_to_a_project_without_role(controller: ControllerProc, tenants) -> None:  # type: ignore[no-untyped-def]
    err = rpc_error(controller.login, "alice", "password-123", "proj-b")
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(err) == "NO_ROLE_ON_PROJECT"


def test_admin_sees_everything(admin: Client, tenants) -> None:  # type: ignore[no-untyped-def]
    names = {p.name for p in admin.identity.ListProjects(pb.ListProjectsRequest()).projects}
    assert {"admin", "proj-a", "proj-b"} <= names
    assert admin.identity.GetUser(pb.GetUserRequest(id=tenants["b_member"].id)).name == "bob"


def test_roles_take_effect_at_once(controller: ControllerProc, admin: Client, tenants) -> None:  # type: ignore[no-untyped-def]
    a = tenants["a"]
    carol = make_user(admin, a.id, "carol", pb.ROLE_READER)
    client = controller.login("carol", "password-123")
    assert code(client.identity.CreateProject, pb.CreateProjectRequest(project=pb.Project(name="c1"))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    admin.identity.CreateRoleAssignment(
        pb.CreateRoleAssignmentRequest(user_id=carol.id, project_id=a.id, role=pb.ROLE_ADMIN)
    )
    assert client.identity.GetCurrentIdentity(pb.GetCurrentIdentityRequest()).role == pb.ROLE_ADMIN
    for role in (pb.ROLE_ADMIN, pb.ROLE_READER):
        admin.identity.DeleteRoleAssignment(
            pb.DeleteRoleAssignmentRequest(user_id=carol.id, project_id=a.id, role=role)
        )
    err = rpc_error(client.identity.GetCurrentIdentity, pb.GetCurrentIdentityRequest())
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_granting_twice_is_harmless_and_removing_missing_is_not_found(admin: Client, tenants) -> None:  # type: ignore[no-untyped-def]
    req = pb.CreateRoleAssignmentRequest(
        user_id=tenants["a_member"].id, project_id=tenants["a"].id, role=pb.ROLE_MEMBER
    )
    assert admin.identity.CreateRoleAssignment(req).role == pb.ROLE_MEMBER
    assert admin.identity.CreateRoleAssignment(req).role == pb.ROLE_MEMBER
    err = rpc_error(
        admin.identity.DeleteRoleAssignment,
        pb.DeleteRoleAssignmentRequest(
            user_id=tenants["a_member"].id, project_id=tenants["b"].id, role=pb.ROLE_READER
        ),
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


# Bad input


BAD_NAMES = ["", "x" * 10_000, "bad name", "semi;colon", "-leading", "ünïcode", "a/b", "tab\tname", "x" * 64]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n[:12]) + str(len(n)))
def test_bad_names_are_invalid_argument(admin: Client, name: str) -> None:
    err = rpc_error(admin.identity.CreateProject, pb.CreateProjectRequest(project=pb.Project(name=name)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in err.details()
    err = rpc_error(
        admin.identity.CreateUser, pb.CreateUserRequest(user=pb.User(name=name), password="password-123")
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_bad_fields(admin: Client, tenants) -> None:  # type: ignore[no-untyped-def]
    a = tenants["a"]
    ident = admin.identity
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    cases = [
        (ident.ListProjects, pb.ListProjectsRequest(page_size=-1)),
        (ident.ListProjects, pb.ListProjectsRequest(page_token="garbage!")),
        (ident.ListUsers, pb.ListUsersRequest(page_size=-5)),
        (ident.ListRoleAssignments, pb.ListRoleAssignmentsRequest(page_size=-1)),
        (ident.GetProject, pb.GetProjectRequest(id="not-a-uuid")),
        (ident.GetProject, pb.GetProjectRequest(id="")),
        (ident.GetUser, pb.GetUserRequest(id="x" * 10_000)),
        (ident.DeleteUser, pb.DeleteUserRequest(id="1; DROP TABLE user")),
        (ident.CreateUser, pb.CreateUserRequest(user=pb.User(name="shortpw"), password="short")),
        (
            ident.CreateUser,
            pb.CreateUserRequest(user=pb.User(name="bademail", email="nope"), password="password-123"),
        ),
        (
            ident.CreateUser,
            pb.CreateUserRequest(
                user=pb.User(name="longdesc", description="d" * 10_000), password="password-123"
            ),
        ),
        (ident.UpdateProject, pb.UpdateProjectRequest(project=pb.Project(id=a.id, name="ok"))),
        (
            ident.UpdateProject,
            pb.UpdateProjectRequest(
                project=pb.Project(id=a.id), update_mask=field_mask_pb2.FieldMask(paths=["id"])
            ),
        ),
        (ident.CreateRoleAssignment, pb.CreateRoleAssignmentRequest(user_id=a.id, project_id=a.id, role=0)),
        (ident.CreateRoleAssignment, pb.CreateRoleAssignmentRequest(user_id=a.id, project_id=a.id, role=99)),
        (ident.CreateProject, pb.CreateProjectRequest(project=pb.Project(name="rid"), request_id="r" * 500)),
    ]
    for fn, req in cases:
        assert code(fn, req) == invalid, req
    # AIP-158: a page_size over the maximum is served as the maximum (it was refused).
    assert len(ident.ListProjects(pb.ListProjectsRequest(page_size=100_000)).projects) >= 1


def test_unknown_ids_are_not_found(admin: Client, tenants) -> None:  # type: ignore[no-untyped-def]
    ident = admin.identity
    a = tenants["a"]
    mask = field_mask_pb2.FieldMask(paths=["description"])
    cases = [
        (ident.GetProject, pb.GetProjectRequest(id=UNKNOWN)),
        (ident.DeleteProject, pb.DeleteProjectRequest(id=UNKNOWN)),
        (ident.UpdateProject, pb.UpdateProjectRequest(project=pb.Project(id=UNKNOWN), update_mask=mask)),
        (ident.GetUser, pb.GetUserRequest(id=UNKNOWN)),
        (ident.DeleteUser, pb.DeleteUserRequest(id=UNKNOWN)),
        (ident.UpdateUser, pb.UpdateUserRequest(user=pb.User(id=UNKNOWN), update_mask=mask)),
        (ident.SetUserPassword, pb.SetUserPasswordRequest(user_id=UNKNOWN, new_password="password-999")),
        (
            ident.CreateRoleAssignment,
            pb.CreateRoleAssignmentRequest(user_id=UNKNOWN, project_id=a.id, role=1),
        ),
        (
            ident.CreateRoleAssignment,
            pb.CreateRoleAssignmentRequest(user_id=tenants["a_member"].id, project_id=UNKNOWN, role=1),
        ),
        (
            ident.CreateUser,
            pb.CreateUserRequest(
                user=pb.User(name="dp", default_project_id=UNKNOWN), password="password-123"
            ),
        ),
    ]
    for fn, req in cases:
        assert code(fn, req) == grpc.StatusCode.NOT_FOUND, req


def test_wrong_state(controller: ControllerProc, admin: Client) -> None:
    who = admin.who
    assert who is not None
    failed = grpc.StatusCode.FAILED_PRECONDITION
    assert code(admin.identity.DeleteUser, pb.DeleteUserRequest(id=who.user_id)) == failed
    assert code(admin.identity.DeleteProject, pb.DeleteProjectRequest(id=who.project_id)) == failed
    disable = pb.UpdateUserRequest(
        user=pb.User(id=who.user_id, enabled=False), update_mask=field_mask_pb2.FieldMask(paths=["enabled"])
    )
    assert code(admin.identity.UpdateUser, disable) == failed


# Duplicates and races


def test_duplicate_names(admin: Client) -> None:
    admin.identity.CreateProject(pb.CreateProjectRequest(project=pb.Project(name="dup")))
    err = rpc_error(admin.identity.CreateProject, pb.CreateProjectRequest(project=pb.Project(name="dup")))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(err) == "PROJECT_EXISTS"
    admin.identity.CreateUser(pb.CreateUserRequest(user=pb.User(name="dupuser"), password="password-123"))
    err = rpc_error(
        admin.identity.CreateUser, pb.CreateUserRequest(user=pb.User(name="dupuser"), password="password-123")
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    # Renaming onto an existing name is a duplicate too.
    other = admin.identity.CreateProject(pb.CreateProjectRequest(project=pb.Project(name="dup2")))
    rename = pb.UpdateProjectRequest(
        project=pb.Project(id=other.id, name="dup"), update_mask=field_mask_pb2.FieldMask(paths=["name"])
    )
    assert code(admin.identity.UpdateProject, rename) == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize("kind", ["project", "user"])
def test_racing_creates_of_one_name_have_one_winner(controller: ControllerProc, kind: str) -> None:
    clients = [controller.login() for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    results: list[grpc.StatusCode] = []
    lock = threading.Lock()

    def create(client: Client) -> None:
        barrier.wait()
        if kind == "project":
            outcome = code(
                client.identity.CreateProject, pb.CreateProjectRequest(project=pb.Project(name="race"))
            )
        else:
            outcome = code(
                client.identity.CreateUser,
                pb.CreateUserRequest(user=pb.User(name="racer"), password="password-123"),
            )
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=create, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(OK) == 1, results
    assert results.count(grpc.StatusCode.ALREADY_EXISTS) == len(clients) - 1, results


def test_request_id_makes_create_idempotent(admin: Client) -> None:
    req = pb.CreateProjectRequest(project=pb.Project(name="idem"), request_id="req-123")
    first = admin.identity.CreateProject(req)
    second = admin.identity.CreateProject(req)
    assert first.id == second.id


# Updates, passwords, pagination


def test_update_project_and_user(admin: Client) -> None:
    p = admin.identity.CreateProject(
        pb.CreateProjectRequest(project=pb.Project(name="upd", description="one"))
    )
    mask = field_mask_pb2.FieldMask(paths=["description"])
    changed = admin.identity.UpdateProject(
        pb.UpdateProjectRequest(
            project=pb.Project(id=p.id, name="ignored", description="two"), update_mask=mask
        )
    )
    assert (changed.name, changed.description) == ("upd", "two")
    assert changed.update_time.ToNanoseconds() >= p.update_time.ToNanoseconds()
    u = admin.identity.CreateUser(pb.CreateUserRequest(user=pb.User(name="upduser"), password="password-123"))
    u2 = admin.identity.UpdateUser(
        pb.UpdateUserRequest(
            user=pb.User(id=u.id, email="u@example.org", default_project_id=p.id),
            update_mask=field_mask_pb2.FieldMask(paths=["email", "default_project_id"]),
        )
    )
    assert (u2.email, u2.default_project_id) == ("u@example.org", p.id)


def test_set_password_revokes_tokens(controller: ControllerProc, admin: Client, tenants) -> None:  # type: ignore[no-untyped-def]
    dave = make_user(admin, tenants["a"].id, "dave", pb.ROLE_MEMBER)
    client = controller.login("dave", "password-123")
    # A user changes their own password only with the current one.
    err = rpc_error(
        client.identity.SetUserPassword,
        pb.SetUserPasswordRequest(user_id=dave.id, new_password="password-456", current_password="wrong-one"),
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (
        code(
            client.identity.SetUserPassword,
            pb.SetUserPasswordRequest(
                user_id=tenants["a_member"].id, new_password="password-456", current_password="x"
            ),
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )
    client.identity.SetUserPassword(
        pb.SetUserPasswordRequest(
            user_id=dave.id, new_password="password-456", current_password="password-123"
        )
    )
    assert (
        code(client.identity.GetCurrentIdentity, pb.GetCurrentIdentityRequest())
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert code(controller.login, "dave", "password-123") == grpc.StatusCode.UNAUTHENTICATED
    assert controller.login("dave", "password-456").who.user_name == "dave"


def test_disabled_user_and_project_cannot_log_in(controller: ControllerProc, admin: Client) -> None:
    p = admin.identity.CreateProject(pb.CreateProjectRequest(project=pb.Project(name="dis")))
    u = make_user(admin, p.id, "erin", pb.ROLE_MEMBER)
    client = controller.login("erin", "password-123")
    admin.identity.UpdateUser(
        pb.UpdateUserRequest(
            user=pb.User(id=u.id, enabled=False), update_mask=field_mask_pb2.FieldMask(paths=["enabled"])
        )
    )
    assert (
        code(client.identity.GetCurrentIdentity, pb.GetCurrentIdentityRequest())
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert code(controller.login, "erin", "password-123") == grpc.StatusCode.UNAUTHENTICATED
    admin.identity.UpdateUser(
        pb.UpdateUserRequest(
            user=pb.User(id=u.id, enabled=True), update_mask=field_mask_pb2.FieldMask(paths=["enabled"])
        )
    )
    client = controller.login("erin", "password-123")
    admin.identity.UpdateProject(
        pb.UpdateProjectRequest(
            project=pb.Project(id=p.id, enabled=False),
            update_mask=field_mask_pb2.FieldMask(paths=["enabled"]),
        )
    )
    assert (
        code(client.identity.GetCurrentIdentity, pb.GetCurrentIdentityRequest())
        == grpc.StatusCode.UNAUTHENTICATED
    )


def test_pagination_walks_every_item_once(admin: Client) -> None:
    for i in range(7):
        admin.identity.CreateProject(pb.CreateProjectRequest(project=pb.Project(name=f"page-{i}")))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        resp = admin.identity.ListProjects(pb.ListProjectsRequest(page_size=3, page_token=token))
        assert len(resp.projects) <= 3
        seen += [p.name for p in resp.projects]
        pages += 1
        token = resp.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen))
    assert {f"page-{i}" for i in range(7)} <= set(seen)
    assert seen == sorted(seen)
    assert pages >= 3


def test_delete_user_and_project(admin: Client) -> None:
    p = admin.identity.CreateProject(pb.CreateProjectRequest(project=pb.Project(name="gone")))
    u = make_user(admin, p.id, "gone-user", pb.ROLE_MEMBER)
    admin.identity.DeleteUser(pb.DeleteUserRequest(id=u.id))
    assert code(admin.identity.GetUser, pb.GetUserRequest(id=u.id)) == grpc.StatusCode.NOT_FOUND
    admin.identity.DeleteProject(pb.DeleteProjectRequest(id=p.id))
    assert code(admin.identity.GetProject, pb.GetProjectRequest(id=p.id)) == grpc.StatusCode.NOT_FOUND
    assert code(admin.identity.DeleteProject, pb.DeleteProjectRequest(id=p.id)) == grpc.StatusCode.NOT_FOUND


def test_a_project_with_members_cannot_be_deleted(admin: Client) -> None:
    """Its members' roles would vanish and their default project dangle: refused
    until nobody has a role there (the caller's own roles count too) and it is
    nobody's default project."""
    ident = admin.identity
    p = ident.CreateProject(pb.CreateProjectRequest(project=pb.Project(name="peopled")))
    ann = make_user(admin, p.id, "peopled-ann", pb.ROLE_MEMBER)
    ident.CreateRoleAssignment(
        pb.CreateRoleAssignmentRequest(user_id=ann.id, project_id=p.id, role=pb.ROLE_READER)
    )
    me = ident.GetCurrentIdentity(pb.GetCurrentIdentityRequest()).user_id
    ident.CreateRoleAssignment(
        pb.CreateRoleAssignmentRequest(user_id=me, project_id=p.id, role=pb.ROLE_READER)
    )

    def refused() -> grpc.RpcError:
        err = rpc_error(ident.DeleteProject, pb.DeleteProjectRequest(id=p.id))
        assert (err.code(), error_reason(err)) == (grpc.StatusCode.FAILED_PRECONDITION, "PROJECT_IN_USE")
        return err

    assert "still has 2 member(s)" in refused().details()  # users, not role assignments
    roles = ident.ListRoleAssignments(pb.ListRoleAssignmentsRequest(project_id=p.id)).role_assignments
    assert len(roles) == 3, "a refused delete keeps every role"
    for r in roles:
        ident.DeleteRoleAssignment(
            pb.DeleteRoleAssignmentRequest(user_id=r.user_id, project_id=p.id, role=r.role)
        )
    # No roles left, but it is still ann's default project.
    assert "1 default-project user(s)" in refused().details()
    assert ident.GetUser(pb.GetUserRequest(id=ann.id)).default_project_id == p.id
    ident.UpdateUser(
        pb.UpdateUserRequest(
            user=pb.User(id=ann.id, default_project_id=""),
            update_mask=field_mask_pb2.FieldMask(paths=["default_project_id"]),
        )
    )
    ident.DeleteProject(pb.DeleteProjectRequest(id=p.id))
    assert code(ident.GetProject, pb.GetProjectRequest(id=p.id)) == grpc.StatusCode.NOT_FOUND


# Persistence and lifecycle


def test_restart_keeps_users_projects_and_tokens(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    proc = ControllerProc(data).start()
    try:
        admin = proc.login()
        p = admin.identity.CreateProject(pb.CreateProjectRequest(project=pb.Project(name="durable")))
        make_user(admin, p.id, "frank", pb.ROLE_MEMBER)
        frank = proc.login("frank", "password-123")
        token = frank.token
        assert proc.stop() == 0, "SIGTERM is a clean, graceful stop"
        proc.start()
        again = Client(proc.channel(), token)
        who = again.identity.GetCurrentIdentity(pb.GetCurrentIdentityRequest())
        assert (who.user_name, who.project_name) == ("frank", "durable")
        assert proc.login("frank", "password-123").who.project_id == p.id
    finally:
        proc.stop()


def test_bootstrap_password_file_when_no_env(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    proc = ControllerProc(data, extra_env={"KUMO_ADMIN_PASSWORD": ""})
    proc.start()
    try:
        pw_file = data / "admin-password"
        assert pw_file.stat().st_mode & 0o777 == 0o600
        password = pw_file.read_text().strip()
        assert len(password) >= 16
        assert proc.login("admin", password).who.role == pb.ROLE_ADMIN
        assert code(proc.login, "admin", ADMIN_PASSWORD) == grpc.StatusCode.UNAUTHENTICATED
        log = (tmp_path / "data-controller.log").read_text()
        assert password not in log, "the admin password is never logged"
        assert str(pw_file) in log
        keys = list((data / "token-keys").glob("*.key"))
        assert keys and all(k.stat().st_mode & 0o777 == 0o600 for k in keys)
        assert (data / "token-keys").stat().st_mode & 0o777 == 0o700
        assert (data / "pki" / "ca.key").stat().st_mode & 0o777 == 0o600
    finally:
        assert proc.stop(signal.SIGINT) == 0
