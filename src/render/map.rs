//! `kvmtune map`: the host's CPUs with the pools and the guests on them, as a typed
//! [`HostMap`], and its renderers ([`text`], [`svg`]; JSON is the model's serde form).
//!
//! Invariant: [`build`] is a pure function of (desired, observed, plan, the other guests'
//! XML). Every CPU of the host topology appears exactly once: in its node, in its core's
//! column, in the row of its SMT thread. What runs where is read from domain XML only (the
//! plan's new definitions for "as planned", the observed ones for "as it is now"), never
//! re-decided; the pools come from `host.cpu_pool`. Order is fixed (nodes, cores and threads
//! ascending, guests by name), so the same inputs render the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::cpuset::CpuSet;
use crate::desired::{CpuPool, Desired};
use crate::observe::Observed;
use crate::plan::{Action, Plan};
use crate::topology::HostTopology;
use crate::xmltree::Document;

pub mod svg;
pub mod text;

/// A guest kvmtune does not manage, as libvirt lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherGuest {
    /// Its running definition when it runs, else its persistent one.
    pub xml: String,
    pub running: bool,
}

/// What the map is drawn from.
#[derive(Debug, Clone, Copy)]
pub struct MapInput<'a> {
    pub desired: &'a Desired,
    pub observed: &'a Observed,
    /// The plan (as planned), or `None` (as it is now).
    pub plan: Option<&'a Plan>,
    /// The guests not declared, by name.
    pub others: &'a BTreeMap<String, OtherGuest>,
    pub hostname: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("the host topology is unknown (libvirt reports no NUMA cells and there is no sysfs node tree under --root)")]
    NoTopology,
}

/// The picture: pools, CPUs by node / core / thread, guests, conflicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostMap {
    pub hostname: String,
    pub view: View,
    pub pools: Pools,
    pub nodes: Vec<NodeMap>,
    pub guests: Vec<GuestMap>,
    pub conflicts: Vec<Conflict>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// As the plan would leave the host.
    Planned,
    /// As it is now.
    Current,
}

/// `host.cpu_pool` as declared, against this host's CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pools {
    pub reserved: Option<String>,
    pub shared: Option<String>,
    /// Neither reserved nor shared (only when one of them is declared).
    pub dedicated: Option<String>,
    /// `isolate.kernel`: the dedicated CPUs are isolated from the host.
    pub isolated: bool,
    pub allow_overcommit: bool,
}

/// What a CPU is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    Reserved,
    Shared,
    Dedicated,
    /// Dedicated, and the kernel keeps host work off it (`isolate.kernel`).
    Isolated,
    /// No `host.cpu_pool` partitions the host.
    Unpartitioned,
}

impl PoolKind {
    pub fn word(self) -> &'static str {
        match self {
            PoolKind::Reserved => "reserved",
            PoolKind::Shared => "shared",
            PoolKind::Dedicated => "dedicated",
            PoolKind::Isolated => "isolated",
            PoolKind::Unpartitioned => "cpu",
        }
    }

    fn is_dedicated(self) -> bool {
        matches!(self, PoolKind::Dedicated | PoolKind::Isolated)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeMap {
    pub node: u32,
    pub cpus: String,
    pub cores: Vec<CoreMap>,
}

/// One physical core: its threads, lowest CPU id first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoreMap {
    pub socket: u32,
    pub core: u32,
    pub threads: Vec<CpuCell>,
}

/// One host CPU and what may run on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuCell {
    pub cpu: u32,
    pub pool: PoolKind,
    /// vCPUs pinned to this CPU alone.
    pub vcpus: Vec<VcpuPin>,
    /// Guests whose emulator threads are pinned here.
    pub emulator: Vec<String>,
    pub iothreads: Vec<IoThreadPin>,
    /// Guests with vCPUs that float over a set of CPUs including this one.
    pub floating: Vec<String>,
    pub conflicts: Vec<ConflictKind>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct VcpuPin {
    pub guest: String,
    pub vcpu: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct IoThreadPin {
    pub guest: String,
    pub iothread: u32,
}

/// One guest: where its vCPUs, emulator and I/O threads go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestMap {
    pub name: String,
    /// Declared under `guests:`.
    pub managed: bool,
    pub running: bool,
    pub vcpus: u32,
    /// vCPU → the one CPU it is pinned to.
    pub pinned: BTreeMap<u32, u32>,
    /// vCPUs that float, grouped by the CPUs they may use.
    pub floating: Vec<Float>,
    pub emulator: Option<String>,
    /// I/O thread id → its CPUs.
    pub iothreads: BTreeMap<u32, String>,
}

