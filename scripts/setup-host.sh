#!/usr/bin/env bash
# Installs the Debian packages kumo needs (only the missing ones) and starts
# virtlogd and libvirtd when they are not running. Idempotent; no systemd needed.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

want=$(grep -v '^#' scripts/apt-packages.txt | grep -v '^$' | sort -u)
missing=""
for p in $want; do
  if [ "$p" = nodejs ] || [ "$p" = npm ]; then
    command -v "$( [ "$p" = nodejs ] && echo node || echo npm )" >/dev/null && continue
  fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi

scripts/start-libvirt.sh
