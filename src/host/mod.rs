//! Host settings: which files below the root prefix hold them, how to compare, how to change.
//!
//! Invariant: every host setting maps to files below `--root` (kernel files for the runtime
//! value, owned files under /etc for the persisted one) or to a described command;
//! observation ([`observe`]) reads only the files the desired state declares ([`reads`]),
//! planning ([`plan_host`]) is pure over what was read, and the executor ([`execute`]) carries
//! out the planned [`HostOp`]s in order, reading every write back and checking every command.
//!
//! One module per concern: [`sysctl`], [`thp`], [`hugepages`], [`ksm`], [`net`], [`modules`],
//! [`tuned`]; [`persist`] renders the owned files; [`files`] and [`commands`] are the I/O seams.

pub mod commands;
pub mod files;
pub mod hugepages;
pub mod import;
pub mod ksm;
pub mod modules;
pub mod net;
pub mod persist;
pub mod sysctl;
pub mod thp;
pub mod tuned;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use commands::{CmdOutput, HostCommands, RealCommands};
pub use files::{HostFiles, RealFiles};
pub use hugepages::hugepage_file;
pub use thp::THP_DIR;

use crate::desired::HostDesired;
use crate::plan::Effect;
use crate::units::PageSize;

/// How a value file is compared after reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readback {
    /// Whitespace-separated tokens (sysctls: the kernel prints tabs between numbers).
    Tokens,
    /// The bracketed choice of a sysfs selector: `always [madvise] never`.
    Selected,
    /// A page count.
    Count,
}

impl Readback {
    /// The canonical value of a file's content.
    pub fn canonical(self, content: &str) -> String {
        match self {
            Readback::Tokens | Readback::Count => {
                content.split_whitespace().collect::<Vec<_>>().join(" ")
            }
            Readback::Selected => {
                let t = content.trim();
                match (t.find('['), t.find(']')) {
                    (Some(a), Some(b)) if a < b => t[a + 1..b].to_string(),
                    _ => t.to_string(),
                }
            }
        }
    }
}

/// One in-place kernel file write: the file (relative to the root), the value, how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostWrite {
    /// The plan path (`sysctl.vm.swappiness`).
    pub path: String,
    /// File below the root, without a leading `/`.
    pub file: String,
    pub value: String,
    pub readback: Readback,
}

/// An atomic whole-file replacement of a file kvmtune owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileWrite {
    /// The plan paths this write carries out.
    pub paths: Vec<String>,
    /// File below the root, without a leading `/`.
    pub file: String,
    pub content: String,
}

/// What must hold after a command ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Check {
    Nothing,
    /// The file (below the root) reads back this value (tokens).
    FileValue {
        file: String,
        value: String,
    },
    /// The path (below the root) exists.
    Exists {
        file: String,
    },
}

/// An argv element starting with this is a path below the root (`{root}/usr/sbin/tuned-adm`).
pub const ROOT_ARG: &str = "{root}/";

/// A command to run (argv), then a check, then an optional verification command whose
/// output is reported (`tuned-adm verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommandRun {
    pub paths: Vec<String>,
    pub argv: Vec<String>,
    pub check: Check,
    pub verify: Option<Vec<String>>,
}

/// One step of the host action, carried out in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HostOp {
    /// A kernel file write; `reassert` writes re-establish a value that already matched
    /// (after a tuned profile switch, which may change it) and are not plan changes.
    Write {
        write: HostWrite,
        reassert: bool,
    },
    File(FileWrite),
    Run(CommandRun),
}

impl HostOp {
    /// The plan paths this step carries out.
    pub fn paths(&self) -> Vec<String> {
        match self {
            HostOp::Write { write, reassert } => {
                if *reassert {
                    Vec::new()
                } else {
                    vec![write.path.clone()]
                }
            }
            HostOp::File(f) => f.paths.clone(),
            HostOp::Run(r) => r.paths.clone(),
        }
    }

    /// The name used in errors: the first path, or the file.
    fn name(&self) -> String {
        match self {
            HostOp::Write { write, .. } => write.path.clone(),
            HostOp::File(f) => f.paths.first().cloned().unwrap_or(f.file.clone()),
            HostOp::Run(r) => r.paths.first().cloned().unwrap_or(r.argv.join(" ")),
        }
    }
}

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
    for f in r.files {
        let content = files::read_opt(&root.join(&f))?;
        obs.files.insert(f, content);
    }
    for dir in r.dirs {
        let list = files::list_opt(&root.join(&dir))?;
        obs.dirs.insert(dir, list);
    }
    // Second round: files named by what the first round found.
    let mut more = BTreeSet::new();
    modules::reads_after(d, &obs, &mut more);
    tuned::reads_after(d, &obs, &mut more);
    for f in more {
        let content = files::read_opt(&root.join(&f))?;
        obs.files.insert(f, content);
    }
    obs.numa_online = obs.file(NODE_ONLINE).map(str::to_string);
    if needs.meminfo {
        obs.default_hugepage = obs.file(MEMINFO).and_then(meminfo_hugepage);
    }
    Ok(obs)
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

