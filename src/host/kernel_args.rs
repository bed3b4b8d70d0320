//! The kernel command line arguments kvmtune owns: huge page pools reserved at boot
//! (`hugepages[].persist: boot`) and CPU isolation (`cpu_pool.isolate.kernel`).
//!
//! Invariants:
//! - One writer. Every argument is a typed [`KernelArg`], collected here from the concerns
//!   that declare them, persisted as typed entries of the GRUB drop-in
//!   (/etc/default/grub.d/90-kvmtune.cfg) and turned into text only here ([`tokens`]).
//! - Where the host boots from: the GRUB drop-in always (kvmtune never runs update-grub or
//!   grub2-mkconfig); where `grubby` is installed below the root (RHEL, Fedora), also the BLS
//!   entries (/boot/loader/entries/*.conf, read as bounded regular files, never through a
//!   symlink), changed with `grubby --update-kernel=ALL --args=… --remove-args=…` (argv built
//!   here from typed arguments only) and read back afterwards.
//! - kvmtune removes from the boot entries only what the drop-in says it wrote before, by exact
//!   `name=value`: an operator's own arguments stay. A boot entry that has an argument of a name
//!   kvmtune sets, with a value kvmtune did not write, is a plan issue (grubby would replace it).
//! - What the running kernel has comes from /proc/cmdline: one note per argument says whether
//!   it is in effect or needs a reboot. Every change here is `effect: reboot`.
//!
//! Isolation: `isolcpus=managed_irq,domain,<D> nohz_full=<D> rcu_nocbs=<D> irqaffinity=<R>`
//! with R = the reserved CPUs and D = the dedicated ones (online − reserved − shared). Shared
//! CPUs are not isolated: floating guests need the scheduler's load balancing there (a CPU in
//! the isolcpus `domain` set is never balanced to) and run several tasks per CPU, where
//! `nohz_full` gains nothing; they do not take IRQs either (irqaffinity is the reserved set).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::commands::HostCommands;
use super::ops::{content_hash, HostOp, HostWriteError};
use super::persist::{Entry, OwnedFile, PersistKey};
use super::{Builder, HostChange, HostObserved, Reads};
use crate::cpuset::CpuSet;
use crate::desired::HostDesired;
use crate::model::{Effect, OwnedFileKind};
use crate::units::PageSize;

pub const CPU_ONLINE: &str = "sys/devices/system/cpu/online";
pub const CMDLINE: &str = "proc/cmdline";
pub const BLS_DIR: &str = "boot/loader/entries";
/// grub2's environment block: `$kernelopts` in a BLS entry (RHEL 8) expands from it.
pub const GRUBENV: &str = "boot/grub2/grubenv";
/// Where grubby may be installed (the first that exists is run).
pub const GRUBBY: [(&str, &str); 2] = [("usr/sbin", "grubby"), ("sbin", "grubby")];
/// The most BLS entries kvmtune reads.
pub const MAX_ENTRIES: usize = 256;

/// A flag of `isolcpus=` that kvmtune writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IsolFlag {
    /// Keep managed IRQs (drivers' per-queue IRQs) off the isolated CPUs where possible.
    ManagedIrq,
    /// Remove the CPUs from the scheduler's load-balancing domains.
    Domain,
}

impl IsolFlag {
    pub const ALL: [IsolFlag; 2] = [IsolFlag::ManagedIrq, IsolFlag::Domain];

    pub fn as_str(self) -> &'static str {
        match self {
            IsolFlag::ManagedIrq => "managed_irq",
            IsolFlag::Domain => "domain",
        }
    }
}

/// The name of a kernel argument kvmtune sets that is not a huge page pool.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BootArgName {
    Isolcpus,
    NohzFull,
    RcuNocbs,
    Irqaffinity,
}

impl BootArgName {
    /// In the order they are written.
    pub const ALL: [BootArgName; 4] = [
        BootArgName::Isolcpus,
        BootArgName::NohzFull,
        BootArgName::RcuNocbs,
        BootArgName::Irqaffinity,
    ];

    /// As the kernel spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            BootArgName::Isolcpus => "isolcpus",
            BootArgName::NohzFull => "nohz_full",
            BootArgName::RcuNocbs => "rcu_nocbs",
            BootArgName::Irqaffinity => "irqaffinity",
        }
    }

    pub fn from_name(s: &str) -> Option<BootArgName> {
        BootArgName::ALL.into_iter().find(|n| n.as_str() == s)
    }
}

