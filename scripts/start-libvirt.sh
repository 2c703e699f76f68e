#!/usr/bin/env bash
# Starts virtlogd and libvirtd by hand when they are not running (no systemd here).
set -euo pipefail
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
command -v libvirtd >/dev/null || { echo "libvirtd not installed" >&2; exit 1; }
pgrep -x virtlogd >/dev/null || $sudo virtlogd -d
pgrep -x libvirtd >/dev/null || $sudo libvirtd -d
for _ in $(seq 50); do
  virsh -c qemu:///system version >/dev/null 2>&1 && exit 0
  sleep 0.2
done
echo "libvirtd did not answer on qemu:///system" >&2
exit 1
