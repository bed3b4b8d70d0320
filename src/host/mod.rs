//! Host settings: which files below the root prefix hold them, how to compare, how to change.
//!
//! Invariant: every host setting maps to files below `--root` (kernel files for the runtime
//! value, owned files under /etc for the persisted one) or to a described command;
//! observation ([`observe`]) reads only the files the desired state declares ([`reads`]),
//! planning ([`plan_host`]) is pure over what was read, and the executor ([`execute`]) carries
//! out the planned [`HostOp`]s in order, reading every write back and checking every command.
//!
//! One module per concern: [`sysctl`], [`thp`], [`hugepages`], [`ksm`], [`net`], [`modules`],
//! [`tuned`] (profile files: [`tuned_conf`], [`tuned_include`]), [`isolate`] (with [`irqs`],
//! [`irqbalance`], [`threads`]), [`systemd`]; [`kernel_args`] is the one writer of the kernel
//! command line (huge page pools at boot, CPU isolation); [`persist`] renders the owned files;
//! [`files`] and [`commands`] are the I/O seams.

pub mod commands;
pub mod files;
pub mod hugepages;
pub mod import;
pub mod irqbalance;
pub mod irqs;
pub mod isolate;
pub mod kernel_args;
pub mod ksm;
pub mod modules;
pub mod net;
pub mod ops;
pub mod persist;
pub mod sysctl;
pub mod systemd;
pub mod thp;
pub mod threads;
pub mod tuned;
pub mod tuned_conf;
pub mod tuned_include;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub use commands::{CmdOutput, HostCommands, RealCommands};
pub use files::{HostFiles, RealFiles};
pub use ops::{execute, HostOp, HostWriteError};

use crate::desired::HostDesired;
pub use crate::model::keys::THP_DIR;
pub use crate::model::Readback;
use crate::model::{Effect, HostKey, OwnedFileKind};
use crate::units::PageSize;

/// A declared host setting that this host cannot have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIssue {
    /// YAML key path below `host` (segments).
    pub key: Vec<String>,
    pub message: String,
}

/// A planned host change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostChange {
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub effect: Effect,
}

/// The host part of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPlan {
    pub changes: Vec<HostChange>,
    pub ops: Vec<HostOp>,
    pub issues: Vec<HostIssue>,
    /// Facts worth showing that are not changes (where hugetlbfs is mounted).
    pub notes: Vec<String>,
}

pub const MEMINFO: &str = "proc/meminfo";
pub const NODE_ONLINE: &str = "sys/devices/system/node/online";

/// What observation must read: file contents, directory listings.
#[derive(Debug, Clone, Default)]
pub struct Reads {
    pub files: BTreeSet<String>,
    pub dirs: BTreeSet<String>,
}

/// What the host part needs beyond `host:` (guests with huge page backing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostNeeds {
    /// The default huge page size (/proc/meminfo).
    pub meminfo: bool,
    /// A hugetlbfs mount (/proc/mounts).
    pub hugetlbfs: bool,
}

/// Host files as read: path below root → content (`None` when the file does not exist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostObserved {
    pub files: BTreeMap<String, Option<String>>,
    /// Directory below root → sorted names (`None` when it does not exist).
    pub dirs: BTreeMap<String, Option<Vec<String>>>,
    /// The kernel's default huge page size (`Hugepagesize` in /proc/meminfo).
    pub default_hugepage: Option<PageSize>,
    /// Online NUMA nodes (`/sys/devices/system/node/online`), read when per-node pools are declared.
    pub numa_online: Option<String>,
    pub needs: HostNeeds,
    /// Every host task (`cpu_pool.isolate.host_threads`); `None` when not read. Not part of a
    /// saved plan's fingerprint (threads come and go): each move checks its thread instead.
    pub threads: Option<Vec<threads::HostThread>>,
    /// The root is the running system's `/` (host threads can be moved).
    pub live_kernel: bool,
    /// kvmtune's own pid when the root is `/` (never moved).
    pub self_pid: Option<u32>,
}

impl HostObserved {
    /// The content of a read file (`None` when absent or not read).
    pub fn file(&self, f: &str) -> Option<&str> {
        self.files.get(f).and_then(|c| c.as_deref())
    }

