//! Raw model → [`Desired`]: every semantic check that needs no hypervisor (guests: each
//! setting unit's [`crate::domain::settings::GuestSetting::validate`]).
//!
//! Invariant: all errors are collected (not just the first), each located at the key it is
//! about; a returned `Desired` satisfies every documented constraint.

use std::collections::BTreeMap;

use crate::config::raw::*;
use crate::config::source::{dotted, ConfigError, KeyPath, Loc, SourceMap};
use crate::config::ConfigErrors;
use crate::desired::*;
use crate::domain::settings::{validate_guest, Errors};
use crate::units::PageSize;

struct Ctx {
    map: SourceMap,
    errors: Vec<ConfigError>,
}

impl Ctx {
    fn err(&mut self, path: &[String], msg: impl Into<String>) {
        Errors::err(self, path, msg.into());
    }
}

impl Errors for Ctx {
    fn err(&mut self, path: &[String], msg: String) {
        let loc = self.map.find(path).cloned().unwrap_or(Loc {
            file: "<config>".into(),
            line: 0,
            col: 0,
        });
        self.errors.push(ConfigError::Invalid {
            loc,
            path: dotted(path),
            msg,
        });
    }
}

fn p(base: &[String], more: &[&str]) -> KeyPath {
    let mut v = base.to_vec();
    v.extend(more.iter().map(|s| s.to_string()));
    v
}

pub(super) fn validate(raw: &RawConfig, map: SourceMap) -> Result<Desired, ConfigErrors> {
    let mut cx = Ctx {
        map,
        errors: Vec::new(),
    };
    let mut desired = Desired::default();
    if let Some(h) = &raw.host {
        desired.host = host(&mut cx, h);
    }
    for (name, g) in &raw.guests {
        let path = p(&[], &["guests", name]);
        match DomainName::new(name) {
            Ok(n) => {
                let pool = &desired.host.cpu_pool;
                let gd = validate_guest(
                    &mut cx,
                    &path,
                    g,
                    pool.reserved.as_ref(),
                    pool.shared.as_ref(),
                );
                desired.guests.insert(n, gd);
            }
            Err(e) => cx.err(&path, e),
        }
    }
    for (name, n) in &raw.networks {
        match crate::network::validate(name, n) {
            Ok((n, nd)) => {
                desired.networks.insert(n, nd);
            }
            Err(errs) => errs.into_iter().for_each(|(k, e)| cx.err(&k, e)),
        }
    }
    if !cx.errors.is_empty() {
        return Err(ConfigErrors(cx.errors));
    }
    desired.sources = cx.map;
    Ok(desired)
}

fn host(cx: &mut Ctx, h: &RawHost) -> HostDesired {
    let mut out = HostDesired::default();
    sysctl(cx, h, &mut out);
    if let Some(t) = &h.transparent_hugepage {
        out.thp_enabled = t.enabled;
        out.thp_defrag = t.defrag;
    }
    hugepages(cx, h, &mut out);
    out.runtime_only = h.persist == Some(false);
    if let Some(cp) = &h.cpu_pool {
        if let Some(r) = &cp.reserved {
            out.cpu_pool.reserved = cx.cpuset(&p(&[], &["host", "cpu_pool", "reserved"]), r);
        }
        out.cpu_pool.allow_overcommit = cp.allow_overcommit.unwrap_or(false);
        cpu_pool_parts(cx, cp, &mut out);
    }
    tuned_and_ksm(cx, h, &mut out);
    interfaces_and_modules(cx, h, &mut out);
    cross_checks(cx, &out);
    out
}

fn sysctl(cx: &mut Ctx, h: &RawHost, out: &mut HostDesired) {
    for (k, v) in h.sysctl.iter().flatten() {
        let path = p(&[], &["host", "sysctl", k]);
        let key = match SysctlKey::new(k) {
            Ok(k) => k,
            Err(e) => {
                cx.err(&path, e);
                continue;
            }
        };
        let value = match v {
            Scalar::Bool(b) => (*b as u8).to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => {
                let norm = s.split_whitespace().collect::<Vec<_>>().join(" ");
                if norm.is_empty() {
                    cx.err(&path, "empty sysctl value");
                    continue;
                }
                norm
            }
        };
        out.sysctl.insert(key, value);
    }
}

fn hugepages(cx: &mut Ctx, h: &RawHost, out: &mut HostDesired) {
    let mut seen: BTreeMap<(PageSize, Option<u32>), usize> = BTreeMap::new();
    for (i, hp) in h.hugepages.iter().flatten().enumerate() {
        let path = p(&[], &["host", "hugepages", &i.to_string()]);
        let size = match hp.size.parse::<PageSize>() {
            Ok(s) => s,
            Err(e) => {
                cx.err(&p(&path, &["size"]), e.to_string());
                continue;
            }
        };
        if let Some(n) = hp.node {
            if n > 1023 {
                cx.err(&p(&path, &["node"]), format!("NUMA node {n} is above 1023"));
                continue;
            }
        }
        if hp.count > (1 << 40) / size.kib() {
            cx.err(
                &p(&path, &["count"]),
                format!(
                    "{} pages of {size} is more memory than any host has",
                    hp.count
                ),
            );
            continue;
        }
        if let Some(first) = seen.insert((size, hp.node), i) {
            let where_ = match hp.node {
                Some(n) => format!("node {n}"),
                None => "the global pool".into(),
            };
            let first_loc = cx
                .map
                .find(&p(&[], &["host", "hugepages", &first.to_string()]))
                .map(|l| l.to_string())
                .unwrap_or_default();
            cx.err(
                &path,
                format!("{size} pages for {where_} are already set at {first_loc}"),
            );
            continue;
        }
        out.hugepages.insert((size, hp.node), hp.count);
        out.hugepage_index.insert((size, hp.node), i);
        if hp.persist == Some(HugepagePersist::Boot) {
            if h.persist == Some(false) {
                cx.err(
                    &p(&path, &["persist"]),
                    "`persist: boot` writes a boot drop-in, but `host.persist` is false",
                );
            }
            out.hugepages_boot.insert((size, hp.node));
        }
    }
    // The kernel command line takes either a global count or per-node counts for a size.
    for (size, node) in &out.hugepages_boot {
        if node.is_none()
            && out
                .hugepages_boot
                .iter()
                .any(|(s, n)| s == size && n.is_some())
        {
            let i = out.hugepage_index[&(*size, None)];
            cx.err(
                &p(&[], &["host", "hugepages", &i.to_string(), "persist"]),
                format!("the kernel command line takes either a global {size} count or per-node counts, not both: use `persist: boot` on one of them"),
            );
        }
    }
}

