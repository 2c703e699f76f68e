"""The router and floating IP races on PostgreSQL, with two controllers on
one database: row locks and unique keys decide, not SQLite's single writer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import ControllerProc, start_control_plane, two_tenants
from tests.test_routers import (
    make_external,
    race_delete_router_and_add_interface,
    race_last_floating_ip,
    race_one_floating_ip_two_ports,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def two_controllers(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ControllerProc]]:  # type: ignore[no-untyped-def]
    yield from start_control_plane(postgres.create_database("kumo_routers"), tmp_path_factory.mktemp("pgrt"))


def test_races_on_two_controllers(two_controllers: list[ControllerProc]) -> None:
    c0, c1 = two_controllers
    admin = c0.login()
    w = two_tenants(c0, admin, "pgrt")
    alice2 = c1.login("pgrt-alice", "password-123")
    bob2 = c1.login("pgrt-bob", "password-123")
    race_last_floating_ip(w["alice"], bob2, admin, w["a"].id, "203.0.113.0/29")
    ext = make_external(admin, "pgrt-ext", "192.0.2.0/24")
    race_one_floating_ip_two_ports(w["alice"], alice2, ext.id, "pgrace", "10.50.0.0/24")
    race_delete_router_and_add_interface(w["alice"], alice2, "pgrace-del", 60)