/// vCPUs of one guest that may run on any of `cpus` (`None`: on every CPU of the host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Float {
    pub vcpus: String,
    pub cpus: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// Two or more vCPUs are pinned to one CPU (not a conflict with `allow_overcommit`).
    SharedCpu,
    /// A guest floats over a CPU where another guest's vCPU is pinned (not a conflict with
    /// `allow_overcommit`).
    FloatsOverPinned,
    /// A vCPU can run on a reserved CPU.
    VcpuOnReserved,
    /// A guest kvmtune does not manage can run on a dedicated CPU.
    UnmanagedOnDedicated,
    /// A managed guest's floating vCPUs reach a dedicated CPU.
    FloatingOnDedicated,
}

/// Conflicts of one kind among the same guests, over the CPUs where they occur.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub kind: ConflictKind,
    pub cpus: String,
    pub guests: Vec<String>,
    pub message: String,
}

impl HostMap {
    /// Every cell, in node / core / thread order.
    pub fn cells(&self) -> impl Iterator<Item = &CpuCell> {
        self.nodes
            .iter()
            .flat_map(|n| n.cores.iter().flat_map(|c| c.threads.iter()))
    }

    pub fn has_conflicts(&self) -> bool {
        !self.conflicts.is_empty()
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a map serializes") + "\n"
    }
}

/// Where one guest's threads may run, read from its domain XML.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct GuestCpus {
    vcpus: u32,
    /// `<vcpu cpuset>` (ignored with `placement='auto'`: numad decides).
    cpuset: Option<CpuSet>,
    vcpupin: BTreeMap<u32, CpuSet>,
    emulatorpin: Option<CpuSet>,
    iothreadpin: BTreeMap<u32, CpuSet>,
}

impl GuestCpus {
    /// `None` when the XML does not parse.
    fn read(xml: &str) -> Option<GuestCpus> {
        let doc = Document::parse(xml).ok()?;
        let root = doc.root();
        let set = |e, a: &str| doc.attr(e, a).and_then(|v| v.parse::<CpuSet>().ok());
        let mut g = GuestCpus::default();
        if let Some(v) = doc.child(root, "vcpu") {
            g.vcpus = doc.text(v).trim().parse().unwrap_or(0);
            if doc.attr(v, "placement").as_deref() != Some("auto") {
                g.cpuset = set(v, "cpuset");
            }
        }
        if let Some(ct) = doc.child(root, "cputune") {
            let num = |e, a: &str| doc.attr(e, a).and_then(|v| v.trim().parse::<u32>().ok());
            for p in doc.children_named(ct, "vcpupin") {
                if let (Some(i), Some(s)) = (num(p, "vcpu"), set(p, "cpuset")) {
                    g.vcpupin.insert(i, s);
                }
            }
            for p in doc.children_named(ct, "iothreadpin") {
                if let (Some(i), Some(s)) = (num(p, "iothread"), set(p, "cpuset")) {
                    g.iothreadpin.insert(i, s);
                }
            }
            g.emulatorpin = doc.child(ct, "emulatorpin").and_then(|e| set(e, "cpuset"));
        }
        Some(g)
    }
}

/// The most vCPUs drawn for one guest (QEMU's limit; a hand-written XML may say more).
const MAX_VCPUS: u32 = crate::domain::settings::vcpu::MAX_VCPUS;

/// A guest's definition in the picture, with whether kvmtune manages it and whether it runs.
struct Source<'a> {
    name: &'a str,
    xml: &'a str,
    managed: bool,
    running: bool,
}

/// The definitions to draw: managed guests from the plan (or as observed), then the others.
fn sources<'a>(input: &MapInput<'a>, notes: &mut Vec<String>) -> Vec<Source<'a>> {
    let mut planned: BTreeMap<&str, &str> = BTreeMap::new();
    if let Some(p) = input.plan {
        for a in &p.actions {
            if let Action::Guest { name, new_xml, .. } = a {
                planned.insert(name.as_str(), new_xml.as_str());
            }
        }
    }
    let mut out = Vec::new();
    for name in input.desired.guests.keys() {
        let Some(Some(g)) = input.observed.guests.get(name.as_str()) else {
            notes.push(format!(
                "guest {name} is declared but not defined on this host"
            ));
            continue;
        };
        let xml = match (input.plan, planned.get(name.as_str())) {
            (Some(_), Some(x)) => x,
            (Some(_), None) => g.xml.as_str(),
            (None, _) => g.live_xml.as_deref().unwrap_or(&g.xml),
        };
        out.push(Source {
            name: name.as_str(),
            xml,
            managed: true,
            running: g.active,
        });
    }
    for (name, g) in input.others {
        if input.desired.guests.keys().any(|n| n.as_str() == name) {
            continue;
        }
        out.push(Source {
            name,
            xml: &g.xml,
            managed: false,
            running: g.running,
        });
    }
    out.sort_by(|a, b| a.name.cmp(b.name));
    out
}

