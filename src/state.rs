//! kvmtune's state directory (`/var/lib/kvmtune` below `--root`): the apply lock and the
//! backups of what each apply changed, from which `rollback` restores.
//!
//! Invariants:
//! - One apply (or rollback) at a time: an exclusive `flock` on `lock`, held until the
//!   process ends (also when it is killed). The holder's pid and start time are in the file.
//! - Before an apply changes anything, the previous persistent XML of every guest it defines
//!   and the previous content of every host file it writes are on disk (fsynced), in
//!   `applies/<UTC timestamp>/`: files are 0600, directories 0700, and named by timestamp and
//!   domain UUID only (guest names appear only inside `manifest.json`).
//! - At most `keep` apply records are kept (oldest removed first).

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::host::HostOp;
use crate::plan::{Action, Plan};

/// The state directory below the root.
pub const STATE_DIR: &str = "var/lib/kvmtune";
/// Apply records kept by default.
pub const DEFAULT_KEEP: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("another kvmtune apply holds the lock {path} ({holder}); gave up after {waited} s (--lock-timeout)")]
    Locked {
        path: String,
        holder: String,
        waited: u64,
    },
    #[error("no apply record{}", .0.as_ref().map(|t| format!(" matching `{t}`")).unwrap_or_default())]
    NoRecord(Option<String>),
    #[error("apply record {id}: {msg}")]
    BadRecord { id: String, msg: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |err| StateError::Io {
        path: path.display().to_string(),
        err,
    }
}

pub fn state_dir(root: &Path) -> PathBuf {
    root.join(STATE_DIR)
}

fn ensure_dir(p: &Path) -> Result<(), StateError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(io(p))
}

/// Writes a 0600 file and fsyncs it.
fn write_private(p: &Path, content: &[u8]) -> Result<(), StateError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
        .map_err(io(p))?;
    f.write_all(content).map_err(io(p))?;
    f.sync_all().map_err(io(p))
}

/// The held apply lock; released when dropped or when the process ends.
pub struct Lock {
    _file: std::fs::File,
}

/// Takes the apply lock, waiting up to `timeout`; `waiting` is called once with the holder's
/// description when the lock is busy.
pub fn lock(
    root: &Path,
    timeout: Duration,
    waiting: impl FnOnce(&str),
) -> Result<Lock, StateError> {
    let dir = state_dir(root);
    ensure_dir(&dir)?;
    let path = dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    let start = Instant::now();
    let mut waiting = Some(waiting);
    loop {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on an fd we own.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io(&path)(err));
        }
        let holder = holder(&mut file);
        if start.elapsed() >= timeout {
            return Err(StateError::Locked {
                path: path.display().to_string(),
                holder,
                waited: timeout.as_secs(),
            });
        }
        if let Some(w) = waiting.take() {
            w(&holder);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (started, _) = crate::saved::utc(crate::saved::now_secs());
    let info = format!("pid {}, started {started}\n", std::process::id());
    file.set_len(0).map_err(io(&path))?;
    file.rewind().map_err(io(&path))?;
    file.write_all(info.as_bytes()).map_err(io(&path))?;
    Ok(Lock { _file: file })
}

fn holder(file: &mut std::fs::File) -> String {
    let mut s = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut s);
    let s = s.trim();
    if s.is_empty() {
        "holder unknown".into()
    } else {
        s.to_string()
    }
}

/// One backed-up guest: where its previous persistent XML is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestBackup {
    pub name: String,
    pub uuid: String,
    /// File name inside the record directory (`guest-<uuid>.xml`).
    pub file: String,
}

/// What one apply changed, written before it changed anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The record's directory name (UTC timestamp).
    pub id: String,
    pub created: String,
    pub hostname: String,
    pub uri: String,
    /// `apply` or `rollback`.
    pub command: String,
    pub guests: Vec<GuestBackup>,
    /// Host file below the root → its content before the apply (`None`: it did not exist).
    pub host_files: BTreeMap<String, Option<String>>,
}

