"""Extra libvirt "hosts" on this one machine, for the live migration tests
and benchmark: a
libvirtd and virtlogd of their own in a private mount namespace (own
/run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /etc/libvirt,
/var/log/libvirt; own host UUID, migration port range, no cgroup
controllers), with a kumo-noded started inside it. The facts behind each
setting: shared/notes/live-migration-one-host.md.

Paths: nodes of one cloud keep guests under the same instances directory, so
a migrated guest's disk paths mean the same on the target. Here the host's
noded state directory is bind-mounted, inside its namespace, over the path
the first node uses (`same_path_as`): the host sees its own files there.

By default the host shares the machine's network namespace (its qemu
listens for the migration stream on 127.0.0.1, in its own port range), so its
node must not run guest networks that would clash with the first node's
bridges: the tests that use it so boot guests without NICs. With `netns` (a
namespace of bench/host_lan.py) the whole host runs inside that network
namespace, with its own guest networks."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import ROOT, noded_env

SYSTEM_DIRS = {
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "cache": "/var/cache/libvirt",
    "etc": "/etc/libvirt",
    "log": "/var/log/libvirt",
}


def _skeleton(src: Path, dst: Path) -> None:
    """The directory tree of `src` (owners and modes kept), no files."""
    for dirpath, _dirs, _files in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        target = dst / rel
        target.mkdir(parents=True, exist_ok=True)
        st = os.stat(dirpath)
        os.chown(target, st.st_uid, st.st_gid)
        os.chmod(target, st.st_mode & 0o7777)


def _config(src: Path, dst: Path, host_uuid: str, ports: tuple[int, int]) -> None:
    """A copy of /etc/libvirt without its domains and networks, with the host's own settings."""
    shutil.copytree(src, dst, symlinks=True)
    for sub in ("qemu/autostart", "qemu/networks"):
        shutil.rmtree(dst / sub, ignore_errors=True)
    for xml in (dst / "qemu").glob("*.xml"):
        xml.unlink()
    with open(dst / "libvirtd.conf", "a") as fh:
        fh.write(f'\nhost_uuid = "{host_uuid}"\n')
    with open(dst / "qemu.conf", "a") as fh:
        fh.write(
            f"\nmigration_port_min = {ports[0]}\nmigration_port_max = {ports[1]}\ncgroup_controllers = [ ]\n"
        )


@dataclass
class LibvirtHost:
    """One extra host under `base`; `start(noded_args)` runs its libvirtd and noded."""

    base: Path
    state_dir: Path  # the noded state directory (already joined)
    same_path_as: Path  # where the host sees it (the first node's state directory)
    ports: tuple[int, int] = (49400, 49499)
    host_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    netns: str = ""  # a network namespace of its own ("": the machine's)
    proc: subprocess.Popen | None = None

    @property
    def socket(self) -> str:
        """The host's libvirt socket as the rest of the machine reaches it."""
        return str(self.base / "run" / "libvirt-sock")

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.socket}"

    @property
    def log_path(self) -> Path:
        return self.base / "noded.log"

    def prepare(self) -> None:
        for name, system in SYSTEM_DIRS.items():
            if name == "lib":
                _skeleton(Path(system), self.base / name)
            elif name == "etc":
                _config(Path(system), self.base / name, self.host_uuid, self.ports)
            else:
                (self.base / name).mkdir(parents=True, exist_ok=True)

    def start(self, noded_args: list[str]) -> LibvirtHost:
        """Starts virtlogd, libvirtd and `kumo-noded run` (with `noded_args`) in the namespace."""
        self.prepare()
        binds = "\n".join(f"mount --bind {self.base / n} {d}" for n, d in SYSTEM_DIRS.items())
        # `ip netns exec` mounts a sysfs of the namespace over /sys, without the cgroup tree.
        cgroup = "mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup || true"
        script = f"""set -e
{cgroup if self.netns else ""}
{binds}
mount --bind {self.state_dir} {self.same_path_as}
virtlogd -d -p {self.base}/virtlogd.pid
libvirtd -d -p {self.base}/libvirtd.pid
for i in $(seq 300); do [ -S /run/libvirt/libvirt-sock ] && break; sleep 0.1; done
cd {ROOT}
exec {sys.executable} -m noded.main run --state-dir {self.same_path_as} --log-format text \
  --metrics-listen 127.0.0.1:0 {" ".join(shlex.quote(a) for a in noded_args)}
"""
        (self.base / "start.sh").write_text(script)
        log = open(self.log_path, "ab")
        netns = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen(
            [
                *netns,
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "bash",
                str(self.base / "start.sh"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=noded_env(),
            start_new_session=True,
        )
        log.close()
        return self

    def _pid(self, name: str) -> int:
        try:
            return int((self.base / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return 0

    def kill(self) -> None:
        """The host dies at once: its noded, libvirtd, virtlogd and guests (SIGKILL)."""
        for pid in [*self._qemu_pids(), self._pid("libvirtd"), self._pid("virtlogd")]:
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def _qemu_pids(self) -> list[int]:
        """The host's qemu processes (their pid files are under its /run/libvirt)."""
        out = []
        for pidfile in (self.base / "run" / "qemu").glob("*.pid"):
            try:
                out.append(int(pidfile.read_text().strip()))
            except (OSError, ValueError):
                pass
        return out

    def stop_noded(self) -> None:
        """Stops its kumo-noded only (libvirtd and the guests go on)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def stop(self) -> None:
        """Stops noded (so it does not remove or make guests meanwhile: its
        undefine racing ours hung virsh on a loaded box), destroys its guests
        (a virsh call that still hangs is given up: libvirtd goes next), then
        stops libvirtd and virtlogd."""
        self.stop_noded()
        if Path(self.socket).exists():
            try:
                names = subprocess.run(
                    ["virsh", "-c", self.uri, "list", "--all", "--name"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                ).stdout.split()
                for name in names:
                    for verb in ("destroy", "undefine"):
                        subprocess.run(["virsh", "-c", self.uri, verb, name], capture_output=True, timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for name in ("libvirtd", "virtlogd"):
            pid = self._pid(name)
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                for _ in range(100):
                    try:
                        os.kill(pid, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.1)