    pub fn dir(&self, d: &str) -> Option<&[String]> {
        self.dirs.get(d).and_then(|c| c.as_deref())
    }
}

/// Every file and directory the desired state refers to (first round; some concerns
/// need a second round that depends on what the first read, see [`observe`]).
pub fn reads(d: &HostDesired, needs: HostNeeds) -> Reads {
    let mut r = Reads::default();
    sysctl::reads(d, &mut r);
    thp::reads(d, &mut r);
    hugepages::reads(d, needs, &mut r);
    ksm::reads(d, &mut r);
    net::reads(d, &mut r);
    modules::reads(d, &mut r);
    tuned::reads(d, &mut r);
    isolate::reads(d, &mut r);
    kernel_args::reads(d, &mut r);
    systemd::reads(d, &mut r);
    for f in owned_files(d) {
        r.files.insert(f.to_string());
    }
    r
}

/// Reads what the desired state refers to, and nothing else.
pub fn observe(root: &Path, d: &HostDesired, needs: HostNeeds) -> std::io::Result<HostObserved> {
    let mut obs = HostObserved {
        needs,
        ..Default::default()
    };
    let r = reads(d, needs);
    let named = |f: &str| {
        let key = declared_key_of(d, f)
            .map(|k| format!(" (host.{k})"))
            .unwrap_or_default();
        let f = f.to_string();
        // The file, the declared key, then the cause.
        move |e: std::io::Error| {
            let msg = e.to_string();
            let msg = if msg.contains(&f) {
                format!("{msg}{key}")
            } else {
                format!("/{f}{key}: {msg}")
            };
            std::io::Error::new(e.kind(), msg)
        }
    };
    for f in r.files {
        let content = files::read_opt(&root.join(&f)).map_err(named(&f))?;
        obs.files.insert(f, content);
    }
    for dir in r.dirs {
        let list = files::list_opt(&root.join(&dir)).map_err(named(&dir))?;
        obs.dirs.insert(dir, list);
    }
    // Second round: files named by what the first round found.
    let mut more = BTreeSet::new();
    modules::reads_after(d, &obs, &mut more);
    tuned::reads_after(d, &obs, &mut more);
    let mut after = Reads::default();
    isolate::reads_after(d, &obs, &mut after);
    more.extend(after.files);
    for f in more {
        let content = files::read_opt(&root.join(&f)).map_err(named(&f))?;
        obs.files.insert(f, content);
    }
    for dir in after.dirs {
        let list = files::list_opt(&root.join(&dir)).map_err(named(&dir))?;
        obs.dirs.insert(dir, list);
    }
    obs.live_kernel = isolate::is_live_root(root);
    obs.self_pid = obs.live_kernel.then(std::process::id);
    if d.cpu_pool.reserved.is_some() && d.cpu_pool.isolate.host_threads {
        obs.threads = Some(threads::read(root)?);
    }
    if kernel_args::declared(d) && !d.runtime_only {
        kernel_args::observe_boot(root, &mut obs).map_err(named(kernel_args::BLS_DIR))?;
    }
    obs.numa_online = obs.file(NODE_ONLINE).map(str::to_string);
    if needs.meminfo {
        obs.default_hugepage = obs.file(MEMINFO).and_then(meminfo_hugepage);
    }
    Ok(obs)
}

/// The declared setting whose kernel file is `file` (for naming it in read errors).
fn declared_key_of(d: &HostDesired, file: &str) -> Option<String> {
    let sysctl = d.sysctl.keys().map(|k| HostKey::Sysctl { key: k.clone() });
    let pools = d
        .hugepages
        .keys()
        .map(|(size, node)| HostKey::HugePagePool {
            size: *size,
            node: *node,
        });
    let nics = d.interfaces.keys().flat_map(|name| {
        [
            crate::model::NicAttr::Mtu,
            crate::model::NicAttr::SriovNumvfs,
        ]
        .map(|attr| HostKey::Interface {
            name: name.clone(),
            attr,
        })
    });
    let ksm = ksm::wanted(d)
        .into_iter()
        .map(|(knob, _)| HostKey::Ksm { knob });
    sysctl
        .chain(pools)
        .chain(nics)
        .chain(ksm)
        .find(|k| k.file() == file)
        .map(|k| k.path())
}