/// Collects the host plan while the concerns add to it.
#[derive(Default)]
pub struct Builder {
    plan: HostPlan,
    /// Commands before the runtime writes (modules, tuned).
    pre: Vec<HostOp>,
    /// Runtime writes: (write, differs).
    runtime: Vec<(HostWrite, bool)>,
    /// After the runtime writes (hugetlbfs mount).
    post: Vec<HostOp>,
    /// Whether a tuned profile switch is planned.
    tuned_switch: bool,
}

impl Builder {
    /// A runtime kernel value: an issue when its file is missing, a change when it differs.
    pub fn runtime(&mut self, obs: &HostObserved, key: Vec<String>, w: HostWrite, missing: String) {
        match obs.file(&w.file) {
            None => self.issue(key, missing),
            Some(content) => {
                let before = w.readback.canonical(content);
                let differs = before != w.readback.canonical(&w.value);
                if differs {
                    self.plan.changes.push(HostChange {
                        path: w.path.clone(),
                        before: Some(before),
                        after: Some(w.value.clone()),
                        effect: Effect::Live,
                    });
                }
                self.runtime.push((w, differs));
            }
        }
    }

    /// A runtime write that is part of another change (sriov_numvfs through 0).
    pub fn extra_write(&mut self, w: HostWrite) {
        self.runtime.push((w, true));
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

    fn finish(mut self, persisted: Vec<HostOp>) -> HostPlan {
        let mut ops = std::mem::take(&mut self.pre);
        for (w, differs) in self.runtime {
            if differs || self.tuned_switch {
                ops.push(HostOp::Write {
                    write: w,
                    reassert: !differs,
                });
            }
        }
        ops.extend(self.post);
        ops.extend(persisted);
        self.plan.ops = ops;
        self.plan
    }
}

/// Pure: which host settings differ, how to change them, and which cannot be planned here.
/// Order of the steps: modules, tuned, runtime values (sysctl, THP, pools, KSM, NICs),
/// hugetlbfs, then the owned files under /etc.
pub fn plan_host(d: &HostDesired, obs: &HostObserved) -> HostPlan {
    let mut b = Builder::default();
    let mut sysctl_file = persist::OwnedFile::new(persist::SYSCTL_CONF, persist::Syntax::Sysctl);
    let mut tmpfiles = persist::OwnedFile::new(persist::TMPFILES_CONF, persist::Syntax::Tmpfiles);
    let mut modules_file = persist::OwnedFile::new(persist::MODULES_CONF, persist::Syntax::Modules);
    let mut grub = persist::OwnedFile::new(persist::GRUB_CFG, persist::Syntax::Grub);

    modules::plan(d, obs, &mut b, &mut modules_file);
    b.tuned_switch = tuned::plan(d, obs, &mut b);
    sysctl::plan(d, obs, &mut b, &mut sysctl_file);
    thp::plan(d, obs, &mut b, &mut tmpfiles);
    hugepages::plan(d, obs, &mut b, &mut tmpfiles, &mut grub);
    ksm::plan(d, obs, &mut b, &mut tmpfiles);
    net::plan(d, obs, &mut b);

    let mut persisted = Vec::new();
    if !d.runtime_only {
        for f in [&modules_file, &sysctl_file, &tmpfiles, &grub] {
            let (changes, op) = f.plan(obs.file(f.file));
            for c in changes {
                b.change(c);
            }
            persisted.extend(op);
        }
    }
    b.finish(persisted)
}

/// Files of the owned-file kind that persistence may write (read by observation).
pub fn owned_files(d: &HostDesired) -> Vec<&'static str> {
    if d.runtime_only {
        return Vec::new();
    }
    let mut v = Vec::new();
    if !d.modules.is_empty() {
        v.push(persist::MODULES_CONF);
    }
    if !d.sysctl.is_empty() {
        v.push(persist::SYSCTL_CONF);
    }
    if d.thp_enabled.is_some()
        || d.thp_defrag.is_some()
        || !d.ksm.is_empty()
        || d.hugepages.len() > d.hugepages_boot.len()
    {
        v.push(persist::TMPFILES_CONF);
    }
    if !d.hugepages_boot.is_empty() {
        v.push(persist::GRUB_CFG);
    }
    v
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
}

/// Why a host step failed.
#[derive(Debug, thiserror::Error)]
pub enum HostWriteError {
    #[error("host {path}: writing /{file}: {err}")]
    Write {
        path: String,
        file: String,
        err: std::io::Error,
    },
    #[error("host {path}: /{file} reads back `{got}` after writing `{wanted}`")]
    Mismatch {
        path: String,
        file: String,
        wanted: String,
        got: String,
    },
    #[error(
        "host {path}: huge page pool /{file}: requested {wanted} pages, the kernel allocated {got}{hint}"
    )]
    Shortfall {
        path: String,
        file: String,
        wanted: String,
        got: String,
        hint: String,
    },
    #[error("host {path}: `{cmd}` {why}")]
    Command {
        path: String,
        cmd: String,
        why: String,
    },
}

