//! Host files → the raw YAML model (`kvmtune import --host`): the reading direction of the host
//! settings, using the same files and canonical forms as the planning direction.
//!
//! Invariant: only settings that exist on this host are imported, each as the value planning
//! compares with, so planning the result against the same host plans no runtime change.
//! Sysctls: only the documented tuning-relevant set [`IMPORTED_SYSCTLS`]. Huge page pools: the
//! global pool of every size. Interfaces and modules are not imported.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::raw::*;
use crate::host::files::{list_opt, read_opt};
use crate::host::{tuned, Readback};
use crate::model::keys::{KSM_DIR, THP_DIR};
use crate::units::PageSize;

/// The sysctls `kvmtune import --host` reads (those present on the host).
pub const IMPORTED_SYSCTLS: &[&str] = &[
    "kernel.numa_balancing",
    "kernel.sched_autogroup_enabled",
    "kernel.nmi_watchdog",
    "net.bridge.bridge-nf-call-arptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.bridge.bridge-nf-call-iptables",
    "net.core.netdev_max_backlog",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.ip_forward",
    "vm.dirty_background_ratio",
    "vm.dirty_expire_centisecs",
    "vm.dirty_ratio",
    "vm.dirty_writeback_centisecs",
    "vm.min_free_kbytes",
    "vm.overcommit_memory",
    "vm.stat_interval",
    "vm.swappiness",
    "vm.zone_reclaim_mode",
];

fn read(root: &Path, f: &str) -> std::io::Result<Option<String>> {
    read_opt(&root.join(f))
}

fn tokens(s: &str) -> String {
    Readback::Tokens.canonical(s)
}

/// The host's current values of the importable settings.
pub fn import_host(root: &Path) -> std::io::Result<RawHost> {
    let mut h = RawHost::default();
    let mut sysctl = BTreeMap::new();
    for k in IMPORTED_SYSCTLS {
        if let Some(v) = read(root, &format!("proc/sys/{}", k.replace('.', "/")))? {
            let v = tokens(&v);
            if v.is_empty() {
                continue;
            }
            let s = match v.parse::<i64>() {
                Ok(i) => Scalar::Int(i),
                Err(_) => Scalar::Str(v),
            };
            sysctl.insert(k.to_string(), s);
        }
    }
    h.sysctl = (!sysctl.is_empty()).then_some(sysctl);
    let sel = |name: &str| -> std::io::Result<Option<String>> {
        Ok(read(root, &format!("{THP_DIR}/{name}"))?.map(|c| Readback::Selected.canonical(&c)))
    };
    let thp = RawThp {
        enabled: sel("enabled")?.and_then(|v| serde_yaml::from_str(&v).ok()),
        defrag: sel("defrag")?.and_then(|v| serde_yaml::from_str(&v).ok()),
    };
    if thp != RawThp::default() {
        h.transparent_hugepage = Some(thp);
    }
    let mut pools = Vec::new();
    for dir in list_opt(&root.join("sys/kernel/mm/hugepages"))?.unwrap_or_default() {
        let Some(kib) = dir
            .strip_prefix("hugepages-")
            .and_then(|d| d.strip_suffix("kB"))
            .and_then(|k| k.parse::<u64>().ok())
        else {
            continue;
        };
        let Ok(size) = PageSize::from_kib(kib) else {
            continue;
        };
        let file = crate::host::hugepages::hugepage_file(size, None);
        if let Some(count) = read(root, &file)?.and_then(|c| tokens(&c).parse::<u64>().ok()) {
            pools.push(RawHugepages {
                size: size.to_string(),
                count,
                node: None,
                persist: None,
            });
        }
    }
    h.hugepages = (!pools.is_empty()).then_some(pools);
    let num = |name: &str| -> std::io::Result<Option<u32>> {
        Ok(read(root, &format!("{KSM_DIR}/{name}"))?.and_then(|c| tokens(&c).parse().ok()))
    };
    let flag = |v: Option<u32>| match v {
        Some(0) => Some(false),
        Some(1) => Some(true),
        _ => None,
    };
    let ksm = RawKsm {
        run: flag(num("run")?),
        sleep_millisecs: num("sleep_millisecs")?,
        pages_to_scan: num("pages_to_scan")?,
        merge_across_nodes: flag(num("merge_across_nodes")?),
    };
    if ksm != RawKsm::default() {
        h.ksm = Some(ksm);
    }
    if root.join(tuned::TUNED_ADM).exists() {
        if let Some(p) = read(root, tuned::ACTIVE)?.map(|a| tokens(&a)) {
            let known = tuned::PROFILE_DIRS
                .iter()
                .any(|d| root.join(d).join(&p).join("tuned.conf").is_file());
            if !p.is_empty() && !p.contains(' ') && known {
                h.tuned = Some(RawTuned { profile: p });
            }
        }
    }
    Ok(h)
}
