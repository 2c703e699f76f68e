"""IPAM on PostgreSQL with two controllers racing on one database: the unique
keys decide, no address is handed out twice, the losers get
RESOURCE_EXHAUSTED."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from kumo.v1 import network_pb2 as pb
from tests.harness import ControllerProc, start_control_plane
from tests.test_networks import make_network, make_subnet, net, racing_ports

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def two_controllers(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ControllerProc]]:  # type: ignore[no-untyped-def]
    yield from start_control_plane(
        postgres.create_database("kumo_networks"), tmp_path_factory.mktemp("pgnet")
    )


def test_racing_port_creates_on_two_controllers(two_controllers: list[ControllerProc]) -> None:
    admins = [c.login() for c in two_controllers]
    n = make_network(admins[0], "pg-race")
    make_subnet(admins[0], n.id, "pg-tiny", "10.61.0.0/29")  # 5 usable addresses
    clients = [two_controllers[i % 2].login() for i in range(12)]
    ips, losers = racing_ports(clients, n.id)
    assert len(ips) == 5 and len(set(ips)) == 5, (ips, losers)
    assert losers == [(grpc.StatusCode.RESOURCE_EXHAUSTED, "IP_POOL_EXHAUSTED")] * 7
    ports = net(admins[1]).ListPorts(pb.ListPortsRequest(network_id=n.id)).ports
    assert sorted(p.fixed_ips[0].ip_address for p in ports) == sorted(ips)
    assert len({p.mac_address for p in ports}) == 5
    net(admins[1]).DeleteNetwork(pb.DeleteNetworkRequest(id=n.id))