/// `Hugepagesize:    2048 kB` → 2M (meminfo's `kB` means KiB).
fn meminfo_hugepage(meminfo: &str) -> Option<PageSize> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Hugepagesize:"))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .and_then(|k| PageSize::from_kib(k).ok())
}

/// The kernel's default huge page size (`Hugepagesize` in `<root>/proc/meminfo`); `None` when
/// the file or the line is missing.
pub fn default_hugepage(root: &Path) -> std::io::Result<Option<PageSize>> {
    Ok(files::read_opt(&root.join(MEMINFO))?
        .as_deref()
        .and_then(meminfo_hugepage))
}

/// A planned runtime write: the key, what was read, the value, whether it differs.
struct Runtime {
    key: HostKey,
    before: String,
    value: String,
    differs: bool,
}

/// Collects the host plan while the concerns add to it.
#[derive(Default)]
pub struct Builder {
    plan: HostPlan,
    /// Commands before the runtime writes (modules, tuned).
    pre: Vec<HostOp>,
    /// Runtime writes, in order.
    runtime: Vec<Runtime>,
    /// After the runtime writes (hugetlbfs mount).
    post: Vec<HostOp>,
    /// After the owned files (the boot entries: the GRUB drop-in records what they own).
    boot: Vec<HostOp>,
    /// Whether a tuned profile switch is planned.
    tuned_switch: bool,
}

impl Builder {
    /// A runtime kernel value: an issue when its file is missing, a change when it differs.
    /// `before` overrides what was read (a value an earlier step of this plan writes first).
    pub fn runtime(
        &mut self,
        obs: &HostObserved,
        yaml_key: Vec<String>,
        key: HostKey,
        value: String,
        missing: String,
    ) {
        let rb = key.readback();
        match obs.file(&key.file()) {
            None => self.issue(yaml_key, missing),
            Some(content) => {
                let before = rb.canonical(content);
                let differs = before != rb.canonical(&value);
                if differs {
                    self.plan.changes.push(HostChange {
                        path: key.path(),
                        before: Some(before.clone()),
                        after: Some(value.clone()),
                        effect: Effect::Live,
                    });
                }
                self.runtime.push(Runtime {
                    key,
                    before,
                    value,
                    differs,
                });
            }
        }
    }

    /// A runtime write that is part of the next change of the same key (sriov_numvfs through 0).
    pub fn extra_write(&mut self, key: HostKey, before: String, value: String) {
        self.runtime.push(Runtime {
            key,
            before,
            value,
            differs: true,
        });
    }

    pub fn issue(&mut self, key: Vec<String>, message: String) {
        self.plan.issues.push(HostIssue { key, message });
    }

    pub fn change(&mut self, c: HostChange) {
        self.plan.changes.push(c);
    }

    pub fn note(&mut self, n: String) {
        self.plan.notes.push(n);
    }

    pub fn pre(&mut self, op: HostOp) {
        self.pre.push(op);
    }

    pub fn post(&mut self, op: HostOp) {
        self.post.push(op);
    }

    pub fn boot(&mut self, op: HostOp) {
        self.boot.push(op);
    }

    fn finish(mut self, persisted: Vec<HostOp>) -> HostPlan {
        let mut ops = std::mem::take(&mut self.pre);
        // What each key reads when its write runs: the value an earlier write of this plan left.
        let mut left: BTreeMap<HostKey, String> = BTreeMap::new();
        for w in self.runtime {
            if w.differs || self.tuned_switch {
                let before = left.get(&w.key).cloned().unwrap_or(w.before);
                left.insert(w.key.clone(), w.value.clone());
                ops.push(HostOp::Write {
                    key: w.key,
                    // A re-assert after a tuned switch: tuned may have changed the value.
                    before: w.differs.then_some(before),
                    value: w.value,
                    reassert: !w.differs,
                });
            }
        }
        ops.extend(self.post);
        ops.extend(persisted);
        ops.extend(self.boot);
        self.plan.ops = ops;
        self.plan
    }
}

