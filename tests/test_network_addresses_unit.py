"""The networks feature's pure checks and address maths, without a controller
or a database: subnet CIDRs, gateways and pools, IPv6 modes, EUI-64, fixed
IPs, MTUs and security-group rules."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from controller.db.models import Subnet
from controller.domain.networks.addresses import (
    DEFAULT_MTU,
    MAC_PREFIX,
    SCAN_LIMIT,
    SLAAC,
    STATIC,
    check_dns,
    check_mtu,
    check_no_overlap,
    check_subnet,
    eui64_address,
    eui64_mac,
    free_addresses,
    mac_of_fixed,
    parse_cidr,
    parse_ip,
    plan_fixed_ips,
    random_addresses,
    random_mac,
    slaac_fixed_ip,
    subnet_pools,
)
from controller.domain.networks.security_groups import EGRESS, INGRESS, check_rule
from controller.errors import InvalidArgument, NotFound

MAC = "fa:16:3e:12:34:56"
MAC_EUI64 = "2001:db8:1:0:f816:3eff:fe12:3456"  # RFC 5952: one zero group stays "0"


def subnet(sid: str, cidr: str, mode: int = 0, **kw: Any) -> Subnet:
    """An unsaved subnet row made the way CreateSubnet makes one."""
    cols = check_subnet(cidr, 0, kw.pop("gateway", ""), kw.pop("pools", []), [], mode)
    return Subnet(id=sid, name=sid, **cols)


def pools(cols: dict[str, Any]) -> list[list[str]]:
    return json.loads(cols["allocation_pools"])


# CIDRs, gateways, pools


def test_parse_cidr_wants_a_network_address() -> None:
    assert str(parse_cidr("10.0.0.0/24")) == "10.0.0.0/24"
    with pytest.raises(InvalidArgument, match="not a valid CIDR"):
        parse_cidr("10.0.0.1/24")
    with pytest.raises(InvalidArgument, match=r"rule\.remote_cidr 'nope'"):
        parse_cidr("nope", "rule.remote_cidr")
    with pytest.raises(InvalidArgument, match="not a valid IP address"):
        parse_ip("10.0.0.256", "gateway_ip")


def test_default_gateway_and_pools() -> None:
    cols = check_subnet("10.0.0.0/24", 4, "", [], ["10.0.0.1"])
    assert cols["gateway_ip"] == "10.0.0.1"
    assert pools(cols) == [["10.0.0.2", "10.0.0.254"]]
    assert json.loads(cols["dns_servers"]) == ["10.0.0.1"]
    assert cols["ipv6_address_mode"] == 0
    # A gateway in the middle splits the pool; "none" leaves every host address.
    assert pools(check_subnet("10.0.0.0/29", 0, "10.0.0.3", [], [])) == [
        ["10.0.0.1", "10.0.0.2"],
        ["10.0.0.4", "10.0.0.6"],
    ]
    none = check_subnet("10.0.0.0/29", 0, "none", [], [])
    assert (none["gateway_ip"], pools(none)) == ("", [["10.0.0.1", "10.0.0.6"]])
    # IPv6 has no broadcast address: the last one is a host address.
    v6 = check_subnet("2001:db8::/120", 0, "", [], [])
    assert (v6["ip_version"], v6["ipv6_address_mode"]) == (6, STATIC)
    assert pools(v6) == [["2001:db8::2", "2001:db8::ff"]]


@pytest.mark.parametrize(
    "cidr,version,message",
    [
        ("10.0.0.0/30", 0, "prefix must be /8 to /29"),
        ("10.0.0.0/7", 0, "prefix must be /8 to /29"),
        ("2001:db8::/63", 0, "prefix must be /64 to /120"),
        ("2001:db8::/121", 0, "prefix must be /64 to /120"),
        ("10.0.0.0/24", 6, "is IPv4, ip_version says 6"),
        ("10.0.0.0/24", 5, "ip_version must be 4 or 6"),
    ],
)
def test_subnet_cidr_checks(cidr: str, version: int, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check_subnet(cidr, version, "", [], [])


@pytest.mark.parametrize("gateway", ["10.0.1.1", "10.0.0.0", "10.0.0.255", "2001:db8::1", "x"])
def test_gateway_is_a_host_address_of_the_subnet(gateway: str) -> None:
    with pytest.raises(InvalidArgument):
        check_subnet("10.0.0.0/24", 4, gateway, [], [])


def test_given_pools_are_checked_and_sorted() -> None:
    cols = check_subnet("10.0.0.0/24", 4, "", [("10.0.0.100", "10.0.0.120"), ("10.0.0.10", "10.0.0.20")], [])
    assert pools(cols) == [["10.0.0.10", "10.0.0.20"], ["10.0.0.100", "10.0.0.120"]]
    bad = {
        "not a range": [("10.0.0.20", "10.0.0.10")],
        "not a range of IPv4": [("2001:db8::1", "2001:db8::2")],
        "not inside": [("10.0.0.2", "10.0.0.255")],
        "holds the gateway": [("10.0.0.1", "10.0.0.5")],
        "overlap": [("10.0.0.10", "10.0.0.20"), ("10.0.0.20", "10.0.0.30")],
        "not a valid IP address": [("10.0.0.x", "10.0.0.5")],
    }
    for message, given in bad.items():
        with pytest.raises(InvalidArgument, match=message):
            check_subnet("10.0.0.0/24", 4, "", given, [])


def test_dns_servers() -> None:
    assert check_dns(["2001:db8::0001", "10.0.0.1"]) == ["2001:db8::1", "10.0.0.1"]
    with pytest.raises(InvalidArgument, match="at most 5"):
        check_dns(["10.0.0.1"] * 6)
    with pytest.raises(InvalidArgument, match=r"dns_servers\[1\]"):
        check_dns(["10.0.0.1", "dns.example"])


def test_subnets_of_a_network_must_not_overlap() -> None:
    others = [subnet("a", "10.0.0.0/24"), subnet("b", "2001:db8::/64")]
    check_no_overlap("10.0.1.0/24", others)
    check_no_overlap("2001:db8:1::/64", others)
    with pytest.raises(InvalidArgument) as exc:
        check_no_overlap("10.0.0.128/25", others)
    assert exc.value.reason == "SUBNET_OVERLAP"


def test_mtu() -> None:
    assert check_mtu(0) == DEFAULT_MTU == 1450
    assert check_mtu(576) == 576 and check_mtu(9000) == 9000
    for bad in (575, 9001, -1):
        with pytest.raises(InvalidArgument, match="mtu must be between"):
            check_mtu(bad)


# IPv6 modes and EUI-64


def test_slaac_subnets() -> None:
    cols = check_subnet("2001:db8:1::/64", 6, "", [], [], SLAAC)
    assert (cols["ipv6_address_mode"], cols["gateway_ip"], pools(cols)) == (SLAAC, "2001:db8:1::1", [])
    bad = [
        ("2001:db8:1::/80", "", [], "must be a /64"),
        ("2001:db8:1::/64", "none", [], "needs a gateway"),
        ("2001:db8:1::/64", "", [("2001:db8:1::10", "2001:db8:1::20")], "do not apply to SLAAC"),
        ("2001:db8:1::/64", MAC_EUI64, [], "is the EUI-64 address of a port MAC"),
    ]
    for cidr, gateway, given, message in bad:
        with pytest.raises(InvalidArgument, match=message):
            check_subnet(cidr, 6, gateway, given, [], SLAAC)
    with pytest.raises(InvalidArgument, match="for IPv6 subnets only"):
        check_subnet("10.0.0.0/24", 4, "", [], [], SLAAC)
    with pytest.raises(InvalidArgument, match="must be STATIC or SLAAC"):
        check_subnet("2001:db8:1::/64", 6, "", [], [], 7)


def test_eui64_both_ways() -> None:
    assert eui64_address("2001:db8:1::/64", MAC) == MAC_EUI64
    assert eui64_mac(ipaddress.ip_address(MAC_EUI64)) == MAC
    # Not ff:fe in the middle, not one of our MACs, or IPv4: no MAC.
    assert eui64_mac(ipaddress.ip_address("2001:db8:1::1")) is None
    assert eui64_mac(ipaddress.ip_address("2001:db8:1::0211:22ff:fe33:4455")) is None
    assert eui64_mac(ipaddress.ip_address("10.0.0.1")) is None


def test_random_mac_is_ours() -> None:
    for _ in range(20):
        mac = random_mac()
        assert mac.startswith(MAC_PREFIX + ":") and len(mac) == 17
        assert eui64_mac(ipaddress.ip_address(eui64_address("2001:db8::/64", mac))) == mac


def test_slaac_fixed_ips_come_from_the_mac() -> None:
    slaac = subnet("s6", "2001:db8:1::/64", SLAAC)
    static = subnet("s4", "10.0.0.0/24")
    assert mac_of_fixed([slaac, static], [("s4", "10.0.0.5"), ("s6", MAC_EUI64)]) == MAC
    assert mac_of_fixed([slaac, static], [("s6", "")]) is None
    assert slaac_fixed_ip(slaac, "", MAC) == MAC_EUI64
    assert slaac_fixed_ip(slaac, MAC_EUI64, MAC) == MAC_EUI64
    with pytest.raises(InvalidArgument) as exc:
        slaac_fixed_ip(slaac, "2001:db8:1::5", MAC)
    assert exc.value.reason == "SLAAC_ADDRESS_FIXED"


# Fixed IPs asked for on a port


def test_plan_fixed_ips() -> None:
    subs = [subnet("a", "10.0.0.0/24"), subnet("b", "10.0.1.0/24")]
    assert plan_fixed_ips("net", subs, [("", "10.0.1.7"), ("a", "")]) == [("b", "10.0.1.7"), ("a", "")]
    assert plan_fixed_ips("net", subs, [("a", "10.0.0.9")]) == [("a", "10.0.0.9")]
    with pytest.raises(NotFound):
        plan_fixed_ips("net", subs, [("c", "")])
    bad = [
        ("in no subnet of network 'net'", [("", "10.0.2.1")]),
        ("network, broadcast or gateway", [("", "10.0.0.1")]),
        ("network, broadcast or gateway", [("", "10.0.0.255")]),
        ("network, broadcast or gateway", [("a", "10.0.0.0")]),
        ("needs a subnet_id or an ip_address", [("", "")]),
        ("at most one fixed IP per subnet", [("a", ""), ("", "10.0.0.8")]),
        (r"fixed_ips\[0\]\.ip_address", [("", "nope")]),
    ]
    for message, wanted in bad:
        with pytest.raises(InvalidArgument, match=message):
            plan_fixed_ips("net", subs, wanted)
    # The address must be in the subnet named with it.
    with pytest.raises(InvalidArgument, match="in no subnet"):
        plan_fixed_ips("net", subs, [("a", "10.0.1.7")])


# Candidates for IPAM


def test_free_addresses_in_pool_order() -> None:
    row = subnet("a", "10.0.0.0/29")  # pool .2-.6
    assert list(free_addresses(row, {"10.0.0.3", "10.0.0.5"})) == ["10.0.0.2", "10.0.0.4", "10.0.0.6"]
    assert [str(a) for pool in subnet_pools(row) for a in pool] == ["10.0.0.2", "10.0.0.6"]
    assert random_addresses(row, 8) == []  # small pools hand out in order


def test_random_addresses_probe_big_pools() -> None:
    row = subnet("a", "10.0.0.0/16")
    assert sum(int(b) - int(a) + 1 for a, b in subnet_pools(row)) > SCAN_LIMIT
    probes = random_addresses(row, 8)
    assert len(probes) == 8
    net = ipaddress.ip_network("10.0.0.0/16")
    for ip in probes:
        addr = ipaddress.ip_address(ip)
        assert addr in net and ip not in ("10.0.0.0", "10.0.0.1", "10.0.255.255")


# Security-group rules


def test_rule_defaults_and_normalisation() -> None:
    got = check_rule({"direction": INGRESS, "security_group": "g", "description": "d"})
    assert (got["ip_version"], got["protocol"], got["remote_cidr"], got["remote_group"]) == (4, "", "", None)
    assert (got["security_group"], got["description"]) == ("g", "d")
    got = check_rule({"direction": EGRESS, "remote_cidr": "2001:db8::/32", "protocol": "icmpv6"})
    assert (got["ip_version"], got["remote_cidr"]) == (6, "2001:db8::/32")
    got = check_rule({"direction": INGRESS, "protocol": "tcp", "port_range_min": 22, "port_range_max": 22})
    assert (got["port_range_min"], got["port_range_max"]) == (22, 22)


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"direction": ""}, "direction must be INGRESS or EGRESS"),
        ({"protocol": "sctp"}, "protocol must be one of"),
        ({"protocol": "tcp", "port_range_min": 10, "port_range_max": 5}, "port range"),
        ({"protocol": "tcp", "port_range_min": 0, "port_range_max": 70000}, "port range"),
        ({"protocol": "icmp", "port_range_min": 1, "port_range_max": 2}, "for tcp and udp only"),
        ({"remote_cidr": "nope"}, "not a valid CIDR"),
        ({"remote_cidr": "10.0.0.0/8", "remote_group": "g"}, "give at most one"),
        ({"remote_cidr": "fd00::/8", "ip_version": 4}, "is IPv6, ip_version says 4"),
        ({"protocol": "icmpv6", "ip_version": 4}, "does not go with IPv4"),
        ({"protocol": "icmp", "ip_version": 6}, "does not go with IPv6"),
        ({"ip_version": 5}, "ip_version must be 4 or 6, got 5"),
    ],
)
def test_bad_rules(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check_rule({"direction": INGRESS, **fields})
