#!/usr/bin/env bash
# Regenerate examples/demo/root: a fake host root for `kvmtune --root`.
#
# It describes the same host as examples/demo/host.xml:
#   2 NUMA nodes, 2 sockets x 4 cores x 2 threads = 16 CPUs, 64 GiB RAM,
#   node0 = package 0 = CPUs 0-3,8-11; node1 = package 1 = CPUs 4-7,12-15;
#   CPU n and CPU n+8 are hyperthread siblings.
#
# File formats mirror what a real Debian 12 / Linux 6.x kernel prints
# (single value + newline for sysctl and sysfs attributes, the
# "%-16s%8s kB" layout for /proc/meminfo, "Node N ..." for per-node meminfo).
# Values are literals captured from the Debian 12 test machine (Linux 6.18, tuned 2.20) with
# `cat` (KSM, NIC, /proc/mounts, /sys/module), except the tuned profiles, which are copied from
# the tuned package's /usr/lib/tuned when it is installed (else the same literal summaries).
# /proc/modules is absent, as on that machine (a kernel without module support).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$REPO/examples/demo/root}"

rm -rf -- "$OUT"
mkdir -p -- "$OUT"

# put FILE VALUE: write VALUE plus a trailing newline (like the kernel does)
put() {
    mkdir -p -- "$(dirname -- "$OUT/$1")"
    printf '%s\n' "$2" >"$OUT/$1"
}

# --- /proc/sys -------------------------------------------------------------
put proc/sys/vm/swappiness 60
put proc/sys/vm/nr_hugepages 0
put proc/sys/vm/nr_overcommit_hugepages 0
put proc/sys/vm/dirty_ratio 20
put proc/sys/vm/dirty_background_ratio 10
put proc/sys/net/ipv4/conf/all/arp_filter 0
put proc/sys/net/ipv4/conf/default/arp_filter 0
put proc/sys/net/ipv4/ip_forward 1
put proc/sys/kernel/sched_autogroup_enabled 1

# --- /proc/meminfo (64 GiB host, 2 MiB default hugepage size) --------------
meminfo_kb() { printf '%-16s%8s kB\n' "$1:" "$2"; }
meminfo_n() { printf '%-16s%8s\n' "$1:" "$2"; }
{
    meminfo_kb MemTotal 67108864
    meminfo_kb MemFree 58982400
    meminfo_kb MemAvailable 63963136
    meminfo_kb Buffers 262144
    meminfo_kb Cached 4718592
    meminfo_kb SwapCached 0
    meminfo_kb Active 2359296
    meminfo_kb Inactive 3145728
    meminfo_kb 'Active(anon)' 524288
    meminfo_kb 'Inactive(anon)' 1048576
    meminfo_kb 'Active(file)' 1835008
    meminfo_kb 'Inactive(file)' 2097152
    meminfo_kb Unevictable 12288
    meminfo_kb Mlocked 11264
    meminfo_kb SwapTotal 8388604
    meminfo_kb SwapFree 8388604
    meminfo_kb Zswap 0
    meminfo_kb Zswapped 0
    meminfo_kb Dirty 2048
    meminfo_kb Writeback 0
    meminfo_kb AnonPages 1560576
    meminfo_kb Mapped 393216
    meminfo_kb Shmem 65536
    meminfo_kb KReclaimable 524288
    meminfo_kb Slab 786432
    meminfo_kb SReclaimable 524288
    meminfo_kb SUnreclaim 262144
    meminfo_kb KernelStack 16384
    meminfo_kb PageTables 32768
    meminfo_kb SecPageTables 0
    meminfo_kb NFS_Unstable 0
    meminfo_kb Bounce 0
    meminfo_kb WritebackTmp 0
    meminfo_kb CommitLimit 41943036
    meminfo_kb Committed_AS 6291456
    meminfo_kb VmallocTotal 34359738367
    meminfo_kb VmallocUsed 131072
    meminfo_kb VmallocChunk 0
    meminfo_kb Percpu 24576
    meminfo_kb AnonHugePages 0
    meminfo_kb ShmemHugePages 0
    meminfo_kb ShmemPmdMapped 0
    meminfo_kb FileHugePages 0
    meminfo_kb FilePmdMapped 0
    meminfo_kb Balloon 0
    meminfo_n HugePages_Total 0
    meminfo_n HugePages_Free 0
    meminfo_n HugePages_Rsvd 0
    meminfo_n HugePages_Surp 0
    meminfo_kb Hugepagesize 2048
    meminfo_kb Hugetlb 0
    meminfo_kb DirectMap4k 1048576
    meminfo_kb DirectMap2M 33554432
    meminfo_kb DirectMap1G 34603008
} >"$OUT/proc/meminfo"

# --- /sys/kernel/mm: transparent hugepages + global hugepage pools ---------
put sys/kernel/mm/transparent_hugepage/enabled 'always [madvise] never'
put sys/kernel/mm/transparent_hugepage/defrag 'always defer defer+madvise [madvise] never'
for size in 2048kB 1048576kB; do
    for f in nr_hugepages free_hugepages nr_overcommit_hugepages resv_hugepages surplus_hugepages; do
        put "sys/kernel/mm/hugepages/hugepages-$size/$f" 0
    done
done

