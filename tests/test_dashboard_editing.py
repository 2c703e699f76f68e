"""The dashboard's editing forms over real HTTPS against a real controller:
subnets, routers (gateway set/clear, interfaces), ports and their security
groups, floating IP association, server groups (and choosing one at
launch), volume types (and picking one for a volume); and their negative
cases: a forged POST without CSRF, a reader, another project's id (the same
one-line answer as a missing one)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import network_pb2 as npb
from kumo.v1 import volume_pb2 as vpb
from tests.dashboardutil import controller_and_dashboard, login, one_line_error
from tests.harness import two_tenants
from tests.test_routers import make_external

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, dashboard_key: bytes) -> Iterator[dict]:
    with controller_and_dashboard(tmp_path_factory.mktemp("dashed"), dashboard_key) as (ctl, dash):
        admin = ctl.login()
        ext = make_external(admin, "ed-public", "203.0.113.0/24")
        yield {"ctl": ctl, "dash": dash, "admin": admin, "ext": ext, **two_tenants(ctl, admin, "ed")}


def named(items: object, name: str) -> object:
    return next(x for x in items if x.name == name)  # type: ignore[attr-defined]


def ok(resp: object) -> None:
    assert resp.status_code == 303, one_line_error(resp.text)  # type: ignore[attr-defined]


def test_subnets_routers_ports_and_floating_ips(cloud: dict) -> None:
    alice = cloud["alice"].networks
    client, token = login(cloud["dash"], cloud["ctl"], "ed-alice", "password-123")
    ok(client.post("/networks", data={"csrf_token": token, "name": "app"}))
    net = named(alice.ListNetworks(npb.ListNetworksRequest()).networks, "app")
    ok(
        client.post(
            "/subnets",
            data={
                "csrf_token": token,
                "network": net.id,
                "name": "app-v4",
                "cidr": "10.40.0.0/24",
                "dns_servers": "10.40.0.53, 9.9.9.9",
            },
        )
    )
    subnet = named(alice.ListSubnets(npb.ListSubnetsRequest()).subnets, "app-v4")
    assert subnet.cidr == "10.40.0.0/24" and list(subnet.dns_servers) == ["10.40.0.53", "9.9.9.9"]
    overlap = client.post(
        "/subnets",
        data={"csrf_token": token, "network": net.id, "name": "again", "cidr": "10.40.0.0/25"},
    )
    line = one_line_error(overlap.text)
    assert overlap.status_code in (400, 409) and line.endswith("]") and "\n" not in line, line

    ok(client.post("/routers", data={"csrf_token": token, "name": "edge", "gateway_network": ""}))
    router = named(alice.ListRouters(npb.ListRoutersRequest()).routers, "edge")
    assert not router.external_gateway.network_id
    ok(client.post(f"/routers/{router.id}/gateway", data={"csrf_token": token, "network": cloud["ext"].id}))
    ok(client.post(f"/routers/{router.id}/interfaces", data={"csrf_token": token, "subnet": subnet.id}))
    router = alice.GetRouter(npb.GetRouterRequest(id=router.id))
    assert router.external_gateway.network_id == cloud["ext"].id and router.external_gateway.ip_address
    assert [i.subnet_id for i in router.interfaces] == [subnet.id]
    page = client.get("/networks").text
    assert router.external_gateway.ip_address in page and "10.40.0.1" in page

    groups = alice.ListSecurityGroups(npb.ListSecurityGroupsRequest()).security_groups
    ok(client.post("/security-groups", data={"csrf_token": token, "name": "db"}))
    db = named(alice.ListSecurityGroups(npb.ListSecurityGroupsRequest()).security_groups, "db")
    ok(
        client.post(
            "/ports", data={"csrf_token": token, "network": net.id, "name": "vip", "security_group": db.id}
        )
    )
    port = named(alice.ListPorts(npb.ListPortsRequest()).ports, "vip")
    assert list(port.security_group_ids) == [db.id] and port.fixed_ips[0].ip_address.startswith("10.40.0.")
    both = [db.id, groups[0].id]
    ok(client.post(f"/ports/{port.id}/security-groups", data={"csrf_token": token, "security_group": both}))
    assert set(alice.GetPort(npb.GetPortRequest(id=port.id)).security_group_ids) == set(both)

    ok(client.post("/floating-ips", data={"csrf_token": token, "network": cloud["ext"].id}))
    (fip,) = alice.ListFloatingIps(npb.ListFloatingIpsRequest()).floating_ips
    ok(client.post(f"/floating-ips/{fip.id}/port", data={"csrf_token": token, "port": port.id}))
    fip = alice.GetFloatingIp(npb.GetFloatingIpRequest(id=fip.id))
    assert fip.port_id == port.id and fip.fixed_ip_address == port.fixed_ips[0].ip_address
    ok(client.post(f"/floating-ips/{fip.id}/port", data={"csrf_token": token, "port": ""}))
    assert not alice.GetFloatingIp(npb.GetFloatingIpRequest(id=fip.id)).port_id

    # Taking it all down again, in the order the API wants.
    ok(client.post(f"/floating-ips/{fip.id}/delete", data={"csrf_token": token}))
    ok(client.post(f"/ports/{port.id}/delete", data={"csrf_token": token}))
    busy = client.post(f"/subnets/{subnet.id}/delete", data={"csrf_token": token})
    assert busy.status_code == 409 and one_line_error(busy.text).endswith("[FAILED_PRECONDITION]")
    ok(
        client.post(
            f"/routers/{router.id}/interfaces/remove", data={"csrf_token": token, "subnet": subnet.id}
        )
    )
    ok(client.post(f"/routers/{router.id}/gateway", data={"csrf_token": token, "network": ""}))
    assert not alice.GetRouter(npb.GetRouterRequest(id=router.id)).external_gateway.network_id
    ok(client.post(f"/routers/{router.id}/delete", data={"csrf_token": token}))
    ok(client.post(f"/subnets/{subnet.id}/delete", data={"csrf_token": token}))
    assert not [s for s in alice.ListSubnets(npb.ListSubnetsRequest()).subnets if s.id == subnet.id]


def test_server_groups_and_volume_types(cloud: dict) -> None:
    client, token = login(cloud["dash"], cloud["ctl"], "ed-alice", "password-123")
    bad = client.post("/server-groups", data={"csrf_token": token, "name": "g", "policy": "near"})
    assert one_line_error(bad.text) == "policy: one of anti-affinity, affinity [INVALID_ARGUMENT]"
    ok(client.post("/server-groups", data={"csrf_token": token, "name": "spread", "policy": "anti-affinity"}))
    alice = cloud["alice"].compute
    group = named(alice.ListServerGroups(cpb.ListServerGroupsRequest()).server_groups, "spread")
    assert group.policy == cpb.SERVER_GROUP_POLICY_ANTI_AFFINITY
    form = client.get("/servers/new").text
    assert f'<option value="{group.id}">spread</option>' in form
    # No node: the launch names the group and the API answers (no valid host), in one line.
    launch = client.post(
        "/servers",
        data={"csrf_token": token, "name": "s1", "image": "none", "flavor": "none", "server_group": group.id},
    )
    assert one_line_error(launch.text).endswith("]")
    ok(client.post(f"/server-groups/{group.id}/delete", data={"csrf_token": token}))
    assert "spread" not in client.get("/server-groups").text

    # Volume types are the admin's; a member sees them at volume create only.
    member_page = client.get("/admin/volume-types")
    assert 'id="volume-type-form"' not in member_page.text
    refused = client.post("/admin/volume-types", data={"csrf_token": token, "name": "x", "backend": "local"})
    assert refused.status_code == 403 and one_line_error(refused.text).endswith("[PERMISSION_DENIED]")
    admin_client, admin_token = login(cloud["dash"], cloud["ctl"])
    ok(
        admin_client.post(
            "/admin/volume-types",
            data={"csrf_token": admin_token, "name": "fast", "backend": "local", "description": "ssd"},
        )
    )
    odd = admin_client.post(
        "/admin/volume-types", data={"csrf_token": admin_token, "name": "y", "backend": "tape"}
    )
    assert one_line_error(odd.text) == "backend: one of local, rbd, shared-fs [INVALID_ARGUMENT]"
    vt = named(cloud["admin"].volumes.ListVolumeTypes(vpb.ListVolumeTypesRequest()).volume_types, "fast")
    volumes = client.get("/volumes").text
    assert re.search(rf'<option value="{vt.id}">fast \(local\)</option>', volumes)
    ok(admin_client.post(f"/admin/volume-types/{vt.id}/delete", data={"csrf_token": admin_token}))
    assert 'data-name="fast"' not in admin_client.get("/admin/volume-types").text


EDIT_POSTS = [
    ("/subnets", {"network": UNKNOWN, "name": "s", "cidr": "10.1.0.0/24"}),
    ("/routers", {"name": "r"}),
    ("/ports", {"network": UNKNOWN}),
    ("/server-groups", {"name": "g", "policy": "affinity"}),
    (f"/routers/{UNKNOWN}/gateway", {"network": ""}),
    (f"/routers/{UNKNOWN}/interfaces", {"subnet": UNKNOWN}),
    (f"/ports/{UNKNOWN}/security-groups", {}),
    (f"/floating-ips/{UNKNOWN}/port", {"port": ""}),
    (f"/subnets/{UNKNOWN}/delete", {}),
    (f"/server-groups/{UNKNOWN}/delete", {}),
]


def test_forged_and_reader_posts_are_refused(cloud: dict) -> None:
    reader, token = login(cloud["dash"], cloud["ctl"], "ed-reader", "password-123")
    for path in ("/networks", "/server-groups", "/volumes", "/servers/new"):
        posts = re.findall(r'<form method="post" action="([^"]+)"', reader.get(path).text)
        assert set(posts) <= {"/logout"}, (path, posts)
    for url, fields in EDIT_POSTS:
        no_csrf = reader.post(url, data=fields)
        assert no_csrf.status_code == 403 and "CSRF" in one_line_error(no_csrf.text), url
        resp = reader.post(url, data={**fields, "csrf_token": token})
        line = one_line_error(resp.text)
        assert resp.status_code in (403, 404), (url, line)
        assert line.endswith(("[PERMISSION_DENIED]", "[NOT_FOUND]")) and "Traceback" not in resp.text


def test_another_projects_ids_are_the_same_as_missing_ones(cloud: dict) -> None:
    bob = cloud["bob"]
    net = bob.networks.CreateNetwork(npb.CreateNetworkRequest(network=npb.Network(name="bobnet")))
    sub = bob.networks.CreateSubnet(
        npb.CreateSubnetRequest(subnet=npb.Subnet(name="bobsub", network_id=net.id, cidr="10.50.0.0/24"))
    )
    router = bob.networks.CreateRouter(npb.CreateRouterRequest(router=npb.Router(name="bobr")))
    port = bob.networks.CreatePort(npb.CreatePortRequest(port=npb.Port(network_id=net.id)))
    group = bob.compute.CreateServerGroup(
        cpb.CreateServerGroupRequest(
            server_group=cpb.ServerGroup(name="bobg", policy=cpb.SERVER_GROUP_POLICY_AFFINITY)
        )
    )
    client, token = login(cloud["dash"], cloud["ctl"], "ed-alice", "password-123")
    pairs = [
        (f"/subnets/{sub.id}/delete", f"/subnets/{UNKNOWN}/delete", {}),
        (f"/routers/{router.id}/delete", f"/routers/{UNKNOWN}/delete", {}),
        (f"/routers/{router.id}/gateway", f"/routers/{UNKNOWN}/gateway", {"network": ""}),
        (f"/ports/{port.id}/delete", f"/ports/{UNKNOWN}/delete", {}),
        (f"/ports/{port.id}/security-groups", f"/ports/{UNKNOWN}/security-groups", {}),
        (f"/server-groups/{group.id}/delete", f"/server-groups/{UNKNOWN}/delete", {}),
    ]
    for theirs, missing, fields in pairs:
        a = client.post(theirs, data={**fields, "csrf_token": token})
        b = client.post(missing, data={**fields, "csrf_token": token})
        assert a.status_code == b.status_code == 404, (theirs, one_line_error(a.text))
        assert one_line_error(a.text).replace(theirs.split("/")[2], UNKNOWN) == one_line_error(b.text)
    # Bob's things are all still there.
    assert bob.networks.GetSubnet(npb.GetSubnetRequest(id=sub.id)).id == sub.id
    assert bob.networks.GetPort(npb.GetPortRequest(id=port.id)).id == port.id
    assert bob.compute.GetServerGroup(cpb.GetServerGroupRequest(id=group.id)).id == group.id


def names_on(html: str) -> list[str]:
    return re.findall(r'<tr data-name="([^"]+)"><td>', html)


def link(html: str, cls: str) -> str:
    m = re.search(rf'<a href="([^"]+)" class="{cls}"', html)
    return m.group(1).replace("&amp;", "&") if m else ""


def test_lists_page_through_the_apis_page_tokens(cloud: dict) -> None:
    alice = cloud["alice"].compute
    made = [f"pk-{i}" for i in range(7)]
    for name in made:
        alice.CreateKeypair(cpb.CreateKeypairRequest(keypair=cpb.Keypair(name=name)))
    client, _ = login(cloud["dash"], cloud["ctl"], "ed-alice", "password-123")
    first = client.get("/keypairs?size=3").text
    pages = [names_on(first)]
    assert not link(first, "prev-page") and "page 1" in first
    html = first
    while nxt := link(html, "next-page"):
        html = client.get(nxt).text
        pages.append(names_on(html))
    assert [len(p) for p in pages] == [3, 3, 1] and sorted(n for p in pages for n in p) == sorted(made), pages
    assert "page 3" in html
    back = client.get(link(html, "prev-page")).text
    assert names_on(back) == pages[1] and "page 2" in back
    start = client.get(link(back, "prev-page")).text
    assert names_on(start) == pages[0] and not link(start, "prev-page")
    bad = client.get("/keypairs?page=bm90LWEtdG9rZW4")
    assert bad.status_code == 400 and one_line_error(bad.text).endswith("[INVALID_ARGUMENT]")
    # Filters ride along the links (the event log's resource type).
    admin, _ = login(cloud["dash"], cloud["ctl"])
    events = admin.get("/admin/events?type=keypair&size=2").text
    assert "type=keypair" in link(events, "next-page")
    # The live parts poll the page they are on.
    for path, body in (("/volumes", 'id="volume-rows"'), ("/admin/nodes", 'id="node-rows"')):
        rows = admin.get(f"{path}/rows?size=5", headers={"HX-Request": "true"})
        assert rows.status_code == 200 and rows.text.lstrip().startswith(f"<tbody {body}"), path
        assert f'hx-get="{path}/rows?size=5"' in rows.text
    for kp in alice.ListKeypairs(cpb.ListKeypairsRequest()).keypairs:
        alice.DeleteKeypair(cpb.DeleteKeypairRequest(id=kp.id))
