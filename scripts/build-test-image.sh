#!/usr/bin/env bash
# Builds the guest test image, a small bootable qcow2, from Debian packages only
# (linux-image-cloud-amd64, busybox-static, syslinux, dosfstools, mtools,
# qemu-utils): no download from anywhere.
#
#   scripts/build-test-image.sh [OUT]      (default images/kumo-test.qcow2)
#
# The disk is a 32 MiB FAT "superfloppy" (no partition table) made bootable with
# `syslinux --install`; it holds the cloud kernel, a busybox initramfs and
# syslinux.cfg (console on ttyS0). The initramfs /init (see below) prints, on the
# serial console:
#   KUMO-TEST-IMAGE-BOOTED              once userspace runs
#   instance-id: <id> / hostname: <n>   from a config drive labelled cidata or
#                                       config-2 (ISO9660 or vfat, disk or cdrom)
#   KUMO-IP: <addr>                     when DHCP on eth0 gets a lease (once per address)
#   KUMO-IP6: <addr>                    when eth0 has a global IPv6 address that passed
#                                       DAD (SLAAC from router advertisements; once per
#                                       address, in full 8-group form)
#   KUMO-DISKS: vda vdb ...             at start and whenever the set changes
# serves `instance-id: <id>` over HTTP on TCP port 80 (busybox httpd, for
# security-group tests), runs a shell (no prompt) on ttyS0 for the interactive
# console, and powers off on an ACPI power-button press. It never exits.
#
# Idempotent: rebuilds only when OUT is missing, or this script or the kernel
# changed (a stamp file OUT.stamp remembers both). Needs no root, but Debian's
# /boot/vmlinuz-* may be readable by root only.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-images/kumo-test.qcow2}

kernel=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$kernel" ] || { echo "no /boot/vmlinuz-*-cloud-amd64: apt-get install linux-image-cloud-amd64" >&2; exit 1; }
kver=${kernel#/boot/vmlinuz-}
moddir=/lib/modules/$kver
busybox=/bin/busybox
[ -x "$busybox" ] && "$busybox" --list | grep -qx udhcpc || { echo "need busybox-static" >&2; exit 1; }
for tool in mkfs.vfat mcopy syslinux qemu-img cpio gzip; do
  command -v "$tool" >/dev/null || { echo "missing $tool (see scripts/apt-packages.txt)" >&2; exit 1; }
done

stamp="$out.stamp"
want="$(sha256sum "$0" | cut -c1-64) $kver"
if [ -f "$out" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$out is up to date"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/initramfs
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,mnt/config,etc/acpi/PWRF,lib/modules,www}

cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done

# Kernel modules the guest needs, with their dependencies in load order.
wanted="virtio_pci virtio_blk virtio_net virtio_scsi sr_mod sd_mod ata_piix isofs vfat
        nls_cp437 nls_ascii nls_iso8859-1 nls_utf8 button evdev"
declare -A seen=()
order=()
add_module() {  # depth-first over modules.dep, so dependencies come first
  local name=$1 line path dep
  line=$(grep -E "(^|/)${name}\.ko(\.[gx]z|\.zst)?:" "$moddir/modules.dep" | head -n 1) || {
    echo "module $name not found in $moddir" >&2; exit 1; }
  path=${line%%:*}
  [ -n "${seen[$path]:-}" ] && return 0
  seen[$path]=1
  for dep in ${line#*:}; do
    dep=$(basename "$dep"); add_module "${dep%%.ko*}"
  done
  order+=("$path")
}
for m in $wanted; do add_module "$m"; done
: > "$root/etc/modules"
for path in "${order[@]}"; do
  case "$path" in
    *.ko) cp "$moddir/$path" "$root/lib/modules/" ;;
    *) echo "compressed module $path is not supported by busybox insmod here" >&2; exit 1 ;;
  esac
  echo "$(basename "$path" .ko)" >> "$root/etc/modules"
done

