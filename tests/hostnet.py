"""The tests' side of bench/host_cloud.py (two libvirt "hosts", each in its
own network namespace on a test LAN): the cloud as a context manager that
skips without root networking and starts libvirtd and the test image first,
and what a failed wait says about the guest and both hosts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bench.host_cloud import HostCloud, host_cloud
from tests.cloudutil import libvirt_and_test_image
from tests.netutil import need_root_networking
from tests.waits import diagnose

__all__ = ["HostCloud", "explain", "netns_host_cloud"]


@contextlib.contextmanager
def netns_host_cloud(tag: str, flavor: str) -> Iterator[HostCloud]:
    need_root_networking()
    libvirt_and_test_image()
    with host_cloud(tag, flavor) as cloud:
        yield cloud


def explain(cloud: HostCloud, instance_id: str) -> str:
    """diagnose() and, per host, what its libvirtd runs and its noded's last log lines."""
    return f"{diagnose(cloud.admin, instance_id)}\n{cloud.hosts_line()}"