/// A huge page pool's count on the command line: `4`, or per node `0:4,1:4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolCount {
    Global(u64),
    Nodes(BTreeMap<u32, u64>),
}

impl fmt::Display for PoolCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolCount::Global(n) => write!(f, "{n}"),
            PoolCount::Nodes(m) => {
                let v: Vec<String> = m.iter().map(|(n, c)| format!("{n}:{c}")).collect();
                f.write_str(&v.join(","))
            }
        }
    }
}

impl PoolCount {
    fn parse(s: &str) -> Option<PoolCount> {
        if !s.contains(':') {
            return digits(s).map(PoolCount::Global);
        }
        let mut m = BTreeMap::new();
        for part in s.split(',') {
            let (n, c) = part.split_once(':')?;
            let n = u32::try_from(digits(n)?).ok()?;
            if m.insert(n, digits(c)?).is_some() {
                return None;
            }
        }
        Some(PoolCount::Nodes(m))
    }
}

fn digits(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// One kernel argument kvmtune owns, typed. Its text exists only in [`KernelArg::tokens`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelArg {
    /// `hugepagesz=<size> hugepages=<count>` (and `default_hugepagesz=1G` for a 1G pool).
    HugePages {
        size: PageSize,
        count: PoolCount,
    },
    /// `isolcpus=<flags>,<cpus>`.
    Isolcpus {
        flags: Vec<IsolFlag>,
        cpus: CpuSet,
    },
    NohzFull(CpuSet),
    RcuNocbs(CpuSet),
    IrqAffinity(CpuSet),
}

impl KernelArg {
    /// The argument's own `name=value` tokens, in command line order.
    pub fn tokens(&self) -> Vec<String> {
        match self {
            KernelArg::HugePages { size, count } => {
                vec![format!("hugepagesz={size}"), format!("hugepages={count}")]
            }
            other => {
                let (name, value) = other.name_value();
                vec![format!("{}={value}", name.as_str())]
            }
        }
    }

    fn name_value(&self) -> (BootArgName, String) {
        match self {
            KernelArg::HugePages { .. } => unreachable!("huge page pools have two tokens"),
            KernelArg::Isolcpus { flags, cpus } => {
                let mut v: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
                let cpus = cpus.to_string();
                v.push(&cpus);
                (BootArgName::Isolcpus, v.join(","))
            }
            KernelArg::NohzFull(c) => (BootArgName::NohzFull, c.to_string()),
            KernelArg::RcuNocbs(c) => (BootArgName::RcuNocbs, c.to_string()),
            KernelArg::IrqAffinity(c) => (BootArgName::Irqaffinity, c.to_string()),
        }
    }

    /// The drop-in entry that persists it.
    pub fn entry(&self) -> Entry {
        match self {
            KernelArg::HugePages { size, count } => Entry {
                key: PersistKey::BootPool { size: *size },
                value: count.to_string(),
            },
            other => {
                let (arg, value) = other.name_value();
                Entry {
                    key: PersistKey::BootArg { arg },
                    value,
                }
            }
        }
    }

    /// The argument a drop-in entry persists; only kvmtune's canonical form is accepted.
    pub fn from_entry(e: &Entry) -> Result<KernelArg, String> {
        let bad = || {
            format!(
                "{}: `{}` is not a value kvmtune writes there",
                e.label(),
                e.value.escape_debug()
            )
        };
        let cpus = |s: &str| -> Result<CpuSet, String> {
            let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b"-,".contains(&b));
            ok.then(|| s.parse::<CpuSet>().ok())
                .flatten()
                .ok_or_else(bad)
        };
        let arg = match &e.key {
            PersistKey::BootPool { size } => KernelArg::HugePages {
                size: *size,
                count: PoolCount::parse(&e.value).ok_or_else(bad)?,
            },
            PersistKey::BootArg { arg } => match arg {
                BootArgName::Isolcpus => {
                    let mut flags = Vec::new();
                    let mut rest = e.value.as_str();
                    for f in IsolFlag::ALL {
                        if let Some(r) = rest.strip_prefix(&format!("{},", f.as_str())) {
                            flags.push(f);
                            rest = r;
                        }
                    }
                    KernelArg::Isolcpus {
                        flags,
                        cpus: cpus(rest)?,
                    }
                }
                BootArgName::NohzFull => KernelArg::NohzFull(cpus(&e.value)?),
                BootArgName::RcuNocbs => KernelArg::RcuNocbs(cpus(&e.value)?),
                BootArgName::Irqaffinity => KernelArg::IrqAffinity(cpus(&e.value)?),
            },
            _ => return Err(format!("{} is not a kernel argument", e.label())),
        };
        if arg.entry() == *e {
            Ok(arg)
        } else {
            Err(bad())
        }
    }

    /// Command line order: huge page pools by size, then isolation in [`BootArgName::ALL`] order.
    fn order(&self) -> (u8, u64) {
        match self {
            KernelArg::HugePages { size, .. } => (0, size.kib()),
            other => (1, other.name_value().0 as u64),
        }
    }
}

