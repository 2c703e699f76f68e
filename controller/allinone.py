"""`make up`: an all-in-one cloud on this machine, in the foreground.

Starts the controller with its data in ./.kumo (or $KUMO_DATA_DIR), enrolls
this machine as a node with a fresh join token and runs its node daemon
(libvirt driver; virt_type from $KUMO_VIRT_TYPE, default qemu: see
controller/localnode.py), and prints how to log in. Ctrl-C stops everything."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

from controller.config import apply_switch_interval, load_config
from controller.domain.idempotency import NO_REQUEST_ID
from controller.localdashboard import LocalDashboard
from controller.localnode import LocalNode, local_node_name
from controller.server import Controller
from kumo.logs import setup_logging

# Flavors an all-in-one cloud starts with (name, vCPUs, RAM MiB, disk GiB).
DEFAULT_FLAVORS = [("m1.tiny", 1, 256, 1), ("m1.small", 1, 1024, 10), ("m1.medium", 2, 2048, 20)]


def seed_flavors(ctl: Controller) -> None:
    """Makes the default flavors that do not exist yet (public)."""
    from controller.db import compute as store

    for name, vcpus, ram, disk in DEFAULT_FLAVORS:
        rows, _ = store.list_flavors(1, "", name, None)
        if not rows:
            ctl.parts.catalog.create_flavor(
                {
                    "name": name,
                    "description": "default",
                    "vcpus": vcpus,
                    "ram_mb": ram,
                    "disk_gb": disk,
                    "is_public": True,
                },
                [],
                NO_REQUEST_ID,
            )


# The network an all-in-one cloud starts with: shared, routed out through the
# router kumo-router to the host-local external network kumo-ext (floating IPs
# come from there), so a guest gets an address by DHCP and can reach out.
# KUMO_UP_NETWORK_CIDR moves it when the default clashes with a network this
# host is on. Its guests resolve names through the subnet's gateway (the node's
# resolver, forwarding to this host's resolvers); KUMO_UP_DNS (comma-separated
# addresses) gives the subnet its own DNS servers instead when it is first made.
DEFAULT_NETWORK = "kumo-net"
DEFAULT_SUBNET = f"{DEFAULT_NETWORK}-v4"
DEFAULT_CIDR = "10.199.0.0/24"
# The external network: a bridge on this host alone (physical network
# kumo-host, mapped to no interface), its gateway the host, which masquerades
# beyond it. KUMO_UP_EXTERNAL_CIDR moves it.
EXTERNAL_NETWORK = "kumo-ext"
EXTERNAL_SUBNET = f"{EXTERNAL_NETWORK}-v4"
EXTERNAL_CIDR = "10.198.0.0/24"
HOST_PHYSNET = "kumo-host"
DEFAULT_ROUTER = "kumo-router"


def seed_network(ctl: Controller, cidr: str, dns: list[str]) -> None:
    """Makes the shared default network and its subnet unless it exists."""
    from controller.auth.principal import Principal, Role
    from controller.db import identity as identity_store
    from controller.domain.networks.addresses import check_subnet

    project = identity_store.find_project("admin")
    if project is None:
        return
    admin = Principal("", "system", project.id, project.name, Role.ADMIN, "", 0.0)
    rows, _ = ctl.parts.networks.list_networks(admin, 1, "", DEFAULT_NETWORK)
    if rows:
        return
    net = ctl.parts.networks.create_network(
        admin,
        {
            "name": DEFAULT_NETWORK,
            "description": "default (make up)",
            "shared": True,
            "mtu": 0,
        },
        NO_REQUEST_ID,
    )
    ctl.parts.networks.create_subnet(
        admin, net.id, DEFAULT_SUBNET, "", check_subnet(cidr, 4, "", [], dns), NO_REQUEST_ID
    )


def seed_router(ctl: Controller, external_cidr: str) -> None:
    """kumo-net's way out: the host-local external network and a router to
    it, unless they exist. A cloud made before routers had kumo-net masquerade
    by itself (external_routable): the router takes over."""
    from controller.auth.principal import Principal, Role
    from controller.db import identity as identity_store
    from controller.db import routers as router_store
    from controller.domain.networks.addresses import FLAT, check_subnet

    project = identity_store.find_project("admin")
    if project is None:
        return
    admin = Principal("", "system", project.id, project.name, Role.ADMIN, "", 0.0)
    nets = ctl.parts.networks
    rows, _ = nets.list_networks(admin, 1, "", EXTERNAL_NETWORK)
    if rows:
        ext = rows[0]
    else:
        ext = nets.create_network(
            admin,
            {
                "name": EXTERNAL_NETWORK,
                "description": "host-local external network (make up)",
                "external": True,
                "external_routable": True,
                "network_type": FLAT,
                "physical_network": HOST_PHYSNET,
                "mtu": 1500,
            },
            NO_REQUEST_ID,
        )
        nets.create_subnet(
            admin, ext.id, EXTERNAL_SUBNET, "", check_subnet(external_cidr, 4, "", [], []), NO_REQUEST_ID
        )
    routers, _ = nets.list_routers(admin, 1, "", DEFAULT_ROUTER)
    router = (
        routers[0]
        if routers
        else nets.create_router(
            admin,
            {"name": DEFAULT_ROUTER, "description": "kumo-net's way out (make up)"},
            ext.id,
            NO_REQUEST_ID,
        )
    )
    tenant, _ = nets.list_networks(admin, 1, "", DEFAULT_NETWORK)
    if not tenant:
        return
    for sub in nets.list_subnets(admin, 10, "", DEFAULT_SUBNET, tenant[0].id)[0]:
        if not router_store.interface_router(sub.id):
            nets.add_router_interface(admin, router.id, sub.id)
    if tenant[0].external_routable:
        nets.update_network(admin, tenant[0].id, {"external_routable": False})


def default_subnet_dns() -> list[str] | None:
    """The DNS servers the default subnet gives guests (None: no such subnet)."""
    from controller.db.models import Subnet

    row = Subnet.get_or_none(Subnet.name == DEFAULT_SUBNET)
    return None if row is None else list(json.loads(row.dns_servers))


def blocks_qemu(path: Path) -> Path | None:
    """The first directory on the way to `path` that others cannot pass
    through: qemu runs as its own user and must reach the guests' disks."""
    for p in [path, *path.parents]:
        if p.exists() and not p.stat().st_mode & 0o001:
            return p
    return None


