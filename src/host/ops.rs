//! The host steps a plan carries, and the executor that carries them out.
//!
//! Invariant: a [`HostOp`] names typed keys only; every path (below the root) and every argv
//! is derived here from the key, never read from the op. Each step first checks that the
//! live value still equals what planning saw (`before`: the stale check; a value that already
//! is the planned one also passes, as when a tuned profile switch earlier in the plan set it),
//! then writes, then reads back and compares with the planned value.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::commands::{CmdOutput, HostCommands};
use super::files::HostFiles;
use super::irqbalance::IrqbalanceFile;
use super::persist::{Entry, OwnedFile};
use super::threads::ThreadRef;
use crate::cpuset::CpuSet;
use crate::model::keys::check_value;
use crate::model::{HostKey, ModuleName, OwnedFileKind, ProfileName, Readback};

pub const TUNED_ADM: &str = "usr/sbin/tuned-adm";
pub const TUNED_ACTIVE: &str = "etc/tuned/active_profile";
/// Where kvmtune mounts hugetlbfs when guests need it and none is mounted (systemd's
/// dev-hugepages.mount uses the same place at boot).
pub const HUGETLBFS_DIR: &str = "dev/hugepages";

/// One step of the host action, carried out in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HostOp {
    /// Write `value` to the key's kernel file. `before` is the value planning read (checked
    /// before writing); `None` only for `reassert` writes, which re-establish a value that
    /// already matched after a tuned profile switch (which may change it) and are not changes.
    Write {
        key: HostKey,
        before: Option<String>,
        value: String,
        reassert: bool,
    },
    /// `tuned-adm profile <profile>` (the root's tuned-adm), then `tuned-adm verify`.
    Tuned {
        before: Option<String>,
        profile: ProfileName,
    },
    /// `modprobe <module>`; `/sys/module/<module>` must exist afterwards.
    LoadModule { module: ModuleName },
    /// `mkdir -p <root>/dev/hugepages` and `mount -t hugetlbfs hugetlbfs <root>/dev/hugepages`.
    MountHugetlbfs,
    /// Replace an owned file whole with the rendering of `entries`. `before` is the SHA-256
    /// of the content planning read (`None`: the file did not exist); `labels` are the plan
    /// paths this write carries out.
    OwnedFile {
        file: OwnedFileKind,
        entries: Vec<Entry>,
        before: Option<String>,
        labels: Vec<String>,
    },
    /// Set `IRQBALANCE_BANNED_CPULIST` in the distribution's irqbalance file, editing only
    /// that key. `before` is the SHA-256 of the content planning read (`None`: absent).
    /// `banned: None` (rollback only) removes the key's lines.
    Irqbalance {
        file: IrqbalanceFile,
        banned: Option<CpuSet>,
        before: Option<String>,
    },
    /// `systemctl is-active irqbalance.service`, and when it is, `systemctl restart` it (the
    /// root's systemctl; planned only after its file changed).
    RestartIrqbalance,
    /// Move the planned threads of process `pid` onto `cpus` (`sched_setaffinity`, the running
    /// kernel only: see [`super::threads`]).
    MoveThreads {
        pid: u32,
        comm: String,
        cpus: CpuSet,
        threads: Vec<ThreadRef>,
    },
    /// `grubby --update-kernel=ALL --args=<add> --remove-args=<remove>` (the root's grubby),
    /// then every BLS entry read back. `add` are the drop-in's entries (every kernel argument
    /// kvmtune declares), `remove` those the drop-in held that are no longer declared;
    /// `before` is the SHA-256 of the boot entries as planning read them.
    BootEntries {
        add: Vec<Entry>,
        remove: Vec<Entry>,
        before: String,
        labels: Vec<String>,
    },
}

impl HostOp {
    /// The plan paths this step carries out.
    pub fn paths(&self) -> Vec<String> {
        match self {
            HostOp::Write { reassert: true, .. } => Vec::new(),
            HostOp::Write { key, .. } => vec![key.path()],
            HostOp::Tuned { .. } => vec!["tuned.profile".into()],
            HostOp::LoadModule { module } => vec![format!("modules.{module}")],
            HostOp::MountHugetlbfs => vec!["hugetlbfs".into()],
            HostOp::OwnedFile { labels, .. } | HostOp::BootEntries { labels, .. } => labels.clone(),
            HostOp::Irqbalance { .. } => vec![super::irqbalance::path()],
            HostOp::RestartIrqbalance => Vec::new(),
            HostOp::MoveThreads { pid, comm, .. } => vec![super::threads::path(*pid, comm)],
        }
    }

