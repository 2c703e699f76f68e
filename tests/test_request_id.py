"""request_id on every create the controller answers alone (creates that
need nodes are in test_compute_fake.py and test_volumes.py): a retry returns
what the first one made and makes nothing more, also when identical requests
race; the same request_id with another payload is INVALID_ARGUMENT
REQUEST_ID_REUSED; keys are scoped to the project (the user for keypairs),
so another project's same request_id is its own; creates whose answer holds a
secret never kept (join tokens, server-made keypairs) answer a replay with
ALREADY_EXISTS SECRET_SHOWN_ONCE naming what the first one made."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import compute_pb2_grpc
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import network_pb2 as npb
from kumo.v1 import node_pb2 as nodepb
from tests.harness import Client, ControllerProc, error_reason, race, rpc_error, two_tenants
from tests.rpcs import all_rpcs

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHGp3pXy3iA2Uqg7Ib8kYcT3kYDt8r0BRLkIUcm+Cq7y me@host"


def compute(client: Client) -> Any:
    return client.stub(compute_pb2_grpc.ComputeServiceStub)


def error_metadata(exc: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return dict(info.metadata)
    return {}


@pytest.fixture(scope="module")
def world(controller: ControllerProc, admin: Client) -> dict[str, Any]:
    return make_world(controller, admin)


@pytest.fixture(scope="module")
def pg_world(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The same world on a controller whose database is PostgreSQL."""
    data = tmp_path_factory.mktemp("pgrq") / "data"
    data.mkdir()
    proc = ControllerProc(data, extra_args=["--database-url", postgres.create_database("kumo_rq")]).start()
    try:
        yield make_world(proc, proc.login())
    finally:
        proc.stop()


def make_world(controller: ControllerProc, admin: Client) -> dict[str, Any]:
    w = two_tenants(controller, admin, "rq")
    w["admin"] = admin
    n = w["alice"].networks.CreateNetwork(npb.CreateNetworkRequest(network=npb.Network(name="rq-net")))
    w["network"] = n
    w["subnet"] = w["alice"].networks.CreateSubnet(
        npb.CreateSubnetRequest(subnet=npb.Subnet(name="rq-sub", network_id=n.id, cidr="10.76.0.0/16"))
    )
    w["group"] = w["alice"].networks.CreateSecurityGroup(
        npb.CreateSecurityGroupRequest(security_group=npb.SecurityGroup(name="rq-sg"))
    )
    w["seq"] = itertools.count(1)
    w["per_tag"] = {}
    return w


def once(w: dict[str, Any], tag: str) -> int:
    """A small number of its own for each tag (ports, CIDRs)."""
    return w["per_tag"].setdefault(tag, next(w["seq"]))


def user_for(w: dict[str, Any], tag: str) -> str:
    key = f"user-{tag}"
    if key not in w["per_tag"]:
        u = w["admin"].identity.CreateUser(
            idpb.CreateUserRequest(user=idpb.User(name=f"rq-u-{tag}"), password="password-123")
        )
        w["per_tag"][key] = u.id
    return w["per_tag"][key]


@dataclass(frozen=True)
class Case:
    """One create RPC: who calls it, its request for a tag (different tags,
    different payloads), how many of the kind the caller sees, and the id of
    what a response made."""

    name: str
    who: str
    call: Callable[[Client, Message], Any]
    request: Callable[[dict[str, Any], str], Message]
    count: Callable[[Client, dict[str, Any]], int]
    id_of: Callable[[Any], str] = lambda r: r.id
    # The same request from another project makes its own (keys are per project).
    per_project: bool = False