/// Adds an argument to the drop-in (the concerns that declare kernel arguments call this).
pub fn push(grub: &mut OwnedFile, arg: &KernelArg) {
    let e = arg.entry();
    grub.push(e.key, e.value);
}

/// The command line text of a set of drop-in entries, in canonical order (entries that are not
/// kvmtune's kernel arguments are left out). `default_hugepagesz=1G` comes first with a 1G pool,
/// so that guests' default-size huge pages are the reserved ones.
pub fn tokens(entries: &[Entry]) -> Vec<String> {
    let mut args: Vec<KernelArg> = entries
        .iter()
        .filter_map(|e| KernelArg::from_entry(e).ok())
        .collect();
    args.sort_by_key(KernelArg::order);
    let mut out = Vec::new();
    if args
        .iter()
        .any(|a| matches!(a, KernelArg::HugePages { size, .. } if *size == PageSize::ONE_GIB))
    {
        out.push(format!("default_hugepagesz={}", PageSize::ONE_GIB));
    }
    out.extend(args.iter().flat_map(KernelArg::tokens));
    out
}

/// One entry's tokens (with `default_hugepagesz=1G` for a 1G pool).
fn entry_tokens(e: &Entry) -> Vec<String> {
    tokens(std::slice::from_ref(e))
}

/// What the kernel args concern declares.
pub fn declared(d: &HostDesired) -> bool {
    !d.hugepages_boot.is_empty() || d.cpu_pool.isolate.kernel
}

pub fn reads(d: &HostDesired, r: &mut Reads) {
    if d.cpu_pool.isolate.kernel {
        r.files.insert(CPU_ONLINE.into());
    }
}

/// Reads what the boot configuration and the running kernel have: /proc/cmdline, and where
/// grubby is installed the BLS entries and grubenv (entries through [`super::files::read_opt_nofollow`]).
pub fn observe_boot(root: &Path, obs: &mut HostObserved) -> std::io::Result<()> {
    let rd = |f: &str| super::files::read_opt(&root.join(f));
    obs.files.insert(CMDLINE.into(), rd(CMDLINE)?);
    for (dir, _) in GRUBBY {
        let list = super::files::list_opt(&root.join(dir))?;
        obs.dirs.insert(dir.into(), list);
    }
    if grubby(obs).is_none() {
        return Ok(());
    }
    obs.files.insert(GRUBENV.into(), rd(GRUBENV)?);
    let list = super::files::list_opt(&root.join(BLS_DIR))?;
    let names: Vec<String> = list
        .iter()
        .flatten()
        .filter(|n| n.ends_with(".conf") && !n.starts_with('.'))
        .cloned()
        .collect();
    if names.len() > MAX_ENTRIES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "/{BLS_DIR} has {} entries, more than the {MAX_ENTRIES} kvmtune reads",
                names.len()
            ),
        ));
    }
    for n in &names {
        let f = format!("{BLS_DIR}/{n}");
        let content = super::files::read_opt_nofollow(&root.join(&f))?;
        obs.files.insert(f, content);
    }
    obs.dirs.insert(BLS_DIR.into(), Some(names));
    Ok(())
}

/// The grubby below the root (directory, name), when installed.
pub fn grubby(obs: &HostObserved) -> Option<String> {
    GRUBBY
        .iter()
        .find(|(dir, name)| obs.dir(dir).is_some_and(|l| l.iter().any(|n| n == name)))
        .map(|(dir, name)| format!("{dir}/{name}"))
}

