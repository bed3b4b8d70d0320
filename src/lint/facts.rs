//! Host facts only `check` reads, below `--root`.
//!
//! Invariant: [`read_facts`] only reads (never writes) and a missing file leaves its fact
//! unknown (`None`, `false` or empty) instead of failing; only I/O errors other than "not
//! found" are errors. `plan` never reads facts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::units::PageSize;

/// Host facts only `check` reads (below `--root`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `/sys/module/vhost_net` exists.
    pub vhost_net: bool,
    /// `/sys/kernel/mm/ksm/run` is 1.
    pub ksm_run: Option<bool>,
    /// The bracketed THP `enabled` choice.
    pub thp_enabled: Option<String>,
    /// `/etc/tuned/active_profile`.
    pub tuned_profile: Option<String>,
    /// A hugetlbfs mount in `/proc/mounts`.
    pub hugetlbfs: bool,
    /// Huge page pools: (size, node or global) → pages.
    pub pools: BTreeMap<(PageSize, Option<u32>), u64>,
    /// `/proc/sys/net/ipv4/conf/all/arp_filter`.
    pub arp_filter: Option<String>,
    /// IPv4 subnets (from `/proc/net/route`) reached through more than one interface.
    pub shared_subnets: Vec<(String, Vec<String>)>,
}

/// Reads [`Facts`] below `root`. Missing files leave their fact unknown.
pub fn read_facts(root: &Path) -> std::io::Result<Facts> {
    use crate::host::files::{list_opt, read_opt};
    let mut f = Facts {
        vhost_net: root.join("sys/module/vhost_net").exists(),
        ..Default::default()
    };
    f.ksm_run = read_opt(&root.join("sys/kernel/mm/ksm/run"))?.map(|s| s.trim() == "1");
    for dir in [
        "sys/kernel/mm/transparent_hugepage",
        "sys/kernel/mm/redhat_transparent_hugepage",
    ] {
        if let Some(s) = read_opt(&root.join(dir).join("enabled"))? {
            f.thp_enabled = Some(crate::host::Readback::Selected.canonical(&s));
            break;
        }
    }
    f.tuned_profile = read_opt(&root.join("etc/tuned/active_profile"))?
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    f.hugetlbfs = read_opt(&root.join("proc/mounts"))?.is_some_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"))
    });
    let pool_dirs = |base: &Path| -> std::io::Result<Vec<(PageSize, u64)>> {
        let mut v = Vec::new();
        for name in list_opt(base)?.unwrap_or_default() {
            let Some(kib) = name
                .strip_prefix("hugepages-")
                .and_then(|s| s.strip_suffix("kB"))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let (Ok(size), Some(n)) = (
                PageSize::from_kib(kib),
                read_opt(&base.join(&name).join("nr_hugepages"))?
                    .and_then(|s| s.trim().parse::<u64>().ok()),
            ) else {
                continue;
            };
            v.push((size, n));
        }
        Ok(v)
    };
    for (size, n) in pool_dirs(&root.join("sys/kernel/mm/hugepages"))? {
        f.pools.insert((size, None), n);
    }
    let nodes = root.join("sys/devices/system/node");
    for name in list_opt(&nodes)?.unwrap_or_default() {
        let Some(node) = name
            .strip_prefix("node")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        for (size, n) in pool_dirs(&nodes.join(&name).join("hugepages"))? {
            f.pools.insert((size, Some(node)), n);
        }
    }
    f.arp_filter = read_opt(&root.join("proc/sys/net/ipv4/conf/all/arp_filter"))?
        .map(|s| s.trim().to_string());
    if let Some(routes) = read_opt(&root.join("proc/net/route"))? {
        let mut by: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for l in routes.lines().skip(1) {
            let c: Vec<&str> = l.split_whitespace().collect();
            if c.len() >= 8 && c[1] != "00000000" {
                by.entry((c[1].to_string(), c[7].to_string()))
                    .or_default()
                    .insert(c[0].to_string());
            }
        }
        for ((dest, mask), ifs) in by {
            if ifs.len() > 1 {
                f.shared_subnets.push((
                    format!("{}/{}", hex_ip(&dest), hex_ip(&mask)),
                    ifs.into_iter().collect(),
                ));
            }
        }
    }
    Ok(f)
}

/// `/proc/net/route` hex (little-endian) → dotted quad.
fn hex_ip(h: &str) -> String {
    let v = u32::from_str_radix(h, 16).unwrap_or(0).to_le_bytes();
    format!("{}.{}.{}.{}", v[0], v[1], v[2], v[3])
}