/// Pure: which host settings differ, how to change them, and which cannot be planned here.
/// Order of the steps: modules, tuned, runtime values (sysctl, THP, pools — global before
/// node —, KSM, NICs — VFs through 0 —), hugetlbfs, then the owned files under /etc.
pub fn plan_host(d: &HostDesired, obs: &HostObserved) -> HostPlan {
    plan_host_with(d, obs, None)
}

/// [`plan_host`] with the owned files' entries given instead of derived from `d` (rollback:
/// the entries the files had before an apply; `Some` of an empty list writes a file that
/// declares nothing).
pub fn plan_host_with(
    d: &HostDesired,
    obs: &HostObserved,
    owned: Option<&BTreeMap<OwnedFileKind, Vec<persist::Entry>>>,
) -> HostPlan {
    plan_host_restoring(d, obs, owned, &[])
}

/// [`plan_host_with`]; `boot_had` are kernel arguments the boot entries had before kvmtune
/// declared them (from an apply record): rollback leaves them in the entries.
pub fn plan_host_restoring(
    d: &HostDesired,
    obs: &HostObserved,
    owned: Option<&BTreeMap<OwnedFileKind, Vec<persist::Entry>>>,
    boot_had: &[persist::Entry],
) -> HostPlan {
    let mut b = Builder::default();
    let mut sysctl_file = persist::OwnedFile::new(OwnedFileKind::Sysctl);
    let mut tmpfiles = persist::OwnedFile::new(OwnedFileKind::Tmpfiles);
    let mut modules_file = persist::OwnedFile::new(OwnedFileKind::Modules);
    let mut grub = persist::OwnedFile::new(OwnedFileKind::Grub);
    let mut systemd_file = persist::OwnedFile::new(OwnedFileKind::Systemd);

    modules::plan(d, obs, &mut b, &mut modules_file);
    let child = match owned {
        None => tuned::Child::Derive,
        Some(o) => tuned::Child::Recorded(o.get(&OwnedFileKind::TunedProfile).map(Vec::as_slice)),
    };
    b.tuned_switch = tuned::plan(d, obs, &mut b, child);
    sysctl::plan(d, obs, &mut b, &mut sysctl_file);
    thp::plan(d, obs, &mut b, &mut tmpfiles);
    hugepages::plan(d, obs, &mut b, &mut tmpfiles, &mut grub);
    kernel_args::plan(d, obs, &mut b, &mut grub);
    systemd::plan(d, obs, &mut b, &mut systemd_file);
    ksm::plan(d, obs, &mut b, &mut tmpfiles);
    net::plan(d, obs, &mut b);
    isolate::plan(d, obs, &mut b, &mut tmpfiles);

    let mut persisted = Vec::new();
    let grub_entries = grub.entries.clone();
    let files = [modules_file, sysctl_file, tmpfiles, grub, systemd_file];
    // The kernel arguments the boot entries get: the drop-in's (recorded ones on rollback).
    let mut boot_args: Option<Vec<persist::Entry>> = None;
    match owned {
        Some(owned) => {
            boot_args = owned.get(&OwnedFileKind::Grub).cloned();
            // The child tuned profile was planned with the switch, before it.
            for (kind, entries) in owned
                .iter()
                .filter(|(k, _)| **k != OwnedFileKind::TunedProfile)
            {
                let f = persist::OwnedFile::with_entries(*kind, entries.clone());
                let (changes, op) = f.plan_forced(obs.file(f.file));
                changes.into_iter().for_each(|c| b.change(c));
                persisted.extend(op);
            }
        }
        None if !d.runtime_only => {
            boot_args = Some(grub_entries).filter(|e| !e.is_empty());
            for f in &files {
                let (changes, op) = f.plan(obs.file(f.file));
                changes.into_iter().for_each(|c| b.change(c));
                persisted.extend(op);
            }
        }
        None => {}
    }
    if let Some(args) = boot_args {
        kernel_args::plan_boot(&args, boot_had, obs, &mut b);
    }
    b.finish(persisted)
}

/// Files of the owned-file kind that persistence may write (read by observation).
pub fn owned_files(d: &HostDesired) -> Vec<&'static str> {
    owned_kinds(d)
        .into_iter()
        .map(OwnedFileKind::file)
        .collect()
}

