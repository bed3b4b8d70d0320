//! Files under /etc that kvmtune owns, so runtime values survive a reboot.
//!
//! Invariant: each owned file is rendered entirely from the desired state (header saying
//! kvmtune owns it, then entries in a fixed order) and is rewritten atomically as a whole;
//! its drift is planned entry by entry (`<key> (persisted)`, `absent → value`), plus one
//! whole-file change when the entries match but the bytes do not (hand edits), so the plan
//! is empty exactly when the file on disk equals what kvmtune would write.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kernel_args::{self, BootArgName, KernelArg};
use super::ops::{content_hash, HostOp};
use super::systemd::{self, ManagerKey};
use super::HostChange;
use crate::model::keys::check_value;
use crate::model::keys::TUNED_CHILD;
use crate::model::{
    Effect, HostKey, KsmKnob, ModuleName, OwnedFileKind, SysctlKey, TunedVariable, TunedVmOption,
};
use crate::units::PageSize;

pub const SYSCTL_CONF: &str = "etc/sysctl.d/90-kvmtune.conf";
pub const TMPFILES_CONF: &str = "etc/tmpfiles.d/90-kvmtune.conf";
pub const MODULES_CONF: &str = "etc/modules-load.d/90-kvmtune.conf";
pub const GRUB_CFG: &str = "etc/default/grub.d/90-kvmtune.cfg";
pub const SYSTEMD_CONF: &str = "etc/systemd/system.conf.d/90-kvmtune.conf";

const OWNED: &str = "# Written by kvmtune, which owns this file and rewrites it whole on every apply.\n# Do not edit: change kvmtune's configuration instead.\n";

/// The syntax of an owned file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// sysctl.d: `key = value`, keys sorted.
    Sysctl,
    /// tmpfiles.d: `w <path> - - - - <value>`, in apply order.
    Tmpfiles,
    /// modules-load.d: one module per line, sorted.
    Modules,
    /// A grub defaults drop-in appending kvmtune's kernel arguments to the command line.
    Grub,
    /// A systemd system.conf.d drop-in: `[Manager]` settings.
    Systemd,
    /// A tuned profile (`tuned.conf`): `[main] include=`, then `[variables]`, `[sysctl]`, `[vm]`.
    Tuned,
}

impl Syntax {
    fn of(kind: OwnedFileKind) -> Syntax {
        match kind {
            OwnedFileKind::Sysctl => Syntax::Sysctl,
            OwnedFileKind::Tmpfiles => Syntax::Tmpfiles,
            OwnedFileKind::Modules => Syntax::Modules,
            OwnedFileKind::Grub => Syntax::Grub,
            OwnedFileKind::Systemd => Syntax::Systemd,
            OwnedFileKind::TunedProfile => Syntax::Tuned,
        }
    }
}

/// What one line of an owned file persists: a typed key, never a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PersistKey {
    /// A sysctl.d line.
    Sysctl { key: SysctlKey },
    /// A tmpfiles.d `w` line writing the key's kernel file at boot.
    Value { key: HostKey },
    /// A modules-load.d line.
    Module { module: ModuleName },
    /// A huge page pool reserved on the kernel command line.
    BootPool { size: PageSize },
    /// Another kernel command line argument kvmtune owns (CPU isolation).
    BootArg { arg: BootArgName },
    /// A `[Manager]` setting of systemd's system.conf.
    Manager { key: ManagerKey },
    /// The child tuned profile's `[main] include=`: the value is the declared profile.
    TunedInclude,
    /// A `[sysctl]` line of the child tuned profile.
    TunedSysctl { key: SysctlKey },
    /// A `[vm]` line of the child tuned profile.
    TunedVm { option: TunedVmOption },
    /// A `[variables]` line of the child tuned profile.
    TunedVariable { name: TunedVariable },
}

/// The child tuned profile's sections, in file order.
const TUNED_SECTIONS: [&str; 4] = ["main", "variables", "sysctl", "vm"];

/// One persisted value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub key: PersistKey,
    pub value: String,
}

