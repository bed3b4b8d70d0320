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
//! Memory: a guest whose memory follows its vCPUs (`numatune.memory` `nodeset: auto`, mode
//! strict or restrictive) goes only where the node(s) have room for it: free huge pages of its
//! page size, else `MemFree` ([`AllocInput::free_memory`]; a node whose numbers are unknown
//! has room). Guests placed in the same run count against the node they get; a running
//! guest's own memory is already allocated where its live nodeset says, so it counts as free
//! there for itself (re-planning never moves a running guest for its own memory).
//!
//! CPUs of `host.cpu_pool.shared` are never handed out: they belong to the `vcpupin: shared`
//! guests, which float over the whole pool and are resolved without allocation.
//!
//! [`resolve`] wraps it for the planner: it builds the requests from the desired state and
//! observed XML and returns the desired guests with concrete pins filled in, plus the
//! lock file contents that reproduce them.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::raw::ThreadPolicy;
use crate::cpuset::CpuSet;
use crate::desired::{Desired, DomainName, EmulatorAuto, GuestDesired, HugepagesBacking};
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
    /// Memory the guest's node(s) must have free (`None`: its memory is not placed).
    pub memory: Option<MemNeed>,
}

/// Where a guest's memory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MemPool {
    /// Ordinary pages (`MemFree`).
    Normal,
    /// Huge pages of this size in KiB (`free_hugepages`).
    Huge(u64),
}

impl MemPool {
    fn label(self) -> String {
        match self {
            MemPool::Normal => String::new(),
            MemPool::Huge(k) => format!(
                " in {} huge pages",
                crate::units::PageSize::from_kib(k)
                    .map(|p| p.to_string())
                    .unwrap_or_else(|_| format!("{k}K"))
            ),
        }
    }
}

/// How much memory of which kind a guest needs on its node(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemNeed {
    pub kib: u64,
    pub pool: MemPool,
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
    #[error("the guest has {0} vCPUs, more than the {max} QEMU accepts", max = crate::domain::settings::vcpu::MAX_VCPUS)]
    TooManyVcpus(u32),
    #[error("the host topology is unknown (libvirt reports no NUMA cells and there is no sysfs node tree under --root)")]
    NoTopology,
    #[error("`emulatorpin: isolate` needs one more free CPU on node {0}, none is left")]
    NoEmulatorCpu(u32),
    #[error(
        "`emulatorpin: auto` runs on host.cpu_pool.reserved, which is empty or not on this host"
    )]
    NoReserved,
    #[error("needs {need}{pool} on {on}: {free}")]
    NoMemory {
        need: String,
        pool: String,
        on: String,
        free: String,
    },
    #[error("`vcpupin: shared` floats over host.cpu_pool.shared, which is not declared or not on this host")]
    NoShared,
}

/// `kib` for people: `8 GiB`, `3.2 GiB`, `512 MiB`.
pub fn human_kib(kib: u64) -> String {
    let (v, unit) = if kib >= 1 << 20 {
        (kib as f64 / (1u64 << 20) as f64, "GiB")
    } else {
        (kib as f64 / 1024.0, "MiB")
    };
    let t = format!("{v:.1}");
    format!("{} {unit}", t.strip_suffix(".0").unwrap_or(&t))
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
    /// `host.cpu_pool.shared`: never handed out.
    pub shared: BTreeSet<u32>,
    /// (node, pool) → KiB free for placement (observed free memory, plus the memory running
    /// requested guests already have there). Missing: unknown (room for anything).
    pub free_memory: BTreeMap<(u32, MemPool), u64>,
}

struct State<'a> {
    topo: &'a HostTopology,
    reserved: &'a BTreeSet<u32>,
    taken: &'a BTreeSet<u32>,
    shared: &'a BTreeSet<u32>,
    /// What is left of [`AllocInput::free_memory`].
    mem: BTreeMap<(u32, MemPool), u64>,
    /// vCPUs per CPU.
    load: BTreeMap<u32, u32>,
    /// Idle siblings of isolated cores and dedicated emulator CPUs.
    blocked: BTreeSet<u32>,
    tpc: usize,
}

