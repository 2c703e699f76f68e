"""A real single-node Ceph cluster for the tests: one mon, one mgr, one
bluestore OSD on a sparse file, pool `rbd` with size 1, and a `client.kumo`
key for qemu (cephx). Every path is under one directory; the daemons run as
root and are stopped by pid (OSD, mgr, mon). ~15 s to every PG active+clean.

Its daemons listen on MON_HOST alone (mon 3300/6789, OSD and mgr on ports of
Ceph's range): an address on a bridge of its own (`kumo-ceph0`, no ports) in
this machine's network namespace, so that the test hosts' own namespaces
(bench/host_lan.py) reach it through their LAN bridge, as real hosts reach a
real cluster, and nothing else does: an nftables table of its own drops what
comes for it from any interface but `lo` and the test LANs' bridges (`kln-*`).

Used by the rbd tests (tests/ceph.py: a session fixture) and the storage
benchmark; the facts it relies on are in ../shared/notes/ceph-single-node.md.
Ceph's ports and address are fixed: one cluster per host (a lock file; the
holder first kills what a killed session left running). Not a benchmark
itself (the runner only picks up *_bench modules)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import wait_for

# wait(pred, what, base seconds): polls until pred() is true (tests pass a load-scaled one).
Wait = Callable[[Callable[[], Any], str, float], Any]


def _wait(pred: Callable[[], Any], what: str, base: float) -> Any:
    return wait_for(pred, timeout=base, step=0.2, what=what)


# 198.18.0.0/15 is for benchmarks (RFC 2544); the test LANs use 198.18.20-219.
MON_HOST = "198.19.250.1"
MON_PORT = 6789
BRIDGE = "kumo-ceph0"
GUARD = "kumo_ceph_guard"  # the nftables table (inet) that keeps the address to the tests
POOL = "rbd"
CLIENT = "kumo"
LOCK = Path("/tmp/kumo-ceph-cluster.lock")


@contextlib.contextmanager
def one_per_host() -> Iterator[None]:
    """Ceph's ports are fixed: tests and benchmarks take turns (a lock file).
    Whoever holds it owns the only cluster there may be, so a cluster still
    running then was left by a killed session (it would hold the ports):
    it is killed first."""
    LOCK.touch(exist_ok=True)
    with LOCK.open() as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reap_stale()
        yield


def _stale_daemons() -> list[int]:
    """The pids of the Ceph daemons of a kumo test cluster (`-c` names a
    ceph.conf under a `kumo-*` directory, as start() makes them)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if Path(argv[0].decode(errors="replace")).name not in ("ceph-mon", "ceph-mgr", "ceph-osd"):
            continue
        confs = [argv[i + 1].decode(errors="replace") for i, a in enumerate(argv[:-1]) if a == b"-c"]
        if any(_ours(conf) for conf in confs):
            found.append(int(proc.name))
    return found


def _ours(conf: str) -> bool:
    return conf.endswith("/ceph.conf") and any(part.startswith("kumo-") for part in Path(conf).parts)


def reap_stale() -> None:
    """Only while holding the lock: kills the daemons of a test cluster a
    killed session left (SIGKILL: nothing of theirs is kept) and removes
    its directories under /tmp/kumo-ceph-*."""
    pids = _stale_daemons()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: not set(pids) & set(_stale_daemons()), timeout=30, step=0.1, what="stale Ceph daemons gone"
    )
    for root in Path(tempfile.gettempdir()).glob("kumo-ceph-*"):
        if root.is_dir():
            shutil.rmtree(root, ignore_errors=True)


def available() -> str:
    """Why a cluster cannot start here ("" when it can)."""
    for tool in (
        "ceph-mon",
        "ceph-mgr",
        "ceph-osd",
        "ceph",
        "rbd",
        "ceph-authtool",
        "monmaptool",
        "ip",
        "nft",
    ):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup-host.sh installs ceph-mon ceph-osd ceph-mgr ceph-common)"
    if os.geteuid() != 0:
        return "the test Ceph cluster runs its daemons as root"
    return ""


