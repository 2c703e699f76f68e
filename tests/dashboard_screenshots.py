"""`make dashboard-screenshots`: the pictures in docs/dashboard.md, taken in
headless Chromium against a fresh cloud of fake nodes with a few servers, a
volume, a network and a keypair. `python -m tests.dashboard_screenshots DIR`."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from google.protobuf import field_mask_pb2
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from bench.procs import ADMIN_PASSWORD
from kumo import keys
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import network_pb2 as npb
from kumo.v1 import volume_pb2 as vpb
from tests.cloudutil import fake_cloud
from tests.dashboardutil import DashboardProc, dashboard_cert, new_browser
from tests.nodeutil import wait_for

PAGES = [
    ("login", "/login"),
    ("overview", "/"),
    ("servers", "/servers"),
    ("launch", "/servers/new"),
    ("server", "/servers/{server}"),
    ("console", "/servers/{server}/console"),
    ("images", "/images"),
    ("volumes", "/volumes"),
    ("networks", "/networks"),
    ("security-groups", "/security-groups"),
    ("server-groups", "/server-groups"),
    ("nodes", "/admin/nodes"),
    ("volume-types", "/admin/volume-types"),
    ("quotas", "/admin/quotas"),
    ("events", "/admin/events"),
    ("settings", "/settings"),
]


def populate(admin, image_id: str) -> str:  # type: ignore[no-untyped-def]
    """A network behind a router to an external one, three servers on it (two
    in a server group), a volume attached to the last; returns that server's id."""
    n = admin.networks
    ext = n.CreateNetwork(
        npb.CreateNetworkRequest(
            network=npb.Network(
                name="public", external=True, network_type=npb.NETWORK_TYPE_FLAT, physical_network="physnet1"
            )
        )
    )
    n.CreateSubnet(
        npb.CreateSubnetRequest(subnet=npb.Subnet(name="public-v4", network_id=ext.id, cidr="203.0.113.0/24"))
    )
    net = n.CreateNetwork(npb.CreateNetworkRequest(network=npb.Network(name="app-net")))
    sub = n.CreateSubnet(
        npb.CreateSubnetRequest(
            subnet=npb.Subnet(name="app-net-v4", network_id=net.id, ip_version=4, cidr="10.20.0.0/24")
        )
    )
    router = n.CreateRouter(
        npb.CreateRouterRequest(
            router=npb.Router(name="edge", external_gateway=npb.RouterGateway(network_id=ext.id))
        )
    )
    n.AddRouterInterface(npb.AddRouterInterfaceRequest(id=router.id, subnet_id=sub.id))
    group = admin.compute.CreateServerGroup(
        cpb.CreateServerGroupRequest(
            server_group=cpb.ServerGroup(name="web", policy=cpb.SERVER_GROUP_POLICY_AFFINITY)
        )
    )
    admin.compute.CreateKeypair(cpb.CreateKeypairRequest(keypair=cpb.Keypair(name="laptop")))
    ids = [
        admin.compute.CreateInstance(
            cpb.CreateInstanceRequest(
                name=name,
                image=image_id,
                flavor="m1.small",
                networks=[cpb.NetworkRequest(network=net.id)],
                server_group_id=group.id if name.startswith("web") else "",
            )
        ).id
        for name in ("web-1", "web-2", "db-1")
    ]
    wait_for(
        lambda: all(
            admin.compute.GetInstance(cpb.GetInstanceRequest(id=i)).state == cpb.INSTANCE_STATE_ACTIVE
            for i in ids
        ),
        timeout=120,
        what="servers ACTIVE",
    )
    vol = admin.volumes.CreateVolume(vpb.CreateVolumeRequest(volume=vpb.Volume(name="db-data", size_gb=2)))
    wait_for(
        lambda: admin.volumes.GetVolume(vpb.GetVolumeRequest(id=vol.id)).state == vpb.VOLUME_STATE_AVAILABLE,
        what="volume AVAILABLE",
    )
    admin.volumes.AttachVolume(vpb.AttachVolumeRequest(id=vol.id, instance_id=ids[2]))
    fip = n.CreateFloatingIp(
        npb.CreateFloatingIpRequest(floating_ip=npb.FloatingIp(floating_network_id=ext.id))
    )
    port = n.ListPorts(npb.ListPortsRequest(instance_id=ids[0])).ports[0]
    n.UpdateFloatingIp(
        npb.UpdateFloatingIpRequest(
            floating_ip=npb.FloatingIp(id=fip.id, port_id=port.id),
            update_mask=field_mask_pb2.FieldMask(paths=["port_id"]),
        )
    )
    return ids[2]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="kumo-shots-"))
    env = {"KUMO_NODE_HEARTBEAT_SECONDS": "1", "KUMO_INSTANCE_SYNC_SECONDS": "0.3"}
    try:
        with fake_cloud(base, 1, "node-", env) as c:
            image = c.public_image("debian-12")
            c.flavor("m1.small", vcpus=1, ram_mb=1024)
            server = populate(c.admin, image.id)
            key = keys.key_pem(keys.new_key())
            cert, key_file = dashboard_cert(c.ctl, key, base / "tls")
            dash = DashboardProc(c.ctl, base, cert, key_file).start()
            browser = new_browser(key, base, 1280, 860)
            try:
                for name, path in PAGES:
                    browser.get(dash.url + path.format(server=server))
                    if name == "login":
                        browser.save_screenshot(str(out / f"{name}.png"))
                        browser.find_element(By.ID, "user").send_keys("admin")
                        browser.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD)
                        browser.find_element(By.ID, "login").click()
                        continue
                    if name == "console":
                        wait_for(lambda: browser.find_element(By.ID, "console-status").text == "connected")
                        box = browser.find_element(By.CSS_SELECTOR, "#terminal .xterm-helper-textarea")
                        box.send_keys("echo hello from the browser", Keys.ENTER)
                    browser.save_screenshot(str(out / f"{name}.png"))
                    print(f"wrote {out / name}.png", flush=True)
            finally:
                browser.quit()
                dash.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard"))