def dns_lines(dns: list[str] | None, dns_domain: str = "kumo") -> list[str]:
    """What the banner says about the default subnet's resolvers."""
    if dns is None:
        return []
    names = f"Guests resolve each other as <server name>.{DEFAULT_NETWORK}.{dns_domain}."
    if dns:
        return [
            f"Guests on {DEFAULT_NETWORK} resolve names through {', '.join(dns)} (subnet {DEFAULT_SUBNET}).",
        ]
    return [
        f"Guests on {DEFAULT_NETWORK} get a resolver by default: their gateway, which forwards to this",
        f"host's resolvers. {names}",
    ]


def banner(ctl: Controller, password_hint: str, dns: list[str] | None = None) -> str:
    info = ctl.cfg
    endpoint = f"127.0.0.1:{ctl.port}"
    return "\n".join(
        [
            "",
            "kumo is up.",
            f"  endpoint      {endpoint}",
            f"  CA            {info.pki_dir / 'ca.crt'}",
            f"  admin         user 'admin', project 'admin', {password_hint}",
            "",
            "Log in:",
            f"  .venv/bin/kumo login --endpoint {endpoint} --ca-file {info.pki_dir / 'ca.crt'} --user admin",
            "",
            f"Boot a guest on the shared network {DEFAULT_NETWORK} and read its console:",
            f"  .venv/bin/kumo server create demo --image kumo-test --flavor m1.tiny --network {DEFAULT_NETWORK} --wait",
            "  .venv/bin/kumo server console demo",
            "The default security group admits only its own members. Let the host ping guests and SSH in:",
            "  .venv/bin/kumo security-group rule create default --protocol icmp",
            "  .venv/bin/kumo security-group rule create default --protocol tcp --port 22",
            f"Reach it from this host through a floating IP of {EXTERNAL_NETWORK} (routed by {DEFAULT_ROUTER}):",
            f"  .venv/bin/kumo floating-ip create --network {EXTERNAL_NETWORK} "
            "--port $(.venv/bin/kumo port list --server demo -f value -c id)",
            "  ssh <user>@<floating IP>   # kumo floating-ip list",
            *dns_lines(dns, info.dns_domain),
            "",
            "Ctrl-C stops the cloud.",
            "",
        ]
    )