/// Writes one value (in place, like `sysctl -w`) and reads it back.
pub fn write(files: &dyn HostFiles, root: &Path, w: &HostWrite) -> Result<(), HostWriteError> {
    let file: PathBuf = root.join(&w.file);
    let err = |err| HostWriteError::Write {
        path: w.path.clone(),
        file: w.file.clone(),
        err,
    };
    files.write(&file, &format!("{}\n", w.value)).map_err(err)?;
    let got = files.read(&file).map_err(err)?;
    let got = w.readback.canonical(&got);
    if got != w.readback.canonical(&w.value) {
        let (path, file, wanted) = (w.path.clone(), w.file.clone(), w.value.clone());
        return Err(if w.readback == Readback::Count {
            HostWriteError::Shortfall {
                hint: hugepages::shortfall_hint(&file, &wanted),
                path,
                file,
                wanted,
                got,
            }
        } else {
            HostWriteError::Mismatch {
                path,
                file,
                wanted,
                got,
            }
        });
    }
    Ok(())
}

/// Carries out one step. Returns what is worth reporting (`tuned-adm verify`'s verdict).
pub fn execute(
    files: &dyn HostFiles,
    cmds: &dyn HostCommands,
    root: &Path,
    op: &HostOp,
) -> Result<Option<String>, HostWriteError> {
    match op {
        HostOp::Write { write: w, .. } => write(files, root, w).map(|_| None),
        HostOp::File(f) => {
            let path = root.join(&f.file);
            let err = |err| HostWriteError::Write {
                path: op.name(),
                file: f.file.clone(),
                err,
            };
            files.replace(&path, &f.content).map_err(err)?;
            let got = files.read(&path).map_err(err)?;
            if got != f.content {
                return Err(HostWriteError::Mismatch {
                    path: op.name(),
                    file: f.file.clone(),
                    wanted: "kvmtune's content".into(),
                    got: "other content".into(),
                });
            }
            Ok(None)
        }
        HostOp::Run(r) => {
            let cmd = display_argv(root, &r.argv);
            let fail = |why: String| HostWriteError::Command {
                path: op.name(),
                cmd: cmd.clone(),
                why,
            };
            let out = cmds
                .run(&expand(root, &r.argv))
                .map_err(|e| fail(format!("could not be run: {e}")))?;
            if !out.ok() {
                return Err(fail(format!(
                    "failed ({}): {}",
                    exit_text(&out),
                    out.text().replace('\n', "; ")
                )));
            }
            match &r.check {
                Check::Nothing => {}
                Check::FileValue { file, value } => {
                    let got = files
                        .read(&root.join(file))
                        .map(|c| Readback::Tokens.canonical(&c))
                        .unwrap_or_default();
                    if got != Readback::Tokens.canonical(value) {
                        return Err(fail(format!(
                            "succeeded, but /{file} reads `{got}`, not `{value}`"
                        )));
                    }
                }
                Check::Exists { file } => {
                    if !root.join(file).exists() {
                        return Err(fail(format!("succeeded, but /{file} does not exist")));
                    }
                }
            }
            let Some(v) = &r.verify else {
                return Ok(None);
            };
            let vcmd = display_argv(root, v);
            let out = cmds
                .run(&expand(root, v))
                .map_err(|e| fail(format!("ran, but `{vcmd}` could not be run: {e}")))?;
            let text = out.text().replace('\n', "; ");
            if out.ok() {
                Ok(Some(format!("{}: `{vcmd}`: {text}", op.name())))
            } else {
                Err(fail(format!(
                    "ran, but `{vcmd}` failed ({}): {text}",
                    exit_text(&out)
                )))
            }
        }
    }
}

fn exit_text(o: &CmdOutput) -> String {
    match o.code {
        Some(c) => format!("exit {c}"),
        None => "killed by a signal".into(),
    }
}

/// argv with `{root}/` expanded.
pub fn expand(root: &Path, argv: &[String]) -> Vec<String> {
    argv.iter()
        .map(|a| match a.strip_prefix(ROOT_ARG) {
            Some(rest) => root.join(rest).to_string_lossy().into_owned(),
            None => a.clone(),
        })
        .collect()
}

/// argv for messages: `{root}/` shown as `/`.
fn display_argv(_root: &Path, argv: &[String]) -> String {
    argv.iter()
        .map(|a| match a.strip_prefix(ROOT_ARG) {
            Some(rest) => format!("/{rest}"),
            None => a.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(
            Readback::Selected.canonical("always [madvise] never\n"),
            "madvise"
        );
        assert_eq!(Readback::Selected.canonical("never\n"), "never");
        assert_eq!(
            Readback::Tokens.canonical("4096\t16384\t4194304\n"),
            "4096 16384 4194304"
        );
        assert_eq!(Readback::Count.canonical("512\n"), "512");
    }
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
        let d = crate::config::load_str(
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
        assert!(matches!(&p.ops[0], HostOp::Run(r) if r.argv[1..] == ["profile", "virtual-host"]));
        let writes: Vec<(&str, bool)> = p.ops[1..]
            .iter()
            .map(|op| match op {
                HostOp::Write { write, reassert } => (write.path.as_str(), *reassert),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            writes,
            [
                ("sysctl.vm.dirty_ratio", true),
                ("sysctl.vm.swappiness", false)
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
