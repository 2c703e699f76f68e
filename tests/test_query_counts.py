"""One List page costs the same number of SQL statements whatever its size.

Every List RPC of the public API (found from the service descriptors, so a new
one fails here until it has a request below) is called with page_size 2 and
10 against an in-process controller holding a dozen resources of each kind,
each with the related rows a converter could read one by one: flavor access,
the networks of subnets, server-group members, NICs, attached volumes, rules,
image properties, role-assignment names. A converter that queries per row
makes the page of 10 cost more than the page of 2."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import grpc
import pytest
from google.protobuf import message_factory

from controller.config import load_config
from controller.db import controllers
from controller.server import Controller
from kumo import keys
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import (
    compute_pb2_grpc,
    identity_pb2_grpc,
    network_pb2_grpc,
    node_agent_pb2_grpc,
    node_pb2_grpc,
    volume_pb2_grpc,
)
from kumo.v1 import control_plane_pb2 as ctlpb
from kumo.v1 import event_pb2 as evpb
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import network_pb2 as npb
from kumo.v1 import node_agent_pb2 as agentpb
from kumo.v1 import node_pb2 as nodepb
from kumo.v1 import volume_pb2 as vpb
from tests.harness import Client, make_user
from tests.nodeutil import NodedProc, make_token, run_noded, wait_for
from tests.rpcs import all_rpcs
from tests.test_images import make_image, qcow2_bytes

N = 12  # of each kind: more than the larger page, so both pages are full
SMALL, LARGE = 2, 10
WAIT = 120.0  # seconds for the fake node's work, generous for a loaded machine

# Each List RPC's request (page_size is set by the test). Names are the RPC's
# full path; a List RPC missing here fails test_every_list_rpc_has_a_request.
REQUESTS: dict[str, Callable[[], Any]] = {
    "/kumo.v1.IdentityService/ListProjects": idpb.ListProjectsRequest,
    "/kumo.v1.IdentityService/ListUsers": idpb.ListUsersRequest,
    "/kumo.v1.IdentityService/ListRoleAssignments": idpb.ListRoleAssignmentsRequest,
    "/kumo.v1.ImageService/ListImages": ipb.ListImagesRequest,
    "/kumo.v1.ComputeService/ListFlavors": cpb.ListFlavorsRequest,
    "/kumo.v1.ComputeService/ListKeypairs": cpb.ListKeypairsRequest,
    "/kumo.v1.ComputeService/ListServerGroups": cpb.ListServerGroupsRequest,
    "/kumo.v1.ComputeService/ListInstances": cpb.ListInstancesRequest,
    "/kumo.v1.ComputeService/ListLiveMigrations": cpb.ListLiveMigrationsRequest,
    "/kumo.v1.NetworkService/ListNetworks": npb.ListNetworksRequest,
    "/kumo.v1.NetworkService/ListSubnets": npb.ListSubnetsRequest,
    "/kumo.v1.NetworkService/ListPorts": npb.ListPortsRequest,
    "/kumo.v1.NetworkService/ListSecurityGroups": npb.ListSecurityGroupsRequest,
    "/kumo.v1.NetworkService/ListRouters": npb.ListRoutersRequest,
    "/kumo.v1.NetworkService/ListFloatingIps": npb.ListFloatingIpsRequest,
    "/kumo.v1.ControlPlaneService/ListControllers": ctlpb.ListControllersRequest,
    "/kumo.v1.NodeService/ListNodes": nodepb.ListNodesRequest,
    "/kumo.v1.NodeService/ListJoinTokens": nodepb.ListJoinTokensRequest,
    "/kumo.v1.VolumeService/ListVolumes": vpb.ListVolumesRequest,
    "/kumo.v1.VolumeService/ListVolumeTypes": vpb.ListVolumeTypesRequest,
    "/kumo.v1.VolumeService/ListVolumeSnapshots": vpb.ListVolumeSnapshotsRequest,
    "/kumo.v1.EventService/ListEvents": evpb.ListEventsRequest,  # the creates above made plenty
}


def list_rpcs() -> dict[str, Any]:
    """Every List RPC: full path -> its method descriptor."""
    return {r.path: r.method for r in all_rpcs() if r.path.rsplit("/", 1)[1].startswith("List")}


def test_every_list_rpc_has_a_request() -> None:
    missing = sorted(set(list_rpcs()) - set(REQUESTS))
    assert not missing, f"add a request (and resources to list) for: {', '.join(missing)}"
    assert not set(REQUESTS) - set(list_rpcs()), "REQUESTS names RPCs that no longer exist"


class InProcess:
    """What tests.nodeutil.enroll needs of a controller: a channel to its public port."""

    def __init__(self, endpoint: str, ca_pem: bytes) -> None:
        self.endpoint = endpoint
        self.ca_pem = ca_pem

    def channel(self) -> grpc.Channel:
        return grpc.secure_channel(self.endpoint, grpc.ssl_channel_credentials(self.ca_pem))


def enroll_node(ctl: InProcess, token: str, name: str) -> None:
    """A node that enrolled and never opened a session (it lists as DOWN)."""
    key = keys.new_key()
    node_agent_pb2_grpc.NodeAgentServiceStub(ctl.channel()).Enroll(
        agentpb.EnrollRequest(token=token, csr_pem=keys.make_csr(key, name).decode(), name=name), timeout=30
    )


def start_node(base: Path, ctl: InProcess, admin: Client) -> NodedProc:
    """The one fake node that runs the instances and holds the volumes (so
    attachments and snapshots are real)."""
    state = base / "node"
    joined = run_noded(
        ["join", ctl.endpoint, make_token(admin), "--name", "q-live", "--state-dir", str(state)]
    )
    assert joined.returncode == 0, joined.stderr
    fake = ["--driver", "fake", "--fake-vcpus", "8", "--fake-memory-mb", "16384", "--fake-disk-gb", "200"]
    return NodedProc(state, fake).start()


def populate(base: Path, ctl: InProcess, admin: Client) -> None:
    """N resources of each kind (the fake node is up)."""
    compute = admin.stub(compute_pb2_grpc.ComputeServiceStub)
    net = admin.stub(network_pb2_grpc.NetworkServiceStub)
    vol = admin.stub(volume_pb2_grpc.VolumeServiceStub)
    nodes = admin.stub(node_pb2_grpc.NodeServiceStub)

    # Controllers of a control plane (one runs; the others stand for controllers
    # that joined the same database: their rows are all ListControllers reads).
    for i in range(N):
        controllers.upsert_controller(
            {
                "id": str(uuid.uuid4()),
                "hostname": f"q-ctl{i}",
                "endpoint": f"10.0.0.{i}:7443",
                "node_endpoint": f"10.0.0.{i}:7444",
                "version": "0.1.0",
                "start_time": time.time(),
                "last_seen_time": time.time(),
            }
        )
    token = make_token(admin, uses=N)
    for i in range(N):
        enroll_node(ctl, token, f"q-node{i}")
    for i in range(N):
        make_token(admin, description=f"q-token{i}")
    wait_for(
        lambda: any(
            n.state == nodepb.NODE_STATE_READY
            for n in nodes.ListNodes(nodepb.ListNodesRequest(page_size=100)).nodes
        ),
        what="the fake node READY",
        timeout=WAIT,
    )

    projects = [
        admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name=f"q-p{i}")))
        for i in range(N)
    ]
    for i, p in enumerate(projects):
        make_user(admin, p.id, f"q-u{i}", idpb.ROLE_MEMBER)

    tiny = qcow2_bytes(base, "tiny.qcow2", size="64M")
    image = make_image(
        admin,
        "q-img",
        tiny,
        ipb.DISK_FORMAT_QCOW2,
        visibility=ipb.IMAGE_VISIBILITY_PUBLIC,
        properties={"os": "x"},
    )
    for i in range(N - 1):
        admin.images.CreateImage(
            ipb.CreateImageRequest(
                image=ipb.Image(name=f"q-img{i}", disk_format=ipb.DISK_FORMAT_RAW, properties={"k": str(i)})
            )
        )

    compute.CreateFlavor(
        cpb.CreateFlavorRequest(flavor=cpb.Flavor(name="q-f", vcpus=1, ram_mb=64, disk_gb=1, is_public=True))
    )
    for i in range(N - 1):
        compute.CreateFlavor(
            cpb.CreateFlavorRequest(
                flavor=cpb.Flavor(
                    name=f"q-f{i}",
                    vcpus=1,
                    ram_mb=64,
                    disk_gb=1,
                    project_ids=[projects[i].id, projects[i + 1].id],
                )
            )
        )
    for i in range(N):
        compute.CreateKeypair(cpb.CreateKeypairRequest(keypair=cpb.Keypair(name=f"q-k{i}")))

    groups, networks = [], []
    for i in range(N):
        sg = net.CreateSecurityGroup(
            npb.CreateSecurityGroupRequest(security_group=npb.SecurityGroup(name=f"q-sg{i}"))
        )
        net.CreateSecurityGroupRule(
            npb.CreateSecurityGroupRuleRequest(
                rule=npb.SecurityGroupRule(
                    security_group_id=sg.id,
                    direction=npb.SECURITY_GROUP_RULE_DIRECTION_INGRESS,
                    protocol="tcp",
                    port_range_min=22,
                    port_range_max=22,
                    remote_group_id=sg.id,
                )
            )
        )
        groups.append(sg)
        n = net.CreateNetwork(npb.CreateNetworkRequest(network=npb.Network(name=f"q-net{i}")))
        net.CreateSubnet(
            npb.CreateSubnetRequest(
                subnet=npb.Subnet(name=f"q-sub{i}", network_id=n.id, cidr=f"10.{i}.0.0/24")
            )
        )
        networks.append(n)

    instances = []
    for i in range(N):
        group = compute.CreateServerGroup(
            cpb.CreateServerGroupRequest(
                server_group=cpb.ServerGroup(name=f"q-g{i}", policy=cpb.SERVER_GROUP_POLICY_AFFINITY)
            )
        )
        instances.append(
            compute.CreateInstance(
                cpb.CreateInstanceRequest(
                    name=f"q-i{i}",
                    image=image.id,
                    flavor="q-f",
                    server_group_id=group.id,
                    networks=[cpb.NetworkRequest(network=networks[i].id)],
                    security_groups=[groups[i].id],
                )
            )
        )
    # A router per network, out to one external network; a floating IP per instance.
    ext = net.CreateNetwork(
        npb.CreateNetworkRequest(
            network=npb.Network(
                name="q-ext", external=True, network_type=npb.NETWORK_TYPE_FLAT, physical_network="q"
            )
        )
    )
    net.CreateSubnet(
        npb.CreateSubnetRequest(subnet=npb.Subnet(name="q-ext-v4", network_id=ext.id, cidr="172.30.0.0/24"))
    )
    for i in range(N):
        r = net.CreateRouter(
            npb.CreateRouterRequest(
                router=npb.Router(name=f"q-r{i}", external_gateway=npb.RouterGateway(network_id=ext.id))
            )
        )
        sub = net.GetNetwork(npb.GetNetworkRequest(id=networks[i].id)).subnet_ids[0]
        net.AddRouterInterface(npb.AddRouterInterfaceRequest(id=r.id, subnet_id=sub))
        net.CreateFloatingIp(
            npb.CreateFloatingIpRequest(
                floating_ip=npb.FloatingIp(floating_network_id=ext.id, port_id=instances[i].nics[0].port_id)
            )
        )
    for i in range(N):
        vol.CreateVolumeType(
            vpb.CreateVolumeTypeRequest(volume_type=vpb.VolumeType(name=f"q-type{i}", backend="local"))
        )
    volumes = [
        vol.CreateVolume(vpb.CreateVolumeRequest(volume=vpb.Volume(name=f"q-v{i}", size_gb=1)))
        for i in range(N)
    ]

    def is_state(get: Callable[[], Any], want: int) -> bool:
        return get().state == want

    for v in volumes:
        wait_for(
            lambda v=v: is_state(
                lambda: vol.GetVolume(vpb.GetVolumeRequest(id=v.id)), vpb.VOLUME_STATE_AVAILABLE
            ),
            what=f"volume {v.name} AVAILABLE",
            timeout=WAIT,
        )
        vol.CreateVolumeSnapshot(
            vpb.CreateVolumeSnapshotRequest(snapshot=vpb.VolumeSnapshot(name=f"q-s-{v.name}", volume_id=v.id))
        )
    for inst, v in zip(instances, volumes, strict=True):
        wait_for(
            lambda inst=inst: is_state(
                lambda: compute.GetInstance(cpb.GetInstanceRequest(id=inst.id)), cpb.INSTANCE_STATE_ACTIVE
            ),
            what=f"instance {inst.name} ACTIVE",
            timeout=WAIT,
        )
        vol.AttachVolume(vpb.AttachVolumeRequest(id=v.id, instance_id=inst.id))
    # A drain of the one node: each instance gets a FAILED live migration
    # entry (no other node to go to), and the node a drain status.
    node = nodes.GetNode(
        nodepb.GetNodeRequest(id=compute.GetInstance(cpb.GetInstanceRequest(id=instances[0].id)).node_id)
    )
    nodes.DrainNode(nodepb.DrainNodeRequest(id=node.id))
    wait_for(
        lambda: (
            nodes.GetNode(nodepb.GetNodeRequest(id=node.id)).drain.state == nodepb.NODE_DRAIN_STATE_INCOMPLETE
        ),
        what="the drain over",
        timeout=WAIT,
    )
    nodes.UndrainNode(nodepb.UndrainNodeRequest(id=node.id))


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("queries")
    cfg = load_config(
        overrides={
            "data_dir": base / "ctl",
            "listen": "127.0.0.1:0",
            "node_listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "log_format": "text",
            "node_heartbeat_seconds": 0.5,
            "instance_sync_seconds": 0.2,
            "quota_volumes": 100,
            "quota_volume_snapshots": 100,
            # Every call checks its token in the database, so each page counts
            # those statements alike (a reused check would make some calls cheaper).
            "token_check_cache_seconds": 0,
        },
        environ={},
    )
    ctl = Controller(cfg)
    ctl.start()
    try:
        proc = InProcess(f"127.0.0.1:{ctl.port}", (cfg.pki_dir / "ca.crt").read_bytes())
        password = (
            os.environ.get("KUMO_ADMIN_PASSWORD") or (cfg.data_dir / "admin-password").read_text().strip()
        )
        channel = proc.channel()
        resp = identity_pb2_grpc.IdentityServiceStub(channel).Authenticate(
            idpb.AuthenticateRequest(user="admin", password=password)
        )
        admin = Client(channel, resp.token, resp.identity)
        node = start_node(base, proc, admin)
        try:
            populate(base, proc, admin)
        finally:
            node.stop()  # what follows only reads
        yield {"ctl": ctl, "admin": admin}
    finally:
        ctl.stop()


@contextmanager
def counting(database: Any) -> Iterator[list[str]]:
    """The SQL statements that RPC worker threads (the gRPC pool's, named
    rpc_*) issue inside the block; background passes run in other threads."""
    seen: list[str] = []
    original = database.execute_sql

    def execute_sql(sql: str, *args: Any, **kw: Any) -> Any:
        if threading.current_thread().name.startswith("rpc"):
            seen.append(sql)
        return original(sql, *args, **kw)

    with mock.patch.object(database, "execute_sql", execute_sql):
        yield seen


def items_of(response: Any) -> list[Any]:
    """The page's resources: the response's one repeated field."""
    (field,) = [f for f in response.DESCRIPTOR.fields if f.is_repeated]
    return list(getattr(response, field.name))


@pytest.mark.parametrize("path", sorted(REQUESTS))
def test_list_page_costs_the_same_statements_whatever_its_size(cloud: dict[str, Any], path: str) -> None:
    method = list_rpcs()[path]
    response_cls = message_factory.GetMessageClass(method.output_type)
    admin: Client = cloud["admin"]
    call = admin.channel.unary_unary(
        path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_cls.FromString,
    )
    # A first call may do one-off work (ListSecurityGroups makes the caller's
    # project's default group): not what a page costs.
    warm = REQUESTS[path]()
    warm.page_size = SMALL
    call(warm, metadata=admin.metadata, timeout=60)
    counts, statements = {}, {}
    for size in (SMALL, LARGE):
        request = REQUESTS[path]()
        request.page_size = size
        with counting(cloud["ctl"].database) as seen:
            response = call(request, metadata=admin.metadata, timeout=60)
        items = items_of(response)
        assert len(items) == size and response.next_page_token, (
            f"{path}: expected a full page of {size} with more to come, got {len(items)}"
        )
        assert seen, "no statements seen from RPC worker threads (rpc_*): did the server rename its pool?"
        counts[size], statements[size] = len(seen), seen
        if size == SMALL:
            first_token = response.next_page_token
    # The next page (after a token) costs what the first did.
    request = REQUESTS[path]()
    request.page_size, request.page_token = SMALL, first_token
    with counting(cloud["ctl"].database) as seen:
        assert len(items_of(call(request, metadata=admin.metadata, timeout=60))) == SMALL
    assert len(seen) == counts[SMALL], f"{path}: the second page of {SMALL} costs {len(seen)} statements"
    extra = "\n".join(statements[LARGE])
    assert counts[LARGE] == counts[SMALL], (
        f"{path}: a page of {SMALL} costs {counts[SMALL]} statements, a page of {LARGE} "
        f"costs {counts[LARGE]}:\n{extra}"
    )