/// The owned files the desired state persists to.
pub fn owned_kinds(d: &HostDesired) -> Vec<OwnedFileKind> {
    if d.runtime_only {
        return Vec::new();
    }
    let mut v = Vec::new();
    if !d.modules.is_empty() {
        v.push(OwnedFileKind::Modules);
    }
    if !d.sysctl.is_empty() {
        v.push(OwnedFileKind::Sysctl);
    }
    let isolate =
        d.cpu_pool.reserved.is_some() && (d.cpu_pool.isolate.irqs || d.cpu_pool.isolate.workqueues);
    if d.thp_enabled.is_some()
        || d.thp_defrag.is_some()
        || !d.ksm.is_empty()
        || d.hugepages.len() > d.hugepages_boot.len()
        || isolate
    {
        v.push(OwnedFileKind::Tmpfiles);
    }
    if kernel_args::declared(d) {
        v.push(OwnedFileKind::Grub);
    }
    if d.cpu_pool.isolate.systemd {
        v.push(OwnedFileKind::Systemd);
    }
    if d.tuned_profile.is_some() {
        v.push(OwnedFileKind::TunedProfile);
    }
    v
}

/// Why a host step is not one `d` asks for (`None`: it is). A saved plan's steps are checked
/// with this before anything runs: whatever the file says, only declared values are written.
pub fn undeclared(d: &HostDesired, op: &HostOp, hugetlbfs: bool) -> Option<String> {
    let ok = match op {
        HostOp::Write { key, value, .. } => declared_value(d, key, value, true),
        HostOp::Tuned { profile, .. } => {
            d.tuned_profile.as_ref() == Some(profile)
                || (profile.as_str() == tuned::CHILD
                    && d.tuned_profile.is_some()
                    && !d.runtime_only)
        }
        HostOp::LoadModule { module } => d.modules.contains_key(module),
        HostOp::MountHugetlbfs => hugetlbfs,
        HostOp::Irqbalance { banned, .. } => {
            let cp = &d.cpu_pool;
            cp.isolate.irqs
                && cp
                    .reserved
                    .as_ref()
                    .is_some_and(|r| banned.as_ref().is_some_and(|b| !r.intersects(b)))
        }
        HostOp::RestartIrqbalance => d.cpu_pool.isolate.irqs && d.cpu_pool.reserved.is_some(),
        HostOp::MoveThreads { cpus, .. } => {
            d.cpu_pool.isolate.host_threads && d.cpu_pool.reserved.as_ref() == Some(cpus)
        }
        HostOp::BootEntries { add, remove, .. } => {
            !d.runtime_only
                && add.iter().all(|e| declared_entry(d, e))
                && remove.iter().all(|e| !add.contains(e))
        }
        HostOp::OwnedFile { file, entries, .. } => {
            !d.runtime_only
                && (*file != OwnedFileKind::TunedProfile || d.tuned_profile.is_some())
                && entries.iter().all(|e| declared_entry(d, e))
        }
    };
    (!ok).then(|| format!("{}: the configuration does not declare this", op.name()))
}

/// Whether an owned-file entry persists what `d` declares. Kernel isolation arguments are
/// checked against `cpu_pool` as far as a saved plan can be without the host: `irqaffinity`
/// is the reserved set, the isolated CPUs are neither reserved nor shared, the flags kvmtune's.
fn declared_entry(d: &HostDesired, e: &persist::Entry) -> bool {
    match &e.key {
        persist::PersistKey::Sysctl { key } => d
            .sysctl
            .get(key)
            .is_some_and(|v| Readback::Tokens.canonical(v) == e.value),
        persist::PersistKey::Value { key } => declared_value(d, key, &e.value, false),
        persist::PersistKey::Module { module } => d.modules.contains_key(module),
        persist::PersistKey::BootPool { size } => d.hugepages_boot.iter().any(|(s, _)| s == size),
        persist::PersistKey::BootArg { .. } => declared_isolation(d, e),
        persist::PersistKey::Manager { .. } => {
            d.cpu_pool.isolate.systemd
                && systemd::parse_affinity(&e.value).as_ref() == d.cpu_pool.reserved.as_ref()
        }
        persist::PersistKey::TunedInclude => d
            .tuned_profile
            .as_ref()
            .is_some_and(|p| p.as_str() == e.value),
        persist::PersistKey::TunedSysctl { key } => d
            .sysctl
            .get(key)
            .is_some_and(|v| Readback::Tokens.canonical(v) == e.value),
        persist::PersistKey::TunedVm { option } => {
            let key = HostKey::Thp {
                knob: option.knob(),
                rhel6: false,
            };
            declared_value(d, &key, &e.value, false)
        }
        persist::PersistKey::TunedVariable { .. } => tuned::isolated_cores_declared(d, &e.value),
    }
}