CASES = [
    Case(
        "project",
        "admin",
        lambda c, r: c.identity.CreateProject(r),
        lambda w, t: idpb.CreateProjectRequest(project=idpb.Project(name=f"rq-p-{t}")),
        lambda c, w: len(c.identity.ListProjects(idpb.ListProjectsRequest(page_size=1000)).projects),
    ),
    Case(
        "user",
        "admin",
        lambda c, r: c.identity.CreateUser(r),
        lambda w, t: idpb.CreateUserRequest(user=idpb.User(name=f"rq-user-{t}"), password="password-123"),
        lambda c, w: len(c.identity.ListUsers(idpb.ListUsersRequest(page_size=1000)).users),
    ),
    Case(
        "role assignment",
        "admin",
        lambda c, r: c.identity.CreateRoleAssignment(r),
        lambda w, t: idpb.CreateRoleAssignmentRequest(
            user_id=user_for(w, t), project_id=w["a"].id, role=idpb.ROLE_READER
        ),
        lambda c, w: len(
            c.identity.ListRoleAssignments(
                idpb.ListRoleAssignmentsRequest(project_id=w["a"].id, page_size=1000)
            ).role_assignments
        ),
        id_of=lambda r: f"{r.user_id}/{r.project_id}/{r.role}",
    ),
    Case(
        "flavor",
        "admin",
        lambda c, r: compute(c).CreateFlavor(r),
        lambda w, t: cpb.CreateFlavorRequest(flavor=cpb.Flavor(name=f"rq-f-{t}", vcpus=1, ram_mb=64)),
        lambda c, w: len(compute(c).ListFlavors(cpb.ListFlavorsRequest(page_size=1000)).flavors),
    ),
    Case(
        "keypair",
        "alice",
        lambda c, r: compute(c).CreateKeypair(r),
        lambda w, t: cpb.CreateKeypairRequest(keypair=cpb.Keypair(name=f"rq-k-{t}", public_key=PUBLIC_KEY)),
        lambda c, w: len(compute(c).ListKeypairs(cpb.ListKeypairsRequest(page_size=1000)).keypairs),
        per_project=True,  # per user, and alice and bob are two users
    ),
    Case(
        "server group",
        "alice",
        lambda c, r: compute(c).CreateServerGroup(r),
        lambda w, t: cpb.CreateServerGroupRequest(
            server_group=cpb.ServerGroup(name=f"rq-g-{t}", policy=cpb.SERVER_GROUP_POLICY_AFFINITY)
        ),
        lambda c, w: len(
            compute(c).ListServerGroups(cpb.ListServerGroupsRequest(page_size=1000)).server_groups
        ),
        per_project=True,
    ),
    Case(
        "image",
        "alice",
        lambda c, r: c.images.CreateImage(r),
        lambda w, t: ipb.CreateImageRequest(
            image=ipb.Image(name=f"rq-i-{t}", disk_format=ipb.DISK_FORMAT_RAW)
        ),
        lambda c, w: len(c.images.ListImages(ipb.ListImagesRequest(page_size=1000)).images),
        per_project=True,
    ),
    Case(
        "network",
        "alice",
        lambda c, r: c.networks.CreateNetwork(r),
        lambda w, t: npb.CreateNetworkRequest(network=npb.Network(name=f"rq-n-{t}")),
        lambda c, w: len(c.networks.ListNetworks(npb.ListNetworksRequest(page_size=1000)).networks),
        per_project=True,
    ),
    Case(
        "subnet",
        "alice",
        lambda c, r: c.networks.CreateSubnet(r),
        lambda w, t: npb.CreateSubnetRequest(
            subnet=npb.Subnet(
                name=f"rq-s-{t}", network_id=w["network"].id, cidr=f"10.{100 + once(w, t)}.0.0/24"
            )
        ),
        lambda c, w: len(
            c.networks.ListSubnets(npb.ListSubnetsRequest(network_id=w["network"].id, page_size=1000)).subnets
        ),
    ),
    Case(
        "port",
        "alice",
        lambda c, r: c.networks.CreatePort(r),
        lambda w, t: npb.CreatePortRequest(port=npb.Port(name=f"rq-port-{t}", network_id=w["network"].id)),
        lambda c, w: len(
            c.networks.ListPorts(npb.ListPortsRequest(network_id=w["network"].id, page_size=1000)).ports
        ),
    ),
    Case(
        "security group",
        "alice",
        lambda c, r: c.networks.CreateSecurityGroup(r),
        lambda w, t: npb.CreateSecurityGroupRequest(security_group=npb.SecurityGroup(name=f"rq-sg-{t}")),
        lambda c, w: len(
            c.networks.ListSecurityGroups(npb.ListSecurityGroupsRequest(page_size=1000)).security_groups
        ),
        per_project=True,
    ),
    Case(
        "security group rule",
        "alice",
        lambda c, r: c.networks.CreateSecurityGroupRule(r),
        lambda w, t: npb.CreateSecurityGroupRuleRequest(
            rule=npb.SecurityGroupRule(
                security_group_id=w["group"].id,
                direction=npb.SECURITY_GROUP_RULE_DIRECTION_INGRESS,
                protocol="tcp",
                port_range_min=1000 + once(w, t),
                port_range_max=1000 + once(w, t),
            )
        ),
        lambda c, w: len(c.networks.GetSecurityGroup(npb.GetSecurityGroupRequest(id=w["group"].id)).rules),
    ),
]
IDS = [c.name for c in CASES]


