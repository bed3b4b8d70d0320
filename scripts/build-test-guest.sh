#!/usr/bin/env bash
# Build the ACPI-aware test guest: Debian bookworm's kernel booted directly
# (<os><kernel>/<initrd>) with a tiny busybox initramfs whose /init runs
# `acpid`, so `virsh shutdown` (ACPI power button) powers the guest off.
#
# Produces  /var/lib/kvmtune-test/vmlinuz  and  /var/lib/kvmtune-test/initrd.img
# (override the directory with $KVMTUNE_TEST_GUEST_DIR).  Idempotent: does
# nothing when both files exist and were built from the same kernel package
# version.  The kernel and busybox packages are downloaded and unpacked with
# dpkg-deb -x into a temporary directory, never installed.  Serial console:
# boot with console=ttyS0.
set -euo pipefail

say() { printf 'build-test-guest: %s\n' "$*"; }

OUT="${KVMTUNE_TEST_GUEST_DIR:-/var/lib/kvmtune-test}"

if [ "$(id -u)" -ne 0 ]; then
    say "must run as root (apt-get download, writes $OUT)" >&2
    exit 1
fi

# The kernel package linux-image-amd64 depends on (bookworm's current ABI).
kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; exit }')"
if [ -z "$kpkg" ]; then
    say "apt-get update (no linux-image-amd64 in the package lists)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    kpkg="$(apt-cache depends linux-image-amd64 |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; exit }')"
fi
[ -n "$kpkg" ] || { say "cannot find the kernel package of linux-image-amd64" >&2; exit 1; }
kver="$(apt-cache policy "$kpkg" | awk '$1 == "Candidate:" { print $2 }')"
stamp="$kpkg $kver busybox-static init-v2"

if [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.img" ] &&
   [ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$stamp" ]; then
    say "up to date: $OUT/vmlinuz, $OUT/initrd.img ($stamp)"
    exit 0
fi

if ! command -v cpio >/dev/null; then
    say "apt-get install cpio"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q cpio >/dev/null
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
# apt-get download runs as the _apt user in sandboxed mode: let it write here.
chmod 0777 "$work"

say "apt-get download $kpkg ($kver) busybox-static"
apt-get download -q "$kpkg" busybox-static >/dev/null
dpkg-deb -x "$kpkg"_*.deb kernel
dpkg-deb -x busybox-static_*.deb bb

modroot="$(find kernel/lib/modules -mindepth 1 -maxdepth 1 -type d | head -n1)"
uname_r="$(basename "$modroot")"
vmlinuz="kernel/boot/vmlinuz-$uname_r"
# The package ships no modules.dep (its postinst runs depmod): generate it in
# the temporary tree.
if [ ! -f "$modroot/modules.dep" ]; then
    command -v depmod >/dev/null || { say "depmod (package kmod) is missing" >&2; exit 1; }
    depmod -b "$work/kernel" "$uname_r"
fi
[ -f "$vmlinuz" ] || { say "no $vmlinuz in $kpkg" >&2; exit 1; }

# ------------------------------------------------------------ initramfs --
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,sbin,proc,sys,dev,tmp,var/log,etc/acpi/PWRF,lib/modules}
cp bb/bin/busybox "$rootfs/bin/busybox"
for applet in sh mount insmod sleep echo cat ls poweroff acpid mkdir; do
    ln -s busybox "$rootfs/bin/$applet"
done

# The modules /init loads, dependencies first (from modules.dep), in load
# order.  A module built into the kernel (modules.builtin) needs nothing.
# Compressed modules are decompressed: busybox insmod reads plain .ko only.
declare -A seen=()
order=()
add_module() {
    local name="$1" path deps d
    path="$(awk -F: -v n="$name" '{ f = $1; sub(/.*\//, "", f); sub(/\.ko(\.(xz|zst|gz))?$/, "", f); gsub(/-/, "_", f) }
                                   f == n { print $1; exit }' "$modroot/modules.dep")"
    if [ -z "$path" ]; then
        if grep -Eq "/${name//_/[-_]}\.ko$" "$modroot/modules.builtin"; then
            say "module $name: built in"
            return
        fi
        say "module $name: not found in $uname_r" >&2
        exit 1
    fi
    [ -n "${seen[$path]:-}" ] && return
    seen[$path]=1
    deps="$(awk -F: -v p="$path" '$1 == p { print $2; exit }' "$modroot/modules.dep")"
    for d in $deps; do
        d="$(basename "$d")"; d="${d%%.ko*}"; add_module "${d//-/_}"
    done
    order+=("$path")
}
# button: the ACPI power button (an input device); evdev: /dev/input/event*,
# which busybox acpid reads.
add_module button
add_module evdev
: > "$rootfs/etc/modules"
for path in "${order[@]}"; do
    base="$(basename "$path")"
    case "$base" in
        *.ko.xz)  xz -dc "$modroot/$path" > "$rootfs/lib/modules/${base%.xz}" ;;
        *.ko.zst) zstd -qdc "$modroot/$path" > "$rootfs/lib/modules/${base%.zst}" ;;
        *.ko.gz)  gzip -dc "$modroot/$path" > "$rootfs/lib/modules/${base%.gz}" ;;
        *.ko)     cp "$modroot/$path" "$rootfs/lib/modules/$base" ;;
    esac
    echo "${base%%.ko*}.ko" >> "$rootfs/etc/modules"
    say "module: $path"
done

# busybox acpid maps the power button to action PWRF/00000080 and runs
# /etc/acpi/PWRF/00000080.
echo "PWRF PWRF/00000080" > "$rootfs/etc/acpid.conf"
cat > "$rootfs/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "kvmtune-test-guest: power button, powering off"
poweroff -f
EOF
chmod 0755 "$rootfs/etc/acpi/PWRF/00000080"

cat > "$rootfs/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/modules); do
    insmod /lib/modules/$m || echo "kvmtune-test-guest: insmod $m failed"
done
# Give devtmpfs a moment to create /dev/input/event*.
n=0
while [ ! -e /dev/input/event0 ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
# -d: foreground, log to the console (busybox acpid exits when it cannot open
# its log file).
acpid -d -c /etc/acpi -a /etc/acpid.conf &
echo "kvmtune-test-guest: ready (acpid running)"
while true; do sleep 3600; done
EOF
chmod 0755 "$rootfs/init"

mkdir -p "$OUT"
(cd "$rootfs" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -9 > "$work/initrd.img"
install -m 0644 "$vmlinuz" "$OUT/vmlinuz.new"
install -m 0644 "$work/initrd.img" "$OUT/initrd.img.new"
mv "$OUT/vmlinuz.new" "$OUT/vmlinuz"
mv "$OUT/initrd.img.new" "$OUT/initrd.img"
echo "$stamp" > "$OUT/.stamp"
say "built $OUT/vmlinuz ($uname_r) and $OUT/initrd.img ($(stat -c %s "$OUT/initrd.img") bytes)"