/// What one guest puts on each CPU, and its summary.
#[derive(Default)]
struct Occupancy {
    vcpus: BTreeMap<u32, Vec<VcpuPin>>,
    emulator: BTreeMap<u32, Vec<String>>,
    iothreads: BTreeMap<u32, Vec<IoThreadPin>>,
    floating: BTreeMap<u32, BTreeSet<String>>,
    managed: BTreeSet<String>,
}

/// `set` restricted to the host's CPUs; `None` for "every CPU" (no set, or one that covers
/// them all).
fn on_host(set: Option<&CpuSet>, all: &CpuSet) -> Option<CpuSet> {
    let s = set?;
    s.intersection(all).filter(|s| s != all)
}

/// Adds one guest to the occupancy; returns its summary.
fn place_guest(
    src: &Source,
    g: &GuestCpus,
    all: &CpuSet,
    occ: &mut Occupancy,
    notes: &mut Vec<String>,
) -> GuestMap {
    let name = src.name.to_string();
    if src.managed {
        occ.managed.insert(name.clone());
    }
    if g.vcpus > MAX_VCPUS {
        notes.push(format!(
            "guest {name} has {} vCPUs; the first {MAX_VCPUS} are drawn",
            g.vcpus
        ));
    }
    let vcpus = g.vcpus.min(MAX_VCPUS);
    let mut out = GuestMap {
        name: name.clone(),
        managed: src.managed,
        running: src.running,
        vcpus,
        pinned: BTreeMap::new(),
        floating: Vec::new(),
        emulator: g.emulatorpin.as_ref().map(|e| e.to_string()),
        iothreads: g
            .iothreadpin
            .iter()
            .map(|(i, s)| (*i, s.to_string()))
            .collect(),
    };
    let mut floats: BTreeMap<Option<CpuSet>, Vec<u32>> = BTreeMap::new();
    for v in 0..vcpus {
        let declared = g.vcpupin.get(&v).or(g.cpuset.as_ref());
        if let Some(d) = declared {
            if let Some(off) = d.without(all) {
                notes.push(format!(
                    "guest {name}: vCPU {v} names CPUs this host does not have: {off}"
                ));
            }
        }
        match on_host(declared, all) {
            Some(s) if s.len() == 1 => {
                let cpu = s.highest();
                out.pinned.insert(v, cpu);
                occ.vcpus.entry(cpu).or_default().push(VcpuPin {
                    guest: name.clone(),
                    vcpu: v,
                });
            }
            s => floats.entry(s).or_default().push(v),
        }
    }
    for (set, vs) in floats {
        let cpus: Vec<u32> = match &set {
            Some(s) => s.iter().collect(),
            None => all.iter().collect(),
        };
        for c in cpus {
            occ.floating.entry(c).or_default().insert(name.clone());
        }
        out.floating.push(Float {
            vcpus: CpuSet::from_cpus(vs)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            cpus: set.map(|s| s.to_string()),
        });
    }
    for c in g
        .emulatorpin
        .iter()
        .flat_map(|s| s.iter())
        .filter(|c| all.contains(*c))
    {
        occ.emulator.entry(c).or_default().push(name.clone());
    }
    for (i, s) in &g.iothreadpin {
        for c in s.iter().filter(|c| all.contains(*c)) {
            occ.iothreads.entry(c).or_default().push(IoThreadPin {
                guest: name.clone(),
                iothread: *i,
            });
        }
    }
    out
}

/// The pool a CPU belongs to.
fn pool_of(pool: &CpuPool, cpu: u32) -> PoolKind {
    if pool.reserved.as_ref().is_some_and(|s| s.contains(cpu)) {
        PoolKind::Reserved
    } else if pool.shared.as_ref().is_some_and(|s| s.contains(cpu)) {
        PoolKind::Shared
    } else if pool.reserved.is_none() && pool.shared.is_none() {
        PoolKind::Unpartitioned
    } else if pool.isolate.kernel {
        PoolKind::Isolated
    } else {
        PoolKind::Dedicated
    }
}