impl State<'_> {
    fn free(&self, cpu: u32) -> bool {
        !self.reserved.contains(&cpu)
            && !self.shared.contains(&cpu)
            && !self.taken.contains(&cpu)
            && !self.blocked.contains(&cpu)
            && self.load.get(&cpu).copied().unwrap_or(0) == 0
            && self.topo.cpu(cpu).is_some()
    }

    /// CPUs that can run vCPUs at all (overcommit candidates).
    fn usable(&self, cpu: u32) -> bool {
        !self.reserved.contains(&cpu)
            && !self.shared.contains(&cpu)
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

    /// Whether `need` fits on `nodes` together (a node of unknown memory has room).
    fn mem_fits(&self, need: Option<MemNeed>, nodes: &BTreeSet<u32>) -> bool {
        let Some(need) = need else { return true };
        let mut total: u64 = 0;
        for n in nodes {
            match self.mem.get(&(*n, need.pool)) {
                None => return true,
                Some(v) => total = total.saturating_add(*v),
            }
        }
        total >= need.kib
    }

    /// Takes `need` from `nodes` (in node order); returns what was taken, for [`State::mem_give`].
    fn mem_take(&mut self, need: Option<MemNeed>, nodes: &BTreeSet<u32>) -> MemTaken {
        let Some(need) = need else { return Vec::new() };
        let mut left = need.kib;
        let mut out = Vec::new();
        for n in nodes {
            if left == 0 {
                break;
            }
            if let Some(v) = self.mem.get_mut(&(*n, need.pool)) {
                let t = left.min(*v);
                *v -= t;
                left -= t;
                out.push(((*n, need.pool), t));
            } else {
                left = 0; // unknown: it holds the rest
            }
        }
        out
    }

    fn mem_give(&mut self, taken: MemTaken) {
        for (k, t) in taken {
            *self.mem.entry(k).or_default() += t;
        }
    }

    /// The memory error for `need` on the `candidates`; `cpus_ok` says which had CPU room.
    fn mem_error(
        &self,
        need: MemNeed,
        candidates: &[u32],
        cpus_ok: &BTreeSet<u32>,
        on: String,
    ) -> AllocError {
        let free = candidates
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let f = self
                    .mem
                    .get(&(*n, need.pool))
                    .map(|v| human_kib(*v))
                    .unwrap_or_else(|| "unknown".into());
                let cpus = if cpus_ok.contains(n) {
                    ""
                } else {
                    " (and too few free CPUs)"
                };
                if i == 0 {
                    format!("node{n} has {f} free{cpus}")
                } else {
                    format!("node{n} {f}{cpus}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        AllocError::NoMemory {
            need: human_kib(need.kib),
            pool: need.pool.label(),
            on,
            free,
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

/// Keeps every previous assignment that is still valid (CPUs free, memory room): guests on
/// one node first (their memory has one place), then in placement order, so that what one
/// run placed together is kept together.
fn keep_previous<'a>(
    st: &mut State,
    input: &'a AllocInput,
    vcpus: &mut BTreeMap<&'a str, Vec<u32>>,
    mem_taken: &mut BTreeMap<&'a str, MemTaken>,
) {
    let mut keep: Vec<(&String, &Request, &Assignment, BTreeSet<u32>)> = input
        .requests
        .iter()
        .filter_map(|(name, req)| {
            let prev = input.previous.get(name)?;
            let nodes = input.topology.nodes_of(prev.vcpus.iter().copied());
            Some((name, req, prev, nodes))
        })
        .collect();
    keep.sort_by_key(|(n, r, _, nodes)| {
        (
            nodes.len() > 1,
            r.numa_node.is_none(),
            std::cmp::Reverse(r.vcpus),
            n.as_str(),
        )
    });
    for (name, req, prev, nodes) in keep {
        if st.keeps(&prev.vcpus, req) && st.mem_fits(req.memory, &nodes) {
            st.take(&prev.vcpus, req.threads);
            mem_taken.insert(name, st.mem_take(req.memory, &nodes));
            vcpus.insert(name, prev.vcpus.clone());
        }
    }
}

/// Chooses CPUs for every request. Pure and deterministic.
pub fn allocate(input: &AllocInput) -> BTreeMap<String, Result<Assignment, AllocError>> {
    let mut st = State {
        topo: &input.topology,
        reserved: &input.reserved,
        taken: &input.taken,
        shared: &input.shared,
        mem: input.free_memory.clone(),
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
    // 1. Keep what is still valid. Memory each placed guest took, to give back when it is
    // placed again.
    let mut mem_taken: BTreeMap<&str, MemTaken> = BTreeMap::new();
    keep_previous(&mut st, input, &mut vcpus, &mut mem_taken);
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
                if let Some(m) = mem_taken.remove(name.as_str()) {
                    st.mem_give(m);
                }
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
            Ok((cpus, mem)) => {
                if req.emulator == Some(EmulatorAuto::Isolate) {
                    let nodes = input.topology.nodes_of(cpus.iter().copied());
                    match emulator_cpu(&st, &nodes) {
                        Some(e) => {
                            st.blocked.insert(e);
                            emulators.insert(name, e);
                        }
                        None => {
                            st.release(&cpus, req.threads);
                            st.mem_give(mem);
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

/// Memory taken from nodes by one placement.
type MemTaken = Vec<((u32, MemPool), u64)>;

/// Places one new guest: its CPUs and the memory it took.
fn place(
    st: &mut State,
    req: &Request,
    overcommit: bool,
) -> Result<(Vec<u32>, MemTaken), AllocError> {
    let n = req.vcpus as usize;
    if n == 0 {
        return Err(AllocError::NoCount);
    }
    // Declared counts are validated; one read from a hand-written XML may be anything.
    if req.vcpus > crate::domain::settings::vcpu::MAX_VCPUS {
        return Err(AllocError::TooManyVcpus(req.vcpus));
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
    // One node with room for the vCPUs and the memory: the one left fullest (best fit), then
    // the lowest id.
    let mut cpu_room: BTreeSet<u32> = BTreeSet::new();
    let mut best: Option<((usize, u32), Vec<u32>)> = None;
    for node in &candidates {
        let Some(cpus) = st.pick_in(*node, n, req.threads) else {
            continue;
        };
        cpu_room.insert(*node);
        let key = (st.free_in(*node), *node);
        if st.mem_fits(req.memory, &BTreeSet::from([*node]))
            && best.as_ref().is_none_or(|b| key < b.0)
        {
            best = Some((key, cpus));
        }
    }
    if let Some((_, cpus)) = best {
        st.take(&cpus, req.threads);
        let node = st.topo.nodes_of(cpus.iter().copied());
        let mem = st.mem_take(req.memory, &node);
        return Ok((cpus, mem));
    }
    let no_memory = |st: &State, on: String| {
        let need = req.memory.expect("only a memory need fails for memory");
        st.mem_error(need, &candidates, &cpu_room, on)
    };
    let one_node = || match req.numa_node {
        Some(k) => format!("node {k}"),
        None => "one node".to_string(),
    };
    // Several nodes (only without a node constraint, and when no node has the CPUs: a guest
    // whose memory is placed stays on one node when one has the CPUs).
    let mut spread_short: Option<CpuSet> = None;
    if req.numa_node.is_none() && cpu_room.is_empty() {
        if let Some(cpus) = spread(st, req, &nodes) {
            let on = st.topo.nodes_of(cpus.iter().copied());
            if st.mem_fits(req.memory, &on) {
                let mem = st.mem_take(req.memory, &on);
                return Ok((cpus, mem));
            }
            st.release(&cpus, req.threads);
            spread_short = CpuSet::from_cpus(on);
        }
    }
    if overcommit {
        // Share: the node asked for, else the one with the most usable CPUs (among those with
        // room for the memory).
        let node = candidates
            .iter()
            .copied()
            .filter(|k| st.mem_fits(req.memory, &BTreeSet::from([*k])))
            .max_by_key(|k| {
                let usable = st
                    .topo
                    .node_cpus(*k)
                    .iter()
                    .filter(|c| st.usable(**c))
                    .count();
                (usable, std::cmp::Reverse(*k))
            });
        if let Some(cpus) = node.and_then(|k| share(st, k, n)) {
            let on = st.topo.nodes_of(cpus.iter().copied());
            let mem = st.mem_take(req.memory, &on);
            return Ok((cpus, mem));
        }
    }
    if !cpu_room.is_empty() {
        return Err(no_memory(st, one_node()));
    }
    if let Some(set) = spread_short {
        return Err(no_memory(st, format!("nodes {set}")));
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

/// Dedicated CPUs for a guest no single node can hold, the emptiest nodes first (taken);
/// `None` (nothing taken) when all nodes together cannot hold it either.
fn spread(st: &mut State, req: &Request, nodes: &[u32]) -> Option<Vec<u32>> {
    let n = req.vcpus as usize;
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
        return Some(got);
    }
    // Undo the partial placement.
    for cpus in trial_blocked {
        st.release(&cpus, req.threads);
    }
    None
}

/// `n` vCPUs sharing the usable CPUs of `node`, each on the least loaded one (CPUs pinned by
/// other guests last, then by id); `None` when the node has no usable CPU.
fn share(st: &mut State, node: u32, n: usize) -> Option<Vec<u32>> {
    let usable: Vec<u32> = st
        .topo
        .node_cpus(node)
        .into_iter()
        .filter(|c| !st.reserved.contains(c) && !st.shared.contains(c) && !st.blocked.contains(c))
        .collect();
    if usable.is_empty() {
        return None;
    }
    // A heap keyed like that, so n vCPUs cost n log(CPUs).
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(bool, u32, u32)>> = usable
        .iter()
        .map(|c| {
            std::cmp::Reverse((
                st.taken.contains(c),
                st.load.get(c).copied().unwrap_or(0),
                *c,
            ))
        })
        .collect();
    let mut cpus = Vec::with_capacity(n);
    for _ in 0..n {
        let std::cmp::Reverse((taken, load, c)) = heap.pop().expect("non-empty");
        *st.load.entry(c).or_default() += 1;
        cpus.push(c);
        heap.push(std::cmp::Reverse((taken, load + 1, c)));
    }
    Some(cpus)
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
    let pool = &d.host.cpu_pool;
    let mut input = AllocInput {
        reserved: pool.reserved.iter().flat_map(|s| s.iter()).collect(),
        shared: pool.shared.iter().flat_map(|s| s.iter()).collect(),
        allow_overcommit: pool.allow_overcommit,
        free_memory: observed_free(obs),
        ..Default::default()
    };
    // Unmanaged guests.
    for pins in obs.other_pins.values() {
        input.taken.extend(pinned_cpus(pins, &topo));
    }
    for (name, gd) in &d.guests {
        let observed = obs.guests.get(name.as_str()).and_then(|g| g.as_ref());
        let xml = observed.map(|g| XmlPins::read(&g.xml));
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
            Some(a) if a.shared => {} // the shared pool is theirs, and never handed out
            Some(a) => {
                let (Some(g), Some(x)) = (observed, xml) else {
                    continue; // the planner reports the missing guest
                };
                let memory = memory_need(gd, &x, obs);
                if memory.is_some() && g.active {
                    credit_running(&mut input.free_memory, g, obs);
                }
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
                    memory,
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

/// The host's default huge page size in KiB, when known.
fn default_page_kib(obs: &Observed) -> Option<u64> {
    obs.host.default_hugepage.map(|p| p.kib())
}

/// Where the guest's memory comes from: declared huge page backing, else its XML's.
/// `None`: huge pages of an unknown default size.
fn mem_pool(hp: Option<HugepagesBacking>, x: &XmlPins, obs: &Observed) -> Option<MemPool> {
    let huge = match hp {
        Some(HugepagesBacking::Off) => None,
        Some(HugepagesBacking::Size(s)) => Some(Some(s.kib())),
        Some(HugepagesBacking::DefaultSize) => Some(None),
        None => x.hugepages,
    };
    match huge {
        None => Some(MemPool::Normal),
        Some(Some(k)) => Some(MemPool::Huge(k)),
        Some(None) => default_page_kib(obs).map(MemPool::Huge),
    }
}

/// Whether a numatune mode (declared, else the XML's, else libvirt's default `strict`)
/// binds the memory to the nodeset.
fn binding(mode: Option<&str>) -> bool {
    matches!(mode, None | Some("strict") | Some("restrictive"))
}

/// What a memory-placed guest needs on its node(s): its `<memory>`, in whole pages.
fn memory_need(gd: &GuestDesired, x: &XmlPins, obs: &Observed) -> Option<MemNeed> {
    if !gd.memory_follows_vcpus() {
        return None;
    }
    let declared = gd.numa_memory.as_ref().and_then(|m| m.mode);
    let mode = declared
        .map(|m| m.as_str().to_string())
        .or(x.numa_mode.clone());
    if !binding(mode.as_deref()) {
        return None;
    }
    let pool = mem_pool(gd.hugepages, x, obs)?;
    let kib = x.memory_kib?;
    let kib = match pool {
        MemPool::Huge(p) if p > 0 => kib.div_ceil(p).saturating_mul(p),
        _ => kib,
    };
    Some(MemNeed { kib, pool })
}

/// Free memory per (node, pool) as observed, in KiB.
fn observed_free(obs: &Observed) -> BTreeMap<(u32, MemPool), u64> {
    let mut out = BTreeMap::new();
    for (node, m) in obs.node_memory.iter().flatten() {
        if let Some(f) = m.mem_free_kib {
            out.insert((*node, MemPool::Normal), f);
        }
        for (page, free) in &m.free_hugepages {
            out.insert((*node, MemPool::Huge(*page)), free.saturating_mul(*page));
        }
    }
    out
}

/// A running guest's memory is allocated where its live nodeset binds it: it counts as free
/// there (split evenly over the nodes), for the guest that has it.
fn credit_running(
    free: &mut BTreeMap<(u32, MemPool), u64>,
    g: &crate::libvirt::GuestObserved,
    obs: &Observed,
) {
    let Some(live) = g.live_xml.as_deref().map(XmlPins::read) else {
        return;
    };
    let (Some(nodes), Some(kib)) = (&live.numa_nodeset, live.memory_kib) else {
        return;
    };
    if !binding(live.numa_mode.as_deref()) || nodes.is_empty() {
        return;
    }
    let Some(pool) = mem_pool(None, &live, obs) else {
        return;
    };
    let each = kib / nodes.len() as u64;
    for n in nodes.iter() {
        if let Some(v) = free.get_mut(&(n, pool)) {
            *v = v.saturating_add(each);
        }
    }
}

/// What one guest's automatic pinning resolved to (also what its lock entry says).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placed {
    vcpupin: Vec<u32>,
    /// `vcpupin: shared`: the `<vcpu cpuset>`.
    cpuset: Option<CpuSet>,
    emulator: Option<CpuSet>,
    nodes: CpuSet,
    iothreadpin: Option<BTreeMap<u32, CpuSet>>,
}

impl Placed {
    fn locked(&self) -> LockedGuest {
        LockedGuest {
            vcpupin: self.vcpupin.clone(),
            emulatorpin: self.emulator.as_ref().map(|e| e.to_string()),
            nodeset: self.nodes.to_string(),
            cpuset: self.cpuset.as_ref().map(|c| c.to_string()),
            iothreadpin: self
                .iothreadpin
                .as_ref()
                .map(|m| m.iter().map(|(k, v)| (*k, v.to_string())).collect()),
        }
    }

    fn from_lock(g: &LockedGuest) -> Option<Placed> {
        let iothreadpin = match &g.iothreadpin {
            Some(m) => Some(
                m.iter()
                    .map(|(k, v)| Some((*k, v.parse().ok()?)))
                    .collect::<Option<BTreeMap<u32, CpuSet>>>()?,
            ),
            None => None,
        };
        Some(Placed {
            vcpupin: g.vcpupin.clone(),
            cpuset: match &g.cpuset {
                Some(c) => Some(c.parse().ok()?),
                None => None,
            },
            emulator: match &g.emulatorpin {
                Some(e) => Some(e.parse().ok()?),
                None => None,
            },
            nodes: g.nodeset.parse().ok()?,
            iothreadpin,
        })
    }
}

/// `gd` with its placement filled in: pins (or the shared cpuset and no pins), and emulatorpin
/// / nodeset / iothreadpin where they are `auto`.
fn fill(gd: &GuestDesired, a: &crate::desired::AutoPin, p: &Placed) -> GuestDesired {
    let mut g = gd.clone();
    g.vcpupin = Some(
        p.vcpupin
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((u32::try_from(i).ok()?, CpuSet::from_cpus([*c])?)))
            .collect(),
    );
    if let Some(c) = &p.cpuset {
        g.vcpu_cpuset = Some(c.clone());
        g.vcpu_placement
            .get_or_insert(crate::config::raw::Placement::Static);
    }
    if a.emulator.is_some() {
        g.emulatorpin = p.emulator.clone();
    }
    if a.iothreads {
        g.iothreadpin = p.iothreadpin.clone();
    }
    if a.nodeset {
        let nm = g.numa_memory.get_or_insert(crate::desired::NumaMemory {
            mode: None,
            nodeset: None,
            placement: None,
        });
        nm.nodeset = Some(p.nodes.clone());
    }
    g
}

/// The `auto` / `shared` guests as a saved plan's lock resolved them: each gets exactly its
/// locked placement (no allocation, no decision). Refuses a lock that lacks such a guest or
/// whose entry does not fit the guest's declaration (vCPU count, shared or not, I/O threads).
pub fn from_lock(d: &Desired, lock: &Lock) -> Result<BTreeMap<DomainName, GuestDesired>, String> {
    let mut out = BTreeMap::new();
    for (name, gd) in &d.guests {
        let Some(a) = &gd.auto_pin else { continue };
        let kind = if a.shared { "shared" } else { "auto" };
        let p = lock
            .guests
            .get(name.as_str())
            .and_then(Placed::from_lock)
            .ok_or_else(|| {
                format!("the plan's automatic pins do not cover guest {name} (vcpupin: {kind})")
            })?;
        if a.shared != p.cpuset.is_some() || (a.iothreads && p.iothreadpin.is_none()) {
            return Err(format!(
                "the plan's automatic pins for guest {name} are not for its declaration (vcpupin: {kind})"
            ));
        }
        if !a.shared && gd.vcpu_count.is_some_and(|n| n as usize != p.vcpupin.len()) {
            return Err(format!(
                "the plan's automatic pins for guest {name} are for {} vCPUs, it declares {}",
                p.vcpupin.len(),
                gd.vcpu_count.unwrap_or(0)
            ));
        }
        out.insert(name.clone(), fill(gd, a, &p));
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

/// The I/O thread ids of a guest: 1..=`iothreads` when declared, else the XML's.
fn iothread_ids(gd: &GuestDesired, obs: &Observed, name: &DomainName) -> Vec<u32> {
    match gd.iothreads {
        Some(n) => (1..=n).collect(),
        None => obs
            .guests
            .get(name.as_str())
            .and_then(|g| g.as_ref())
            .map(|g| XmlPins::read(&g.xml).iothread_ids)
            .unwrap_or_default(),
    }
}

/// A `vcpupin: shared` guest: the whole shared pool, its nodes, and the reserved CPUs of
/// those nodes for `emulatorpin` / `iothreadpin: auto`.
fn place_shared(
    input: &AllocInput,
    a: &crate::desired::AutoPin,
    pool: Option<&CpuSet>,
) -> Result<Placed, AllocError> {
    if input.topology.is_empty() {
        return Err(AllocError::NoTopology);
    }
    let on_host = pool
        .and_then(|p| CpuSet::from_cpus(p.iter().filter(|c| input.topology.cpu(*c).is_some())))
        .ok_or(AllocError::NoShared)?;
    let nodes = input.topology.nodes_of(on_host.iter());
    let near = if a.emulator.is_some() || a.iothreads {
        emulator_set(input, Some(EmulatorAuto::Reserved), &nodes, None)?
    } else {
        None
    };
    Ok(Placed {
        vcpupin: Vec::new(),
        cpuset: pool.cloned(),
        emulator: a.emulator.and(near.clone()),
        nodes: CpuSet::from_cpus(nodes).ok_or(AllocError::NoShared)?,
        // Filled per I/O thread id by the caller.
        iothreadpin: a
            .iothreads
            .then_some(near)
            .flatten()
            .map(|s| BTreeMap::from([(0, s)])),
    })
}

/// Runs the allocator and fills the `auto` and `shared` guests' placement. Pure.
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
        let placed = if a.shared {
            place_shared(&input, a, d.host.cpu_pool.shared.as_ref())
        } else {
            let Some(r) = results.get(name.as_str()) else {
                continue;
            };
            r.clone().and_then(|asg| {
                let nodes: BTreeSet<u32> = asg.nodes.iter().collect();
                // I/O threads go where the emulator goes: its isolated CPU, else the reserved
                // CPUs of the guest's nodes.
                let io = match (a.iothreads, a.emulator) {
                    (false, _) => None,
                    (true, Some(EmulatorAuto::Isolate)) => asg.emulator.clone(),
                    (true, _) => emulator_set(&input, Some(EmulatorAuto::Reserved), &nodes, None)?,
                };
                Ok(Placed {
                    vcpupin: asg.vcpus,
                    cpuset: None,
                    emulator: asg.emulator,
                    nodes: asg.nodes,
                    iothreadpin: io.map(|s| BTreeMap::from([(0, s)])),
                })
            })
        };
        match placed {
            Err(e) => {
                res.errors.insert(name.clone(), e);
            }
            Ok(mut p) => {
                // One set for every I/O thread.
                if let Some(set) = p.iothreadpin.take().and_then(|m| m.into_values().next()) {
                    let ids = iothread_ids(gd, obs, name);
                    p.iothreadpin = Some(ids.into_iter().map(|i| (i, set.clone())).collect());
                }
                res.lock.guests.insert(name.to_string(), p.locked());
                res.guests.insert(name.clone(), fill(gd, a, &p));
            }
        }
    }
    res
}
