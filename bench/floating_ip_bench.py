"""Floating IPs: how long from associating one to reaching the guest through
it, and what 1,000 of them cost on one node.

(a) Fake fleet: a real controller (SQLite) and NODES real `kumo-noded run
    --driver fake` processes; INSTANCES instances with a NIC on a routed
    network, each associated with a floating IP in turn. Per association:
    the UpdateFloatingIp latency and the time until the instance's node has
    applied a desired state holding the floating IP (its desired.json): the
    controller-to-node part of "associate -> reachable" (fake nodes have no
    data path). p50/p99.
(b) One real node, in network namespaces (root): the network step in a
    "host" namespace (one long-lived process: bench/nodestep.py), a "LAN"
    namespace on the external bridge's uplink veth and a guest namespace on
    the tenant bridge. Per round a new floating IP is associated: the step's
    pass, and the time from the start of that pass until the LAN first gets
    an answer from the guest through the floating IP (ping every 10 ms).
    Added to (a), that is associate -> reachable end to end.
(c) The same node with FIPS ports and a floating IP each: the step's first
    pass (addresses, dnsmasq, rules, routing), a second pass with nothing to
    change, and applying the rendered nftables ruleset again (`nft -f`, the
    whole-table replace the step does on any change): seconds and rules.

KUMO_BENCH_FIP_NODES (4), KUMO_BENCH_FIP_INSTANCES (40),
KUMO_BENCH_FIP_ROUNDS (20), KUMO_BENCH_FIPS (1000) change the sizes. (b)
and (c) are skipped without root, nft or dnsmasq. About a minute on 2 cores."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fakecloud import fake_cloud, load, ms, pct, table
from bench.procs import ROOT, wait_for

NODES = int(os.environ.get("KUMO_BENCH_FIP_NODES", "4"))
INSTANCES = int(os.environ.get("KUMO_BENCH_FIP_INSTANCES", "40"))
ROUNDS = int(os.environ.get("KUMO_BENCH_FIP_ROUNDS", "20"))
FIPS = int(os.environ.get("KUMO_BENCH_FIPS", "1000"))


def _net(client: Any) -> Any:
    from kumo.v1 import network_pb2_grpc

    return client.stub(network_pb2_grpc.NetworkServiceStub)


def _applied(state_dir: Path, address: str) -> bool:
    try:
        return address in (state_dir / "desired.json").read_text()
    except OSError:
        return False


def fake_fleet() -> list[float]:
    """(a); returns the controller-to-node latencies (for (b)'s end-to-end figure)."""
    from google.protobuf import field_mask_pb2

    from kumo.v1 import compute_pb2 as cpb
    from kumo.v1 import compute_pb2_grpc, node_pb2
    from kumo.v1 import network_pb2 as pb

    env = {
        "KUMO_NODE_HEARTBEAT_SECONDS": "2",
        "KUMO_INSTANCE_SYNC_SECONDS": "1",
        "KUMO_LOG_LEVEL": "WARNING",
        "KUMO_QUOTA_INSTANCES": "100000",
        "KUMO_QUOTA_VCPUS": "100000",
        "KUMO_QUOTA_RAM_MB": "100000000",
        "KUMO_QUOTA_FLOATING_IPS": "100000",
    }
    node_args = ["--fake-vcpus", "64", "--fake-memory-mb", str(64 * 1024), "--fake-disk-gb", "1000"]
    with fake_cloud("kumo-fipbench-", NODES, env, node_args) as cloud:
        admin = cloud.admin
        net = _net(admin)
        ext = net.CreateNetwork(
            pb.CreateNetworkRequest(
                network=pb.Network(
                    name="fb-ext", external=True, network_type=pb.NETWORK_TYPE_FLAT, physical_network="lan"
                )
            )
        )
        net.CreateSubnet(
            pb.CreateSubnetRequest(
                subnet=pb.Subnet(name="fb-ext-v4", network_id=ext.id, cidr="100.64.0.0/16")
            )
        )
        tenant = net.CreateNetwork(pb.CreateNetworkRequest(network=pb.Network(name="fb-app")))
        sub = net.CreateSubnet(
            pb.CreateSubnetRequest(
                subnet=pb.Subnet(name="fb-app-v4", network_id=tenant.id, cidr="10.50.0.0/16")
            )
        )
        router = net.CreateRouter(
            pb.CreateRouterRequest(
                router=pb.Router(name="fb-r", external_gateway=pb.RouterGateway(network_id=ext.id))
            )
        )
        net.AddRouterInterface(pb.AddRouterInterfaceRequest(id=router.id, subnet_id=sub.id))
        compute = admin.stub(compute_pb2_grpc.ComputeServiceStub)
        names = {n.id: n.name for n in admin.nodes.ListNodes(node_pb2.ListNodesRequest(page_size=1000)).nodes}
        dirs = {nid: cloud.base / f"node{name.removeprefix('bench')}" for nid, name in names.items()}
        instances = [
            compute.CreateInstance(
                cpb.CreateInstanceRequest(
                    name=f"fb{i}",
                    image=cloud.image_id,
                    flavor="b.small",
                    networks=[cpb.NetworkRequest(network=tenant.id)],
                )
            )
            for i in range(INSTANCES)
        ]
        fips = [
            net.CreateFloatingIp(
                pb.CreateFloatingIpRequest(floating_ip=pb.FloatingIp(floating_network_id=ext.id))
            )
            for _ in instances
        ]
        rpc, applied = [], []
        for inst, fip in zip(instances, fips, strict=True):
            t = time.perf_counter()
            net.UpdateFloatingIp(
                pb.UpdateFloatingIpRequest(
                    floating_ip=pb.FloatingIp(id=fip.id, port_id=inst.nics[0].port_id),
                    update_mask=field_mask_pb2.FieldMask(paths=["port_id"]),
                )
            )
            rpc.append(time.perf_counter() - t)
            where, address = dirs[inst.node_id], f'"{fip.floating_ip_address}/16"'
            wait_for(
                lambda w=where, a=address: _applied(w, a),  # type: ignore[misc]
                timeout=60,
                step=0.002,
                what="the node applied the floating IP",
            )
            applied.append(time.perf_counter() - t)
        print(f"(a) {len(instances)} associations on {NODES} fake nodes (one at a time):", flush=True)
        table(
            [
                ("UpdateFloatingIp", f"p50 {ms(pct(rpc, 0.5))}, p99 {ms(pct(rpc, 0.99))}"),
                ("until the node applied it", f"p50 {ms(pct(applied, 0.5))}, p99 {ms(pct(applied, 0.99))}"),
            ]
        )
        return applied


# (b) and (c): one real node in namespaces

HOST, LAN, GUEST = "kfb-host", "kfb-lan", "kfb-g"
TENANT = "f1f1f1f1-0000-4000-8000-000000000001"
EXT = "f2f2f2f2-0000-4000-8000-000000000002"
SG = "f3f3f3f3-0000-4000-8000-000000000003"
PORT = "f4f4f4f4-0000-4000-8000-000000000004"
MAC, FIXED = "52:54:00:7b:00:01", "10.123.0.5"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def ns(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", name, *args, check=check)


def _subnet(sid: str, cidr: str) -> Any:
    from kumo.v1 import node_agent_pb2 as pb

    net = ipaddress.ip_network(cidr)
    return pb.DesiredSubnet(id=sid, cidr=cidr, ip_version=4, gateway_ip=str(net.network_address + 1))


def _desired(ports: list[tuple[str, str, str]], fips: list[tuple[str, str]]) -> Any:
    """ports: (id, MAC, fixed IP); fips: (floating IP, port id)."""
    from kumo.v1 import node_agent_pb2 as pb

    rules = [
        pb.DesiredSecurityGroupRule(id="e4", direction="egress", ip_version=4),
        pb.DesiredSecurityGroupRule(id="icmp", direction="ingress", ip_version=4, protocol="icmp"),
    ]
    fixed = {pid: ip for pid, _, ip in ports}
    return pb.NodeDesiredState(
        security_groups=[pb.DesiredSecurityGroup(id=SG, rules=rules, member_ips=[FIXED])],
        networks=[
            pb.DesiredNetwork(id=TENANT, vni=4123, mtu=1450, subnets=[_subnet("st", "10.123.0.0/16")]),
            pb.DesiredNetwork(
                id=EXT,
                external=True,
                network_type=2,
                physical_network="lan",
                subnets=[_subnet("se", "100.65.0.0/16")],
            ),
        ],
        ports=[
            pb.DesiredPort(
                id=pid,
                network_id=TENANT,
                mac_address=mac,
                fixed_ips=[pb.FixedIp(subnet_id="st", ip_address=ip)],
                security_group_ids=[SG],
            )
            for pid, mac, ip in ports
        ],
        floating_ips=[
            pb.DesiredFloatingIp(
                id=f"f{k}",
                external_network_id=EXT,
                floating_address=f"{fip}/16",
                fixed_ip_address=fixed[pid],
                port_id=pid,
                network_id=TENANT,
            )
            for k, (fip, pid) in enumerate(fips)
        ],
    )


class Step:
    """The long-lived network step in the host namespace."""

    def __init__(self, state: Path) -> None:
        env = dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'proto'}")
        self.state = state
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                HOST,
                sys.executable,
                "-m",
                "bench.nodestep",
                str(state),
                '{"lan": "kfb-up"}',
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )

    def ask(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())  # type: ignore[no-any-return]

    def apply(self, desired: Any) -> float:
        blob = self.state / "bench-desired.bin"
        blob.write_bytes(desired.SerializeToString())
        return float(self.ask(f"apply {blob}")["seconds"])

    def close(self) -> None:
        try:
            from kumo.v1 import node_agent_pb2 as pb

            self.apply(pb.NodeDesiredState())  # the step takes away all it made
            self.ask("quit")
        except Exception:
            pass
        self.proc.kill()
        self.proc.wait()