    /// The name used in errors.
    pub fn name(&self) -> String {
        match self {
            HostOp::Write { key, .. } => key.path(),
            HostOp::OwnedFile { file, .. } => format!("/{}", file.file()),
            HostOp::RestartIrqbalance => "irqbalance restart".into(),
            HostOp::BootEntries { .. } => format!("/{}", super::kernel_args::BLS_DIR),
            other => other.paths().join(", "),
        }
    }

    /// Whether the step runs a command (else it writes a file).
    pub fn is_command(&self) -> bool {
        matches!(
            self,
            HostOp::Tuned { .. }
                | HostOp::LoadModule { .. }
                | HostOp::MountHugetlbfs
                | HostOp::RestartIrqbalance
                | HostOp::MoveThreads { .. }
                | HostOp::BootEntries { .. }
        )
    }

    /// Checks what types cannot: values are one printable line; owned-file entries belong to
    /// their file.
    pub fn check(&self) -> Result<(), String> {
        match self {
            HostOp::Write { value, before, .. } => {
                check_value(value)?;
                before.as_deref().map(check_value).transpose().map(|_| ())
            }
            HostOp::OwnedFile { file, entries, .. } => {
                for e in entries {
                    e.check(*file)?;
                }
                Ok(())
            }
            HostOp::BootEntries { add, remove, .. } => {
                for e in add.iter().chain(remove) {
                    e.check(OwnedFileKind::Grub)?;
                }
                Ok(())
            }
            HostOp::Tuned { before, .. } => {
                before.as_deref().map(check_value).transpose().map(|_| ())
            }
            HostOp::MoveThreads { comm, threads, .. } => {
                check_value(comm)?;
                if threads.is_empty() || threads.len() > super::threads::MAX_TASKS {
                    return Err("a thread move names no threads, or too many".into());
                }
                Ok(())
            }
            HostOp::Irqbalance { before, .. } => {
                before.as_deref().map(check_value).transpose().map(|_| ())
            }
            HostOp::LoadModule { .. } | HostOp::MountHugetlbfs | HostOp::RestartIrqbalance => {
                Ok(())
            }
        }
    }
}

/// SHA-256 of an owned file's content, as recorded in [`HostOp::OwnedFile::before`].
pub fn content_hash(content: &str) -> String {
    Sha256::digest(content.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a host step failed.
#[derive(Debug, thiserror::Error)]
pub enum HostWriteError {
    #[error("writing /{file}: {err}")]
    Write {
        path: String,
        file: String,
        err: std::io::Error,
    },
    #[error("/{file} reads back `{got}` after writing `{wanted}`")]
    Mismatch {
        path: String,
        file: String,
        wanted: String,
        got: String,
    },
    #[error("huge page pool /{file}: requested {wanted} pages, the kernel allocated {got}{hint}")]
    Shortfall {
        path: String,
        file: String,
        wanted: String,
        got: String,
        hint: String,
    },
    #[error(
        "/{file} is `{now}`, the plan was made when it was `{planned}`: not changed (plan again)"
    )]
    Stale {
        path: String,
        file: String,
        planned: String,
        now: String,
    },
    #[error("{why}")]
    Refused { path: String, why: String },
    /// Not done, and not a failure: the kernel keeps this value itself (a managed IRQ).
    #[error("{why}")]
    Skipped { path: String, why: String },
    #[error("`{cmd}` {why}")]
    Command {
        path: String,
        cmd: String,
        why: String,
    },
}

/// Carries out one step below `root`. Returns what is worth reporting (`tuned-adm verify`).
pub fn execute(
    files: &dyn HostFiles,
    cmds: &dyn HostCommands,
    root: &Path,
    op: &HostOp,
) -> Result<Option<String>, HostWriteError> {
    op.check().map_err(|why| HostWriteError::Refused {
        path: op.name(),
        why,
    })?;
    match op {
        HostOp::Write {
            key, before, value, ..
        } => write_value(files, root, key, before.as_deref(), value).map(|_| None),
        HostOp::OwnedFile {
            file,
            entries,
            before,
            ..
        } => {
            replace_owned(files, root, *file, entries, before.as_deref(), &op.name()).map(|_| None)
        }
        HostOp::Tuned { before, profile } => tuned(cmds, root, before.as_deref(), profile),
        HostOp::BootEntries {
            add,
            remove,
            before,
            ..
        } => super::kernel_args::execute_boot(cmds, root, add, remove, before).map(|_| None),
        HostOp::LoadModule { module } => {
            run(
                cmds,
                root,
                &op.name(),
                &["modprobe".into(), module.to_string()],
            )?;
            let dir = format!("sys/module/{module}");
            if !root.join(&dir).exists() {
                return Err(HostWriteError::Command {
                    path: op.name(),
                    cmd: format!("modprobe {module}"),
                    why: format!("succeeded, but /{dir} does not exist"),
                });
            }
            Ok(None)
        }
        HostOp::MountHugetlbfs => {
            let dir = root.join(HUGETLBFS_DIR).to_string_lossy().into_owned();
            run(
                cmds,
                root,
                &op.name(),
                &["mkdir".into(), "-p".into(), dir.clone()],
            )?;
            let argv = ["mount", "-t", "hugetlbfs", "hugetlbfs"].map(String::from);
            let mut argv = argv.to_vec();
            argv.push(dir);
            run(cmds, root, &op.name(), &argv)?;
            Ok(None)
        }
        HostOp::Irqbalance {
            file,
            banned,
            before,
        } => irqbalance(files, root, *file, banned.as_ref(), before.as_deref()).map(|_| None),
        HostOp::RestartIrqbalance => restart_irqbalance(cmds, root).map(Some),
        HostOp::MoveThreads {
            pid,
            comm,
            cpus,
            threads,
        } => super::threads::execute(files, cmds, root, (*pid, comm, cpus, threads)),
    }
}