impl Entry {
    /// The key as the file spells it: sysctl name, /sys path, module name, or page size.
    pub fn file_key(&self) -> String {
        match &self.key {
            PersistKey::Sysctl { key } => key.to_string(),
            PersistKey::Value { key } => format!("/{}", key.file()),
            PersistKey::Module { module } => module.to_string(),
            PersistKey::BootPool { size } => size.to_string(),
            PersistKey::BootArg { arg } => arg.as_str().to_string(),
            PersistKey::Manager { key } => key.as_str().to_string(),
            PersistKey::TunedInclude => "main.include".into(),
            PersistKey::TunedSysctl { key } => format!("sysctl.{key}"),
            PersistKey::TunedVm { option } => format!("vm.{}", option.as_str()),
            PersistKey::TunedVariable { name } => format!("variables.{}", name.as_str()),
        }
    }

    /// The child tuned profile's section and option this entry is.
    fn tuned_line(&self) -> Option<(&'static str, String)> {
        let k = self.file_key();
        let (sec, opt) = k.split_once('.')?;
        let sec = TUNED_SECTIONS.into_iter().find(|s| *s == sec)?;
        Some((sec, opt.to_string()))
    }

    /// The plan path (`sysctl.vm.swappiness (persisted)`).
    pub fn label(&self) -> String {
        match &self.key {
            PersistKey::Sysctl { key } => format!("sysctl.{key} (persisted)"),
            PersistKey::Value { key } => format!("{} (persisted)", key.path()),
            PersistKey::Module { module } => format!("modules.{module} (persisted)"),
            PersistKey::BootPool { size } => format!("hugepages.{size} (boot)"),
            PersistKey::BootArg { arg } => {
                format!("cpu_pool.isolate.kernel.{} (boot)", arg.as_str())
            }
            PersistKey::Manager { key } => {
                format!("cpu_pool.isolate.systemd.{} (persisted)", key.as_str())
            }
            PersistKey::TunedInclude => format!("tuned.{TUNED_CHILD}.include"),
            _ => format!("tuned.{TUNED_CHILD}.{}", self.file_key()),
        }
    }

    /// The entry belongs in `kind`'s file and its value is one line of what that file takes.
    pub fn check(&self, kind: OwnedFileKind) -> Result<(), String> {
        let fits = matches!(
            (&self.key, kind),
            (PersistKey::Sysctl { .. }, OwnedFileKind::Sysctl)
                | (PersistKey::Value { .. }, OwnedFileKind::Tmpfiles)
                | (PersistKey::Module { .. }, OwnedFileKind::Modules)
                | (PersistKey::BootPool { .. }, OwnedFileKind::Grub)
                | (PersistKey::BootArg { .. }, OwnedFileKind::Grub)
                | (PersistKey::Manager { .. }, OwnedFileKind::Systemd)
                | (
                    PersistKey::TunedInclude
                        | PersistKey::TunedSysctl { .. }
                        | PersistKey::TunedVm { .. }
                        | PersistKey::TunedVariable { .. },
                    OwnedFileKind::TunedProfile
                )
        );
        if !fits {
            return Err(format!(
                "{} does not belong in /{}",
                self.label(),
                kind.file()
            ));
        }
        check_value(&self.value)?;
        let ok =
            match &self.key {
                PersistKey::Module { .. } => self.value == "loaded",
                PersistKey::BootPool { .. } | PersistKey::BootArg { .. } => {
                    KernelArg::from_entry(self).is_ok()
                }
                PersistKey::Manager { .. } => systemd::parse_affinity(&self.value)
                    .is_some_and(|c| c.to_string() == self.value),
                PersistKey::Value {
                    key: HostKey::Sysctl { .. },
                } => false,
                PersistKey::TunedInclude => crate::model::ProfileName::new(&self.value)
                    .is_ok_and(|p| p.as_str() != TUNED_CHILD),
                PersistKey::TunedVm { option } => match option.knob() {
                    crate::model::ThpKnob::Enabled => {
                        ["always", "madvise", "never"].contains(&self.value.as_str())
                    }
                    crate::model::ThpKnob::Defrag => {
                        ["always", "defer", "defer+madvise", "madvise", "never"]
                            .contains(&self.value.as_str())
                    }
                },
                PersistKey::TunedVariable { .. } => {
                    self.value.parse::<crate::cpuset::CpuSet>().is_ok()
                        && self
                            .value
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
                }
                // tuned reads `#` after a blank as a comment, `<`/`>` first as a modifier and
                // `${...}` as a variable or a function it runs.
                PersistKey::TunedSysctl { .. } => {
                    !self.value.is_empty()
                        && !self.value.contains(['"', '\\', '$', '`', '#'])
                        && !self.value.starts_with(['<', '>'])
                }
                _ => !self.value.contains(['"', '\\', '$', '`']),
            };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{}: `{}` is not a value kvmtune writes there",
                self.label(),
                self.value.escape_debug()
            ))
        }
    }
}

