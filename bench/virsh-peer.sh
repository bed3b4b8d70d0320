#!/bin/bash
# virsh peer for kvmtune-bench: the same work as kvmtune, done the way a shell script would.
#
#   bench/virsh-peer.sh read  N [URI]   # "plan": virsh dumpxml --inactive per guest
#   bench/virsh-peer.sh apply N [URI]   # per guest: vcpupin --config (×2 vCPUs),
#                                       # emulatorpin --config, numatune --config, and the disk
#                                       # cache (virsh has no setter for it):
#                                       # dumpxml --inactive | sed | define
#
# Guests are kvmtune-bench-0000 .. N-1 (2 vCPUs, one qcow2 disk). One virsh process per call,
# as a typical script does; the tuning is the one in kvmtune-bench's config:
#   vcpupin 0→0, 1→1; emulatorpin 0-1; numatune strict nodeset 0; every disk cache='none'.
set -euo pipefail
mode=${1:?read|apply}
n=${2:?N}
uri=${3:-qemu:///system}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((i = 0; i < n; i++)); do
    dom=$(printf 'kvmtune-bench-%04d' "$i")
    case $mode in
    read)
        virsh -c "$uri" dumpxml --inactive "$dom" >"$tmp/x.xml"
        ;;
    apply)
        virsh -q -c "$uri" vcpupin "$dom" 0 0 --config
        virsh -q -c "$uri" vcpupin "$dom" 1 1 --config
        virsh -q -c "$uri" emulatorpin "$dom" 0-1 --config
        virsh -q -c "$uri" numatune "$dom" --mode strict --nodeset 0 --config
        virsh -c "$uri" dumpxml --inactive "$dom" |
            sed -E "/<driver name='qemu'/{/cache=/!s|<driver name='qemu'|<driver name='qemu' cache='none'|}" \
                >"$tmp/x.xml"
        virsh -q -c "$uri" define "$tmp/x.xml" >/dev/null
        ;;
    *)
        echo "usage: $0 read|apply N [URI]" >&2
        exit 2
        ;;
    esac
done
