//! The seed guide's rules as lints (`kvmtune check`).
//!
//! Invariant: [`lints`] is pure over (desired state with concrete pins, observed state,
//! optional host [`Facts`]). Every lint has an id, a severity, a target and the section of the
//! RHEL 6 Virtualization Tuning and Optimization Guide it comes from. `plan` runs it without
//! facts and turns the error-level lints into plan errors; without facts it reads nothing but
//! the desired state (no guest XML is parsed), so plans stay as fast as before. `check` reads [`Facts`] and shows every lint.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::config::raw::{CacheMode, CpuMode};
use crate::config::source::KeyPath;
use crate::cpuset::CpuSet;
use crate::desired::{Desired, DeviceKey, DomainName, GuestDesired, HugepagesBacking};
use crate::plan::Observed;
use crate::units::PageSize;
use crate::xmltree::Document;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lint {
    pub id: &'static str,
    pub severity: Severity,
    /// `host` or `guest/<name>`.
    pub target: String,
    /// Section of the guide (`2.3.4`).
    pub section: &'static str,
    pub message: String,
    /// The YAML key it is about, when there is one.
    #[serde(skip)]
    pub key: Option<KeyPath>,
    /// `file:line:column` of that key (filled by [`locate`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

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

/// What a guest looks like for the lints: declared values, else what its XML has (XML only
/// with facts, i.e. in `check`).
struct View<'a> {
    name: &'a DomainName,
    gd: &'a GuestDesired,
    vcpus: Option<u32>,
    pins: BTreeMap<u32, CpuSet>,
    emulator: Option<CpuSet>,
    memory_kib: Option<u64>,
    xml: Option<XmlFacts>,
}

#[derive(Default)]
struct XmlFacts {
    cpu_mode: Option<String>,
    nic_models: Vec<String>,
    caches: Vec<String>,
    /// A disk on network storage (`type='network'`) or marked `<shareable/>`: what guests that
    /// live-migrate between hosts have.
    shared_storage: bool,
}

fn xml_facts(xml: &str) -> XmlFacts {
    let Ok(doc) = Document::parse(xml) else {
        return XmlFacts::default();
    };
    let root = doc.root();
    let mut f = XmlFacts {
        cpu_mode: doc
            .child(root, "cpu")
            .map(|c| doc.attr(c, "mode").unwrap_or_else(|| "custom".into())),
        ..Default::default()
    };
    if let Some(devs) = doc.child(root, "devices") {
        for nic in doc.children_named(devs, "interface") {
            if doc.attr(nic, "type").as_deref() == Some("hostdev") {
                continue;
            }
            f.nic_models.push(
                doc.child(nic, "model")
                    .and_then(|m| doc.attr(m, "type"))
                    .unwrap_or_else(|| "rtl8139".into()),
            );
        }
        for disk in doc.children_named(devs, "disk") {
            if let Some(c) = doc.child(disk, "driver").and_then(|d| doc.attr(d, "cache")) {
                f.caches.push(c);
            }
            f.shared_storage |= doc.attr(disk, "type").as_deref() == Some("network")
                || doc.child(disk, "shareable").is_some();
        }
    }
    f
}

fn memory_kib(xml: &str) -> Option<u64> {
    let doc = Document::parse(xml).ok()?;
    let m = doc.child(doc.root(), "memory")?;
    let v: u64 = doc.text(m).trim().parse().ok()?;
    let unit = doc.attr(m, "unit").unwrap_or_else(|| "KiB".into());
    crate::units::to_kib(v, &unit).ok()
}

fn key(gd: &GuestDesired, more: &[&str]) -> KeyPath {
    let mut k = gd.key_path.clone();
    k.extend(more.iter().map(|s| s.to_string()));
    k
}

struct Out(Vec<Lint>);

impl Out {
    fn add(
        &mut self,
        id: &'static str,
        severity: Severity,
        target: String,
        section: &'static str,
        key: Option<KeyPath>,
        message: String,
    ) {
        self.0.push(Lint {
            id,
            severity,
            target,
            section,
            message,
            key,
            location: None,
        });
    }
}