/// The planner's order of tmpfiles.d lines: THP, pools (global before nodes), KSM (the
/// merge policy before merging starts).
fn boot_order(k: &HostKey) -> (u8, u8, u32, u64) {
    match k {
        HostKey::Thp { knob, .. } => (0, *knob as u8, 0, 0),
        HostKey::HugePagePool { size, node } => {
            (1, node.is_some() as u8, node.unwrap_or(0), size.kib())
        }
        HostKey::Ksm { knob } => {
            let rank = [
                KsmKnob::MergeAcrossNodes,
                KsmKnob::SleepMillisecs,
                KsmKnob::PagesToScan,
                KsmKnob::Run,
            ]
            .iter()
            .position(|x| x == knob)
            .unwrap_or(0);
            (2, rank as u8, 0, 0)
        }
        HostKey::IrqDefaultAffinity => (3, 0, 0, 0),
        HostKey::WorkqueueCpumask => (3, 1, 0, 0),
        _ => (4, 0, 0, 0),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFile {
    pub kind: OwnedFileKind,
    pub file: &'static str,
    pub syntax: Syntax,
    pub entries: Vec<Entry>,
}

impl OwnedFile {
    pub fn new(kind: OwnedFileKind) -> OwnedFile {
        OwnedFile::with_entries(kind, Vec::new())
    }

    pub fn with_entries(kind: OwnedFileKind, entries: Vec<Entry>) -> OwnedFile {
        OwnedFile {
            kind,
            file: kind.file(),
            syntax: Syntax::of(kind),
            entries,
        }
    }

    pub fn push(&mut self, key: PersistKey, value: String) {
        self.entries.push(Entry { key, value });
    }

    /// The file's full content.
    pub fn render(&self) -> String {
        let mut out = String::from(OWNED);
        let mut entries = self.entries.clone();
        match self.syntax {
            Syntax::Sysctl => {
                out.push_str(
                    "# Applied at boot by systemd-sysctl.service (or procps) from /etc/sysctl.d.\n",
                );
                entries.sort_by_key(Entry::file_key);
                for e in &entries {
                    out.push_str(&format!("{} = {}\n", e.file_key(), e.value));
                }
            }
            Syntax::Tmpfiles => {
                out.push_str("# Applied at boot by systemd-tmpfiles-setup.service: `w` writes the value to the file.\n");
                for e in &entries {
                    out.push_str(&format!("w {} - - - - {}\n", e.file_key(), e.value));
                }
            }
            Syntax::Modules => {
                out.push_str("# Loaded at boot by systemd-modules-load.service.\n");
                entries.sort_by_key(Entry::file_key);
                for e in &entries {
                    out.push_str(&format!("{}\n", e.file_key()));
                }
            }
            Syntax::Grub => {
                let pools = entries
                    .iter()
                    .any(|e| matches!(e.key, PersistKey::BootPool { .. }));
                let isolation = entries
                    .iter()
                    .any(|e| matches!(e.key, PersistKey::BootArg { .. }));
                out.push_str(match (pools, isolation) {
                    (true, false) => "# Huge pages reserved at boot on the kernel command line.",
                    (false, true) => "# CPU isolation on the kernel command line.",
                    (true, true) => "# Huge pages reserved at boot and CPU isolation on the kernel command line.",
                    // Rolled back to nothing: no line at all, not an empty append.
                    (false, false) => "# No kernel arguments (kvmtune declares none).",
                });
                out.push_str(" kvmtune never runs\n# update-grub: run it (or your bootloader's equivalent) yourself, then reboot.\n");
                if !entries.is_empty() {
                    out.push_str(&format!(
                        "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX {}\"\n",
                        kernel_args::tokens(&entries).join(" ")
                    ));
                }
            }
            Syntax::Systemd => {
                out.push_str("# Read by systemd (PID 1) at boot; `systemctl daemon-reexec` applies it now.\n# kvmtune runs neither.\n[Manager]\n");
                for e in &entries {
                    let v = systemd::parse_affinity(&e.value)
                        .map(|c| systemd::affinity_text(&c))
                        .unwrap_or_default();
                    out.push_str(&format!("{}={v}\n", e.file_key()));
                }
            }
            Syntax::Tuned => render_tuned(&mut out, &entries),
        }
        out
    }

    /// Key → value as found in a file of this syntax (comments and unknown lines ignored).
    pub fn parse(&self, content: &str) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut section = String::new();
        for line in content.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
                continue;
            }
            match self.syntax {
                Syntax::Sysctl => {
                    if let Some((k, v)) = l.split_once('=') {
                        let k = k.trim().trim_start_matches('-').replace('/', ".");
                        let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
                        m.insert(k, v);
                    }
                }
                Syntax::Tmpfiles => {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    if f.len() >= 7 && f[0].starts_with('w') {
                        m.insert(f[1].to_string(), f[6..].join(" "));
                    }
                }
                Syntax::Modules => {
                    m.insert(l.replace('-', "_"), "loaded".into());
                }
                Syntax::Tuned => return parse_tuned(content),
                Syntax::Grub => {
                    let Some(rest) = l.strip_prefix("GRUB_CMDLINE_LINUX=") else {
                        continue;
                    };
                    let mut size: Option<String> = None;
                    for tok in rest.trim_matches('"').split_whitespace() {
                        if let Some(s) = tok.strip_prefix("hugepagesz=") {
                            size = Some(s.to_string());
                        } else if let Some(n) = tok.strip_prefix("hugepages=") {
                            if let Some(s) = size.take() {
                                m.insert(s, n.to_string());
                            }
                        } else if let Some((k, v)) = tok.split_once('=') {
                            if BootArgName::from_name(k).is_some() {
                                m.insert(k.to_string(), v.to_string());
                            }
                        }
                    }
                }
                Syntax::Systemd => {
                    if l.starts_with('[') {
                        section = l.to_string();
                        continue;
                    }
                    let Some((k, v)) = l.split_once('=') else {
                        continue;
                    };
                    let (k, v) = (k.trim(), v.trim());
                    if section != "[Manager]" || ManagerKey::from_name(k).is_none() {
                        continue;
                    }
                    // Repeated assignments add up; an empty one resets (systemd.conf(5)).
                    let prev = m.remove(k).and_then(|p| systemd::parse_affinity(&p));
                    let value = match (prev, systemd::parse_affinity(v)) {
                        (_, None) if v.is_empty() => None,
                        (Some(p), Some(c)) => Some(p.union(&c).to_string()),
                        (None, Some(c)) => Some(c.to_string()),
                        (_, None) => Some(v.to_string()),
                    };
                    if let Some(value) = value {
                        m.insert(k.to_string(), value);
                    }
                }
            }
        }
        m
    }

    /// The typed entries of a file of this kind as kvmtune wrote it; lines that are not
    /// kvmtune's (unknown keys, paths that are no kvmtune key) are left out.
    pub fn entries_of(kind: OwnedFileKind, content: &str) -> Vec<Entry> {
        let f = OwnedFile::new(kind);
        let mut out = Vec::new();
        for (k, value) in f.parse(content) {
            let key = match kind {
                OwnedFileKind::Sysctl => SysctlKey::new(&k)
                    .ok()
                    .map(|key| PersistKey::Sysctl { key }),
                OwnedFileKind::Tmpfiles => {
                    HostKey::from_file(&k).map(|key| PersistKey::Value { key })
                }
                OwnedFileKind::Modules => ModuleName::new(&k)
                    .ok()
                    .map(|module| PersistKey::Module { module }),
                OwnedFileKind::Grub => match BootArgName::from_name(&k) {
                    Some(arg) => Some(PersistKey::BootArg { arg }),
                    None => k
                        .parse::<PageSize>()
                        .ok()
                        .map(|size| PersistKey::BootPool { size }),
                },
                OwnedFileKind::Systemd => {
                    ManagerKey::from_name(&k).map(|key| PersistKey::Manager { key })
                }
                OwnedFileKind::TunedProfile => tuned_key(&k),
            };
            if let Some(key) = key {
                let e = Entry { key, value };
                if e.check(kind).is_ok() {
                    out.push(e);
                }
            }
        }
        // tmpfiles.d lines run in order: the order the planner writes them in.
        out.sort_by_key(|e| match &e.key {
            PersistKey::Value { key } => boot_order(key),
            _ => (0, 0, 0, 0),
        });
        if kind == OwnedFileKind::TunedProfile {
            out.sort_by_key(tuned_order);
        }
        out
    }

    fn value_of(&self, e: &Entry) -> String {
        match self.syntax {
            Syntax::Modules => "loaded".into(),
            _ => e.value.clone(),
        }
    }

    fn label_for_unknown(&self, key: &str) -> String {
        match self.syntax {
            Syntax::Sysctl => format!("sysctl.{key} (persisted)"),
            Syntax::Tmpfiles => match HostKey::from_file(key) {
                Some(k) => format!("{} (persisted)", k.path()),
                None => format!("{key} (persisted)"),
            },
            Syntax::Modules => format!("modules.{key} (persisted)"),
            Syntax::Grub => match BootArgName::from_name(key) {
                Some(a) => format!("cpu_pool.isolate.kernel.{} (boot)", a.as_str()),
                None => format!("hugepages.{key} (boot)"),
            },
            Syntax::Systemd => format!("cpu_pool.isolate.systemd.{key} (persisted)"),
            Syntax::Tuned => format!("tuned.{TUNED_CHILD}.{key}"),
        }
    }

    /// Pure: the changes between `current` (the file's content, `None` when absent) and what
    /// kvmtune would write, and the whole-file write that fixes them.
    pub fn plan(&self, current: Option<&str>) -> (Vec<HostChange>, Option<HostOp>) {
        if self.entries.is_empty() {
            return (Vec::new(), None);
        }
        self.plan_forced(current)
    }

    /// [`OwnedFile::plan`], writing the file even when it has no entries (it then declares
    /// nothing: rollback of a file that did not exist, since kvmtune never deletes files).
    pub fn plan_forced(&self, current: Option<&str>) -> (Vec<HostChange>, Option<HostOp>) {
        let content = self.render();
        if current == Some(content.as_str()) {
            return (Vec::new(), None);
        }
        let effect = if matches!(self.syntax, Syntax::Grub | Syntax::Systemd) {
            Effect::Reboot
        } else {
            Effect::Live
        };
        let mut have = current.map(|c| self.parse(c)).unwrap_or_default();
        let mut changes = Vec::new();
        for e in &self.entries {
            let want = self.value_of(e);
            let before = have.remove(&e.file_key());
            if before.as_deref() != Some(want.as_str()) {
                changes.push(HostChange {
                    path: e.label(),
                    before,
                    after: Some(e.value.clone()),
                    effect,
                });
            }
        }
        for (k, v) in have {
            changes.push(HostChange {
                path: self.label_for_unknown(&k),
                before: Some(v),
                after: None,
                effect,
            });
        }
        if changes.is_empty() {
            changes.push(HostChange {
                path: format!("/{} (persisted)", self.file),
                before: Some("edited by hand".into()),
                after: Some("kvmtune's content".into()),
                effect,
            });
        }
        let op = HostOp::OwnedFile {
            file: self.kind,
            entries: self.entries.clone(),
            before: current.map(content_hash),
            labels: changes.iter().map(|c| c.path.clone()).collect(),
        };
        (changes, Some(op))
    }
}

