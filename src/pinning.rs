//! Automatic NUMA-aware CPU pinning (`cputune.vcpupin: auto`).
//!
//! Invariant: [`allocate`] is a pure, deterministic function of (host topology, reserved CPUs,
//! CPUs taken by other guests, the requests, the previous assignments). It never gives a CPU
//! to two vCPUs unless overcommit is allowed, never hands out reserved or taken CPUs, keeps a
//! guest on one NUMA node whenever one has room, keeps every still-valid previous assignment
//! (so adding or removing a guest moves only that guest's pins), and does not depend on the
//! order in which guests were written (requests are keyed and processed by name).
//!
//! Packing order inside a node follows the kubelet's static CPU manager: whole sockets the
//! guest fills, then whole cores (sibling threads together, so vCPU `k*t..k*t+t` of a guest
//! with `threads: t` land on one core), then single CPUs from the most used cores first.
//!
//! [`resolve`] wraps it for the planner: it builds the requests from the desired state and
//! observed XML and returns the desired guests with concrete pins filled in, plus the
//! lock file contents that reproduce them.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::raw::ThreadPolicy;
use crate::cpuset::CpuSet;
use crate::desired::{Desired, DomainName, EmulatorAuto, GuestDesired};
use crate::observe::Observed;
use crate::topology::HostTopology;

/// What one guest asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub vcpus: u32,
    /// Threads per core of the guest's CPU topology (1 when not declared).
    pub guest_threads: u32,
    pub numa_node: Option<u32>,
    pub threads: ThreadPolicy,
    pub emulator: Option<EmulatorAuto>,
}

/// The CPUs one guest got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// vCPU index → host CPU.
    pub vcpus: Vec<u32>,
    /// Emulator threads' CPUs (`emulatorpin: auto | isolate`).
    pub emulator: Option<CpuSet>,
    /// NUMA nodes of the vCPUs (`nodeset: auto`).
    pub nodes: CpuSet,
}

/// Why a guest got no CPUs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("needs {needed} dedicated CPUs{on}; free per node: {free}{hint}")]
    DoesNotFit {
        needed: u32,
        on: String,
        free: String,
        hint: String,
    },
    #[error("NUMA node {0} does not exist on this host (nodes: {1})")]
    NoSuchNode(u32, String),
    #[error("`threads: require` takes whole cores of {tpc} threads: {vcpus} vCPUs is not a multiple of {tpc}")]
    NotWholeCores { vcpus: u32, tpc: usize },
    #[error("the guest has no vCPU count: declare vcpu.count")]
    NoCount,
    #[error("the host topology is unknown (libvirt reports no NUMA cells and there is no sysfs node tree under --root)")]
    NoTopology,
    #[error("`emulatorpin: isolate` needs one more free CPU on node {0}, none is left")]
    NoEmulatorCpu(u32),
    #[error(
        "`emulatorpin: auto` runs on host.cpu_pool.reserved, which is empty or not on this host"
    )]
    NoReserved,
}

/// Everything the allocator looks at.
#[derive(Debug, Clone, Default)]
pub struct AllocInput {
    pub topology: HostTopology,
    pub reserved: BTreeSet<u32>,
    /// CPUs pinned by guests whose pins are not chosen here.
    pub taken: BTreeSet<u32>,
    pub requests: BTreeMap<String, Request>,
    /// Previous assignments (lock file, else the guests' current pins).
    pub previous: BTreeMap<String, Assignment>,
    pub allow_overcommit: bool,
}

struct State<'a> {
    topo: &'a HostTopology,
    reserved: &'a BTreeSet<u32>,
    taken: &'a BTreeSet<u32>,
    /// vCPUs per CPU.
    load: BTreeMap<u32, u32>,
    /// Idle siblings of isolated cores and dedicated emulator CPUs.
    blocked: BTreeSet<u32>,
    tpc: usize,
}