def _reachable(address: str, timeout: float = 20) -> bool:
    """Pings from the LAN every 10 ms until the first answer."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if ns(LAN, "ping", "-c", "1", "-W", "0.05", address, check=False).returncode == 0:
            return True
        time.sleep(0.01)
    return False


def real_node(fake_applied: list[float]) -> None:
    from noded.network import bridge_name, tap_name

    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft", "dnsmasq")):
        print("(b), (c) skipped: need root, ip, nft and dnsmasq", flush=True)
        return
    state = Path(tempfile.mkdtemp(prefix="kumo-fipbench-node-", dir="/var/tmp"))
    state.chmod(0o755)
    spaces = (HOST, LAN, GUEST)
    step = None
    try:
        for name in spaces:
            sh("ip", "netns", "del", name, check=False)
            sh("ip", "netns", "add", name)
            ns(name, "ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", "kfb-up", "type", "veth", "peer", "name", "eth0", "netns", LAN)
        sh("ip", "link", "set", "kfb-up", "netns", HOST)
        ns(HOST, "ip", "link", "set", "kfb-up", "up")
        ns(LAN, "ip", "link", "set", "eth0", "up")
        ns(LAN, "ip", "addr", "add", "100.65.255.254/16", "dev", "eth0")
        step = Step(state)
        guest = [(PORT, MAC, FIXED)]
        step.apply(_desired(guest, []))
        tap = tap_name(PORT)
        sh("ip", "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", GUEST)
        sh("ip", "link", "set", tap, "netns", HOST)
        ns(HOST, "ip", "link", "set", tap, "mtu", "1450", "master", bridge_name(TENANT), "up")
        ns(GUEST, "ip", "link", "set", "eth0", "address", MAC, "mtu", "1450", "up")
        ns(GUEST, "ip", "addr", "add", f"{FIXED}/16", "dev", "eth0")
        ns(GUEST, "ip", "route", "add", "default", "via", "10.123.0.1")

        # (b)
        passes, reach, failed = [], [], 0
        for k in range(ROUNDS):
            fip = f"100.65.1.{k + 1}"
            t = time.perf_counter()
            passes.append(step.apply(_desired(guest, [(fip, PORT)])))
            if _reachable(fip):
                reach.append(time.perf_counter() - t)
            else:
                failed += 1
            step.apply(_desired(guest, []))
        end_to_end = sorted(a + r for a in fake_applied for r in reach) if fake_applied else []
        print(f"(b) one real node (namespaces), {ROUNDS} associations:", flush=True)
        table(
            [
                ("the step's pass", f"p50 {ms(pct(passes, 0.5))}, p99 {ms(pct(passes, 0.99))}"),
                (
                    "pass start -> LAN ping answered",
                    f"p50 {ms(pct(reach, 0.5))}, p99 {ms(pct(reach, 0.99))}"
                    + (f"; {failed} never answered" if failed else ""),
                ),
                (
                    "associate -> reachable ((a)+(b), every pair)",
                    f"p50 {ms(pct(end_to_end, 0.5))}, p99 {ms(pct(end_to_end, 0.99))}"
                    if end_to_end
                    else "n/a",
                ),
            ]
        )

        # (c)
        hosts = list(ipaddress.ip_network("10.123.0.0/16").hosts())[10 : 10 + FIPS]
        many = [
            (f"f5f5f5f5-0000-4000-8000-{k:012x}", f"52:54:00:7c:{k >> 8:02x}:{k & 255:02x}", str(ip))
            for k, ip in enumerate(hosts)
        ]
        floating = [(str(ipaddress.ip_address("100.65.16.0") + k), many[k][0]) for k in range(len(many))]
        desired = _desired(guest + many, floating)
        first = step.apply(desired)
        second = step.apply(desired)
        nft = step.ask("nft")
        addresses = len(ns(HOST, "ip", "-br", "addr", "show", bridge_name(EXT)).stdout.split()) - 2
        ok = _reachable(floating[-1][0], timeout=1) is False  # no guest behind it: must not answer
        print(f"(c) {len(floating)} floating IPs (and ports) on one node:", flush=True)
        table(
            [
                ("first pass (addresses, dnsmasq, rules, routes)", f"{first:.2f} s"),
                ("second pass (nothing to change)", f"{ms(second)}"),
                (
                    "nft -f of the whole ruleset",
                    f"{ms(nft['seconds'])}, {nft['rules']} rules, {nft['bytes'] / 1024:.0f} KiB",
                ),
                ("addresses on the external bridge", str(addresses)),
                ("a floating IP with no guest behind it", "silent" if ok else "ANSWERED"),
            ]
        )
        teardown = step.apply(_desired([], []))
        table([("pass taking them all away", f"{teardown:.2f} s")])
    finally:
        if step is not None:
            step.close()
        for name in spaces:
            for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
                sh("kill", "-9", pid, check=False)
            sh("ip", "netns", "del", name, check=False)
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    print(load(), flush=True)
    applied = fake_fleet()
    print(load(), flush=True)
    real_node(applied)
    print(load(), flush=True)


if __name__ == "__main__":
    main()
