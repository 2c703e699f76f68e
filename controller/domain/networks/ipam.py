"""IPAM: which addresses a port holds. An address is a row of ip_allocation
keyed by (subnet, address). Candidates are picked from what is free now and
inserted in a savepoint inside the caller's write transaction; on SQLite the
single writer serialises creates, on PostgreSQL the unique key decides and the
loser tries the next candidate, so nothing is handed out twice."""

from __future__ import annotations

from controller.db import networks as store
from controller.db.models import Network, Port, Subnet
from controller.domain.networks.addresses import (
    PROBES,
    SLAAC,
    eui64_address,
    free_addresses,
    random_addresses,
    slaac_fixed_ip,
)
from controller.errors import AlreadyExists, ResourceExhausted, not_found


class Ipam:
    def allocate(self, port: Port, net: Network, subnets: list[Subnet], fixed: list[tuple[str, str]]) -> None:
        """IPAM, inside the write transaction: takes the asked-for addresses, or
        one free address from the first IPv4 and the first static IPv6 subnet.
        And always one on every SLAAC subnet, the EUI-64 of the port's (stored)
        MAC: its guest configures those from the router advertisements anyway,
        and anti-spoofing lets through only addresses the port holds."""
        slaac = [s for s in subnets if s.ipv6_address_mode == SLAAC]
        asked = {subnet_id for subnet_id, _ in fixed}
        for sub in slaac:
            if sub.id not in asked and not self.take_any(port, sub):
                raise AlreadyExists(
                    f"IP address {eui64_address(sub.cidr, port.mac_address)} is already in use on "
                    f"subnet {sub.name!r}",
                    reason="IP_ADDRESS_IN_USE",
                )
        if not fixed:
            for version in (4, 6):
                of_version = [s for s in subnets if s.ip_version == version and s.ipv6_address_mode != SLAAC]
                if not of_version:
                    continue
                for sub in of_version:
                    if self.take_any(port, sub):
                        break
                else:
                    raise ResourceExhausted(
                        f"no free IPv{version} address left on network {net.name!r}",
                        reason="IP_POOL_EXHAUSTED",
                    )
            return
        by_id = {s.id: s for s in subnets}
        for subnet_id, ip in fixed:
            sub = by_id.get(subnet_id)
            if sub is None:
                raise not_found("subnet", subnet_id)
            if sub.ipv6_address_mode == SLAAC:
                ip = slaac_fixed_ip(sub, ip, port.mac_address)
            if ip:
                if not store.allocate(sub.id, ip, port.id):
                    raise AlreadyExists(
                        f"IP address {ip} is already in use on subnet {sub.name!r}",
                        reason="IP_ADDRESS_IN_USE",
                    )
            elif not self.take_any(port, sub):
                raise ResourceExhausted(
                    f"no free address left on subnet {sub.name!r}", reason="IP_POOL_EXHAUSTED"
                )

    @staticmethod
    def take_any(port: Port, sub: Subnet) -> bool:
        """One address of the subnet for the port: on a SLAAC subnet the
        EUI-64 of its MAC (no pools), else a free one of the pools."""
        if sub.ipv6_address_mode == SLAAC:
            return store.allocate(sub.id, eui64_address(sub.cidr, port.mac_address), port.id)
        if any(store.allocate(sub.id, ip, port.id) for ip in random_addresses(sub, PROBES)):
            return True
        taken = store.allocated(sub.id)
        # A racing controller may take a candidate after we read: try the next one.
        return any(store.allocate(sub.id, ip, port.id) for ip in free_addresses(sub, taken))