def with_id(request: Message, request_id: str) -> Message:
    out = type(request)()
    out.CopyFrom(request)
    out.request_id = request_id  # type: ignore[attr-defined]
    return out


def test_every_public_create_takes_a_request_id() -> None:
    """From the descriptors, so a new Create RPC cannot forget it."""
    creates = [r for r in all_rpcs() if r.path.rsplit("/", 1)[1].startswith("Create")]
    assert len(creates) >= 17
    missing = [r.path for r in creates if "request_id" not in r.request_cls.DESCRIPTOR.fields_by_name]
    assert missing == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_retry_returns_the_first_and_makes_one(world: dict[str, Any], case: Case) -> None:
    client = world[case.who]
    tag = uuid.uuid4().hex[:8]
    rid = f"retry-{tag}"
    before = case.count(client, world)
    first = case.call(client, with_id(case.request(world, tag), rid))
    again = case.call(client, with_id(case.request(world, tag), rid))
    assert case.id_of(again) == case.id_of(first)
    assert case.count(client, world) == before + 1


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_same_request_id_other_payload_is_refused(world: dict[str, Any], case: Case) -> None:
    check_reuse_refused(world, case)


def check_reuse_refused(world: dict[str, Any], case: Case) -> None:
    client = world[case.who]
    tag = uuid.uuid4().hex[:8]
    rid = f"reuse-{tag}"
    case.call(client, with_id(case.request(world, tag), rid))
    before = case.count(client, world)
    err = rpc_error(case.call, client, with_id(case.request(world, tag + "x"), rid))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(err) == "REQUEST_ID_REUSED"
    assert "request_id" in (err.details() or "")
    assert case.count(client, world) == before
    # No request_id: the same payload is a plain create again (the key only binds with an id).
    case.call(client, case.request(world, tag + "x"))
    assert case.count(client, world) == before + 1


@pytest.mark.parametrize("case", [c for c in CASES if c.per_project], ids=lambda c: c.name)
def test_same_request_id_in_another_project_is_its_own(world: dict[str, Any], case: Case) -> None:
    tag = uuid.uuid4().hex[:8]
    rid = f"cross-{tag}"
    mine = case.call(world["alice"], with_id(case.request(world, tag), rid))
    before = case.count(world["bob"], world)
    theirs = case.call(world["bob"], with_id(case.request(world, tag), rid))
    assert case.id_of(theirs) != case.id_of(mine)
    assert case.count(world["bob"], world) == before + 1


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_racing_identical_creates_make_one(world: dict[str, Any], case: Case) -> None:
    check_race_makes_one(world, case)


PG_CASES = [
    c for c in CASES if c.name in ("image", "keypair", "port", "security group rule", "role assignment")
]


@pytest.mark.postgres
@pytest.mark.parametrize("case", PG_CASES, ids=lambda c: c.name)
def test_request_id_on_postgres(pg_world: dict[str, Any], case: Case) -> None:
    """Races there are real concurrent transactions (row locks, not one writer)."""
    check_race_makes_one(pg_world, case)
    check_reuse_refused(pg_world, case)


def check_race_makes_one(world: dict[str, Any], case: Case) -> None:
    client = world[case.who]
    tag = uuid.uuid4().hex[:8]
    request = with_id(case.request(world, tag), f"race-{tag}")
    before = case.count(client, world)
    made: list[str] = []
    failed: list[BaseException] = []
    lock = threading.Lock()

    def create() -> None:
        try:
            out = case.id_of(case.call(client, request))
        except grpc.RpcError as exc:  # recorded, so the assertion names it
            with lock:
                failed.append(exc)
            return
        with lock:
            made.append(out)

    race(create, [()] * 4)
    assert failed == []
    assert len(made) == 4 and len(set(made)) == 1
    assert case.count(client, world) == before + 1