cat > "$root/etc/udhcpc.script" <<'EOF'
#!/bin/sh
# udhcpc hook: configure the interface and announce the address.
case "$1" in
  deconfig)
    ifconfig "$interface" 0.0.0.0 up ;;
  bound|renew)
    ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up
    if [ -n "$router" ]; then
      while route del default gw 0.0.0.0 dev "$interface" 2>/dev/null; do :; done
      for r in $router; do route add default gw "$r" dev "$interface"; break; done
    fi
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    # udhcpc does not pass its stdout on to this script: write to the console,
    # once per address (a renewal of the same lease says nothing).
    if [ "$interface" = eth0 ]; then tag="KUMO-IP"; else tag="KUMO-IP-$interface"; fi
    if [ "$(cat "/run/ip-$interface" 2>/dev/null)" != "$ip" ]; then
      echo "$ip" > "/run/ip-$interface"
      echo "$tag: $ip" > /dev/console
    fi ;;
esac
exit 0
EOF

cat > "$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "KUMO-POWEROFF" > /dev/console
sync
poweroff -f
EOF

cat > "$root/init" <<'EOF'
#!/bin/sh
# kumo test image: PID 1. Every part tolerates the absence of its device.
# It must never exit (that would panic the kernel).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
exec </dev/console >/dev/console 2>&1
for m in $(cat /etc/modules); do insmod "/lib/modules/$m.ko" 2>/dev/null; done
hostname kumo-test
echo "KUMO-TEST-IMAGE-BOOTED"

# Power button -> clean poweroff (libvirt's shutdown).
acpid -c /etc/acpi -l /dev/null 2>/dev/null

disks() {
  out=""
  for d in /sys/block/*; do
    [ -e "$d" ] || continue
    n=${d##*/}
    case "$n" in loop*|ram*|zram*|nbd*) continue ;; esac
    out="$out $n"
  done
  echo "${out# }"
}

# Config drive: a filesystem labelled cidata (NoCloud) or config-2 (OpenStack).
config_drive() {
  i=0
  while [ $i -lt 10 ]; do
    for dev in $(findfs LABEL=cidata 2>/dev/null) $(findfs LABEL=CIDATA 2>/dev/null) \
               $(findfs LABEL=config-2 2>/dev/null) $(findfs LABEL=CONFIG-2 2>/dev/null) \
               /dev/sr* /dev/vd* /dev/sd*; do
      [ -b "$dev" ] || continue
      case "$dev" in /dev/vda) continue ;; esac
      for fs in iso9660 vfat; do
        mount -r -t "$fs" "$dev" /mnt/config 2>/dev/null || continue
        if [ -f /mnt/config/meta-data ]; then
          id=$(sed -n 's/^instance-id:[[:space:]]*//p' /mnt/config/meta-data | head -n 1 | tr -d "\"'\r")
          host=$(sed -n 's/^local-hostname:[[:space:]]*//p; s/^hostname:[[:space:]]*//p' \
                 /mnt/config/meta-data | head -n 1 | tr -d "\"'\r")
        elif [ -f /mnt/config/openstack/latest/meta_data.json ]; then
          j=/mnt/config/openstack/latest/meta_data.json
          id=$(tr ',' '\n' < "$j" | sed -n 's/.*"uuid":[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1)
          host=$(tr ',' '\n' < "$j" | sed -n 's/.*"hostname":[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1)
        else
          umount /mnt/config; continue
        fi
        echo "KUMO-CONFIG-DRIVE: $dev"
        echo "instance-id: $id"
        echo "hostname: $host"
        echo "instance-id: $id" > /www/index.html
        [ -n "$host" ] && hostname "$host"
        if [ -f /mnt/config/user-data ] && head -c 2 /mnt/config/user-data | grep -q '^#!'; then
          cp /mnt/config/user-data /tmp/user-data && chmod +x /tmp/user-data
          (/tmp/user-data 2>&1 | sed 's/^/user-data: /') &
        fi
        return 0
      done
    done
    i=$((i + 1)); sleep 1
  done
  echo "KUMO-CONFIG-DRIVE: none"
}

# DHCP on every NIC (eth0 first); udhcpc keeps running to renew the lease.
# eth0 is waited for only when there is a virtio NIC (virtio device id 1, on
# the bus once virtio_pci is in): a guest without one (most tests' servers)
# goes on to its config drive at once, not after 5 s of sleeps.
virtio_nic() { grep -qx 0x0001 /sys/bus/virtio/devices/*/device 2>/dev/null; }
dhcp() {
  i=0
  while virtio_nic && [ ! -e /sys/class/net/eth0 ] && [ $i -lt 5 ]; do i=$((i + 1)); sleep 1; done
  nics=""
  for n in /sys/class/net/*; do
    ifc=${n##*/}
    [ -e "$n" ] && [ "$ifc" != lo ] || continue
    nics="$nics $ifc"
    ifconfig "$ifc" up 2>/dev/null
    udhcpc -f -i "$ifc" -s /etc/udhcpc.script -t 10 -T 2 -A 5 >/dev/null 2>&1 &
  done
  echo "KUMO-NICS:$nics"
}