/// The files a host action writes (kernel files, owned files, tuned's record of its profile).
pub fn host_files_touched(ops: &[HostOp]) -> Vec<String> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            HostOp::Write { write, .. } => out.push(write.file.clone()),
            HostOp::File(f) => out.push(f.file.clone()),
            HostOp::Run(r) => {
                if let crate::host::Check::FileValue { file, .. } = &r.check {
                    out.push(file.clone());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn record_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (_, compact) = crate::saved::utc(now.as_secs());
    // 20261126T224607Z → 20261126T224607.123Z: unique per apply (the lock serialises them).
    format!(
        "{}.{:03}Z",
        compact.trim_end_matches('Z'),
        now.subsec_millis()
    )
}

/// Stores what `plan` is about to change, before it changes it. Returns the manifest.
pub fn backup(
    root: &Path,
    plan: &Plan,
    hostname: &str,
    uri: &str,
    command: &str,
    keep: usize,
) -> Result<Option<Manifest>, StateError> {
    let mut guests = Vec::new();
    let mut xmls = Vec::new();
    let mut host_files = BTreeMap::new();
    for a in &plan.actions {
        match a {
            Action::Guest {
                name,
                uuid,
                old_xml,
                define: true,
                ..
            } => {
                let safe: String = uuid
                    .chars()
                    .filter(|c| c.is_ascii_hexdigit() || *c == '-')
                    .collect();
                let file = format!("guest-{safe}.xml");
                guests.push(GuestBackup {
                    name: name.to_string(),
                    uuid: uuid.clone(),
                    file: file.clone(),
                });
                xmls.push((file, old_xml.clone()));
            }
            Action::Host(ops) => {
                for f in host_files_touched(ops) {
                    let content =
                        crate::host::files::read_opt(&root.join(&f)).map_err(io(&root.join(&f)))?;
                    host_files.insert(f, content);
                }
            }
            _ => {}
        }
    }
    if guests.is_empty() && host_files.is_empty() {
        return Ok(None);
    }
    let applies = state_dir(root).join("applies");
    ensure_dir(&applies)?;
    let mut id = record_id();
    while applies.join(&id).exists() {
        std::thread::sleep(Duration::from_millis(2));
        id = record_id();
    }
    let tmp = applies.join(format!(".{id}.tmp"));
    ensure_dir(&tmp)?;
    for (file, xml) in &xmls {
        write_private(&tmp.join(file), xml.as_bytes())?;
    }
    let manifest = Manifest {
        created: crate::saved::utc(crate::saved::now_secs()).0,
        id: id.clone(),
        hostname: hostname.into(),
        uri: uri.into(),
        command: command.into(),
        guests,
        host_files,
    };
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
    write_private(&tmp.join("manifest.json"), json.as_bytes())?;
    // A record appears whole or not at all.
    let dest = applies.join(&id);
    std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
    if let Ok(d) = std::fs::File::open(&applies) {
        let _ = d.sync_all();
    }
    prune(root, keep)?;
    Ok(Some(manifest))
}

/// Record ids, oldest first (incomplete `.tmp` directories are ignored).
pub fn records(root: &Path) -> Result<Vec<String>, StateError> {
    let applies = state_dir(root).join("applies");
    let Some(list) = crate::host::files::list_opt(&applies).map_err(io(&applies))? else {
        return Ok(Vec::new());
    };
    let mut ids: Vec<String> = list.into_iter().filter(|n| !n.starts_with('.')).collect();
    ids.sort();
    Ok(ids)
}

/// Removes the oldest records beyond `keep` (and stale temporary directories).
pub fn prune(root: &Path, keep: usize) -> Result<(), StateError> {
    let applies = state_dir(root).join("applies");
    let ids = records(root)?;
    let excess = ids.len().saturating_sub(keep);
    for id in &ids[..excess] {
        let p = applies.join(id);
        std::fs::remove_dir_all(&p).map_err(io(&p))?;
    }
    Ok(())
}

/// A loaded record: its manifest and the guests' previous XML by UUID.
#[derive(Debug, Clone)]
pub struct Record {
    pub manifest: Manifest,
    pub xml: BTreeMap<String, String>,
}

/// The newest record, or the one whose id starts with `to`.
pub fn load(root: &Path, to: Option<&str>) -> Result<Record, StateError> {
    let ids = records(root)?;
    let id = match to {
        None => ids.last(),
        Some(t) => {
            let t = t.trim();
            ids.iter().rev().find(|i| i.starts_with(t))
        }
    }
    .ok_or_else(|| StateError::NoRecord(to.map(str::to_string)))?;
    let dir = state_dir(root).join("applies").join(id);
    let bad = |msg: String| StateError::BadRecord {
        id: id.clone(),
        msg,
    };
    let text =
        std::fs::read_to_string(dir.join("manifest.json")).map_err(|e| bad(e.to_string()))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut xml = BTreeMap::new();
    for g in &manifest.guests {
        if g.file.contains('/') {
            return Err(bad(format!("bad file name {}", g.file)));
        }
        let x = std::fs::read_to_string(dir.join(&g.file)).map_err(|e| bad(e.to_string()))?;
        xml.insert(g.uuid.clone(), x);
    }
    Ok(Record { manifest, xml })
}