/// All lints. Without `facts` (the plan path) only the error-level rules are evaluated.
pub fn lints(d: &Desired, obs: &Observed, facts: Option<&Facts>) -> Vec<Lint> {
    let mut out = Out(Vec::new());
    let full = facts.is_some();
    let guest_xml = |n: &DomainName| {
        obs.guests
            .get(n.as_str())
            .and_then(|g| g.as_ref())
            .map(|g| g.xml.as_str())
    };
    let hugepage_backed = |g: &GuestDesired| {
        matches!(
            g.hugepages,
            Some(HugepagesBacking::DefaultSize | HugepagesBacking::Size(_))
        )
    };
    let views: Vec<View> = d
        .guests
        .iter()
        .map(|(name, gd)| {
            let xml = guest_xml(name);
            let xp = xml
                .filter(|_| full)
                .map(crate::pinning::XmlPins::read)
                .unwrap_or_default();
            View {
                name,
                gd,
                vcpus: gd.vcpu_count.or(xp.vcpus),
                pins: gd.vcpupin.clone().unwrap_or(xp.vcpupin),
                emulator: gd.emulatorpin.clone().or(xp.emulatorpin),
                memory_kib: xml
                    .filter(|_| hugepage_backed(gd) && full)
                    .and_then(memory_kib),
                xml: xml.filter(|_| full).map(xml_facts),
            }
        })
        .collect();
    let target = |v: &View| crate::plan::guest_target(v.name);

    // -- errors --------------------------------------------------------------------
    // vCPUs pinned to host.cpu_pool.reserved.
    if let Some(res) = &d.host.cpu_pool.reserved {
        for v in &views {
            for (i, s) in &v.pins {
                let hit: Vec<u32> = s.iter().filter(|c| res.contains(*c)).collect();
                if !hit.is_empty() && s.iter().all(|c| res.contains(c)) {
                    out.add(
                        "vcpu-on-reserved",
                        Severity::Error,
                        target(v),
                        "7.2.4",
                        Some(key(v.gd, &["cputune", "vcpupin", &i.to_string()])),
                        format!(
                            "vCPU {i} is pinned to reserved CPU(s) {}: host.cpu_pool.reserved is for housekeeping and emulator threads",
                            CpuSet::from_cpus(hit).expect("non-empty")
                        ),
                    );
                }
            }
        }
    }
    // Dedicated vCPU CPUs: CPU → (guest, vCPU) for single-CPU pins.
    let mut dedicated: BTreeMap<u32, Vec<(&DomainName, u32, bool)>> = BTreeMap::new();
    for v in &views {
        for (i, s) in &v.pins {
            if s.len() == 1 {
                dedicated.entry(s.highest()).or_default().push((
                    v.name,
                    *i,
                    v.gd.auto_pin.is_some(),
                ));
            }
        }
    }
    // Emulator threads on CPUs dedicated to vCPUs.
    for v in &views {
        let Some(e) = &v.emulator else { continue };
        let hits = || {
            e.iter().flat_map(|c| {
                dedicated
                    .get(&c)
                    .into_iter()
                    .flatten()
                    .map(move |(g, i, auto)| (c, *g, *i, *auto))
            })
        };
        let Some(_) = hits().next() else { continue };
        let sev = if hits().any(|(.., auto)| auto) {
            Severity::Error
        } else {
            Severity::Warning
        };
        // Only what is reported is formatted (a host full of guests pinned alike would
        // otherwise cost guests² strings), and at most a few names are listed.
        if full || sev == Severity::Error {
            const SHOWN: usize = 6;
            let total = hits().count();
            let mut names: Vec<String> = hits()
                .take(SHOWN)
                .map(|(c, g, i, _)| {
                    if g == v.name {
                        format!("its vCPU {i} (CPU {c})")
                    } else {
                        format!("vCPU {i} of {g} (CPU {c})")
                    }
                })
                .collect();
            if total > SHOWN {
                names.push(format!("and {} more", total - SHOWN));
            }
            out.add(
                "emulator-overlaps-vcpus",
                sev,
                target(v),
                "7.2.4",
                Some(key(v.gd, &["cputune", "emulatorpin"])),
                format!(
                    "emulator threads ({e}) share CPUs with dedicated vCPUs: {}",
                    names.join(", ")
                ),
            );
        }
    }
    if !full {
        return out.0;
    }
    // Huge page demand above the pool (a warning: QEMU fails only at start, and the pool may
    // be raised at boot by other means).
    {
        let default = obs.host.default_hugepage;
        type Demand<'a> = BTreeMap<(PageSize, Option<u32>), (u64, Vec<&'a DomainName>)>;
        let mut demand: Demand = BTreeMap::new();
        for v in &views {
            let size = match v.gd.hugepages {
                Some(HugepagesBacking::Size(s)) => s,
                Some(HugepagesBacking::DefaultSize) => match default {
                    Some(s) => s,
                    None => continue,
                },
                _ => continue,
            };
            let Some(kib) = v.memory_kib else { continue };
            let pages = kib.div_ceil(size.kib());
            let node =
                v.gd.numa_memory
                    .as_ref()
                    .and_then(|m| m.nodeset.as_ref())
                    .filter(|n| n.len() == 1)
                    .map(|n| n.highest());
            for k in [(size, None), (size, node)] {
                let e = demand.entry(k).or_default();
                e.0 += pages;
                e.1.push(v.name);
                if node.is_none() {
                    break;
                }
            }
        }
        for ((size, node), (pages, guests)) in demand {
            // Declared pools win (they are what apply makes); else what the host has.
            let pool = d
                .host
                .hugepages
                .get(&(size, node))
                .copied()
                .or_else(|| facts.and_then(|f| f.pools.get(&(size, node)).copied()));
            let Some(pool) = pool else { continue };
            if pages > pool {
                let names: BTreeSet<String> = guests.iter().map(|g| g.to_string()).collect();
                let names: Vec<String> = names.into_iter().collect();
                out.add(
                    "hugepage-demand",
                    Severity::Warning,
                    "host".into(),
                    "5.2",
                    Some(
                        ["host", "hugepages"]
                            .map(String::from)
                            .to_vec(),
                    ),
                    format!(
                        "guests backed by {size} huge pages ({}) need {pages} pages{}, the pool has {pool}",
                        names.join(", "),
                        node.map(|n| format!(" on node {n}")).unwrap_or_default()
                    ),
                );
            }
        }
    }
    let f = facts.expect("full");

    // -- warnings and info (check only) ---------------------------------------------
    let host_cpus = obs
        .topology
        .as_ref()
        .map(|t| t.cpus.len() as u64)
        .or(obs.node.map(|n| n.cpus as u64));
    let total: u64 = views.iter().filter_map(|v| v.vcpus).map(u64::from).sum();
    if let Some(h) = host_cpus.filter(|h| total > *h) {
        out.add(
            "vcpu-overcommit",
            Severity::Warning,
            "host".into(),
            "2.3.1",
            None,
            format!("the declared guests have {total} vCPUs, the host has {h} CPUs"),
        );
    }
    let by_name: BTreeMap<&DomainName, &View> = views.iter().map(|v| (v.name, v)).collect();
    for (cpu, users) in &dedicated {
        if users.len() < 2 {
            continue;
        }
        // At most a few sharers are named: a host of guests pinned alike must not cost
        // guests² text.
        const SHOWN: usize = 6;
        let mut sharers: Vec<String> = users
            .iter()
            .take(SHOWN)
            .map(|(n, i, _)| format!("{n} vCPU {i}"))
            .collect();
        if users.len() > SHOWN {
            sharers.push(format!("and {} more", users.len() - SHOWN));
        }
        let message = format!("CPU {cpu} is the only CPU of {}", sharers.join(", "));
        let guests: BTreeSet<&DomainName> = users.iter().map(|u| u.0).collect();
        for g in guests {
            let v = by_name[g];
            out.add(
                "shared-pin",
                Severity::Warning,
                target(v),
                "2.3.1",
                Some(key(v.gd, &["cputune", "vcpupin"])),
                message.clone(),
            );
        }
    }
    if let Some(t) = &obs.topology {
        for v in &views {
            if v.pins.is_empty() {
                continue;
            }
            let nodes = t.nodes_of(v.pins.values().flat_map(|s| s.iter()));
            let mem: Option<BTreeSet<u32>> =
                v.gd.numa_memory
                    .as_ref()
                    .and_then(|m| m.nodeset.as_ref())
                    .map(|n| n.iter().collect());
            let show = |s: &BTreeSet<u32>| {
                CpuSet::from_cpus(s.iter().copied())
                    .map(|c| c.to_string())
                    .unwrap_or_default()
            };
            if nodes.len() > 1 {
                out.add(
                    "numa-spread",
                    Severity::Warning,
                    target(v),
                    "2.3.4",
                    Some(key(v.gd, &["cputune", "vcpupin"])),
                    format!("vCPUs are pinned across NUMA nodes {}", show(&nodes)),
                );
            } else if let Some(m) = mem.filter(|m| m.len() > 1 || *m != nodes) {
                out.add(
                    "numa-spread",
                    Severity::Warning,
                    target(v),
                    "7.2.1",
                    Some(key(v.gd, &["numatune", "memory", "nodeset"])),
                    format!(
                        "memory on node(s) {} while the vCPUs are on node {}",
                        show(&m),
                        show(&nodes)
                    ),
                );
            }
        }
    }
    let any_hp = views.iter().any(|v| hugepage_backed(v.gd));
    if any_hp && !f.hugetlbfs {
        out.add(
            "hugetlbfs-missing",
            Severity::Warning,
            "host".into(),
            "5.2",
            None,
            "guests are backed by huge pages but no hugetlbfs is mounted (apply mounts /dev/hugepages)".into(),
        );
    }
    for v in &views {
        if let Some(t) = v.gd.cpu.as_ref().and_then(|c| c.topology) {
            if t.sockets > 1 && t.cores == 1 {
                out.add(
                    "topology-sockets",
                    Severity::Info,
                    target(v),
                    "2.3.3",
                    Some(key(v.gd, &["cpu", "topology"])),
                    format!(
                        "{} sockets of 1 core: present the vCPUs as cores of one socket (sockets: 1, cores: {})",
                        t.sockets,
                        t.sockets * t.dies
                    ),
                );
            }
        }
        let mode =
            v.gd.cpu
                .as_ref()
                .and_then(|c| c.mode)
                .map(|m| m.as_str().to_string())
                .or_else(|| v.xml.as_ref().and_then(|x| x.cpu_mode.clone()));
        if mode
            .as_deref()
            .is_none_or(|m| m == CpuMode::Custom.as_str())
        {
            out.add(
                "cpu-model-not-host",
                Severity::Info,
                target(v),
                "2.3.2",
                Some(key(v.gd, &["cpu"])),
                "the CPU model is not copied from the host: host-model or host-passthrough exposes its features (custom only where guests migrate between different hosts)".into(),
            );
        }
        // NICs.
        let declared: Vec<(String, Option<&String>)> =
            v.gd.interfaces
                .iter()
                .map(|(k, i)| {
                    (
                        match k {
                            DeviceKey::All => "*".to_string(),
                            DeviceKey::One(m) => m.as_str().to_string(),
                        },
                        i.model.as_ref(),
                    )
                })
                .collect();
        let all_model =
            v.gd.interfaces
                .get(&DeviceKey::All)
                .and_then(|i| i.model.clone());
        let models: Vec<String> = match (&all_model, &v.xml) {
            (Some(m), _) => vec![m.clone()],
            (None, Some(x)) => x.nic_models.clone(),
            _ => Vec::new(),
        };
        let mut non_virtio: BTreeSet<String> = models
            .iter()
            .filter(|m| !m.starts_with("virtio"))
            .cloned()
            .collect();
        for (_, m) in &declared {
            if let Some(m) = m.filter(|m| !m.starts_with("virtio")) {
                non_virtio.insert(m.clone());
            }
        }
        if !non_virtio.is_empty() {
            out.add(
                "nic-not-virtio",
                Severity::Warning,
                target(v),
                "4.3",
                Some(key(v.gd, &["interfaces"])),
                format!(
                    "interfaces of model {} are emulated: virtio with vhost_net is the fast path",
                    non_virtio.into_iter().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        for (k, i) in &v.gd.interfaces {
            if let (Some(q), Some(n)) = (i.queues, v.vcpus) {
                if q > n {
                    let kk = match k {
                        DeviceKey::All => "*".to_string(),
                        DeviceKey::One(m) => m.as_str().to_string(),
                    };
                    out.add(
                        "queues-above-vcpus",
                        Severity::Warning,
                        target(v),
                        "4.3",
                        Some(key(v.gd, &["interfaces", &kk, "queues"])),
                        format!(
                            "{q} queues for {n} vCPUs: more queues than vCPUs only add overhead"
                        ),
                    );
                }
            }
        }
    }
    let virtio_guests = views.iter().any(|v| {
        v.gd.interfaces
            .values()
            .any(|i| i.model.as_deref().is_some_and(|m| m.starts_with("virtio")))
            || v.xml
                .as_ref()
                .is_some_and(|x| x.nic_models.iter().any(|m| m.starts_with("virtio")))
    });
    if virtio_guests && !f.vhost_net && !d.host.modules.keys().any(|m| m.as_str() == "vhost_net") {
        out.add(
            "vhost-net-missing",
            Severity::Warning,
            "host".into(),
            "4.3",
            Some(["host", "modules"].map(String::from).to_vec()),
            "guests have virtio NICs but vhost_net is not loaded: add it to host.modules".into(),
        );
    }
    // Disk caches.
    let cache_of = |v: &View| -> Vec<CacheMode> {
        let mut c: Vec<CacheMode> = v.gd.disks.values().filter_map(|d| d.cache).collect();
        if v.gd
            .disks
            .get(&DeviceKey::All)
            .and_then(|d| d.cache)
            .is_none()
        {
            if let Some(x) = &v.xml {
                c.extend(x.caches.iter().filter_map(|s| match s.as_str() {
                    "writethrough" => Some(CacheMode::Writethrough),
                    "writeback" => Some(CacheMode::Writeback),
                    _ => None,
                }));
            }
        }
        c
    };
    let wt: Vec<&View> = views
        .iter()
        .filter(|v| cache_of(v).contains(&CacheMode::Writethrough))
        .collect();
    if wt.len() >= 2 {
        for v in &wt {
            out.add(
                "writethrough-many",
                Severity::Warning,
                target(v),
                "6.1",
                Some(key(v.gd, &["disks"])),
                format!(
                    "cache: writethrough on {} guests: it slows down as the number of guests grows; prefer cache: none",
                    wt.len()
                ),
            );
        }
    }
    // Caches that rule out migration on guests whose storage says they migrate.
    for v in &views {
        if !v.xml.as_ref().is_some_and(|x| x.shared_storage) {
            continue;
        }
        let declared = v.gd.disks.values().filter_map(|d| d.cache);
        let observed =
            v.xml
                .iter()
                .flat_map(|x| x.caches.iter())
                .filter_map(|c| match c.as_str() {
                    "writethrough" => Some(CacheMode::Writethrough),
                    "writeback" => Some(CacheMode::Writeback),
                    "unsafe" => Some(CacheMode::Unsafe),
                    _ => None,
                });
        let all_declared =
            v.gd.disks
                .get(&DeviceKey::All)
                .and_then(|d| d.cache)
                .is_some();
        let bad: BTreeSet<&str> = declared
            .chain(observed.filter(|_| !all_declared))
            .filter(|c| !matches!(c, CacheMode::None | CacheMode::Directsync))
            .map(|c| c.as_str())
            .collect();
        if !bad.is_empty() {
            out.add(
                "cache-blocks-migration",
                Severity::Warning,
                target(v),
                "6.1",
                Some(key(v.gd, &["disks"])),
                format!(
                    "cache: {} on a guest with shared (network or shareable) storage, which suggests it live-migrates: cache: none is the only mode that supports migration",
                    bad.into_iter().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    // KSM / THP next to huge-page-backed pinned guests.
    let pinned_hp = views
        .iter()
        .any(|v| hugepage_backed(v.gd) && !v.pins.is_empty());
    let ksm_on = d.host.ksm.run.or(f.ksm_run).unwrap_or(false);
    if pinned_hp && ksm_on {
        out.add(
            "ksm-with-pinned-hugepages",
            Severity::Warning,
            "host".into(),
            "5.2",
            Some(["host", "ksm"].map(String::from).to_vec()),
            "KSM is on next to pinned, huge-page-backed guests: it cannot merge huge pages and merging across nodes undoes NUMA placement".into(),
        );
    }
    let thp = d
        .host
        .thp_enabled
        .map(|t| t.as_str().to_string())
        .or(f.thp_enabled.clone());
    if any_hp && thp.as_deref() == Some("always") {
        out.add(
            "thp-always-with-hugepages",
            Severity::Info,
            "host".into(),
            "5.2",
            Some(["host", "transparent_hugepage"].map(String::from).to_vec()),
            "transparent huge pages are `always` next to guests backed by static huge pages: `madvise` keeps khugepaged off their memory".into(),
        );
    }
    // arp_filter.
    let arp = d
        .host
        .sysctl
        .iter()
        .find(|(k, _)| k.as_str() == "net.ipv4.conf.all.arp_filter")
        .map(|(_, v)| v.clone())
        .or(f.arp_filter.clone());
    if arp.as_deref() == Some("0") && !f.shared_subnets.is_empty() {
        let (net, ifs) = &f.shared_subnets[0];
        out.add(
            "arp-filter-off",
            Severity::Warning,
            "host".into(),
            "4.2",
            Some(["host", "sysctl"].map(String::from).to_vec()),
            format!(
                "net.ipv4.conf.all.arp_filter is 0 while {} share subnet {net}: ARP flux",
                ifs.join(", ")
            ),
        );
    }
    // tuned.
    if !d.guests.is_empty() {
        let profile = d
            .host
            .tuned_profile
            .as_ref()
            .map(|p| p.to_string())
            .or(f.tuned_profile.clone());
        if profile.as_deref() != Some("virtual-host") {
            out.add(
                "tuned-not-virtual-host",
                Severity::Warning,
                "host".into(),
                "3.1",
                Some(["host", "tuned"].map(String::from).to_vec()),
                format!(
                    "the tuned profile is {} on a host with guests: use virtual-host",
                    profile.as_deref().unwrap_or("not set")
                ),
            );
        }
    }
    out.0
}

/// Everything `check` shows: automatic pins resolved, all lints, located, plus allocation
/// failures as errors.
pub fn check(d: &Desired, obs: &Observed, facts: &Facts) -> Vec<Lint> {
    let mut view = d.clone();
    let mut extra = Vec::new();
    if d.guests.values().any(|g| g.auto_pin.is_some()) {
        let r = crate::pinning::resolve(d, obs);
        for (n, g) in r.guests {
            view.guests.insert(n, g);
        }
        for (n, e) in r.errors {
            let gd = &d.guests[&n];
            extra.push(Lint {
                id: "pinning-does-not-fit",
                severity: Severity::Error,
                target: crate::plan::guest_target(&n),
                section: "2.3.4",
                message: e.to_string(),
                key: Some(key(gd, &["cputune", "vcpupin"])),
                location: None,
            });
        }
    }
    let mut all = lints(&view, obs, Some(facts));
    all.extend(extra);
    locate(d, &mut all);
    all
}

/// Fills each lint's `location` from the configuration's source map.
pub fn locate(d: &Desired, lints: &mut [Lint]) {
    for l in lints {
        l.location = l
            .key
            .as_ref()
            .and_then(|k| d.sources.find(k))
            .map(|loc| loc.to_string());
    }
}

/// Exit code of `check`: 1 with errors, 2 with warnings, else 0.
pub fn exit_code(lints: &[Lint]) -> u8 {
    match lints.iter().map(|l| l.severity).max() {
        Some(Severity::Error) => 1,
        Some(Severity::Warning) => 2,
        _ => 0,
    }
}

/// Human output, grouped by target (host first, then guests by name).
pub fn render_text(lints: &[Lint]) -> String {
    let mut by: BTreeMap<(bool, &str), Vec<&Lint>> = BTreeMap::new();
    for l in lints {
        by.entry((l.target != "host", l.target.as_str()))
            .or_default()
            .push(l);
    }
    let mut s = String::new();
    for ((_, target), ls) in by {
        s.push_str(&format!("{target}:\n"));
        let mut ls = ls;
        ls.sort_by_key(|l| (std::cmp::Reverse(l.severity), l.id));
        for l in ls {
            s.push_str(&format!(
                "  {}[{}] {} (guide {}){}\n",
                l.severity.as_str(),
                l.id,
                l.message,
                l.section,
                l.location
                    .as_ref()
                    .map(|x| format!(" at {x}"))
                    .unwrap_or_default()
            ));
        }
        s.push('\n');
    }
    let count = |sev| lints.iter().filter(|l| l.severity == sev).count();
    s.push_str(&format!(
        "Check: {} error(s), {} warning(s), {} info.\n",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    ));
    s
}

/// `--format json`: `{"format_version": 1, "lints": [...], "summary": {...}}`.
pub fn render_json(lints: &[Lint]) -> String {
    let count = |sev| lints.iter().filter(|l| l.severity == sev).count();
    let v = serde_json::json!({
        "format_version": 1,
        "lints": lints,
        "summary": {
            "errors": count(Severity::Error),
            "warnings": count(Severity::Warning),
            "info": count(Severity::Info),
        }
    });
    serde_json::to_string_pretty(&v).expect("serializes") + "\n"
}
