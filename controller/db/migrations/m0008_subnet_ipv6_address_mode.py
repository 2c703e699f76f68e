"""Subnets: how guests get their IPv6 addresses (kumo.v1.Ipv6AddressMode:
0 unspecified, for IPv4; 1 STATIC; 2 SLAAC). IPv6 subnets made before this
were STATIC in all but name."""

STATEMENTS = [
    "ALTER TABLE subnet ADD COLUMN ipv6_address_mode INTEGER NOT NULL DEFAULT 0",
    "UPDATE subnet SET ipv6_address_mode = 1 WHERE ip_version = 6",
]