/// The isolation arguments of `d` on this host, or why there are none.
pub fn isolation(d: &HostDesired, obs: &HostObserved) -> Result<Vec<KernelArg>, String> {
    let pool = &d.cpu_pool;
    let Some(reserved) = &pool.reserved else {
        return Err("needs host.cpu_pool.reserved".into());
    };
    let online = obs.file(CPU_ONLINE).ok_or_else(|| {
        format!("cannot tell which CPUs are online (/{CPU_ONLINE} does not exist)")
    })?;
    let online: CpuSet = online
        .trim()
        .parse()
        .map_err(|e| format!("/{CPU_ONLINE}: {e}"))?;
    let Some(irq) = reserved.intersection(&online) else {
        return Err(format!(
            "no reserved CPU ({reserved}) is online ({online}): IRQs would have nowhere to go"
        ));
    };
    let Some(dedicated) = pool.dedicated(&online) else {
        return Err(format!(
            "every online CPU ({online}) is reserved or shared: there is nothing to isolate"
        ));
    };
    Ok(vec![
        KernelArg::Isolcpus {
            flags: IsolFlag::ALL.to_vec(),
            cpus: dedicated.clone(),
        },
        KernelArg::NohzFull(dedicated.clone()),
        KernelArg::RcuNocbs(dedicated),
        KernelArg::IrqAffinity(irq),
    ])
}

/// Adds the isolation arguments to the drop-in (the huge page pools are already there).
pub fn plan(d: &HostDesired, obs: &HostObserved, b: &mut Builder, grub: &mut OwnedFile) {
    if !d.cpu_pool.isolate.kernel {
        return;
    }
    let key = ["cpu_pool", "isolate", "kernel"].map(String::from).to_vec();
    if d.runtime_only {
        b.issue(
            key,
            "kernel arguments are persisted only (the boot configuration): not with `persist: false`"
                .into(),
        );
        return;
    }
    match isolation(d, obs) {
        Ok(args) => {
            for a in &args {
                push(grub, a);
            }
        }
        Err(m) => b.issue(key, m),
    }
}

/// The entries of `args` that every boot entry below the root has now (for the apply record).
pub fn entries_having(root: &Path, args: &[Entry]) -> std::io::Result<Vec<Entry>> {
    let mut obs = HostObserved::default();
    observe_boot(root, &mut obs)?;
    let entries = boot_entries(&obs);
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    Ok(args
        .iter()
        .filter(|e| entries.values().all(|a| has(a, e)))
        .cloned()
        .collect())
}

/// Whitespace-separated arguments of a command line, `$kernelopts` expanded from grubenv.
fn args_of(line: &str, grubenv: Option<&str>) -> Vec<String> {
    let kernelopts = grubenv
        .and_then(|g| g.lines().find_map(|l| l.strip_prefix("kernelopts=")))
        .unwrap_or("");
    line.split_whitespace()
        .flat_map(|t| {
            if t == "$kernelopts" {
                kernelopts.split_whitespace().map(String::from).collect()
            } else {
                vec![t.to_string()]
            }
        })
        .collect()
}

/// The boot entries below the root: file name → its `options` arguments.
pub fn boot_entries(obs: &HostObserved) -> BTreeMap<String, Vec<String>> {
    let grubenv = obs.file(GRUBENV);
    obs.dir(BLS_DIR)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| {
            let text = obs.file(&format!("{BLS_DIR}/{n}"))?;
            let opts = text
                .lines()
                .find_map(|l| l.trim_start().strip_prefix("options"))
                .filter(|r| r.is_empty() || r.starts_with([' ', '\t']))
                .unwrap_or("");
            Some((n.clone(), args_of(opts, grubenv)))
        })
        .collect()
}

/// The value `args` give the entry's argument (`None`: absent). A pool's count is the
/// `hugepages=` that follows its `hugepagesz=`.
fn value_in(args: &[String], e: &Entry) -> Option<String> {
    match &e.key {
        PersistKey::BootPool { size } => {
            let sz = format!("hugepagesz={size}");
            let i = args.iter().position(|a| *a == sz)?;
            args.get(i + 1)?
                .strip_prefix("hugepages=")
                .map(String::from)
        }
        PersistKey::BootArg { arg } => {
            let p = format!("{}=", arg.as_str());
            args.iter()
                .find_map(|a| a.strip_prefix(&p))
                .map(String::from)
        }
        _ => None,
    }
}