@dataclass
class CephCluster:
    root: Path
    conf: Path
    admin_keyring: Path
    client_keyring: Path
    client_key: str
    pool: str = POOL
    client: str = CLIENT
    monitors: tuple[tuple[str, int], ...] = ((MON_HOST, MON_PORT),)

    def ceph(self, *args: str, timeout: float = 60) -> str:
        return _run(["ceph", "-c", str(self.conf), *args], timeout)

    def rbd(self, *args: str, timeout: float = 60) -> str:
        return _run(["rbd", "-c", str(self.conf), "-p", self.pool, *args], timeout)

    def images(self) -> list[str]:
        out = self.rbd("ls").split()
        return sorted(out)

    def node_args(self) -> list[str]:
        """The `kumo-noded run` flags of a node using this cluster's pool."""
        return [
            "--rbd-monitors",
            ",".join(f"{h}:{p}" for h, p in self.monitors),
            "--rbd-pool",
            self.pool,
            "--rbd-user",
            self.client,
            "--rbd-keyring",
            str(self.client_keyring),
        ]


def _run(cmd: list[str], timeout: float = 60) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p.stdout


CONF = """[global]
fsid = {fsid}
mon_initial_members = a
mon_host = v2:{host}:3300,v1:{host}:{port}
public_network = {host}/32
public_addr = {host}
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
run_dir = {root}/run
log_file = {root}/log/$name.log
admin_socket = {root}/run/$name.asok
pid_file = {root}/run/$name.pid
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 2
mon_data_avail_crit = 1
osd_crush_chooseleaf_type = 0
mgr_initial_modules =
[client.admin]
keyring = {root}/keyring.admin
[mon]
mon_data = {root}/mon/$cluster-$id
[mgr]
mgr_data = {root}/mgr/$cluster-$id
[osd]
osd_data = {root}/osd/$cluster-$id
osd_objectstore = bluestore
bluestore_block_path = {root}/osd-block-$id
bluestore_block_create = true
bluestore_block_size = 10737418240
osd_memory_target = 1073741824
"""