/// The conflicts of one cell, with the guests involved in each.
fn cell_conflicts(
    cell: &CpuCell,
    occ: &Occupancy,
    overcommit: bool,
) -> BTreeMap<ConflictKind, BTreeSet<String>> {
    let mut out: BTreeMap<ConflictKind, BTreeSet<String>> = BTreeMap::new();
    let pinned: BTreeSet<&String> = cell.vcpus.iter().map(|v| &v.guest).collect();
    let everyone: BTreeSet<String> = pinned
        .iter()
        .map(|g| (*g).clone())
        .chain(cell.floating.iter().cloned())
        .collect();
    if !overcommit && cell.vcpus.len() >= 2 {
        let guests = pinned.iter().map(|g| (*g).clone()).collect();
        out.insert(ConflictKind::SharedCpu, guests);
    }
    let floaters: BTreeSet<String> = cell
        .floating
        .iter()
        // Another guest's vCPU is pinned here.
        .filter(|g| pinned.iter().any(|p| p != g))
        .cloned()
        .collect();
    if !overcommit && !floaters.is_empty() {
        out.insert(ConflictKind::FloatsOverPinned, floaters);
    }
    if cell.pool == PoolKind::Reserved && !everyone.is_empty() {
        out.insert(ConflictKind::VcpuOnReserved, everyone.clone());
    }
    if cell.pool.is_dedicated() {
        let unmanaged: BTreeSet<String> = everyone
            .iter()
            .filter(|g| !occ.managed.contains(*g))
            .cloned()
            .collect();
        if !unmanaged.is_empty() {
            out.insert(ConflictKind::UnmanagedOnDedicated, unmanaged);
        }
        let floating: BTreeSet<String> = cell
            .floating
            .iter()
            .filter(|g| occ.managed.contains(*g))
            .cloned()
            .collect();
        if !floating.is_empty() {
            out.insert(ConflictKind::FloatingOnDedicated, floating);
        }
    }
    out
}

/// Conflicts found per CPU as lines: a shared CPU per set of guests sharing it, the other
/// kinds per guest; then the guests with the same CPUs together. (A CPU has one set of
/// guests sharing it, so the second step never merges two such sets.)
fn group(
    found: BTreeMap<(ConflictKind, Vec<String>), BTreeSet<u32>>,
) -> Vec<(ConflictKind, CpuSet, Vec<String>)> {
    let mut per: BTreeMap<(ConflictKind, Vec<String>), BTreeSet<u32>> = BTreeMap::new();
    for ((kind, guests), cpus) in found {
        if kind == ConflictKind::SharedCpu {
            per.entry((kind, guests)).or_default().extend(cpus);
        } else {
            for g in guests {
                per.entry((kind, vec![g]))
                    .or_default()
                    .extend(cpus.iter().copied());
            }
        }
    }
    let mut by_cpus: BTreeMap<(ConflictKind, CpuSet), BTreeSet<String>> = BTreeMap::new();
    for ((kind, guests), cpus) in per {
        if let Some(cpus) = CpuSet::from_cpus(cpus) {
            by_cpus.entry((kind, cpus)).or_default().extend(guests);
        }
    }
    let mut out: Vec<(ConflictKind, CpuSet, Vec<String>)> = by_cpus
        .into_iter()
        .map(|((kind, cpus), guests)| (kind, cpus, guests.into_iter().collect()))
        .collect();
    out.sort_by(|a, b| (a.0, &a.2, &a.1).cmp(&(b.0, &b.2, &b.1)));
    out
}

fn and_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn message(kind: ConflictKind, cpus: &CpuSet, guests: &[String], dedicated: &str) -> String {
    let s = if cpus.len() == 1 { "" } else { "s" };
    let who = and_list(guests);
    match kind {
        ConflictKind::SharedCpu if guests.len() == 1 => {
            format!("vCPUs of {who} share CPU{s} {cpus}")
        }
        ConflictKind::SharedCpu => format!("{who} have vCPUs pinned to the same CPU{s} {cpus}"),
        ConflictKind::FloatsOverPinned => format!(
            "{who} float{} over CPU{s} {cpus}, where another guest's vCPU is pinned",
            if guests.len() == 1 { "s" } else { "" }
        ),
        ConflictKind::VcpuOnReserved => {
            format!("vCPUs of {who} can run on reserved CPU{s} {cpus}")
        }
        ConflictKind::UnmanagedOnDedicated => format!(
            "{who}, not managed by kvmtune, can run on {dedicated} CPU{s} {cpus}"
        ),
        ConflictKind::FloatingOnDedicated => format!(
            "{who} float{} over {dedicated} CPU{s} {cpus} (pin them 1:1, or float over host.cpu_pool.shared)",
            if guests.len() == 1 { "s" } else { "" }
        ),
    }
}

/// Notes on the pools: CPUs they name that this host does not have.
fn pool_notes(pool: &CpuPool, all: &CpuSet, notes: &mut Vec<String>) {
    for (what, set) in [("reserved", &pool.reserved), ("shared", &pool.shared)] {
        if let Some(off) = set.as_ref().and_then(|s| s.without(all)) {
            notes.push(format!(
                "host.cpu_pool.{what} names CPUs this host does not have: {off}"
            ));
        }
    }
}