/// Whether `args` have the entry: its value, and every token it brings.
fn has(args: &[String], e: &Entry) -> bool {
    value_in(args, e).as_deref() == Some(e.value.as_str())
        && entry_tokens(e).iter().all(|t| args.contains(t))
}

fn name_of(token: &str) -> &str {
    token.split_once('=').map_or(token, |(n, _)| n)
}

/// The BLS label of an entry (`hugepages.1G (boot entries)`).
pub fn bls_label(e: &Entry) -> String {
    let l = e.label();
    match l.strip_suffix(" (boot)") {
        Some(base) => format!("{base} (boot entries)"),
        None => l,
    }
}

/// What the boot entries give an argument: their common value, or how many differ.
fn summary(entries: &BTreeMap<String, Vec<String>>, e: &Entry) -> Option<String> {
    let values: BTreeSet<Option<String>> = entries.values().map(|a| value_in(a, e)).collect();
    match values.len() {
        1 => values.into_iter().next().flatten(),
        _ => {
            let lack = entries.values().filter(|a| !has(a, e)).count();
            Some(format!("{lack} of {} entries differ", entries.len()))
        }
    }
}

/// SHA-256 over the entries as read (names and contents) and grubenv: the stale check.
pub fn entries_hash(obs: &HostObserved) -> String {
    let mut s = String::new();
    for n in obs.dir(BLS_DIR).unwrap_or_default() {
        let f = format!("{BLS_DIR}/{n}");
        s.push_str(&format!("{n}\n{}\n\0", obs.file(&f).unwrap_or("")));
    }
    s.push_str(obs.file(GRUBENV).unwrap_or(""));
    content_hash(&s)
}

/// Plans the boot entries for the drop-in entries `want` (where grubby is installed), and the
/// notes on what the running kernel has. What the drop-in holds now is what kvmtune owns and
/// may remove, except `keep` (arguments the entries had before kvmtune declared them).
pub fn plan_boot(want: &[Entry], keep: &[Entry], obs: &HostObserved, b: &mut Builder) {
    let owned = obs
        .file(OwnedFileKind::Grub.file())
        .map(|c| OwnedFile::entries_of(OwnedFileKind::Grub, c))
        .unwrap_or_default();
    let mut remove: Vec<Entry> = owned
        .iter()
        .filter(|e| !want.contains(e) && !keep.contains(e))
        .cloned()
        .collect();
    remove.sort_by_key(|e| KernelArg::from_entry(e).map(|a| a.order()).ok());
    running_notes(want, &remove, obs, b);
    if grubby(obs).is_none() {
        return;
    }
    let entries = boot_entries(obs);
    if entries.is_empty() {
        b.note(format!(
            "kernel arguments: grubby is installed but /{BLS_DIR} has no entries; only the GRUB drop-in is written"
        ));
        return;
    }
    let add = tokens(want);
    let old = tokens(&owned);
    let names: BTreeSet<&str> = add.iter().map(|t| name_of(t)).collect();
    let mut conflict = false;
    for (n, args) in &entries {
        for a in args {
            if names.contains(name_of(a)) && !add.contains(a) && !old.contains(a) {
                conflict = true;
                let key = match BootArgName::from_name(name_of(a)) {
                    Some(_) => vec!["cpu_pool".into(), "isolate".into(), "kernel".into()],
                    None => vec!["hugepages".into()],
                };
                b.issue(
                    key,
                    format!(
                        "boot entry /{BLS_DIR}/{n} has `{a}`, which kvmtune did not write: `grubby --args` would replace it; remove it from the entry (grubby --update-kernel=ALL --remove-args={a}) or stop declaring `{}`",
                        name_of(a)
                    ),
                );
            }
        }
    }
    if conflict {
        return;
    }
    let mut labels = Vec::new();
    for e in want {
        if entries.values().any(|a| !has(a, e)) {
            b.change(HostChange {
                path: bls_label(e),
                before: summary(&entries, e),
                after: Some(e.value.clone()),
                effect: Effect::Reboot,
            });
            labels.push(bls_label(e));
        }
    }
    let gone = removed_tokens(want, &remove);
    for e in &remove {
        let present = entries.values().any(|a| {
            entry_tokens(e)
                .iter()
                .any(|t| gone.contains(t) && a.contains(t))
        });
        if present {
            b.change(HostChange {
                path: bls_label(e),
                before: Some(e.value.clone()),
                after: None,
                effect: Effect::Reboot,
            });
            labels.push(bls_label(e));
        }
    }
    if labels.is_empty() {
        return;
    }
    b.boot(HostOp::BootEntries {
        add: want.to_vec(),
        remove,
        before: entries_hash(obs),
        labels,
    });
}