/// The child tuned profile's order: include, variables, sysctls (sorted), vm options.
fn tuned_order(e: &Entry) -> (usize, String) {
    let (sec, opt) = e.tuned_line().unwrap_or(("", String::new()));
    let rank = TUNED_SECTIONS.iter().position(|s| *s == sec).unwrap_or(9);
    (rank, opt)
}

fn render_tuned(out: &mut String, entries: &[Entry]) {
    let mut entries = entries.to_vec();
    entries.sort_by_key(tuned_order);
    let include = entries
        .iter()
        .find(|e| e.key == PersistKey::TunedInclude)
        .map(|e| e.value.clone());
    out.push_str("# A tuned child profile: tuned applies the included profile with the values below\n# in its place, so `tuned-adm verify` checks what kvmtune's configuration declares.\n");
    out.push_str("\n[main]\n");
    match &include {
        Some(p) => out.push_str(&format!(
            "summary=kvmtune: {p} with the values kvmtune's configuration declares\n"
        )),
        None => out.push_str("summary=kvmtune: declares nothing\n"),
    }
    let mut section = "main";
    for e in &entries {
        let Some((sec, opt)) = e.tuned_line() else {
            continue;
        };
        if sec != section {
            out.push_str(&format!("\n[{sec}]\n"));
            section = sec;
        }
        out.push_str(&format!("{opt}={}\n", e.value));
    }
}

