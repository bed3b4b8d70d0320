#!/usr/bin/env bash
# Bring up what kvmtune's test suite needs on a Debian 12 machine:
#   Debian packages, the libvirt-qemu user / kvm group, virtlogd + libvirtd
#   (started by hand: there is no systemd), a hugetlbfs mount, and a Rust
#   toolchain.  Idempotent: safe to run again; it leaves a running libvirtd
#   alone.  Prints one line per action.
set -euo pipefail

say() { printf 'env-up: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    say "must run as root (installs packages, starts libvirtd)" >&2
    exit 1
fi

# ---------------------------------------------------------------- packages --
PACKAGES=(libvirt-daemon-system libvirt-clients libvirt-dev qemu-system-x86
          pkg-config tuned dbus python3-venv linux-perf)

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

# The first version of package $1 that `apt-cache policy` lists as coming
# from bookworm (main, -updates or -security); versions are listed newest first.
bookworm_version() {
    apt-cache policy "$1" | awk '
        $1 == "***" && NF == 3           { v = $2; next }
        NF == 2 && $2 ~ /^-?[0-9]+$/     { v = $1; next }
        v != "" && / bookworm(-security|-updates)?\// { print v; exit }'
}

apt_updated=""
apt_update_once() {
    if [ -z "$apt_updated" ]; then
        say "apt-get update ($*)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
}

missing=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
    say "packages: all present (${PACKAGES[*]})"
else
    export DEBIAN_FRONTEND=noninteractive
    apt_update_once "missing: ${missing[*]}"
    extra=()
    # Some images ship qemu-utils from bookworm-backports without a backports
    # apt source; bookworm's qemu-system-x86 then conflicts with it, so
    # downgrade qemu-utils to bookworm's version in the same transaction.
    if ! installed qemu-system-x86 && installed qemu-utils; then
        have="$(dpkg-query -W -f='${Version}' qemu-utils)"
        want="$(bookworm_version qemu-utils)"
        if [ -z "$want" ]; then
            say "cannot find bookworm's qemu-utils version in apt-cache policy" >&2
            exit 1
        fi
        if [ "$have" != "$want" ]; then
            say "qemu-utils $have -> $want (downgrade to match bookworm's qemu-system-x86)"
            extra=("qemu-utils=$want" "qemu-block-extra-")
        fi
    fi
    say "apt-get install ${missing[*]} ${extra[*]}"
    apt-get install -y -q --allow-downgrades "${missing[@]}" "${extra[@]}"
fi

# ------------------------------------------------- monitoring and report --
# promtool (Debian's prometheus package) checks `verify --format prometheus`; Chromium and
# its WebDriver render and click the `kvmtune report --format html` page in tests/report.rs.
# Services are not started: promtool is all that is used of prometheus.
REPORT_PACKAGES=(prometheus chromium chromium-driver)
report_missing=()
for p in "${REPORT_PACKAGES[@]}"; do
    installed "$p" || report_missing+=("$p")
done
if [ "${#report_missing[@]}" -eq 0 ]; then
    say "report packages: all present (${REPORT_PACKAGES[*]})"
else
    apt_update_once "missing: ${report_missing[*]}"
    say "apt-get install ${report_missing[*]}"
    # policy-rc.d: keep the prometheus daemon from being started by the package.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${report_missing[@]}"
    if [ -n "$policy" ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
fi

# ------------------------------------------------------ users and groups --
if getent group kvm >/dev/null; then
    say "group kvm: exists"
else
    groupadd --system kvm
    say "group kvm: created"
fi
if getent passwd libvirt-qemu >/dev/null; then
    say "user libvirt-qemu: exists"
else
    useradd --system --gid kvm --home-dir /var/lib/libvirt \
        --shell /usr/sbin/nologin --comment "Libvirt Qemu" libvirt-qemu
    say "user libvirt-qemu: created"
fi

# ------------------------------------------------------------- hugetlbfs --
# Before the daemons: libvirtd looks for hugetlbfs mounts only when it starts;
# one started earlier cannot start hugepage-backed guests until restarted.
if awk '$3 == "hugetlbfs" { found = 1 } END { exit !found }' /proc/mounts; then
    say "hugetlbfs: already mounted at $(awk '$3 == "hugetlbfs" { print $2; exit }' /proc/mounts)"
else
    mkdir -p /dev/hugepages
    if mount -t hugetlbfs hugetlbfs /dev/hugepages; then
        say "hugetlbfs: mounted at /dev/hugepages"
    else
        say "hugetlbfs: mount failed (continuing; only hugepage-backed guests need it)" >&2
    fi
fi

# --------------------------------------------------------------- tracefs --
# `kvmtune perf` (perf kvm stat) reads the kvm tracepoints below
# /sys/kernel/tracing/events/kvm; containers often come without tracefs mounted.
if awk '$3 == "tracefs" && $2 == "/sys/kernel/tracing" { found = 1 } END { exit !found }' /proc/mounts; then
    say "tracefs: already mounted at /sys/kernel/tracing"
elif mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null; then
    say "tracefs: mounted at /sys/kernel/tracing"
else
    say "tracefs: mount at /sys/kernel/tracing failed (continuing; only kvmtune perf needs it)" >&2
fi
if [ -d /sys/kernel/tracing/events/kvm ]; then
    say "tracefs: kvm tracepoints present"
else
    say "tracefs: no kvm tracepoints (/sys/kernel/tracing/events/kvm missing; kvmtune perf will say so)" >&2
fi

# --------------------------------------------------------------- daemons --
mkdir -p /run/libvirt
say "mkdir -p /run/libvirt"

if pgrep -x virtlogd >/dev/null; then
    say "virtlogd: already running (pid $(pgrep -x virtlogd | head -n1))"
else
    virtlogd -d
    say "virtlogd: started"
fi
if pgrep -x libvirtd >/dev/null; then
    say "libvirtd: already running (pid $(pgrep -x libvirtd | head -n1))"
else
    libvirtd -d
    say "libvirtd: started"
fi

ready=""
for _ in $(seq 1 30); do
    if timeout 5 virsh -c qemu:///system version >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 1
done
if [ -z "$ready" ]; then
    say "libvirtd: qemu:///system did not answer within 30 s" >&2
    exit 1
fi
say "libvirtd: qemu:///system answers ($(virsh -c qemu:///system version 2>/dev/null | awk '/Running hypervisor/ {print $3, $4}'))"

# The test suite defines its own domains and needs no storage pool, so the
# usual `default` pool is neither created nor required.
say "storage: no 'default' pool needed (not created)"

# ---------------------------------------------------------- dbus + tuned --
# tuned-adm talks to the tuned daemon over the system bus.
mkdir -p /run/dbus
if pgrep -x dbus-daemon >/dev/null && [ -S /run/dbus/system_bus_socket ]; then
    say "dbus: system bus already running (pid $(cat /run/dbus/pid 2>/dev/null || pgrep -x dbus-daemon | head -n1))"
else
    rm -f /run/dbus/pid
    dbus-daemon --system --fork
    say "dbus: system bus started (pid $(cat /run/dbus/pid))"
fi
tuned_running() {
    [ -s /run/tuned/tuned.pid ] && kill -0 "$(cat /run/tuned/tuned.pid)" 2>/dev/null
}
if tuned_running; then
    say "tuned: already running (pid $(cat /run/tuned/tuned.pid 2>/dev/null))"
else
    # A tuned started with no active profile in "auto" mode applies the recommended profile
    # (changing host sysctls). With no profile recorded, record manual mode first (what
    # `tuned-adm off` records) so starting the daemon changes nothing on the host.
    if [ ! -s /etc/tuned/active_profile ] && [ "$(cat /etc/tuned/profile_mode 2>/dev/null)" != manual ]; then
        printf 'manual\n' >/etc/tuned/profile_mode
        : >/etc/tuned/active_profile
        say "tuned: no active profile: recorded profile_mode=manual so the daemon applies nothing"
    fi
    tuned -d
    for _ in $(seq 1 30); do
        tuned-adm active 2>/dev/null | grep -q 'active profile' && break
        sleep 1
    done
    say "tuned: started ($(tuned-adm active 2>&1 | head -n1))"
fi

# ------------------------------------------------------------ test guest --
# Debian's kernel + a busybox initramfs that powers off on ACPI shutdown.
bash "$(dirname "${BASH_SOURCE[0]}")/build-test-guest.sh"

# ------------------------------------------------------------------ rust --
if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if command -v cargo >/dev/null; then
    say "rust: $(cargo --version)"
else
    # rustup's servers are not reachable here; Debian's cargo is the fallback
    # (it may be too old for some dependencies).
    say "rust: cargo not found, installing Debian's cargo"
    apt_update_once "missing: cargo"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q cargo
    say "rust: $(cargo --version)"
fi
