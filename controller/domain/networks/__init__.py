"""Networks, subnets, ports (IPAM), security groups, and how they reach the
nodes. See docs/networks.md.

The parts, each a module here:

- `addresses`: pure address maths and field checks (CIDRs, pools, gateways,
  EUI-64, fixed IPs, MTU); no database.
- `ipam`: which addresses a port holds, race-safe inside a write transaction.
- `topology`: networks and subnets.
- `security_groups`: groups, rules and their checks, the default group.
- `ports`: ports, and the NICs of instances (create, gone, in messages).
- `projection`: the networks part of a node's desired state.
- `changes`: bumping the desired revision of the nodes a change concerns.
- `facade`: `Networks`, which builds the parts and hands out their methods.

Any change that concerns a node bumps its desired revision in the same
transaction and tells its session after the commit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.auth.principal import Principal
from controller.db import networks as store
from controller.db.models import Instance
from controller.domain import desired_state
from controller.domain.identity import PROJECT_IN_USE_CHECKS
from controller.domain.networks.facade import Networks
from kumo.v1 import node_pb2 as npb

__all__ = ["Networks", "register_hooks"]


_current: Networks | None = None


def _contribute(node_row: Any, state: npb.NodeDesiredState) -> None:
    if _current is not None:
        _current.contribute(node_row, state)


def _prepare(caller: Principal, options: Mapping[str, Any]) -> Any:
    return _current.prepare_nics(caller, options) if _current is not None else None


def _gone(row: Instance) -> set[str]:
    return _current.instance_gone(row) if _current is not None else set()


def register_hooks(networks: Networks) -> None:
    """Wires networks into instances, desired state and project deletion. Call
    after the instances' register_hooks: the contributor fills port_ids of
    the DesiredInstances the instances contributor made."""
    from controller.domain import instances

    global _current
    _current = networks
    if _contribute not in desired_state.CONTRIBUTORS:
        desired_state.CONTRIBUTORS.append(_contribute)
        instances.CREATE_HOOKS.append(_prepare)
        instances.GONE_HOOKS.append(_gone)
        PROJECT_IN_USE_CHECKS.append(("network", store.count_networks))
        PROJECT_IN_USE_CHECKS.append(("port", store.count_ports))
        PROJECT_IN_USE_CHECKS.append(("security group", store.count_groups))
