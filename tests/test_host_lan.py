"""The test LAN of the network end-to-end tests (bench/host_lan.py) and the
pinger that measures a guest's downtime (bench/pinger.py), without libvirt:
two host namespaces reach each other and the machine's own LAN address;
a link taken down for a while shows as a gap of about that long between
ping replies; everything goes afterwards. Needs root."""

from __future__ import annotations

import time
from pathlib import Path

from bench.host_lan import HostLan, worktree_tag
from bench.pinger import Pinger, downtime
from tests.netutil import need_root_networking, ping, sh
from tests.waits import wait_until


def test_hosts_on_the_lan_and_a_measured_outage(tmp_path: Path) -> None:
    need_root_networking()
    lan = HostLan(worktree_tag("hl")).up()
    try:
        a, b = lan.add_host("a"), lan.add_host("b")
        assert ping(a, lan.hosts[b]) and ping(b, lan.address)
        assert sh("ip", "netns", "exec", a, "ip", "-br", "addr", "show", "lan0").stdout.split()[2] == (
            f"{lan.hosts[a]}/24"
        )
        pinger = Pinger(lan.hosts[b], [a], tmp_path).start()
        try:
            wait_until(pinger.replies, what="a first reply", base=10, step=0.05)
            down = time.time()
            sh("ip", "netns", "exec", b, "ip", "link", "set", "lan0", "down")
            time.sleep(1.0)  # the outage being measured, not a wait for state
            sh("ip", "netns", "exec", b, "ip", "link", "set", "lan0", "up")
            up = time.time()
            wait_until(lambda: pinger.answered_since(up), what="a reply after the outage", base=10, step=0.05)
        finally:
            pinger.stop()
        gap = downtime(pinger.replies(), down - 0.5, time.time())
        assert up - down <= gap < up - down + 5, (gap, up - down)
    finally:
        lan.down()
    for name in (a, b):
        assert name not in sh("ip", "netns", "list").stdout
    assert sh("ip", "link", "show", lan.bridge, check=False).returncode != 0