/// Edits the ban list after the stale check; reads the result back.
fn irqbalance(
    files: &dyn HostFiles,
    root: &Path,
    kind: IrqbalanceFile,
    banned: Option<&CpuSet>,
    before: Option<&str>,
) -> Result<(), HostWriteError> {
    let (name, file) = (super::irqbalance::path(), kind.file());
    let full = root.join(file);
    let err = io_err(&name, file);
    let now = super::files::read_opt(&full).map_err(&err)?;
    let now_hash = now.as_deref().map(content_hash);
    if now_hash.as_deref() != before {
        return Err(HostWriteError::Stale {
            path: name,
            file: file.to_string(),
            planned: before.map_or("absent".into(), |h| format!("sha256 {h}")),
            now: now_hash.map_or("absent".into(), |h| format!("sha256 {h}")),
        });
    }
    let content = super::irqbalance::edit(now.as_deref(), banned);
    super::files::real_dir_below(root, full.parent().unwrap_or(root)).map_err(&err)?;
    files.replace(&full, &content).map_err(&err)?;
    let got = files.read(&full).map_err(&err)?;
    if super::irqbalance::current(&got)
        .and_then(|v| v.parse::<CpuSet>().ok())
        .as_ref()
        != banned
    {
        return Err(HostWriteError::Mismatch {
            path: name,
            file: file.to_string(),
            wanted: banned.map_or("(unset)".into(), CpuSet::to_string),
            got: super::irqbalance::current(&got).unwrap_or_default(),
        });
    }
    Ok(())
}

/// Restarts irqbalance when it runs, so that it reads its new ban list.
fn restart_irqbalance(cmds: &dyn HostCommands, root: &Path) -> Result<String, HostWriteError> {
    let name = "irqbalance restart";
    let ctl = root
        .join(super::irqbalance::SYSTEMCTL)
        .to_string_lossy()
        .into_owned();
    let svc = super::irqbalance::SERVICE.to_string();
    let active = run_output(
        cmds,
        root,
        name,
        &[
            ctl.clone(),
            "is-active".into(),
            "--quiet".into(),
            svc.clone(),
        ],
    )?;
    if !active.ok() {
        return Ok(format!("{name}: {svc} is not running: not restarted"));
    }
    run(cmds, root, name, &[ctl, "restart".into(), svc.clone()])?;
    Ok(format!("{name}: {svc} restarted to read its new ban list"))
}

fn io_err(key: &str, file: &str) -> impl Fn(std::io::Error) -> HostWriteError {
    let (path, file) = (key.to_string(), file.to_string());
    move |err| HostWriteError::Write {
        path: path.clone(),
        file: file.clone(),
        err,
    }
}