# Global IPv6 addresses (the kernel's SLAAC from router advertisements) once
# DAD is done, each announced once: /proc/net/if_inet6 is
# "<32 hex> <ifindex> <prefixlen> <scope> <flags> <ifname>"; scope 00 is
# global, flag 0x40 tentative.
ip6_announce() {
  while read -r hex _ _ scope flags ifc; do
    [ "$scope" = 00 ] && [ $((0x$flags & 0x40)) -eq 0 ] || continue
    case " $ip6_seen " in *" $hex "*) continue ;; esac
    ip6_seen="$ip6_seen $hex"
    if [ "$ifc" = eth0 ]; then tag="KUMO-IP6"; else tag="KUMO-IP6-$ifc"; fi
    echo "$tag: $(echo "$hex" | sed 's/..../&:/g; s/:$//')"
  done < /proc/net/if_inet6 2>/dev/null
}
ip6_seen=""

ifconfig lo 127.0.0.1 up 2>/dev/null
# A TCP service for security-group tests: GET / answers the instance-id.
echo "instance-id: unknown" > /www/index.html
httpd -p 80 -h /www
dhcp
config_drive &
# A shell on the serial port, for the interactive console (kumo server console
# --attach). Its input is a pipe, so it is not interactive: no prompt and no
# line editing (whose cursor queries) land before a marker line; the guest's
# tty echoes what is typed. Restarted when it exits.
(while :; do cat /dev/ttyS0 | sh >/dev/ttyS0 2>&1; sleep 1; done) &

last=""
while true; do
  now=$(disks)
  if [ "$now" != "$last" ]; then echo "KUMO-DISKS: $now"; last=$now; fi
  ip6_announce
  sleep 1
done
EOF
chmod 755 "$root/init" "$root/etc/udhcpc.script" "$root/etc/acpi/PWRF/00000080"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --owner 0:0 --quiet | gzip -9) > "$work/initrd.gz"

cat > "$work/syslinux.cfg" <<'EOF'
DEFAULT kumo
PROMPT 0
TIMEOUT 0
LABEL kumo
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=ttyS0
EOF

disk=$work/disk.raw
mkfs.vfat -C -n KUMOTEST "$disk" 32768 >/dev/null
cp "$kernel" "$work/vmlinuz"
mcopy -i "$disk" "$work/vmlinuz" "$work/initrd.gz" "$work/syslinux.cfg" ::
syslinux --install "$disk"

mkdir -p "$(dirname "$out")"
qemu-img convert -f raw -O qcow2 "$disk" "$work/out.qcow2"
mv "$work/out.qcow2" "$out"
echo "$want" > "$stamp"
echo "built $out ($(stat -c %s "$out") bytes; kernel $kver)"
