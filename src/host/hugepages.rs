//! `host.hugepages`: huge page pools (global and per NUMA node, 2M and 1G) and the hugetlbfs
//! mount guests need.
//!
//! Invariants: a runtime pool is written, read back, and a shortfall is an error naming
//! requested vs allocated (with the kernel-command-line hint for 1G pages); runtime pools are
//! persisted as tmpfiles.d `w` lines; a `persist: boot` pool is not written at runtime but is a
//! kernel command line argument, handed to [`kernel_args`] (the one writer of the command line:
//! GRUB drop-in and BLS entries, `effect: reboot`; kvmtune never runs update-grub). When every online node's pool is declared
//! together with the global pool, they must add up to it.

use std::collections::BTreeMap;

use super::kernel_args::{self, KernelArg, PoolCount};
use super::ops::HUGETLBFS_DIR;
use super::persist::{OwnedFile, PersistKey};
use super::{Builder, HostChange, HostNeeds, HostObserved, HostOp, Reads};
use super::{MEMINFO, NODE_ONLINE};
use crate::desired::HostDesired;
use crate::model::{Effect, HostKey};
use crate::units::PageSize;

pub const MOUNTS: &str = "proc/mounts";

/// The file that holds a huge page pool.
pub fn hugepage_file(size: PageSize, node: Option<u32>) -> String {
    HostKey::HugePagePool { size, node }.file()
}

fn pools(d: &HostDesired) -> Vec<(PageSize, Option<u32>, u64)> {
    let mut v: Vec<_> = d.hugepages.iter().map(|((s, n), c)| (*s, *n, *c)).collect();
    v.sort_by_key(|(size, node, _)| (node.is_some(), *node, *size));
    v
}

fn key(d: &HostDesired, size: PageSize, node: Option<u32>) -> Vec<String> {
    match d.hugepage_index.get(&(size, node)) {
        Some(i) => vec!["hugepages".into(), i.to_string()],
        None => vec!["hugepages".into()],
    }
}

pub fn reads(d: &HostDesired, needs: HostNeeds, r: &mut Reads) {
    for (size, node, _) in pools(d) {
        r.files.insert(hugepage_file(size, node));
    }
    if d.hugepages.keys().any(|(_, node)| node.is_some()) {
        r.files.insert(NODE_ONLINE.into());
    }
    if needs.meminfo {
        r.files.insert(MEMINFO.into());
    }
    if needs.hugetlbfs {
        r.files.insert(MOUNTS.into());
    }
}

pub fn plan(
    d: &HostDesired,
    obs: &HostObserved,
    b: &mut Builder,
    tmpfiles: &mut OwnedFile,
    grub: &mut OwnedFile,
) {
    let mut boot: BTreeMap<PageSize, Vec<(Option<u32>, u64)>> = BTreeMap::new();
    for (size, node, count) in pools(d) {
        let file = hugepage_file(size, node);
        if obs.file(&file).is_none() {
            b.issue(key(d, size, node), missing_message(&file));
            continue;
        }
        if d.hugepages_boot.contains(&(size, node)) {
            boot.entry(size).or_default().push((node, count));
            continue;
        }
        let hk = HostKey::HugePagePool { size, node };
        b.runtime(
            obs,
            key(d, size, node),
            hk.clone(),
            count.to_string(),
            String::new(),
        );
        tmpfiles.push(PersistKey::Value { key: hk }, count.to_string());
    }
    for (size, list) in boot {
        let count = match list.as_slice() {
            [(None, c)] => PoolCount::Global(*c),
            _ => PoolCount::Nodes(list.iter().map(|(n, c)| (n.unwrap_or(0), *c)).collect()),
        };
        kernel_args::push(grub, &KernelArg::HugePages { size, count });
    }
    for i in pool_consistency(d, obs) {
        b.issue(i.0, i.1);
    }
    if obs.needs.hugetlbfs {
        hugetlbfs(obs, b);
    }
}

/// Guests with huge page backing need a hugetlbfs mount; report where it is, or mount one.
fn hugetlbfs(obs: &HostObserved, b: &mut Builder) {
    let Some(mounts) = obs.file(MOUNTS) else {
        b.note(format!(
            "hugetlbfs: cannot tell whether it is mounted (/{MOUNTS} does not exist)"
        ));
        return;
    };
    let found: Vec<String> = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[2] == "hugetlbfs").then(|| {
                let size = f[3]
                    .split(',')
                    .find_map(|o| o.strip_prefix("pagesize="))
                    .unwrap_or("default size");
                format!("{} (pagesize={size})", f[1])
            })
        })
        .collect();
    if found.is_empty() {
        b.change(HostChange {
            path: "hugetlbfs".into(),
            before: None,
            after: Some(format!("/{HUGETLBFS_DIR}")),
            effect: Effect::Live,
        });
        b.post(HostOp::MountHugetlbfs);
    } else {
        b.note(format!(
            "hugetlbfs: guests with huge page backing find it at {} (libvirt uses the first mount of each page size)",
            found.join(", ")
        ));
    }
}

/// The error text's hint when a pool fell short.
pub fn shortfall_hint(key: &HostKey, wanted: &str) -> String {
    if matches!(key, HostKey::HugePagePool { size, .. } if *size == PageSize::ONE_GIB) {
        format!(
            "; a running kernel rarely has 1G of contiguous free memory: the reliable way is the kernel command line (default_hugepagesz=1G hugepagesz=1G hugepages={wanted}), which kvmtune writes as a boot drop-in for this pool with `persist: boot`"
        )
    } else {
        String::new()
    }
}

fn missing_message(file: &str) -> String {
    if file.starts_with("sys/devices/system/node/") {
        format!("this host has no such NUMA node or page size (/{file} does not exist)")
    } else {
        format!("this host does not support that huge page size (/{file} does not exist)")
    }
}

/// With a global pool and per-node pools of one size declared on a host whose every node is
/// declared, the nodes must add up to the global pool, or the two writes would undo each other.
fn pool_consistency(d: &HostDesired, obs: &HostObserved) -> Vec<(Vec<String>, String)> {
    let Some(online) = obs
        .numa_online
        .as_deref()
        .and_then(|o| o.trim().parse::<crate::cpuset::CpuSet>().ok())
    else {
        return Vec::new();
    };
    let mut issues = Vec::new();
    for ((size, node), global) in &d.hugepages {
        if node.is_some() {
            continue;
        }
        let nodes: BTreeMap<u32, u64> = d
            .hugepages
            .iter()
            .filter_map(|((s, n), c)| n.filter(|_| s == size).map(|n| (n, *c)))
            .collect();
        if nodes.is_empty() || !online.iter().all(|n| nodes.contains_key(&n)) {
            continue;
        }
        let sum: u64 = nodes.values().sum();
        if sum != *global {
            issues.push((
                key(d, *size, None),
                format!(
                    "the {size} pools of every node ({online}) add up to {sum}, but the global pool is {global}: they must be equal"
                ),
            ));
        }
    }
    issues
}