/// Draws the map. Pure.
pub fn build(input: &MapInput) -> Result<HostMap, MapError> {
    let topo: &HostTopology = input
        .observed
        .topology
        .as_ref()
        .filter(|t| !t.is_empty())
        .ok_or(MapError::NoTopology)?;
    let all = CpuSet::from_cpus(topo.cpus.iter().map(|c| c.id)).ok_or(MapError::NoTopology)?;
    let pool = &input.desired.host.cpu_pool;
    let mut notes = Vec::new();
    if let Some(p) = input.plan {
        for e in &p.errors {
            notes.push(format!("plan error: {}: {e}", e.target));
        }
        if p.has_errors() {
            notes.push("guests the plan could not plan are drawn as they are now".into());
        }
    }
    pool_notes(pool, &all, &mut notes);
    let mut occ = Occupancy::default();
    let mut guests = Vec::new();
    for src in sources(input, &mut notes) {
        match GuestCpus::read(src.xml) {
            Some(g) => guests.push(place_guest(&src, &g, &all, &mut occ, &mut notes)),
            None => notes.push(format!(
                "guest {}: its domain XML does not parse; not drawn",
                src.name
            )),
        }
    }
    let mut found: BTreeMap<(ConflictKind, Vec<String>), BTreeSet<u32>> = BTreeMap::new();
    let mut nodes = Vec::new();
    for node in topo.nodes() {
        let mut cores = Vec::new();
        for core in topo.cores().into_iter().filter(|c| c.node == node) {
            let mut threads = Vec::new();
            for &cpu in &core.cpus {
                let mut cell = CpuCell {
                    cpu,
                    pool: pool_of(pool, cpu),
                    vcpus: occ.vcpus.get(&cpu).cloned().unwrap_or_default(),
                    emulator: occ.emulator.get(&cpu).cloned().unwrap_or_default(),
                    iothreads: occ.iothreads.get(&cpu).cloned().unwrap_or_default(),
                    floating: occ
                        .floating
                        .get(&cpu)
                        .map(|s| s.iter().cloned().collect())
                        .unwrap_or_default(),
                    conflicts: Vec::new(),
                };
                for (kind, who) in cell_conflicts(&cell, &occ, pool.allow_overcommit) {
                    cell.conflicts.push(kind);
                    found
                        .entry((kind, who.into_iter().collect()))
                        .or_default()
                        .insert(cpu);
                }
                threads.push(cell);
            }
            let first = topo.cpu(core.cpus[0]).map(|c| c.core).unwrap_or(0);
            cores.push(CoreMap {
                socket: core.socket,
                core: first,
                threads,
            });
        }
        nodes.push(NodeMap {
            node,
            cpus: CpuSet::from_cpus(topo.node_cpus(node))
                .map(|s| s.to_string())
                .unwrap_or_default(),
            cores,
        });
    }
    let dedicated = if pool.isolate.kernel {
        "isolated"
    } else {
        "dedicated"
    };
    let conflicts = group(found)
        .into_iter()
        .map(|(kind, cpus, guests)| Conflict {
            kind,
            message: message(kind, &cpus, &guests, dedicated),
            cpus: cpus.to_string(),
            guests,
        })
        .collect();
    let partitioned = pool.reserved.is_some() || pool.shared.is_some();
    Ok(HostMap {
        hostname: input.hostname.to_string(),
        view: if input.plan.is_some() {
            View::Planned
        } else {
            View::Current
        },
        pools: Pools {
            reserved: pool.reserved.as_ref().map(|s| s.to_string()),
            shared: pool.shared.as_ref().map(|s| s.to_string()),
            dedicated: if partitioned {
                pool.dedicated(&all).map(|s| s.to_string())
            } else {
                None
            },
            isolated: pool.isolate.kernel,
            allow_overcommit: pool.allow_overcommit,
        },
        nodes,
        guests,
        conflicts,
        notes,
    })
}

// ------------------------------------------------------------- shared by renderers --