def main() -> int:
    cfg = load_config(
        overrides={
            "listen": os.environ.get("KUMO_LISTEN", "127.0.0.1:7443"),
            "node_listen": os.environ.get("KUMO_NODE_LISTEN", "127.0.0.1:7444"),
        }
    )
    setup_logging(cfg.log_level, "text")
    apply_switch_interval(cfg)
    ctl = Controller(cfg)
    ctl.start()
    # The guest test image (`make image`): public in the admin project, ready to boot.
    test_image = Path(__file__).resolve().parent.parent / "images" / "kumo-test.qcow2"
    try:
        ctl.parts.images.seed(test_image, "kumo-test", disk_format=1)  # kumo.v1.DISK_FORMAT_QCOW2
    except Exception:
        logging.getLogger("kumo.allinone").exception("could not import %s", test_image)
    seed_flavors(ctl)
    try:
        dns = [d.strip() for d in os.environ.get("KUMO_UP_DNS", "").split(",") if d.strip()]
        seed_network(ctl, os.environ.get("KUMO_UP_NETWORK_CIDR", DEFAULT_CIDR), dns)
        seed_router(ctl, os.environ.get("KUMO_UP_EXTERNAL_CIDR", EXTERNAL_CIDR))
    except Exception:
        logging.getLogger("kumo.allinone").exception("could not make the default network")
    node = LocalNode(ctl)
    try:
        node.ensure_joined()
        node.start()
        if node.wait_ready():
            node_hint = f"{local_node_name()} READY ({node.virt_type}; log {node.log_path})"
        else:
            node_hint = f"{local_node_name()} NOT READY: see {node.log_path}"
    except Exception as exc:  # the cloud is still useful without its node; say why
        logging.getLogger("kumo.allinone").exception("the local node could not start")
        node_hint = f"none: {exc}"
    dashboard = LocalDashboard(ctl)
    try:
        dashboard_url = dashboard.start() or f"not started: see {dashboard.log_path}"
    except Exception as exc:  # the cloud is still useful without its dashboard; say why
        logging.getLogger("kumo.allinone").exception("the dashboard could not start")
        dashboard_url = f"not started: {exc}"
    pw_file = cfg.data_dir / "admin-password"
    if os.environ.get("KUMO_ADMIN_PASSWORD"):
        hint = "password from KUMO_ADMIN_PASSWORD"
    elif pw_file.exists():
        hint = f"password in {pw_file} (mode 0600)"
    else:
        hint = "password as set when the cloud was first made"
    text = banner(ctl, hint, default_subnet_dns()).replace(
        "\nLog in:", f"  node          {node_hint}\n  dashboard     {dashboard_url}\n\nLog in:", 1
    )
    blocked = blocks_qemu(cfg.data_dir)
    if blocked is not None:
        text += (
            f"\nWARNING: {blocked} is not searchable by other users, so qemu cannot open the guests' "
            f"disks below it: chmod o+x {blocked}, or set KUMO_DATA_DIR elsewhere.\n"
        )
    print(text, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: ctl._stop.set())
    signal.signal(signal.SIGINT, lambda *_: ctl._stop.set())
    ctl.wait()
    dashboard.stop()
    node.stop()
    ctl.stop()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