/// `section.option` → value for the lines a child profile of kvmtune's has (an unreadable
/// file has none: the plan then rewrites it whole).
fn parse_tuned(content: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let Ok(conf) = super::tuned_conf::parse(TUNED_CHILD, content) else {
        return m;
    };
    for s in &conf.sections {
        for o in &s.options {
            let k = format!("{}.{}", s.name, o.key);
            if tuned_key(&k).is_some() {
                m.insert(k, o.value.clone());
            }
        }
    }
    m
}

/// The typed key of a child profile's `section.option`.
fn tuned_key(k: &str) -> Option<PersistKey> {
    let (sec, opt) = k.split_once('.')?;
    match sec {
        "main" if opt == "include" => Some(PersistKey::TunedInclude),
        "sysctl" => SysctlKey::new(opt)
            .ok()
            .map(|key| PersistKey::TunedSysctl { key }),
        "vm" => TunedVmOption::ALL
            .into_iter()
            .find(|o| o.as_str() == opt)
            .map(|option| PersistKey::TunedVm { option }),
        "variables" => {
            (opt == TunedVariable::IsolatedCores.as_str()).then_some(PersistKey::TunedVariable {
                name: TunedVariable::IsolatedCores,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_file_is_sorted_and_round_trips() {
        let mut f = OwnedFile::new(OwnedFileKind::Sysctl);
        let k = |s: &str| PersistKey::Sysctl {
            key: SysctlKey::new(s).unwrap(),
        };
        f.push(k("vm.swappiness"), "10".into());
        f.push(k("kernel.x"), "1 2".into());
        let text = f.render();
        assert!(text.starts_with("# Written by kvmtune"));
        assert!(
            text.ends_with("kernel.x = 1 2\nvm.swappiness = 10\n"),
            "{text}"
        );
        assert_eq!(f.parse(&text).len(), 2);
        assert_eq!(f.plan(Some(&text)), (Vec::new(), None));
        let (c, op) = f.plan(None);
        assert_eq!(c.len(), 2);
        assert!(op.is_some());
        // Hand edit that keeps the values: one whole-file change.
        let (c, _) = f.plan(Some(&text.replace("# Do not edit", "# edited")));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].path, "/etc/sysctl.d/90-kvmtune.conf (persisted)");
    }

    #[test]
    fn grub_drop_in_parses_its_own_output() {
        let mut f = OwnedFile::new(OwnedFileKind::Grub);
        f.push(
            PersistKey::BootPool {
                size: PageSize::ONE_GIB,
            },
            "4".into(),
        );
        let text = f.render();
        assert!(text.contains("GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX default_hugepagesz=1G hugepagesz=1G hugepages=4\""), "{text}");
        assert_eq!(f.parse(&text).get("1G").map(String::as_str), Some("4"));
        let (c, _) = f.plan(None);
        assert_eq!(c[0].effect, Effect::Reboot);
    }
}