/// A name or message made safe to print: control characters become `?` (an unmanaged
/// guest's name comes from libvirt and may hold anything).
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// At most `max` characters of `s` (cleaned), with `…` when cut.
pub fn fit(s: &str, max: usize) -> String {
    let s = clean(s);
    if s.chars().count() <= max {
        s
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Longest guest name shown in a cell.
pub const NAME_IN_CELL: usize = 10;
/// Most occupant lines in a cell; more are summed up in the last one.
pub const LINES_IN_CELL: usize = 4;

/// What a cell says below its header: pinned vCPUs (`db1 v0`), emulator (`db1 emu`), I/O
/// threads (`db1 io1`), floating guests (`~web1`), `free` for an unused dedicated CPU.
pub fn cell_lines(c: &CpuCell) -> Vec<String> {
    cell_entries(c).into_iter().map(|(_, l)| l).collect()
}

/// [`cell_lines`] with the guest each line is about.
pub fn cell_entries(c: &CpuCell) -> Vec<(Option<String>, String)> {
    let n = |g: &str| fit(g, NAME_IN_CELL);
    let mut lines: Vec<(Option<String>, String)> = Vec::new();
    for v in &c.vcpus {
        lines.push((
            Some(v.guest.clone()),
            format!("{} v{}", n(&v.guest), v.vcpu),
        ));
    }
    for g in &c.emulator {
        lines.push((Some(g.clone()), format!("{} emu", n(g))));
    }
    for t in &c.iothreads {
        let text = format!("{} io{}", n(&t.guest), t.iothread);
        lines.push((Some(t.guest.clone()), text));
    }
    // Floating guests by name while they fit, else their count.
    if c.floating.len() > LINES_IN_CELL.saturating_sub(lines.len()).max(1) {
        lines.push((None, format!("~{} guests", c.floating.len())));
    } else {
        for g in &c.floating {
            lines.push((Some(g.clone()), format!("~{}", n(g))));
        }
    }
    if lines.is_empty() && c.pool.is_dedicated() {
        lines.push((None, "free".into()));
    }
    if lines.len() > LINES_IN_CELL {
        let more = lines.len() - (LINES_IN_CELL - 1);
        lines.truncate(LINES_IN_CELL - 1);
        lines.push((None, format!("+{more} more")));
    }
    lines
}

/// A cell's first line: `!` when it has a conflict, the CPU number, its pool.
pub fn cell_header(c: &CpuCell) -> String {
    format!(
        "{}{} {}",
        if c.conflicts.is_empty() { "" } else { "!" },
        c.cpu,
        c.pool.word()
    )
}

/// A core's column heading.
pub fn core_label(node: &NodeMap, core: &CoreMap) -> String {
    let sockets: BTreeSet<u32> = node.cores.iter().map(|c| c.socket).collect();
    if sockets.len() > 1 {
        format!("s{} core {}", core.socket, core.core)
    } else {
        format!("core {}", core.core)
    }
}

/// The view, for titles.
pub fn title(m: &HostMap) -> String {
    format!(
        "host {}, {}",
        clean(&m.hostname),
        match m.view {
            View::Planned => "as the plan leaves it",
            View::Current => "as it is now (CPU pools as declared)",
        }
    )
}

/// One line per guest: `db1 (running, managed, 4 vCPUs): pinned 0→1 1→9; emulator 0,8`.
pub fn guest_line(g: &GuestMap) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !g.pinned.is_empty() {
        let p: Vec<String> = g.pinned.iter().map(|(v, c)| format!("{v}→{c}")).collect();
        parts.push(format!("pinned {}", p.join(" ")));
    }
    for f in &g.floating {
        parts.push(format!(
            "vCPU {} float over {}",
            f.vcpus,
            f.cpus.as_deref().unwrap_or("every CPU")
        ));
    }
    if let Some(e) = &g.emulator {
        parts.push(format!("emulator on {e}"));
    }
    for (i, s) in &g.iothreads {
        parts.push(format!("iothread {i} on {s}"));
    }
    if parts.is_empty() {
        parts.push("no vCPUs".into());
    }
    format!(
        "{} ({}, {}, {} vCPU{}): {}",
        clean(&g.name),
        if g.running { "running" } else { "shut off" },
        if g.managed { "managed" } else { "not managed" },
        g.vcpus,
        if g.vcpus == 1 { "" } else { "s" },
        parts.join("; ")
    )
}

/// The legend's entries: (what, meaning), the pools first.
pub fn legend(m: &HostMap) -> Vec<(Option<PoolKind>, String, String)> {
    let kinds: BTreeSet<PoolKind> = m.cells().map(|c| c.pool).collect();
    let mut out = Vec::new();
    for k in kinds {
        let meaning = match k {
            PoolKind::Reserved => "host.cpu_pool.reserved: host work, emulator and I/O threads",
            PoolKind::Shared => "host.cpu_pool.shared: for guests that float",
            PoolKind::Dedicated => "for vCPUs pinned 1:1 (neither reserved nor shared)",
            PoolKind::Isolated => "for vCPUs pinned 1:1; host work kept off (isolate.kernel)",
            PoolKind::Unpartitioned => "no host.cpu_pool is declared",
        };
        out.push((Some(k), k.word().to_string(), meaning.to_string()));
    }
    // Each kind of mark, explained on its first occurrence in the map.
    let n = |g: &str| fit(g, NAME_IN_CELL);
    if let Some(v) = m.cells().flat_map(|c| c.vcpus.first()).next() {
        let (g, i) = (n(&v.guest), v.vcpu);
        out.push((
            None,
            format!("{g} v{i}"),
            format!("vCPU {i} of guest {g}, pinned to this CPU"),
        ));
    }
    if let Some(g) = m.cells().flat_map(|c| c.emulator.first()).next() {
        let g = n(g);
        out.push((None, format!("{g} emu"), format!("{g}'s emulator threads")));
    }
    if let Some(t) = m.cells().flat_map(|c| c.iothreads.first()).next() {
        let (g, i) = (n(&t.guest), t.iothread);
        out.push((None, format!("{g} io{i}"), format!("{g}'s I/O thread {i}")));
    }
    if let Some(g) = m.cells().flat_map(|c| c.floating.first()).next() {
        let g = n(g);
        out.push((
            None,
            format!("~{g}"),
            format!("{g}'s vCPUs float over CPUs including this one"),
        ));
    }
    if m.has_conflicts() {
        out.push((None, "!".into(), "conflict (listed above)".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::libvirt::GuestObserved;

    pub(super) fn dom(name: &str, vcpus: u32, extra: &str) -> String {
        format!("<domain type='kvm'><name>{name}</name><vcpu>{vcpus}</vcpu>{extra}</domain>")
    }

    fn observed(guests: &[(&str, String)]) -> Observed {
        Observed {
            topology: Some(HostTopology::synthetic(2, 2, 2)),
            guests: guests
                .iter()
                .map(|(n, x)| {
                    (
                        n.to_string(),
                        Some(GuestObserved {
                            uuid: String::new(),
                            active: true,
                            xml: x.clone(),
                            live_xml: None,
                        }),
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    /// The current map of `yaml` with managed guests `managed` and unmanaged `others`.
    pub(super) fn current(
        yaml: &str,
        managed: &[(&str, String)],
        others: &[(&str, String)],
    ) -> HostMap {
        let d = crate::desired::load_str("t.yaml", yaml).unwrap();
        let obs = observed(managed);
        let others: BTreeMap<String, OtherGuest> = others
            .iter()
            .map(|(n, x)| {
                (
                    n.to_string(),
                    OtherGuest {
                        xml: x.clone(),
                        running: false,
                    },
                )
            })
            .collect();
        build(&MapInput {
            desired: &d,
            observed: &obs,
            plan: None,
            others: &others,
            hostname: "h",
        })
        .unwrap()
    }

    fn kinds(m: &HostMap) -> Vec<(ConflictKind, String, Vec<String>)> {
        m.conflicts
            .iter()
            .map(|c| (c.kind, c.cpus.clone(), c.guests.clone()))
            .collect()
    }

    // synthetic(2, 2, 2): node0 = 0,1,4,5 (cores 0+4, 1+5), node1 = 2,3,6,7.
    #[test]
    fn every_cpu_once_in_its_core_and_thread() {
        let m = current("guests: {}\n", &[], &[]);
        let cpus: Vec<u32> = m.cells().map(|c| c.cpu).collect();
        assert_eq!(cpus, vec![0, 4, 1, 5, 2, 6, 3, 7]);
        assert_eq!(m.nodes[1].cores[0].threads[1].cpu, 6);
        assert!(m.cells().all(|c| c.pool == PoolKind::Unpartitioned));
        assert!(!m.has_conflicts());
    }

    #[test]
    fn pools_pins_and_floats_land_on_their_cpus() {
        let yaml = "host:\n  cpu_pool: { reserved: \"0,4\", shared: \"1,5\" }\nguests:\n  a: {}\n";
        let a = dom(
            "a",
            3,
            "<cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' cpuset='6'/>\
             <vcpupin vcpu='2' cpuset='1,5'/><emulatorpin cpuset='0'/>\
             <iothreadpin iothread='1' cpuset='4'/></cputune>",
        );
        let m = current(yaml, &[("a", a)], &[]);
        let cell = |id: u32| m.cells().find(|c| c.cpu == id).unwrap().clone();
        assert_eq!(cell(0).pool, PoolKind::Reserved);
        assert_eq!(cell(0).emulator, vec!["a".to_string()]);
        assert_eq!(cell(4).iothreads[0].iothread, 1);
        assert_eq!(cell(1).pool, PoolKind::Shared);
        assert_eq!(cell(1).floating, vec!["a".to_string()]);
        assert_eq!(cell(2).pool, PoolKind::Dedicated);
        assert_eq!(cell(2).vcpus[0].vcpu, 0);
        assert_eq!(cell_lines(&cell(3)), vec!["free".to_string()]);
        assert_eq!(m.guests[0].pinned, BTreeMap::from([(0, 2), (1, 6)]));
        assert_eq!(m.pools.dedicated.as_deref(), Some("2-3,6-7"));
        assert!(!m.has_conflicts(), "{:?}", m.conflicts);
    }

    #[test]
    fn each_conflict_kind_is_found() {
        let yaml = "host:\n  cpu_pool: { reserved: \"0\", isolate: { kernel: true } }\nguests:\n  a: {}\n  b: {}\n  c: {}\n";
        let a = dom(
            "a",
            2,
            "<cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' cpuset='0'/></cputune>",
        );
        let b = "<domain><name>b</name><vcpu cpuset='2-3'>1</vcpu></domain>".to_string();
        let c = dom("c", 1, "<cputune><vcpupin vcpu='0' cpuset='7'/></cputune>");
        let other = dom("x", 1, "<cputune><vcpupin vcpu='0' cpuset='7'/></cputune>");
        let m = current(yaml, &[("a", a), ("b", b), ("c", c)], &[("x", other)]);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            kinds(&m),
            vec![
                (ConflictKind::SharedCpu, "7".into(), s(&["c", "x"])),
                (ConflictKind::FloatsOverPinned, "2".into(), s(&["b"])),
                (ConflictKind::VcpuOnReserved, "0".into(), s(&["a"])),
                (ConflictKind::UnmanagedOnDedicated, "7".into(), s(&["x"])),
                (ConflictKind::FloatingOnDedicated, "2-3".into(), s(&["b"])),
            ]
        );
        let c2 = m.cells().find(|c| c.cpu == 2).unwrap();
        assert_eq!(cell_header(c2), "!2 isolated");
        assert_eq!(
            c2.conflicts,
            vec![
                ConflictKind::FloatsOverPinned,
                ConflictKind::FloatingOnDedicated
            ]
        );
        assert!(m.cells().find(|c| c.cpu == 6).unwrap().conflicts.is_empty());
        let msgs: Vec<&str> = m.conflicts.iter().map(|c| c.message.as_str()).collect();
        assert_eq!(msgs[0], "c and x have vCPUs pinned to the same CPU 7");
        assert_eq!(
            msgs[1],
            "b floats over CPU 2, where another guest's vCPU is pinned"
        );
        assert_eq!(
            msgs[3],
            "x, not managed by kvmtune, can run on isolated CPU 7"
        );
    }

    #[test]
    fn overcommit_allows_shared_pins_and_unpinned_guests_float_everywhere() {
        let yaml = "host:\n  cpu_pool: { allow_overcommit: true }\nguests:\n  a: {}\n";
        let a = dom(
            "a",
            2,
            "<cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' cpuset='2'/></cputune>",
        );
        let m = current(yaml, &[("a", a)], &[("z", dom("z", 2, ""))]);
        assert!(!m.has_conflicts(), "{:?}", m.conflicts);
        let z = m.guests.iter().find(|g| g.name == "z").unwrap();
        assert_eq!(
            z.floating,
            vec![Float {
                vcpus: "0-1".into(),
                cpus: None
            }]
        );
        assert!(m.cells().all(|c| c.floating == vec!["z".to_string()]));
        let m = current("guests:\n  a: {}\n", &[("a", dom("a", 2, "<cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' cpuset='2'/></cputune>"))], &[]);
        assert_eq!(
            kinds(&m),
            vec![(ConflictKind::SharedCpu, "2".into(), vec!["a".to_string()])]
        );
        assert_eq!(m.conflicts[0].message, "vCPUs of a share CPU 2");
    }

    #[test]
    fn odd_input_becomes_notes_not_panics() {
        let a = dom(
            "a",
            99999,
            "<cputune><vcpupin vcpu='0' cpuset='99'/></cputune>",
        );
        let m = current(
            "host:\n  cpu_pool: { reserved: \"0,200\" }\nguests:\n  a: {}\n  gone: {}\n",
            &[("a", a)],
            &[("bad\u{1b}[31m", "<domain".into())],
        );
        assert_eq!(m.guests[0].vcpus, MAX_VCPUS);
        let notes = m.notes.join("\n");
        for want in [
            "host.cpu_pool.reserved names CPUs this host does not have: 200",
            "guest gone is declared but not defined on this host",
            "guest a: vCPU 0 names CPUs this host does not have: 99",
            "the first 4096 are drawn",
            "its domain XML does not parse",
        ] {
            assert!(notes.contains(want), "{want}: {notes}");
        }
        assert_eq!(clean("bad\u{1b}[31m"), "bad?[31m");
        assert_eq!(fit("abcdefghijkl", 5), "abcd…");
    }

    #[test]
    fn no_topology_is_an_error() {
        let d = Desired::default();
        let obs = Observed::default();
        let r = build(&MapInput {
            desired: &d,
            observed: &obs,
            plan: None,
            others: &BTreeMap::new(),
            hostname: "h",
        });
        assert_eq!(r, Err(MapError::NoTopology));
    }
}