def test_keypairs_are_keyed_per_user_not_per_project(
    controller: ControllerProc, world: dict[str, Any]
) -> None:
    """Keypairs belong to users: the same user in another project replays its own create."""
    admin = world["admin"]
    admin.identity.CreateRoleAssignment(
        idpb.CreateRoleAssignmentRequest(
            user_id=world["alice"].identity.GetCurrentIdentity(idpb.GetCurrentIdentityRequest()).user_id,
            project_id=world["b"].id,
            role=idpb.ROLE_MEMBER,
        )
    )
    alice_in_b = controller.login("rq-alice", "password-123", project="rq-b")
    req = cpb.CreateKeypairRequest(
        keypair=cpb.Keypair(name="rq-k-user", public_key=PUBLIC_KEY), request_id="k-1"
    )
    first = compute(world["alice"]).CreateKeypair(req)
    assert compute(alice_in_b).CreateKeypair(req).id == first.id


def test_server_made_keypair_replay_names_it_without_the_secret(world: dict[str, Any]) -> None:
    c = compute(world["alice"])
    before = len(c.ListKeypairs(cpb.ListKeypairsRequest(page_size=1000)).keypairs)
    req = cpb.CreateKeypairRequest(keypair=cpb.Keypair(name="rq-made"), request_id="made-1")
    first = c.CreateKeypair(req)
    assert first.private_key
    err = rpc_error(c.CreateKeypair, req)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and error_reason(err) == "SECRET_SHOWN_ONCE"
    assert error_metadata(err)["id"] == first.id
    assert first.id in (err.details() or "")
    assert len(c.ListKeypairs(cpb.ListKeypairsRequest(page_size=1000)).keypairs) == before + 1
    other = rpc_error(
        c.CreateKeypair, cpb.CreateKeypairRequest(keypair=cpb.Keypair(name="rq-made2"), request_id="made-1")
    )
    assert error_reason(other) == "REQUEST_ID_REUSED"


def join_tokens(admin: Client) -> list[nodepb.JoinToken]:
    return list(admin.nodes.ListJoinTokens(nodepb.ListJoinTokensRequest(page_size=1000)).join_tokens)


def test_join_token_replay_names_it_without_the_secret(world: dict[str, Any]) -> None:
    admin = world["admin"]
    before = len(join_tokens(admin))
    req = nodepb.CreateJoinTokenRequest(
        join_token=nodepb.JoinToken(description="rq", max_uses=2), request_id="jt-1"
    )
    first = admin.nodes.CreateJoinToken(req)
    assert first.token
    err = rpc_error(admin.nodes.CreateJoinToken, req)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and error_reason(err) == "SECRET_SHOWN_ONCE"
    assert error_metadata(err)["id"] == first.join_token.id
    assert len(join_tokens(admin)) == before + 1
    other = nodepb.CreateJoinTokenRequest(
        join_token=nodepb.JoinToken(description="rq", max_uses=3), request_id="jt-1"
    )
    assert error_reason(rpc_error(admin.nodes.CreateJoinToken, other)) == "REQUEST_ID_REUSED"


def test_racing_join_tokens_make_one(world: dict[str, Any]) -> None:
    admin = world["admin"]
    before = len(join_tokens(admin))
    req = nodepb.CreateJoinTokenRequest(
        join_token=nodepb.JoinToken(description="rq-race"), request_id="jt-race"
    )
    answers: list[str] = []
    lock = threading.Lock()

    def create() -> None:
        try:
            out = "made:" + admin.nodes.CreateJoinToken(req).join_token.id
        except grpc.RpcError as exc:
            out = f"{exc.code().name}:{error_reason(exc)}:{error_metadata(exc).get('id')}"
        with lock:
            answers.append(out)

    race(create, [()] * 4)
    made = [a for a in answers if a.startswith("made:")]
    assert len(made) == 1, answers
    token_id = made[0].removeprefix("made:")
    assert sorted(answers) == sorted([made[0]] + [f"ALREADY_EXISTS:SECRET_SHOWN_ONCE:{token_id}"] * 3)
    assert len(join_tokens(admin)) == before + 1


def test_page_size_over_the_maximum_is_served_as_the_maximum(world: dict[str, Any]) -> None:
    """AIP-158: clamp, not refuse; negative stays INVALID_ARGUMENT."""
    ident = world["admin"].identity
    everything = ident.ListProjects(idpb.ListProjectsRequest(page_size=1000)).projects
    assert list(ident.ListProjects(idpb.ListProjectsRequest(page_size=2**31 - 1)).projects) == list(
        everything
    )
    bad = rpc_error(ident.ListProjects, idpb.ListProjectsRequest(page_size=-1))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