fn declared_isolation(d: &HostDesired, e: &persist::Entry) -> bool {
    use kernel_args::{IsolFlag, KernelArg};
    let pool = &d.cpu_pool;
    let Some(reserved) = pool.reserved.as_ref().filter(|_| pool.isolate.kernel) else {
        return false;
    };
    let isolated = |c: &crate::cpuset::CpuSet| {
        !c.intersects(reserved) && pool.shared.as_ref().is_none_or(|s| !c.intersects(s))
    };
    match KernelArg::from_entry(e) {
        Ok(KernelArg::Isolcpus { flags, cpus }) => flags == IsolFlag::ALL && isolated(&cpus),
        Ok(KernelArg::NohzFull(c) | KernelArg::RcuNocbs(c)) => isolated(&c),
        Ok(KernelArg::IrqAffinity(c)) => c.is_subset(reserved),
        _ => false,
    }
}

/// Whether `value` is what `d` declares for `key` (`interim`: also the 0 that a VF count
/// change goes through).
fn declared_value(d: &HostDesired, key: &HostKey, value: &str, interim: bool) -> bool {
    use crate::model::{NicAttr, ThpKnob};
    let rb = key.readback();
    let want: Option<String> = match key {
        HostKey::Sysctl { key } => d.sysctl.get(key).cloned(),
        HostKey::Thp { knob, .. } => match knob {
            ThpKnob::Enabled => d.thp_enabled.map(|v| v.as_str().to_string()),
            ThpKnob::Defrag => d.thp_defrag.map(|v| v.as_str().to_string()),
        },
        HostKey::HugePagePool { size, node } => d
            .hugepages
            .get(&(*size, *node))
            .filter(|_| !d.hugepages_boot.contains(&(*size, *node)))
            .map(u64::to_string),
        HostKey::Ksm { knob } => ksm::wanted(d)
            .into_iter()
            .find(|(k, _)| k == knob)
            .map(|(_, v)| v),
        HostKey::Interface { name, attr } => d.interfaces.get(name).and_then(|n| match attr {
            NicAttr::Mtu => n.mtu.map(|m| m.to_string()),
            NicAttr::SriovNumvfs => n.sriov_numvfs.map(|m| m.to_string()),
        }),
        HostKey::IrqDefaultAffinity | HostKey::IrqAffinity { .. } | HostKey::WorkqueueCpumask => {
            isolate::declared(d, key)
        }
    };
    let zero_step = interim
        && value == "0"
        && matches!(
            key,
            HostKey::Interface {
                attr: crate::model::NicAttr::SriovNumvfs,
                ..
            }
        );
    want.as_deref()
        .is_some_and(|w| rb.canonical(w) == rb.canonical(value) || zero_step)
}