# --- /sys/devices/system/node: NUMA nodes ----------------------------------
put sys/devices/system/node/online 0-1
put sys/devices/system/node/possible 0-1
node_cpulist=('0-3,8-11' '4-7,12-15')
node_distance=('10 21' '21 10')
node_kb=(33554432 33554432)
node_free_kb=(29491200 29491200)
for n in 0 1; do
    d="sys/devices/system/node/node$n"
    put "$d/cpulist" "${node_cpulist[$n]}"
    put "$d/distance" "${node_distance[$n]}"
    for size in 2048kB 1048576kB; do
        for f in nr_hugepages free_hugepages surplus_hugepages; do
            put "$d/hugepages/hugepages-$size/$f" 0
        done
    done
    # Per-node meminfo: "Node N <Field>:" padded like the kernel's
    # "Node %d %-16s%8lu kB" lines; the HugePages_* lines are "%-16s %5u".
    nkb() { printf 'Node %d %-16s%8s kB\n' "$n" "$1:" "$2"; }
    nhp() { printf 'Node %d %-16s %5s\n' "$n" "$1:" "$2"; }
    total=${node_kb[$n]}
    free=${node_free_kb[$n]}
    {
        nkb MemTotal "$total"
        nkb MemFree "$free"
        nkb MemUsed "$((total - free))"
        nkb SwapCached 0
        nkb Active 1179648
        nkb Inactive 1572864
        nkb 'Active(anon)' 262144
        nkb 'Inactive(anon)' 524288
        nkb 'Active(file)' 917504
        nkb 'Inactive(file)' 1048576
        nkb Unevictable 6144
        nkb Mlocked 5632
        nkb Dirty 1024
        nkb Writeback 0
        nkb FilePages 2490368
        nkb Mapped 196608
        nkb AnonPages 780288
        nkb Shmem 32768
        nkb KernelStack 8192
        nkb PageTables 16384
        nkb SecPageTables 0
        nkb NFS_Unstable 0
        nkb Bounce 0
        nkb WritebackTmp 0
        nkb KReclaimable 262144
        nkb Slab 393216
        nkb SReclaimable 262144
        nkb SUnreclaim 131072
        nkb AnonHugePages 0
        nkb ShmemHugePages 0
        nkb ShmemPmdMapped 0
        nkb FileHugePages 0
        nkb FilePmdMapped 0
        nhp HugePages_Total 0
        nhp HugePages_Free 0
        nhp HugePages_Surp 0
    } >"$OUT/$d/meminfo"
done

# --- /sys/devices/system/cpu: 16 CPUs, CPU n and n+8 are SMT siblings ------
put sys/devices/system/cpu/online 0-15
put sys/devices/system/cpu/possible 0-15
put sys/devices/system/cpu/present 0-15
for cpu in $(seq 0 15); do
    base=$((cpu % 8))         # first thread of this core
    pkg=$((base / 4))         # package 0: CPUs 0-3,8-11; package 1: 4-7,12-15
    t="sys/devices/system/cpu/cpu$cpu/topology"
    put "$t/core_id" "$((base % 4))"
    put "$t/physical_package_id" "$pkg"
    put "$t/thread_siblings_list" "$base,$((base + 8))"
    put "$t/core_siblings_list" "${node_cpulist[$pkg]}"
done

# --- /sys/kernel/mm/ksm (cat /sys/kernel/mm/ksm/* on the test machine) ---------
for kv in advisor_max_cpu=70 advisor_max_pages_to_scan=30000 advisor_min_pages_to_scan=500 \
    'advisor_mode=[none] scan-time' advisor_target_scan_time=200 full_scans=0 \
    general_profit=0 ksm_zero_pages=0 max_page_sharing=256 merge_across_nodes=1 \
    pages_scanned=0 pages_shared=0 pages_sharing=0 pages_skipped=0 pages_to_scan=100 \
    pages_unshared=0 pages_volatile=0 run=0 sleep_millisecs=20 smart_scan=1 \
    stable_node_chains=0 stable_node_chains_prune_millisecs=2000 stable_node_dups=0 \
    use_zero_pages=0; do
    put "sys/kernel/mm/ksm/${kv%%=*}" "${kv#*=}"
done

# --- /sys/class/net (mtu as on the test machine; ens1f0 is an SR-IOV NIC laid
# out as the kernel documents device/sriov_{numvfs,totalvfs}: the machine has none) -----
put sys/class/net/lo/mtu 65536
put sys/class/net/eth0/mtu 1400
put sys/class/net/ens1f0/mtu 1500
put sys/class/net/ens1f0/device/sriov_numvfs 0
put sys/class/net/ens1f0/device/sriov_totalvfs 8

# --- /sys/module: the test machine's loaded/built-in modules with parameters ---
# (git keeps no empty directories: each gets one real file of its module)
put sys/module/bridge/version 2.3
put sys/module/kvm/parameters/halt_poll_ns 200000
put sys/module/virtio_net/parameters/napi_tx Y
put sys/module/loop/parameters/max_loop 8
put proc/sys/kernel/osrelease 6.18.44-fc-v669

# --- /proc/mounts (the test machine's hugetlbfs line) ---------------------------
put proc/mounts 'hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0'

# --- tuned: profiles and the (empty) active profile, as on the test machine ----
for prof in balanced latency-performance throughput-performance virtual-guest virtual-host; do
    if [ -f "/usr/lib/tuned/$prof/tuned.conf" ]; then
        mkdir -p -- "$OUT/usr/lib/tuned/$prof"
        cp -- "/usr/lib/tuned/$prof/tuned.conf" "$OUT/usr/lib/tuned/$prof/tuned.conf"
    else
        put "usr/lib/tuned/$prof/tuned.conf" "[main]
summary=$prof (tuned package not installed when generated)"
    fi
done
mkdir -p -- "$OUT/etc/tuned"
: >"$OUT/etc/tuned/active_profile"

echo "gen-demo-root: wrote $(find "$OUT" -type f | wc -l) files under $OUT"