impl State<'_> {
    fn free(&self, cpu: u32) -> bool {
        !self.reserved.contains(&cpu)
            && !self.taken.contains(&cpu)
            && !self.blocked.contains(&cpu)
            && self.load.get(&cpu).copied().unwrap_or(0) == 0
            && self.topo.cpu(cpu).is_some()
    }

    /// CPUs that can run vCPUs at all (overcommit candidates).
    fn usable(&self, cpu: u32) -> bool {
        !self.reserved.contains(&cpu)
            && !self.taken.contains(&cpu)
            && !self.blocked.contains(&cpu)
            && self.topo.cpu(cpu).is_some()
    }

    fn free_in(&self, node: u32) -> usize {
        self.topo
            .node_cpus(node)
            .into_iter()
            .filter(|c| self.free(*c))
            .count()
    }

    fn take(&mut self, cpus: &[u32], policy: ThreadPolicy) {
        for c in cpus {
            *self.load.entry(*c).or_default() += 1;
        }
        if policy == ThreadPolicy::Isolate {
            for c in cpus {
                for s in self.topo.siblings(*c) {
                    if !cpus.contains(&s) {
                        self.blocked.insert(s);
                    }
                }
            }
        }
    }

    /// Undoes [`State::take`].
    fn release(&mut self, cpus: &[u32], policy: ThreadPolicy) {
        for c in cpus {
            if let Some(l) = self.load.get_mut(c) {
                *l -= 1;
            }
            if policy == ThreadPolicy::Isolate {
                for s in self.topo.siblings(*c) {
                    if !cpus.contains(&s) {
                        self.blocked.remove(&s);
                    }
                }
            }
        }
    }

    /// Whether `cpus` (a previous assignment) can be kept as they are.
    fn keeps(&self, cpus: &[u32], req: &Request) -> bool {
        let distinct: BTreeSet<u32> = cpus.iter().copied().collect();
        if cpus.len() != req.vcpus as usize
            || distinct.len() != cpus.len()
            || !cpus.iter().all(|c| self.free(*c))
        {
            return false;
        }
        if let Some(n) = req.numa_node {
            if !cpus.iter().all(|c| self.topo.node_of(*c) == Some(n)) {
                return false;
            }
        }
        match req.threads {
            ThreadPolicy::Prefer => true,
            ThreadPolicy::Require => cpus.chunks(self.tpc).all(|chunk| {
                let mut sib = self.topo.siblings(chunk[0]);
                sib.sort();
                let mut c = chunk.to_vec();
                c.sort();
                sib == c
            }),
            ThreadPolicy::Isolate => {
                let cores: BTreeSet<Vec<u32>> =
                    cpus.iter().map(|c| self.topo.siblings(*c)).collect();
                cores.len() == cpus.len()
                    && cpus.iter().all(|c| {
                        self.topo
                            .siblings(*c)
                            .iter()
                            .all(|s| s == c || self.free(*s))
                    })
            }
        }
    }

    /// Dedicated CPUs for `n` vCPUs on `node`, in packing order; `None` when they do not fit.
    fn pick_in(&self, node: u32, n: usize, policy: ThreadPolicy) -> Option<Vec<u32>> {
        let cores: Vec<_> = self
            .topo
            .cores()
            .into_iter()
            .filter(|c| c.node == node)
            .collect();
        let whole: Vec<&crate::topology::Core> = cores
            .iter()
            .filter(|c| c.cpus.iter().all(|x| self.free(*x)))
            .collect();
        match policy {
            ThreadPolicy::Isolate => {
                (whole.len() >= n).then(|| whole.iter().take(n).map(|c| c.cpus[0]).collect())
            }
            ThreadPolicy::Require => {
                let full: Vec<_> = whole.iter().filter(|c| c.cpus.len() == self.tpc).collect();
                let need = n / self.tpc;
                (n.is_multiple_of(self.tpc) && full.len() >= need).then(|| {
                    full.iter()
                        .take(need)
                        .flat_map(|c| c.cpus.iter().copied())
                        .collect()
                })
            }
            ThreadPolicy::Prefer => {
                if self.free_in(node) < n {
                    return None;
                }
                let mut out: Vec<u32> = Vec::new();
                let mut used: BTreeSet<u32> = BTreeSet::new();
                // 1. Whole sockets the guest fills.
                let sockets: BTreeSet<u32> = cores.iter().map(|c| c.socket).collect();
                for s in sockets {
                    let cpus: Vec<u32> = cores
                        .iter()
                        .filter(|c| c.socket == s)
                        .flat_map(|c| c.cpus.iter().copied())
                        .collect();
                    if cpus.iter().all(|c| self.free(*c)) && cpus.len() <= n - out.len() {
                        // Core by core, so sibling threads stay adjacent.
                        for c in cores.iter().filter(|c| c.socket == s) {
                            out.extend(&c.cpus);
                            used.extend(&c.cpus);
                        }
                    }
                }
                // 2. Whole cores.
                for c in &whole {
                    if c.cpus.len() <= n - out.len() && !c.cpus.iter().any(|x| used.contains(x)) {
                        out.extend(&c.cpus);
                        used.extend(&c.cpus);
                    }
                }
                // 3. Single CPUs: from the fullest cores first, then by id.
                let mut singles: Vec<(usize, u32)> = cores
                    .iter()
                    .flat_map(|c| {
                        let free = c.cpus.iter().filter(|x| self.free(**x)).count();
                        c.cpus.iter().map(move |x| (free, *x))
                    })
                    .filter(|(_, x)| self.free(*x) && !used.contains(x))
                    .collect();
                singles.sort();
                for (_, x) in singles {
                    if out.len() == n {
                        break;
                    }
                    out.push(x);
                }
                (out.len() == n).then_some(out)
            }
        }
    }

    fn free_text(&self) -> String {
        self.topo
            .nodes()
            .iter()
            .map(|n| format!("node{n} {}", self.free_in(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Chooses CPUs for every request. Pure and deterministic.
pub fn allocate(input: &AllocInput) -> BTreeMap<String, Result<Assignment, AllocError>> {
    let mut st = State {
        topo: &input.topology,
        reserved: &input.reserved,
        taken: &input.taken,
        load: BTreeMap::new(),
        blocked: BTreeSet::new(),
        tpc: input.topology.threads_per_core().max(1),
    };
    let mut out: BTreeMap<String, Result<Assignment, AllocError>> = BTreeMap::new();
    let mut vcpus: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    if input.topology.is_empty() {
        return input
            .requests
            .keys()
            .map(|k| (k.clone(), Err(AllocError::NoTopology)))
            .collect();
    }
    // 1. Keep what is still valid, by name.
    for (name, req) in &input.requests {
        if let Some(prev) = input.previous.get(name) {
            if st.keeps(&prev.vcpus, req) {
                st.take(&prev.vcpus, req.threads);
                vcpus.insert(name, prev.vcpus.clone());
            }
        }
    }
    // Dedicated emulator CPUs of kept guests: the previous one when still free, else a new
    // one on the guest's node; a kept guest that finds none is placed again from scratch.
    let mut emulators: BTreeMap<&str, u32> = BTreeMap::new();
    for (name, req) in &input.requests {
        if req.emulator != Some(EmulatorAuto::Isolate) {
            continue;
        }
        let Some(cpus) = vcpus.get(name.as_str()).cloned() else {
            continue;
        };
        let nodes = input.topology.nodes_of(cpus.iter().copied());
        let prev = input
            .previous
            .get(name)
            .and_then(|p| p.emulator.as_ref())
            .filter(|e| e.len() == 1)
            .map(|e| e.highest())
            .filter(|e| {
                st.free(*e)
                    && input
                        .topology
                        .node_of(*e)
                        .is_some_and(|n| nodes.contains(&n))
            });
        match prev.or_else(|| emulator_cpu(&st, &nodes)) {
            Some(e) => {
                st.blocked.insert(e);
                emulators.insert(name, e);
            }
            None => {
                st.release(&cpus, req.threads);
                vcpus.remove(name.as_str());
            }
        }
    }
    // 2. New guests: node-constrained first, then the largest, then by name.
    let mut todo: Vec<(&String, &Request)> = input
        .requests
        .iter()
        .filter(|(n, _)| !vcpus.contains_key(n.as_str()))
        .collect();
    todo.sort_by_key(|(n, r)| {
        (
            r.numa_node.is_none(),
            std::cmp::Reverse(r.vcpus),
            n.as_str(),
        )
    });
    for (name, req) in todo {
        if req.emulator == Some(EmulatorAuto::Reserved)
            && !input
                .reserved
                .iter()
                .any(|c| input.topology.cpu(*c).is_some())
        {
            out.insert(name.clone(), Err(AllocError::NoReserved));
            continue;
        }
        match place(&mut st, req, input.allow_overcommit) {
            Ok(cpus) => {
                if req.emulator == Some(EmulatorAuto::Isolate) {
                    let nodes = input.topology.nodes_of(cpus.iter().copied());
                    match emulator_cpu(&st, &nodes) {
                        Some(e) => {
                            st.blocked.insert(e);
                            emulators.insert(name, e);
                        }
                        None => {
                            st.release(&cpus, req.threads);
                            let first = *nodes.iter().next().expect("a guest has CPUs");
                            out.insert(name.clone(), Err(AllocError::NoEmulatorCpu(first)));
                            continue;
                        }
                    }
                }
                vcpus.insert(name, cpus);
            }
            Err(e) => {
                out.insert(name.clone(), Err(e));
            }
        }
    }
    // 3. Emulators, then the assignments.
    for (name, req) in &input.requests {
        let Some(cpus) = vcpus.get(name.as_str()) else {
            continue;
        };
        let nodes: BTreeSet<u32> = input.topology.nodes_of(cpus.iter().copied());
        let dedicated = emulators.get(name.as_str()).copied();
        let emulator = match emulator_set(input, req.emulator, &nodes, dedicated) {
            Ok(e) => e,
            Err(e) => {
                out.insert(name.clone(), Err(e));
                continue;
            }
        };
        out.insert(
            name.clone(),
            Ok(Assignment {
                vcpus: cpus.clone(),
                emulator,
                nodes: CpuSet::from_cpus(nodes).expect("a guest has CPUs"),
            }),
        );
    }
    out
}

/// The emulator CPUs of a guest whose vCPUs are on `nodes`: the reserved CPUs of those nodes
/// (else every reserved CPU of the host), or its `dedicated` CPU.
fn emulator_set(
    input: &AllocInput,
    mode: Option<EmulatorAuto>,
    nodes: &BTreeSet<u32>,
    dedicated: Option<u32>,
) -> Result<Option<CpuSet>, AllocError> {
    match mode {
        None => Ok(None),
        Some(EmulatorAuto::Reserved) => {
            let on_node: Vec<u32> = input
                .reserved
                .iter()
                .copied()
                .filter(|c| {
                    input
                        .topology
                        .node_of(*c)
                        .is_some_and(|n| nodes.contains(&n))
                })
                .collect();
            let all: Vec<u32> = input
                .reserved
                .iter()
                .copied()
                .filter(|c| input.topology.cpu(*c).is_some())
                .collect();
            CpuSet::from_cpus(on_node)
                .or_else(|| CpuSet::from_cpus(all))
                .map(Some)
                .ok_or(AllocError::NoReserved)
        }
        Some(EmulatorAuto::Isolate) => Ok(dedicated.and_then(|e| CpuSet::from_cpus([e]))),
    }
}

/// A free CPU for dedicated emulator threads on the first of `nodes`.
fn emulator_cpu(st: &State, nodes: &BTreeSet<u32>) -> Option<u32> {
    let first = *nodes.iter().next()?;
    st.pick_in(first, 1, ThreadPolicy::Prefer).map(|v| v[0])
}

/// Places one new guest.
fn place(st: &mut State, req: &Request, overcommit: bool) -> Result<Vec<u32>, AllocError> {
    let n = req.vcpus as usize;
    if n == 0 {
        return Err(AllocError::NoCount);
    }
    let nodes = st.topo.nodes();
    if let Some(k) = req.numa_node {
        if !nodes.contains(&k) {
            return Err(AllocError::NoSuchNode(
                k,
                nodes
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
    }
    if req.threads == ThreadPolicy::Require && !n.is_multiple_of(st.tpc) {
        return Err(AllocError::NotWholeCores {
            vcpus: req.vcpus,
            tpc: st.tpc,
        });
    }
    let candidates: Vec<u32> = match req.numa_node {
        Some(k) => vec![k],
        None => nodes.clone(),
    };
    // One node: the one left fullest (best fit), then the lowest id.
    let best = candidates
        .iter()
        .filter_map(|node| {
            st.pick_in(*node, n, req.threads)
                .map(|cpus| ((st.free_in(*node), *node), cpus))
        })
        .min_by_key(|(k, _)| *k);
    if let Some((_, cpus)) = best {
        st.take(&cpus, req.threads);
        return Ok(cpus);
    }
    // Several nodes (only without a node constraint): the emptiest nodes first.
    if req.numa_node.is_none() {
        let mut order: Vec<(std::cmp::Reverse<usize>, u32)> = nodes
            .iter()
            .map(|n| (std::cmp::Reverse(st.free_in(*n)), *n))
            .collect();
        order.sort();
        let mut got: Vec<u32> = Vec::new();
        let mut trial_blocked = Vec::new();
        for (_, node) in &order {
            let left = n - got.len();
            if left == 0 {
                break;
            }
            // The most this node can give under the policy.
            let mut k = left.min(st.free_in(*node));
            if req.threads == ThreadPolicy::Require {
                k -= k % st.tpc;
            }
            while k > 0 {
                if let Some(cpus) = st.pick_in(*node, k, req.threads) {
                    st.take(&cpus, req.threads);
                    trial_blocked.push(cpus.clone());
                    got.extend(cpus);
                    break;
                }
                k -= if req.threads == ThreadPolicy::Require {
                    st.tpc
                } else {
                    1
                };
            }
        }
        if got.len() == n {
            return Ok(got);
        }
        // Undo the partial placement.
        for cpus in trial_blocked {
            st.release(&cpus, req.threads);
        }
    }
    if overcommit {
        // Share: the node asked for, else the one with the most usable CPUs; least loaded
        // first.
        let node = req.numa_node.unwrap_or_else(|| {
            *nodes
                .iter()
                .max_by_key(|n| {
                    (
                        st.topo
                            .node_cpus(**n)
                            .iter()
                            .filter(|c| st.usable(**c))
                            .count(),
                        std::cmp::Reverse(**n),
                    )
                })
                .expect("a topology has nodes")
        });
        // CPUs pinned by other guests are shared last.
        let usable: Vec<u32> = st
            .topo
            .node_cpus(node)
            .into_iter()
            .filter(|c| !st.reserved.contains(c) && !st.blocked.contains(c))
            .collect();
        if !usable.is_empty() {
            let mut cpus = Vec::new();
            for _ in 0..n {
                let c = *usable
                    .iter()
                    .min_by_key(|c| {
                        (
                            st.taken.contains(c),
                            st.load.get(c).copied().unwrap_or(0),
                            **c,
                        )
                    })
                    .expect("non-empty");
                *st.load.entry(c).or_default() += 1;
                cpus.push(c);
            }
            return Ok(cpus);
        }
    }
    Err(AllocError::DoesNotFit {
        needed: req.vcpus,
        on: req
            .numa_node
            .map(|k| format!(" on node {k}"))
            .unwrap_or_default(),
        free: st.free_text(),
        hint: if overcommit {
            String::new()
        } else {
            " (host.cpu_pool.allow_overcommit: true lets guests share CPUs)".into()
        },
    })
}

// ------------------------------------------------------------------ lock file --

pub use crate::model::lock::{Lock, LockedGuest};

/// A guest's locked assignment.
fn locked_assignment(lock: &Lock, name: &str) -> Option<Assignment> {
    let g = lock.guests.get(name)?;
    Some(Assignment {
        vcpus: g.vcpupin.clone(),
        emulator: g.emulatorpin.as_deref().and_then(|e| e.parse().ok()),
        nodes: g.nodeset.parse().ok()?,
    })
}

// ------------------------------------------------------------ planner wrapper --

pub use crate::domain::pins::XmlPins;

/// A previous 1:1 assignment of a guest: every vCPU pinned to exactly one CPU.
fn xml_assignment(x: &XmlPins, topo: &HostTopology) -> Option<Assignment> {
    let n = x.vcpus?;
    let cpus: Option<Vec<u32>> = (0..n)
        .map(|i| {
            x.vcpupin
                .get(&i)
                .filter(|s| s.len() == 1)
                .map(|s| s.highest())
        })
        .collect();
    let cpus = cpus?;
    Some(Assignment {
        nodes: CpuSet::from_cpus(topo.nodes_of(cpus.iter().copied()))?,
        vcpus: cpus,
        emulator: x.emulatorpin.clone(),
    })
}

/// CPUs the pins of a guest occupy; a pin covering every host CPU counts as unpinned.
pub fn pinned_cpus<'a>(
    pins: impl IntoIterator<Item = &'a CpuSet>,
    topo: &HostTopology,
) -> BTreeSet<u32> {
    let all = topo.cpus.len();
    pins.into_iter()
        .filter(|s| all == 0 || s.iter().filter(|c| topo.cpu(*c).is_some()).count() < all)
        .flat_map(|s| s.iter())
        .collect()
}

/// The planner's view of automatic pinning.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// Every `auto` guest that got CPUs, with vcpupin (and emulatorpin / nodeset) filled in.
    pub guests: BTreeMap<DomainName, GuestDesired>,
    /// Guests that got none: why.
    pub errors: BTreeMap<DomainName, AllocError>,
    /// Lock contents reproducing the assignments.
    pub lock: Lock,
}

/// Builds the allocator input from the desired and observed state. Pure.
pub fn input(d: &Desired, obs: &Observed) -> AllocInput {
    let topo = obs.topology.clone().unwrap_or_default();
    let mut input = AllocInput {
        reserved: d
            .host
            .cpu_pool
            .reserved
            .iter()
            .flat_map(|s| s.iter())
            .collect(),
        allow_overcommit: d.host.cpu_pool.allow_overcommit,
        ..Default::default()
    };
    // Unmanaged guests.
    for pins in obs.other_pins.values() {
        input.taken.extend(pinned_cpus(pins, &topo));
    }
    for (name, gd) in &d.guests {
        let xml = obs
            .guests
            .get(name.as_str())
            .and_then(|g| g.as_ref())
            .map(|g| XmlPins::read(&g.xml));
        match &gd.auto_pin {
            None => {
                // Managed without auto: declared pins, else the ones it has.
                let pins: Vec<CpuSet> = match &gd.vcpupin {
                    Some(m) => m.values().cloned().collect(),
                    None => xml
                        .as_ref()
                        .map(|x| x.vcpupin.values().cloned().collect())
                        .unwrap_or_default(),
                };
                input.taken.extend(pinned_cpus(&pins, &topo));
            }
            Some(a) => {
                let Some(g) = obs.guests.get(name.as_str()).and_then(|g| g.as_ref()) else {
                    continue; // the planner reports the missing guest
                };
                let x = xml.unwrap_or_else(|| XmlPins::read(&g.xml));
                let req = Request {
                    vcpus: gd.vcpu_count.or(x.vcpus).unwrap_or(0),
                    guest_threads: gd
                        .cpu
                        .as_ref()
                        .and_then(|c| c.topology)
                        .map(|t| t.threads)
                        .or(x.threads)
                        .unwrap_or(1),
                    numa_node: a.numa_node,
                    threads: a.threads,
                    emulator: a.emulator,
                };
                let prev = obs
                    .lock
                    .as_ref()
                    .and_then(|l| locked_assignment(l, name.as_str()))
                    .or_else(|| xml_assignment(&x, &topo));
                if let Some(p) = prev {
                    input.previous.insert(name.to_string(), p);
                }
                input.requests.insert(name.to_string(), req);
            }
        }
    }
    input.topology = topo;
    input
}

/// `gd` with an assignment's pins (and emulatorpin / nodeset when they are `auto`) filled in.
fn fill(gd: &GuestDesired, a: &crate::desired::AutoPin, asg: &Assignment) -> GuestDesired {
    let mut g = gd.clone();
    g.vcpupin = Some(
        asg.vcpus
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((u32::try_from(i).ok()?, CpuSet::from_cpus([*c])?)))
            .collect(),
    );
    if a.emulator.is_some() {
        g.emulatorpin = asg.emulator.clone();
    }
    if a.nodeset {
        let nm = g.numa_memory.get_or_insert(crate::desired::NumaMemory {
            mode: None,
            nodeset: None,
            placement: None,
        });
        nm.nodeset = Some(asg.nodes.clone());
    }
    g
}

/// The `auto` guests as a saved plan's lock resolved them: each gets exactly its locked
/// assignment (no allocation, no decision). Refuses a lock that lacks an `auto` guest or
/// whose pins do not fit the guest's declared vCPU count.
pub fn from_lock(d: &Desired, lock: &Lock) -> Result<BTreeMap<DomainName, GuestDesired>, String> {
    let mut out = BTreeMap::new();
    for (name, gd) in &d.guests {
        let Some(a) = &gd.auto_pin else { continue };
        let asg = locked_assignment(lock, name.as_str()).ok_or_else(|| {
            format!("the plan's automatic pins do not cover guest {name} (vcpupin: auto)")
        })?;
        if gd.vcpu_count.is_some_and(|n| n as usize != asg.vcpus.len()) {
            return Err(format!(
                "the plan's automatic pins for guest {name} are for {} vCPUs, it declares {}",
                asg.vcpus.len(),
                gd.vcpu_count.unwrap_or(0)
            ));
        }
        out.insert(name.clone(), fill(gd, a, &asg));
    }
    Ok(out)
}

impl Resolution {
    /// `d` with the resolved guests in place of their `auto` declarations (what lints and
    /// `render` see).
    pub fn view(&self, d: &Desired) -> Desired {
        let mut r = d.clone();
        for (n, g) in &self.guests {
            r.guests.insert(n.clone(), g.clone());
        }
        r
    }
}

/// Runs the allocator and fills the `auto` guests' pins. Pure.
pub fn resolve(d: &Desired, obs: &Observed) -> Resolution {
    let input = input(d, obs);
    let mut res = Resolution {
        lock: Lock {
            version: 1,
            guests: BTreeMap::new(),
        },
        ..Default::default()
    };
    let results = allocate(&input);
    for (name, gd) in &d.guests {
        let Some(a) = &gd.auto_pin else { continue };
        let Some(r) = results.get(name.as_str()) else {
            continue;
        };
        match r {
            Err(e) => {
                res.errors.insert(name.clone(), e.clone());
            }
            Ok(asg) => {
                let g = fill(gd, a, asg);
                res.lock.guests.insert(
                    name.to_string(),
                    LockedGuest {
                        vcpupin: asg.vcpus.clone(),
                        emulatorpin: asg.emulator.as_ref().map(|e| e.to_string()),
                        nodeset: asg.nodes.to_string(),
                    },
                );
                res.guests.insert(name.clone(), g);
            }
        }
    }
    res
}