def start(root: Path, wait: Wait = _wait) -> tuple[CephCluster, list[int]]:
    """Bootstraps the cluster under `root`; returns it and the daemon pids
    (mon first). Raises with the daemon's log tail when a step fails."""
    address_up()
    for d in ("run", "log", "mon/ceph-a", "mgr/ceph-x", "osd/ceph-0"):
        (root / d).mkdir(parents=True, exist_ok=True)
    fsid = str(uuid.uuid4())
    conf = root / "ceph.conf"
    conf.write_text(CONF.format(fsid=fsid, host=MON_HOST, port=MON_PORT, root=root))
    c = ["-c", str(conf)]
    mon_kr, admin_kr = root / "keyring.mon", root / "keyring.admin"
    _run(
        [
            "ceph-authtool",
            "--create-keyring",
            str(mon_kr),
            "--gen-key",
            "-n",
            "mon.",
            "--cap",
            "mon",
            "allow *",
        ]
    )
    _run(
        [
            "ceph-authtool",
            "--create-keyring",
            str(admin_kr),
            "--gen-key",
            "-n",
            "client.admin",
            "--cap",
            "mon",
            "allow *",
            "--cap",
            "osd",
            "allow *",
            "--cap",
            "mgr",
            "allow *",
        ]
    )
    _run(["ceph-authtool", str(mon_kr), "--import-keyring", str(admin_kr)])
    monmap = root / "monmap"
    _run(
        [
            "monmaptool",
            "--create",
            "--fsid",
            fsid,
            "--addv",
            "a",
            f"[v2:{MON_HOST}:3300,v1:{MON_HOST}:{MON_PORT}]",
            str(monmap),
        ]
    )
    _run(["ceph-mon", *c, "--mkfs", "-i", "a", "--monmap", str(monmap), "--keyring", str(mon_kr)])
    pids: list[int] = []
    pids.append(_daemon(["ceph-mon", *c, "-f", "-i", "a"], root / "log" / "mon.a.stdout"))
    cluster = CephCluster(root, conf, admin_kr, root / "keyring.client", "")
    wait(lambda: _ok(cluster, "mon", "stat"), "the Ceph monitor to answer", 60)
    mgr_kr = root / "mgr" / "ceph-x" / "keyring"
    mgr_kr.write_text(
        cluster.ceph(
            "auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "osd", "allow *", "mds", "allow *"
        )
    )
    pids.append(_daemon(["ceph-mgr", *c, "-f", "-i", "x"], root / "log" / "mgr.x.stdout"))
    osd_uuid = str(uuid.uuid4())
    secret = _run(["ceph-authtool", "--gen-print-key"]).strip()
    secret_json = root / "osd-secret.json"
    secret_json.write_text(f'{{"cephx_secret": "{secret}"}}')
    osd_id = cluster.ceph("osd", "new", osd_uuid, "-i", str(secret_json)).strip()
    osd_dir = root / "osd" / f"ceph-{osd_id}"
    osd_dir.mkdir(parents=True, exist_ok=True)
    _run(
        [
            "ceph-authtool",
            "--create-keyring",
            str(osd_dir / "keyring"),
            "--name",
            f"osd.{osd_id}",
            "--add-key",
            secret,
        ]
    )
    _run(["ceph-osd", *c, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid], timeout=120)
    pids.append(_daemon(["ceph-osd", *c, "-f", "-i", osd_id], root / "log" / f"osd.{osd_id}.stdout"))
    wait(
        lambda: '"num_up_osds":1' in cluster.ceph("osd", "stat", "-f", "json").replace(" ", ""),
        "the OSD up",
        base=90,
    )
    cluster.ceph("osd", "pool", "create", POOL, "8", "8")
    cluster.ceph("osd", "pool", "set", POOL, "size", "1", "--yes-i-really-mean-it")
    _run(["rbd", *c, "pool", "init", POOL])
    keyring = cluster.ceph(
        "auth", "get-or-create", f"client.{CLIENT}", "mon", "profile rbd", "osd", f"profile rbd pool={POOL}"
    )
    cluster.client_keyring.write_text(keyring)
    cluster.client_key = cluster.ceph("auth", "get-key", f"client.{CLIENT}").strip()
    wait(lambda: _pgs_clean(cluster), "every Ceph PG active+clean", 120)
    return cluster, pids


def _ok(cluster: CephCluster, *args: str) -> bool:
    try:
        cluster.ceph(*args, "--connect-timeout", "5", timeout=15)
        return True
    except (RuntimeError, subprocess.TimeoutExpired):
        return False


def _pgs_clean(cluster: CephCluster) -> bool:
    # "8 pgs: 8 active+clean; ..." once every PG is ready.
    out = cluster.ceph("pg", "stat")
    head = out.split(";")[0]
    total = head.split()[0] if head.split() else "0"
    return total != "0" and f"{total} active+clean" in head


def _explain(root: Path) -> str:
    tails = []
    for log in sorted((root / "log").glob("*")):
        tails.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
    return "\n".join(tails)


def _daemon(cmd: list[str], out: Path) -> int:
    with out.open("ab") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    return p.pid


def address_up() -> None:
    """ADDRESS on its own bridge, and the guard that drops what comes for it
    from anywhere but this machine and the test LANs (made afresh)."""
    address_down()
    _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    _run(["ip", "addr", "add", f"{MON_HOST}/32", "dev", BRIDGE])
    _run(["ip", "link", "set", BRIDGE, "up"])
    rules = f"""table inet {GUARD} {{
  chain input {{
    type filter hook input priority filter - 5; policy accept;
    ip daddr {MON_HOST} iifname "lo" accept
    ip daddr {MON_HOST} iifname "kln-*" accept
    ip daddr {MON_HOST} drop
  }}
}}
"""
    p = subprocess.run(["nft", "-f", "-"], input=rules, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"nft: {p.stderr.strip()}")


def address_down() -> None:
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, timeout=30)
    subprocess.run(["nft", "delete", "table", "inet", GUARD], capture_output=True, timeout=30)


def stop(pids: list[int]) -> None:
    """OSD, mgr, then mon, by pid; then the address goes."""
    for pid in reversed(pids):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.1)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    address_down()