fn tuned_and_ksm(cx: &mut Ctx, h: &RawHost, out: &mut HostDesired) {
    if let Some(t) = &h.tuned {
        let ok = crate::model::ProfileName::new(&t.profile).ok();
        if let Some(name) = ok {
            out.tuned_profile = Some(name);
        } else {
            cx.err(
                &p(&[], &["host", "tuned", "profile"]),
                format!("`{}` is not a tuned profile name", t.profile.escape_debug()),
            );
        }
    }
    if let Some(k) = &h.ksm {
        out.ksm = KsmDesired {
            run: k.run,
            sleep_millisecs: k.sleep_millisecs,
            pages_to_scan: k.pages_to_scan,
            merge_across_nodes: k.merge_across_nodes,
        };
        if out.ksm.is_empty() {
            cx.err(
                &p(&[], &["host", "ksm"]),
                "expected at least one of run, sleep_millisecs, pages_to_scan, merge_across_nodes",
            );
        }
    }
}

fn interfaces_and_modules(cx: &mut Ctx, h: &RawHost, out: &mut HostDesired) {
    for (name, nic) in h.interfaces.iter().flatten() {
        let path = p(&[], &["host", "interfaces", name]);
        let Ok(ifname) = crate::model::IfName::new(name) else {
            cx.err(
                &path,
                format!(
                    "`{}` is not a network interface name (1-15 characters, no `/`)",
                    name.escape_debug()
                ),
            );
            continue;
        };
        if let Some(m) = nic.mtu {
            if !(68..=65536).contains(&m) {
                cx.err(&p(&path, &["mtu"]), format!("MTU {m} is outside 68-65536"));
                continue;
            }
        }
        if nic.mtu.is_none() && nic.sriov_numvfs.is_none() {
            cx.err(&path, "expected at least one of mtu, sriov_numvfs");
            continue;
        }
        out.interfaces.insert(
            ifname,
            NicDesired {
                mtu: nic.mtu,
                sriov_numvfs: nic.sriov_numvfs,
            },
        );
    }
    for (i, m) in h.modules.iter().flatten().enumerate() {
        let path = p(&[], &["host", "modules", &i.to_string()]);
        let Ok(norm) = crate::model::ModuleName::new(m) else {
            cx.err(
                &path,
                format!("`{}` is not a kernel module name", m.escape_debug()),
            );
            continue;
        };
        if out.modules.insert(norm.clone(), i).is_some() {
            cx.err(&path, format!("module {norm} is listed twice"));
        }
    }
}

/// Constraints between host settings.
/// `shared` (disjoint from `reserved`) and `isolate` (which needs `reserved`).
fn cpu_pool_parts(cx: &mut Ctx, cp: &RawCpuPool, out: &mut HostDesired) {
    let at = |k: &str| p(&[], &["host", "cpu_pool", k]);
    if let Some(s) = &cp.shared {
        out.cpu_pool.shared = cx.cpuset(&at("shared"), s);
    }
    if let (Some(s), Some(r)) = (&out.cpu_pool.shared, &out.cpu_pool.reserved) {
        if let Some(both) = s.intersection(r) {
            cx.err(
                &at("shared"),
                format!("CPU(s) {both} are both reserved and shared: a CPU is in one pool"),
            );
        }
    }
    let Some(i) = &cp.isolate else { return };
    let on = |b: Option<bool>| b.unwrap_or(false);
    out.cpu_pool.isolate = Isolate {
        kernel: on(i.kernel),
        irqs: on(i.irqs),
        systemd: on(i.systemd),
        workqueues: on(i.workqueues),
        host_threads: on(i.host_threads),
    };
    if out.cpu_pool.isolate.any() && cp.reserved.is_none() {
        cx.err(
            &at("isolate"),
            "isolation confines the host to host.cpu_pool.reserved: declare reserved",
        );
        out.cpu_pool.isolate = Isolate::default();
    }
}

fn cross_checks(cx: &mut Ctx, out: &HostDesired) {
    if out
        .sysctl
        .contains_key(&SysctlKey::new("vm.nr_hugepages").expect("valid key"))
        && out.hugepages.keys().any(|(_, node)| node.is_none())
    {
        cx.err(
            &p(&[], &["host", "sysctl", "vm.nr_hugepages"]),
            "set the global huge page pool either here or in host.hugepages, not both",
        );
    }
    // Per-node counts cannot exceed the global pool of the same size.
    for ((size, node), count) in &out.hugepages {
        if node.is_none() {
            let nodes: u64 = out
                .hugepages
                .iter()
                .filter(|((s, n), _)| s == size && n.is_some())
                .map(|(_, c)| *c)
                .sum();
            if nodes > *count {
                cx.err(
                    &p(&[], &["host", "hugepages"]),
                    format!("per-node {size} counts add up to {nodes}, above the global pool of {count}"),
                );
            }
        }
    }
}
