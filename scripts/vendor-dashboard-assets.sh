#!/usr/bin/env bash
# Rebuilds dashboard/static/vendor/ from the npm packages pinned by
# dashboard/package.json + package-lock.json (`npm ci`, in a scratch
# directory), so the vendored files are exactly the locked versions.
# CI needs no npm: the result is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp dashboard/package.json dashboard/package-lock.json "$work/"
(cd "$work" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null)
out=dashboard/static/vendor
mkdir -p "$out"
cp "$work/node_modules/htmx.org/dist/htmx.min.js" "$out/htmx.min.js"
cp "$work/node_modules/@xterm/xterm/lib/xterm.js" "$out/xterm.js"
cp "$work/node_modules/@xterm/xterm/css/xterm.css" "$out/xterm.css"
cp "$work/node_modules/htmx.org/LICENSE" "$out/htmx.LICENSE"
cp "$work/node_modules/@xterm/xterm/LICENSE" "$out/xterm.LICENSE"
(cd "$out" && sha256sum htmx.min.js xterm.js xterm.css > SHA256SUMS)
echo "vendored into $out:"; cat "$out/SHA256SUMS"