/// The tokens of `remove` that `want` does not also bring.
fn removed_tokens(want: &[Entry], remove: &[Entry]) -> Vec<String> {
    let add = tokens(want);
    let mut v: Vec<String> = remove
        .iter()
        .flat_map(entry_tokens)
        .filter(|t| !add.contains(t))
        .collect();
    v.dedup();
    v
}

/// One note per argument: whether the running kernel (/proc/cmdline) has it.
fn running_notes(want: &[Entry], remove: &[Entry], obs: &HostObserved, b: &mut Builder) {
    if want.is_empty() && remove.is_empty() {
        return;
    }
    // Without /proc/cmdline below the root (a bare test root) nothing is said.
    let Some(cmdline) = obs.file(CMDLINE) else {
        return;
    };
    let running = args_of(cmdline, None);
    for e in want {
        let text = entry_tokens(e).join(" ");
        let state = if has(&running, e) {
            "in effect (the running kernel has it)".to_string()
        } else {
            match value_in(&running, e) {
                Some(v) => format!("needs reboot (the running kernel has `{v}`)"),
                None => "needs reboot (not on the running kernel's command line)".into(),
            }
        };
        b.note(format!("kernel argument `{text}`: {state}"));
    }
    let gone = removed_tokens(want, remove);
    for t in gone.iter().filter(|t| running.contains(t)) {
        b.note(format!(
            "kernel argument `{t}`: no longer declared; the running kernel has it until the next reboot"
        ));
    }
}

/// `grubby --update-kernel=ALL [--args=…] [--remove-args=…]`; below a root other than `/`
/// also `--bls-directory` and `--env` there, so grubby edits the root's entries only.
pub fn grubby_argv(root: &Path, grubby: &str, add: &[String], remove: &[String]) -> Vec<String> {
    let mut argv = vec![
        root.join(grubby).to_string_lossy().into_owned(),
        "--update-kernel=ALL".to_string(),
    ];
    if !add.is_empty() {
        argv.push(format!("--args={}", add.join(" ")));
    }
    if !remove.is_empty() {
        argv.push(format!("--remove-args={}", remove.join(" ")));
    }
    if root != Path::new("/") {
        argv.push(format!("--bls-directory={}", root.join(BLS_DIR).display()));
        argv.push(format!("--env={}", root.join(GRUBENV).display()));
    }
    argv
}