/// How many settings the desired host state declares (for `validate`).
pub fn setting_count(d: &HostDesired) -> usize {
    d.sysctl.len()
        + d.thp_enabled.is_some() as usize
        + d.thp_defrag.is_some() as usize
        + d.hugepages.len()
        + d.tuned_profile.is_some() as usize
        + [
            d.ksm.run.is_some(),
            d.ksm.sleep_millisecs.is_some(),
            d.ksm.pages_to_scan.is_some(),
            d.ksm.merge_across_nodes.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
        + d.interfaces
            .values()
            .map(|n| n.mtu.is_some() as usize + n.sriov_numvfs.is_some() as usize)
            .sum::<usize>()
        + d.modules.len()
        + {
            let i = &d.cpu_pool.isolate;
            [i.kernel, i.irqs, i.systemd, i.workqueues, i.host_threads]
                .iter()
                .filter(|b| **b)
                .count()
        }
}

/// The plan path of every setting `d` declares (`sysctl.vm.swappiness`, `tuned.profile`), the
/// names a plan's host changes use without their ` (persisted)` / ` (boot)` suffix; for
/// monitoring, which reports the settings that do not change as in sync.
pub fn declared_settings(d: &HostDesired) -> BTreeSet<String> {
    use crate::model::{NicAttr, ThpKnob};
    let mut keys: Vec<HostKey> = d
        .sysctl
        .keys()
        .map(|k| HostKey::Sysctl { key: k.clone() })
        .collect();
    let thp = [
        (d.thp_enabled.is_some(), ThpKnob::Enabled),
        (d.thp_defrag.is_some(), ThpKnob::Defrag),
    ];
    keys.extend(
        thp.into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, knob)| HostKey::Thp { knob, rhel6: false }),
    );
    keys.extend(
        d.hugepages
            .keys()
            .map(|(size, node)| HostKey::HugePagePool {
                size: *size,
                node: *node,
            }),
    );
    keys.extend(
        ksm::wanted(d)
            .into_iter()
            .map(|(knob, _)| HostKey::Ksm { knob }),
    );
    for (name, n) in &d.interfaces {
        for (on, attr) in [
            (n.mtu.is_some(), NicAttr::Mtu),
            (n.sriov_numvfs.is_some(), NicAttr::SriovNumvfs),
        ] {
            if on {
                keys.push(HostKey::Interface {
                    name: name.clone(),
                    attr,
                });
            }
        }
    }
    let mut out: BTreeSet<String> = keys.iter().map(HostKey::path).collect();
    out.extend(d.modules.keys().map(|m| format!("modules.{m}")));
    if d.tuned_profile.is_some() {
        out.insert("tuned.profile".into());
    }
    out
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn obs(files: &[(&str, &str)], dirs: &[(&str, &[&str])]) -> HostObserved {
        HostObserved {
            files: files
                .iter()
                .map(|(f, c)| (f.to_string(), Some(c.to_string())))
                .collect(),
            dirs: dirs
                .iter()
                .map(|(d, v)| {
                    (
                        d.to_string(),
                        Some(v.iter().map(|s| s.to_string()).collect()),
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_tuned_switch_comes_first_and_declared_values_are_written_again_after_it() {
        let d = crate::desired::load_str(
            "t.yaml",
            "host:\n  persist: false\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 10, vm.dirty_ratio: 40 }\n",
        )
        .unwrap()
        .host;
        let o = obs(
            &[
                ("etc/tuned/active_profile", "balanced\n"),
                ("usr/lib/tuned/virtual-host/tuned.conf", "[main]\n"),
                ("proc/sys/vm/swappiness", "60\n"),
                ("proc/sys/vm/dirty_ratio", "40\n"),
            ],
            &[
                ("usr/sbin", &["tuned-adm"]),
                ("usr/lib/tuned", &["virtual-host"]),
            ],
        );
        let p = plan_host(&d, &o);
        assert!(p.issues.is_empty(), "{:?}", p.issues);
        let paths: Vec<&str> = p.changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["tuned.profile", "sysctl.vm.swappiness"]);
        assert!(
            matches!(&p.ops[0], HostOp::Tuned { profile, before } if profile.as_str() == "virtual-host" && before.as_deref() == Some("balanced"))
        );
        let writes: Vec<(String, bool)> = p.ops[1..]
            .iter()
            .map(|op| match op {
                HostOp::Write { key, reassert, .. } => (key.path(), *reassert),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            writes,
            [
                ("sysctl.vm.dirty_ratio".to_string(), true),
                ("sysctl.vm.swappiness".to_string(), false)
            ]
        );
        // Without a switch, matching values are not written.
        let o2 = obs(
            &[
                ("etc/tuned/active_profile", "virtual-host\n"),
                ("usr/lib/tuned/virtual-host/tuned.conf", "[main]\n"),
                ("proc/sys/vm/swappiness", "60\n"),
                ("proc/sys/vm/dirty_ratio", "40\n"),
            ],
            &[
                ("usr/sbin", &["tuned-adm"]),
                ("usr/lib/tuned", &["virtual-host"]),
            ],
        );
        assert_eq!(plan_host(&d, &o2).ops.len(), 1);
    }
}
