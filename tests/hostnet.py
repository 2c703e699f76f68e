"""The tests' side of bench/host_cloud.py (two libvirt "hosts", each in its
own network namespace on a test LAN): the cloud as a context manager that
skips without root networking and starts libvirtd and the test image first,
and what a failed wait says about the guest and both hosts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bench.ceph_cluster import CephCluster
from bench.host_cloud import HostCloud, host_cloud
from tests.cloudutil import libvirt_and_test_image
from tests.netutil import need_root_networking
from tests.waits import diagnose

__all__ = ["HostCloud", "explain", "netns_host_cloud"]


@contextlib.contextmanager
def netns_host_cloud(tag: str, flavor: str, ceph: CephCluster | None = None) -> Iterator[HostCloud]:
    """With `ceph`, both hosts reach the test Ceph cluster (its address is
    routed through the LAN) and their node daemons have its rbd pool."""
    need_root_networking()
    libvirt_and_test_image()
    node_args: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    if ceph is not None:
        node_args = tuple(ceph.node_args())
        services = tuple(sorted({h for h, _ in ceph.monitors}))
    with host_cloud(tag, flavor, node_args, services) as cloud:
        yield cloud


def explain(cloud: HostCloud, instance_id: str) -> str:
    """diagnose() and, per host, what its libvirtd runs and its noded's last log lines."""
    return f"{diagnose(cloud.admin, instance_id)}\n{cloud.hosts_line()}"