/// Carries out [`HostOp::BootEntries`]: stale check, grubby, then every entry read back.
pub fn execute_boot(
    cmds: &dyn HostCommands,
    root: &Path,
    add: &[Entry],
    remove: &[Entry],
    before: &str,
) -> Result<(), HostWriteError> {
    let name = "boot entries";
    let read = |obs: &mut HostObserved| {
        observe_boot(root, obs).map_err(|err| HostWriteError::Write {
            path: name.into(),
            file: BLS_DIR.into(),
            err,
        })
    };
    let mut obs = HostObserved::default();
    read(&mut obs)?;
    let Some(grubby) = grubby(&obs) else {
        return Err(HostWriteError::Refused {
            path: name.into(),
            why: "grubby is not installed below the root".into(),
        });
    };
    let now = entries_hash(&obs);
    if now != before {
        return Err(HostWriteError::Stale {
            path: name.into(),
            file: BLS_DIR.into(),
            planned: format!("sha256 {before}"),
            now: format!("sha256 {now}"),
        });
    }
    let add_tokens = tokens(add);
    let gone = removed_tokens(add, remove);
    let argv = grubby_argv(root, &grubby, &add_tokens, &gone);
    super::ops::run(cmds, root, name, &argv)?;
    let mut after = HostObserved::default();
    read(&mut after)?;
    for (n, args) in boot_entries(&after) {
        let missing: Vec<&Entry> = add.iter().filter(|e| !has(&args, e)).collect();
        let left: Vec<&String> = gone.iter().filter(|t| args.contains(t)).collect();
        if !missing.is_empty() || !left.is_empty() {
            let mut why = Vec::new();
            if !missing.is_empty() {
                let m: Vec<String> = missing.iter().map(|e| entry_tokens(e).join(" ")).collect();
                why.push(format!("lacks {}", m.join(" ")));
            }
            if !left.is_empty() {
                let l: Vec<&str> = left.iter().map(|s| s.as_str()).collect();
                why.push(format!("still has {}", l.join(" ")));
            }
            return Err(HostWriteError::Command {
                path: name.into(),
                cmd: super::ops::display(root, &argv),
                why: format!("succeeded, but /{BLS_DIR}/{n} {}", why.join(" and ")),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arg: BootArgName, v: &str) -> Entry {
        Entry {
            key: PersistKey::BootArg { arg },
            value: v.into(),
        }
    }

    #[test]
    fn arguments_round_trip_through_entries_and_only_canonical_text_is_accepted() {
        let cpus: CpuSet = "4-7,12-15".parse().unwrap();
        let args = [
            KernelArg::HugePages {
                size: PageSize::ONE_GIB,
                count: PoolCount::Nodes([(0, 2), (1, 2)].into()),
            },
            KernelArg::Isolcpus {
                flags: IsolFlag::ALL.to_vec(),
                cpus: cpus.clone(),
            },
            KernelArg::NohzFull(cpus.clone()),
            KernelArg::IrqAffinity("0,8".parse().unwrap()),
        ];
        for a in &args {
            assert_eq!(KernelArg::from_entry(&a.entry()).as_ref(), Ok(a));
        }
        let reversed: Vec<Entry> = args.iter().rev().map(KernelArg::entry).collect();
        assert_eq!(
            tokens(&reversed).join(" "),
            "default_hugepagesz=1G hugepagesz=1G hugepages=0:2,1:2 isolcpus=managed_irq,domain,4-7,12-15 nohz_full=4-7,12-15 irqaffinity=0,8"
        );
        for bad in [
            entry(BootArgName::Isolcpus, "domain,managed_irq,4-7"),
            entry(BootArgName::Isolcpus, "nohz,4-7"),
            entry(BootArgName::NohzFull, "4-7 init=/bin/sh"),
            entry(BootArgName::NohzFull, "7,4"),
            entry(BootArgName::RcuNocbs, ""),
            entry(BootArgName::Irqaffinity, "0-3,^2"),
        ] {
            assert!(KernelArg::from_entry(&bad).is_err(), "{bad:?}");
            assert!(bad.check(OwnedFileKind::Grub).is_err(), "{bad:?}");
        }
        let pool = |v: &str| Entry {
            key: PersistKey::BootPool {
                size: PageSize::TWO_MIB,
            },
            value: v.into(),
        };
        assert!(KernelArg::from_entry(&pool("0:1,0:2")).is_err());
        assert!(KernelArg::from_entry(&pool("1:2,0:1")).is_err());
        assert!(KernelArg::from_entry(&pool("0:1,1:2")).is_ok());
    }

    #[test]
    fn kernelopts_expand_and_pools_pair_with_their_size() {
        let env =
            "# GRUB Environment Block\nkernelopts=root=/dev/vda ro hugepagesz=2M hugepages=8\n####";
        let a = args_of("$kernelopts quiet", Some(env));
        assert_eq!(
            a,
            [
                "root=/dev/vda",
                "ro",
                "hugepagesz=2M",
                "hugepages=8",
                "quiet"
            ]
        );
        let two = |v: &str| Entry {
            key: PersistKey::BootPool {
                size: PageSize::TWO_MIB,
            },
            value: v.into(),
        };
        assert!(has(&a, &two("8")));
        assert!(!has(&a, &two("9")));
        // A 1G pool also needs default_hugepagesz=1G.
        let one = Entry {
            key: PersistKey::BootPool {
                size: PageSize::ONE_GIB,
            },
            value: "4".into(),
        };
        let b: Vec<String> = ["hugepagesz=1G", "hugepages=4"].map(String::from).to_vec();
        assert!(!has(&b, &one));
    }
}
