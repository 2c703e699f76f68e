"""Networks, subnets, ports (IPAM), security groups, and how they reach the
nodes. See docs/networks.md.

The parts, each a module here:

- `addresses`: pure address maths and field checks (CIDRs, pools, gateways,
  EUI-64, fixed IPs, MTU); no database.
- `ipam`: which addresses a port holds, race-safe inside a write transaction.
- `topology`: networks and subnets.
- `security_groups`: groups, rules and their checks, the default group.
- `ports`: ports, and the NICs of instances (create, gone, in messages).
- `routers`: routers, their gateways (SNAT) and interfaces.
- `floating_ips`: floating IPs and their association with ports.
- `projection`: the networks part of a node's desired state.
- `changes`: bumping the desired revision of the nodes a change concerns.
- `facade`: `Networks`, which builds the parts and hands out their methods.

Any change that concerns a node bumps its desired revision in the same
transaction and tells its session after the commit."""

from __future__ import annotations

from controller.domain.networks.facade import Networks

__all__ = ["Networks"]
