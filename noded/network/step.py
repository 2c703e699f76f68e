"""The networks reconcile step: make this host's bridges, DHCP servers, VXLAN
devices and nftables match the desired networks, ports and security groups.
Level-triggered and idempotent like every step: each pass reads what the
kernel has and changes the difference.

It removes only what this node daemon made, as recorded in
<state dir>/network/owned.json before making it (several node daemons can
share a host in tests); devices carry the alias `kumo <owner> <network id>`,
and a device with the right name but another owner is left alone (an error)."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kumo.v1 import node_agent_pb2 as pb
from noded.hypervisor.base import HypervisorDriver
from noded.network import firewall, links, resolvers, routes
from noded.network.cmd import NetworkError, run
from noded.network.dhcp import Dhcp
from noded.network.names import (
    bridge_name,
    gateway_mac,
    owner_tag,
    short,
    table_name,
    tap_name,
    vlan_name,
    vxlan_name,
)

log = logging.getLogger("kumo.noded.network")

VLAN = 3  # kumo.v1.NetworkType.NETWORK_TYPE_VLAN

# What a network without an MTU gets: room for the VXLAN header (50 bytes)
# on a 1500-byte underlay, so a network can span nodes later without change.
DEFAULT_MTU = 1450


def effective_mtu(net: pb.DesiredNetwork) -> int:
    return net.mtu or DEFAULT_MTU


def default_tunnel_ip(endpoint: str) -> str:
    """The local address this host uses to reach the controller (HOST:PORT):
    the underlay address other nodes most likely reach it by. Empty if unknown."""
    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port or 0), type=socket.SOCK_DGRAM)
        family, _, _, _, addr = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect(addr)  # UDP: picks the route and source address, sends nothing
            return str(s.getsockname()[0])
    except (OSError, ValueError, IndexError):
        return ""


class NetworkStep:
    __name__ = "networks"

    def __init__(
        self,
        state_dir: Path,
        tunnel_ip: str = "",
        dns_servers: tuple[str, ...] = (),
        physical_networks: Mapping[str, str] | None = None,
    ) -> None:
        state_dir = Path(state_dir)
        # physical network name -> host interface ("" : a host-local bridge, no uplink)
        self.physical_networks = dict(physical_networks or {})
        self.dir = state_dir / "network"
        self.owner = owner_tag(str(state_dir.resolve()))
        self.table = table_name(self.owner)
        self.dhcp = Dhcp(self.dir / "dhcp")
        self.tunnel_ip = tunnel_ip
        # Where the networks' resolvers forward; empty: the host's resolvers.
        self.dns_servers = dns_servers
        self._fw_applied = ""

    # What this daemon made

    @property
    def _owned_file(self) -> Path:
        return self.dir / "owned.json"

    def owned(self) -> dict[str, Any]:
        try:
            data = json.loads(self._owned_file.read_text())
        except (OSError, ValueError):
            data = {}
        data.setdefault("networks", {})
        data.setdefault("table", False)
        return data

    def _save(self, owned: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        tmp = self._owned_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(owned, indent=1, sort_keys=True))
        os.replace(tmp, self._owned_file)

    def _alias(self, network_id: str) -> str:
        return f"kumo {self.owner} {network_id}"

    # The step

    def __call__(self, desired: pb.NodeDesiredState, driver: HypervisorDriver | None = None) -> None:
        nets = {n.id: n for n in desired.networks}
        owned = self.owned()
        errors: list[str] = []
        for nid in sorted(set(owned["networks"]) - set(nets)):
            try:
                self._teardown(nid, owned)
                log.info("network removed", extra={"network": nid})
            except Exception as exc:
                errors.append(f"remove network {nid}: {exc}")
        wanted_dhcp = {short(nid) for nid in nets}
        for stale in set(self.dhcp.running()) - wanted_dhcp:
            self.dhcp.stop(stale)
        ports_by_net: dict[str, list[pb.DesiredPort]] = {}
        for p in desired.ports:
            ports_by_net.setdefault(p.network_id, []).append(p)
        plans: list[firewall.NetPlan] = []
        # Read once a pass: a change of the host's resolvers reaches dnsmasq.
        own = [s.gateway_ip for n in nets.values() for s in n.subnets if s.gateway_ip]
        upstreams = resolvers.upstreams(self.dns_servers, own) if nets else []
        resolving = _resolving(nets)
        # External networks hold the routers' and floating IPs' addresses.
        extra: dict[str, set[str]] = {}
        for r in desired.routers:
            extra.setdefault(r.external_network_id, set()).add(r.gateway_address)
            if r.gateway_address6:
                extra[r.external_network_id].add(r.gateway_address6)
        for f in desired.floating_ips:
            extra.setdefault(f.external_network_id, set()).add(f.floating_address)
        if extra:
            _enable_forwarding()
        if any(r.gateway_address6 for r in desired.routers):
            _enable_forwarding6()
        for nid, n in sorted(nets.items()):
            # Its ports keep their rules even when the network is not all there.
            plans.append(self._plan(n, nid in resolving))
            try:
                self._ensure(
                    n, ports_by_net.get(nid, []), owned, upstreams, nid in resolving, extra.get(nid, set())
                )
            except Exception as exc:
                log.warning("network not as desired", extra={"network": nid, "error": str(exc)})
                errors.append(f"network {nid}: {exc}")
        try:
            self._firewall(plans, desired, owned)
        except Exception as exc:
            errors.append(f"firewall: {exc}")
        try:
            self._routes(desired, owned)
        except Exception as exc:
            errors.append(f"routes: {exc}")
        if errors:
            raise NetworkError("; ".join(errors)[:2000])

    def _peers(self, n: pb.DesiredNetwork) -> list[pb.OverlayPeer]:
        return [p for p in n.peers if p.tunnel_ip and p.tunnel_ip != self.tunnel_ip]

    def _plan(self, n: pb.DesiredNetwork, dns: bool = True) -> firewall.NetPlan:
        return firewall.NetPlan(
            short=short(n.id),
            bridge=bridge_name(n.id),
            vxlan=vxlan_name(n.id) if self._peers(n) and not n.external else "",
            cidrs=[sub.cidr for sub in n.subnets],
            gateways=[sub.gateway_ip for sub in n.subnets if sub.gateway_ip],
            external_routable=n.external_routable,
            dns=dns,
            external=n.external,
            gateway_mac=_gateway_mac(n),
        )

    def _uplink(self, n: pb.DesiredNetwork, br: str, alias: str) -> None:
        """An external network's bridge on the host interface its physical
        network maps to (VLAN: a tagged device of ours on it)."""
        if n.physical_network not in self.physical_networks:
            raise NetworkError(
                f"physical network {n.physical_network!r} is not mapped on this node (--physical-network NAME=IFACE)"
            )
        iface = self.physical_networks[n.physical_network]
        vlan = vlan_name(n.id)
        if not iface:  # host-local: the bridge alone
            self._delete_ours(vlan, alias)
            return
        if links.link(iface) is None:
            raise NetworkError(
                f"host interface {iface!r} of physical network {n.physical_network!r} does not exist"
            )
        if n.network_type == VLAN:
            links.ensure_vlan(vlan, iface, n.segmentation_id, alias)
            iface = vlan
        else:
            self._delete_ours(vlan, alias)
        have = links.link(iface) or {}
        if have.get("master") != br:
            links.set_master(iface, br)
        if "UP" not in have.get("flags", []):
            run(["ip", "link", "set", iface, "up"])

    def _ensure(
        self,
        n: pb.DesiredNetwork,
        ports: list[pb.DesiredPort],
        owned: dict[str, Any],
        upstreams: list[str],
        dns: bool,
        extra: set[str],
    ) -> None:
        s, br, vx = short(n.id), bridge_name(n.id), vxlan_name(n.id)
        mtu = effective_mtu(n)
        alias = self._alias(n.id)
        if n.id not in owned["networks"]:
            owned["networks"][n.id] = {"bridge": br, "vxlan": vx, "vlan": vlan_name(n.id)}
            self._save(owned)  # before making anything: a crash leaves nothing unrecorded
        made = links.ensure_bridge(br, mtu, alias, _gateway_mac(n))
        addresses = set(extra)
        for sub in n.subnets:
            # An external network's gateway is the LAN's router, not this host,
            # unless the network is this host's own (external_routable).
            if sub.gateway_ip and (n.external_routable or not n.external):
                prefix = ipaddress.ip_network(sub.cidr, strict=False).prefixlen
                addresses.add(f"{sub.gateway_ip}/{prefix}")
        if any(":" in a for a in addresses):
            links.ensure_ipv6_router(br)
        added = links.ensure_addresses(br, addresses)
        if n.external:
            self._uplink(n, br, alias)
            links.announce(br, added)
            # Bridged guests get their addresses from the config drive: the
            # node has no address of the LAN to serve DHCP from.
            self.dhcp.stop(s)
            if n.external_routable:
                _enable_forwarding()
            self._attach_taps(br, ports)
            return
        peers = self._peers(n)
        if peers:
            if not self.tunnel_ip:
                raise NetworkError("the network spans nodes but this node has no tunnel IP (--tunnel-ip)")
            if not 0 < n.vni < 2**24:
                raise NetworkError(f"VNI {n.vni} is out of range")
            links.ensure_vxlan(vx, n.vni, self.tunnel_ip, br, mtu, alias)
            fdb = set()
            for p in peers:
                fdb.add((links.ZERO_MAC, p.tunnel_ip))
                fdb |= {(m.lower(), p.tunnel_ip) for m in p.mac_addresses}
            links.ensure_fdb(vx, fdb)
        else:
            self._delete_ours(vx, alias)
        if n.external_routable:
            _enable_forwarding()
        # A new bridge: a dnsmasq bound to the one before it serves nothing.
        self.dhcp.ensure(s, br, n, ports, mtu, restart=made, upstreams=upstreams, dns=dns)
        self._attach_taps(br, ports)

    @staticmethod
    def _attach_taps(br: str, ports: list[pb.DesiredPort]) -> None:
        """A guest's tap outlives a bridge made anew (host reboot, manual
        cleanup): put it back on the bridge. One listing, however many ports."""
        devices = links.links_by_name() if ports else {}
        for p in ports:
            tap = devices.get(tap_name(p.id))
            if tap is not None and tap.get("master") != br:
                links.set_master(tap_name(p.id), br)

    def _delete_ours(self, name: str, alias: str) -> None:
        have = links.link(name)
        if have is not None and have.get("ifalias", "") == alias:
            links.delete_link(name)

    def _teardown(self, nid: str, owned: dict[str, Any]) -> None:
        entry = owned["networks"][nid]
        self.dhcp.stop(short(nid))
        alias = self._alias(nid)
        self._delete_ours(entry.get("vxlan", vxlan_name(nid)), alias)
        self._delete_ours(entry.get("vlan", vlan_name(nid)), alias)
        self._delete_ours(entry.get("bridge", bridge_name(nid)), alias)
        del owned["networks"][nid]
        self._save(owned)

    def _firewall(
        self, plans: list[firewall.NetPlan], desired: pb.NodeDesiredState, owned: dict[str, Any]
    ) -> None:
        by_bridge = {p.short: p for p in plans}
        ports = []
        for p in desired.ports:
            net = by_bridge.get(short(p.network_id))
            if net is None:
                continue
            ports.append(
                firewall.PortPlan(
                    short=short(p.id),
                    tap=tap_name(p.id),
                    bridge=net.bridge,
                    mac=p.mac_address.lower(),
                    ips=[ip.ip_address for ip in p.fixed_ips],
                    security_group_ids=list(p.security_group_ids),
                )
            )
        if not plans and not ports:
            if owned["table"]:
                firewall.remove(self.table)
                owned["table"] = False
                self._save(owned)
            self._fw_applied = ""
            return
        groups = {g.id: g for g in desired.security_groups}
        nets = {n.id: n for n in desired.networks}
        routers = [
            firewall.RouterPlan(
                cidrs=list(r.interface_cidrs),
                bridges=[bridge_name(x) for x in r.interface_network_ids if x in nets],
                external_bridge=bridge_name(r.external_network_id),
                gateway_ip=r.gateway_address.split("/")[0],
                host_local=nets[r.external_network_id].external_routable,
                gateway_ip6=r.gateway_address6.split("/")[0],
            )
            for r in desired.routers
            if r.external_network_id in nets
        ]
        floating = [
            firewall.FloatingPlan(
                floating_ip=f.floating_address.split("/")[0],
                fixed_ip=f.fixed_ip_address,
                bridge=bridge_name(f.network_id),
                external_bridge=bridge_name(f.external_network_id),
                host_local=nets[f.external_network_id].external_routable,
            )
            for f in desired.floating_ips
            if f.external_network_id in nets and f.network_id in nets
        ]
        script = firewall.render(self.table, plans, ports, groups, routers, floating)
        if script == self._fw_applied and firewall.exists(self.table):
            return
        if not owned["table"]:
            owned["table"] = True
            self._save(owned)
        firewall.apply(script)
        self._fw_applied = script
        log.info("firewall applied", extra={"table": self.table, "ports": len(ports)})

    def _routes(self, desired: pb.NodeDesiredState, owned: dict[str, Any]) -> None:
        """Policy routing to the LAN's gateway for what routers (here their
        SNAT node) and floating IPs send out of an external network whose
        gateway is not this host."""
        nets = {n.id: n for n in desired.networks}
        rules: dict[str, set[tuple[str, str]]] = {}
        for r in desired.routers:
            for nid in r.interface_network_ids:
                if nid in nets:
                    rules.setdefault(r.external_network_id, set()).add((bridge_name(nid), "all"))
        for f in desired.floating_ips:
            if f.network_id in nets:
                rules.setdefault(f.external_network_id, set()).add(
                    (bridge_name(f.network_id), f"{f.fixed_ip_address}/32")
                )
        # IPv6 (NAT66): what a router's interface networks send, when it has an IPv6 address there.
        rules6: dict[str, set[tuple[str, str]]] = {}
        for r in desired.routers:
            if r.gateway_address6 and r.external_gateway_ip6:
                for nid in r.interface_network_ids:
                    if nid in nets:
                        rules6.setdefault(r.external_network_id, set()).add((bridge_name(nid), "all"))
        tables: list[routes.Table] = []
        for family, by_ext in ((4, rules), (6, rules6)):
            for ext_id, wanted in sorted(by_ext.items()):
                ext = nets.get(ext_id)
                if ext is None or ext.external_routable:
                    continue  # host-local: the host's own routes are the way out
                br = bridge_name(ext_id)
                subs = [sub for sub in ext.subnets if sub.ip_version == family]
                table_routes = {(str(ipaddress.ip_network(sub.cidr, strict=False)), "", br) for sub in subs}
                table_routes |= {("default", sub.gateway_ip, br) for sub in subs[:1] if sub.gateway_ip}
                tables.append(
                    routes.Table(
                        routes.table_id(self.owner, ext_id),
                        frozenset(table_routes),
                        frozenset(wanted),
                        family,
                    )
                )
        ids = sorted({t.id for t in tables})
        recorded = owned.get("route_tables", [])
        if set(ids) - set(recorded):
            owned["route_tables"] = sorted(set(recorded) | set(ids))
            self._save(owned)  # before making them
        for t in tables:
            routes.ensure(t)
        for t_id in sorted(set(ids) - {t.id for t in tables if t.family == 6}):
            routes.remove(t_id, 6)  # a router's IPv6 egress went, its IPv4 stays
        stale = sorted(set(owned.get("route_tables", [])) - set(ids))
        for t_id in stale:
            routes.remove(t_id)
        if stale:
            if ids:
                owned["route_tables"] = ids
            else:
                owned.pop("route_tables", None)
            self._save(owned)

    def teardown_all(self) -> None:
        """Removes everything this daemon made (tests; decommissioning a node)."""
        self(pb.NodeDesiredState())


def _gateway_mac(n: pb.DesiredNetwork) -> str:
    """A tenant network's bridge is its guests' gateway on every node, at one
    MAC (names.gateway_mac); an external network's bridge keeps its own: it
    is on the LAN, where one MAC on several hosts would confuse the switches."""
    return "" if n.external else gateway_mac(n.id)


def _resolving(nets: dict[str, pb.DesiredNetwork]) -> set[str]:
    """The networks whose dnsmasq is their resolver: not one whose gateway
    address an earlier network (by id) has too. dnsmasq binds DNS to the
    address, not the bridge, so two networks cannot both serve one; and the
    rules open DNS only on resolving networks' bridges, so such a network's
    guests never reach the other's names."""
    taken: set[str] = set()
    out = set()
    for nid, n in sorted(nets.items()):
        gws = {s.gateway_ip for s in n.subnets if s.gateway_ip}
        if not gws & taken:
            out.add(nid)
        taken |= gws
    return out


def _enable_forwarding() -> None:
    """Routing for outbound NAT. Turned on, never off: other things on the
    host may rely on it."""
    links.ensure_sysctl(Path("/proc/sys/net/ipv4/ip_forward"), "1")


def _enable_forwarding6() -> None:
    """IPv6 routing for a router's IPv6 subnets (NAT66). Host-wide, as IPv4's:
    with it on, the host takes router advertisements only on interfaces whose
    accept_ra is 2; turned on, never off."""
    links.ensure_sysctl(Path("/proc/sys/net/ipv6/conf/all/forwarding"), "1")