/// Writes one value (in place, like `sysctl -w`) after the stale check, and reads it back.
fn write_value(
    files: &dyn HostFiles,
    root: &Path,
    key: &HostKey,
    before: Option<&str>,
    value: &str,
) -> Result<(), HostWriteError> {
    let (path, file) = (key.path(), key.file());
    let rb = key.readback();
    let full = root.join(&file);
    let err = io_err(&path, &file);
    if let Some(planned) = before {
        let now = rb.canonical(&files.read(&full).map_err(&err)?);
        if now != rb.canonical(planned) && now != rb.canonical(value) {
            return Err(HostWriteError::Stale {
                path,
                file,
                planned: planned.to_string(),
                now,
            });
        }
    }
    if let Err(e) = files.write(&full, &format!("{value}\n")) {
        return Err(match key {
            HostKey::IrqAffinity { irq } if super::irqs::refused(&e) => {
                super::irqs::skip(files, root, *irq, &e)
            }
            _ => err(e),
        });
    }
    let got = rb.canonical(&files.read(&full).map_err(&err)?);
    if got != rb.canonical(value) {
        let wanted = value.to_string();
        return Err(if rb == Readback::Count {
            HostWriteError::Shortfall {
                hint: super::hugepages::shortfall_hint(key, &wanted),
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

fn replace_owned(
    files: &dyn HostFiles,
    root: &Path,
    kind: OwnedFileKind,
    entries: &[Entry],
    before: Option<&str>,
    name: &str,
) -> Result<(), HostWriteError> {
    let file = kind.file();
    let full = root.join(file);
    let err = io_err(name, file);
    let now = super::files::read_opt(&full).map_err(&err)?;
    let now_hash = now.as_deref().map(content_hash);
    if now_hash.as_deref() != before {
        return Err(HostWriteError::Stale {
            path: name.to_string(),
            file: file.to_string(),
            planned: before.map_or("absent".into(), |h| format!("sha256 {h}")),
            now: now_hash.map_or("absent".into(), |h| format!("sha256 {h}")),
        });
    }
    let content = OwnedFile::with_entries(kind, entries.to_vec()).render();
    super::files::real_dir_below(root, full.parent().unwrap_or(root)).map_err(&err)?;
    files.replace(&full, &content).map_err(&err)?;
    if files.read(&full).map_err(&err)? != content {
        return Err(HostWriteError::Mismatch {
            path: name.to_string(),
            file: file.to_string(),
            wanted: "kvmtune's content".into(),
            got: "other content".into(),
        });
    }
    Ok(())
}

fn tuned(
    cmds: &dyn HostCommands,
    root: &Path,
    before: Option<&str>,
    profile: &ProfileName,
) -> Result<Option<String>, HostWriteError> {
    let name = "tuned.profile";
    let active = || -> Result<Option<String>, HostWriteError> {
        Ok(super::files::read_opt(&root.join(TUNED_ACTIVE))
            .map_err(io_err(name, TUNED_ACTIVE))?
            .map(|c| Readback::Tokens.canonical(&c))
            .filter(|c| !c.is_empty()))
    };
    let now = active()?;
    if now.as_deref() != before {
        return Err(HostWriteError::Stale {
            path: name.into(),
            file: TUNED_ACTIVE.into(),
            planned: before.unwrap_or("(none)").into(),
            now: now.unwrap_or_else(|| "(none)".into()),
        });
    }
    let adm = root.join(TUNED_ADM).to_string_lossy().into_owned();
    run(
        cmds,
        root,
        name,
        &[adm.clone(), "profile".into(), profile.to_string()],
    )?;
    let got = active()?;
    if got.as_deref() != Some(profile.as_str()) {
        return Err(HostWriteError::Command {
            path: name.into(),
            cmd: format!("/{TUNED_ADM} profile {profile}"),
            why: format!(
                "succeeded, but /{TUNED_ACTIVE} reads `{}`, not `{profile}`",
                got.unwrap_or_default()
            ),
        });
    }
    let out = run_output(cmds, root, name, &[adm, "verify".into()])?;
    let text = out.text().replace('\n', "; ");
    if out.ok() {
        Ok(Some(format!("{name}: `/{TUNED_ADM} verify`: {text}")))
    } else {
        Err(HostWriteError::Command {
            path: name.into(),
            cmd: format!("/{TUNED_ADM} verify"),
            why: format!("failed after the switch ({}): {text}", exit_text(&out)),
        })
    }
}

/// argv for messages: the root prefix shown as `/`.
pub(super) fn display(root: &Path, argv: &[String]) -> String {
    let r = root.to_string_lossy();
    argv.iter()
        .map(|a| match a.strip_prefix(r.as_ref()) {
            Some(rest) if r != "/" && rest.starts_with('/') => rest.to_string(),
            _ => a.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_output(
    cmds: &dyn HostCommands,
    root: &Path,
    path: &str,
    argv: &[String],
) -> Result<CmdOutput, HostWriteError> {
    cmds.run(argv).map_err(|e| HostWriteError::Command {
        path: path.into(),
        cmd: display(root, argv),
        why: format!("could not be run: {e}"),
    })
}

pub(super) fn run(
    cmds: &dyn HostCommands,
    root: &Path,
    path: &str,
    argv: &[String],
) -> Result<(), HostWriteError> {
    let out = run_output(cmds, root, path, argv)?;
    if out.ok() {
        return Ok(());
    }
    Err(HostWriteError::Command {
        path: path.into(),
        cmd: display(root, argv),
        why: format!(
            "failed ({}): {}",
            exit_text(&out),
            out.text().replace('\n', "; ")
        ),
    })
}

fn exit_text(o: &CmdOutput) -> String {
    match o.code {
        Some(c) => format!("exit {c}"),
        None => "killed by a signal".into(),
    }
}
