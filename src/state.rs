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

use crate::host::persist::Entry;
use crate::host::HostOp;
use crate::model::{DomainName, HostKey, OwnedFileKind, ProfileName, Uuid};
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

/// The state directory, created when missing; it must be a real directory (no symlink on
/// the way below the root), owned by this user (root) and writable by nobody else.
fn ensure_state_dir(root: &Path) -> Result<PathBuf, StateError> {
    let dir = state_dir(root);
    crate::host::files::real_dir_below(root, &dir).map_err(io(&dir))?;
    let m = std::fs::symlink_metadata(&dir).map_err(io(&dir))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    use std::os::unix::fs::MetadataExt;
    if m.uid() != me || m.mode() & 0o022 != 0 {
        return Err(StateError::Io {
            path: dir.display().to_string(),
            err: std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "owned by uid {} with mode {:o}: it must be owned by uid {me} and writable by nobody else",
                    m.uid(),
                    m.mode() & 0o7777
                ),
            ),
        });
    }
    Ok(dir)
}

/// A new private directory (0700); fails when the name exists (or is a symlink).
fn new_private_dir(p: &Path) -> Result<(), StateError> {
    std::fs::DirBuilder::new()
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
    let dir = ensure_state_dir(root)?;
    let path = dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(io(&path))?;
    if !file.metadata().map_err(io(&path))?.file_type().is_file() {
        return Err(io(&path)(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file: refusing to use it as the lock",
        )));
    }
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
    let _ = file.take(4096).read_to_string(&mut s);
    let s = s.trim();
    if s.is_empty() {
        "holder unknown".into()
    } else {
        crate::model::names::printable(s, 200)
    }
}

/// The record format this build writes and reads.
pub const RECORD_FORMAT: u32 = 2;

/// One backed-up guest; its previous persistent XML is `guest-<uuid>.xml` in the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestBackup {
    pub name: DomainName,
    pub uuid: Uuid,
}

impl GuestBackup {
    /// The file inside the record directory, derived from the (validated) UUID.
    pub fn file(&self) -> String {
        format!("guest-{}.xml", self.uuid)
    }
}

/// A kernel value before an apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValue {
    pub key: HostKey,
    pub value: String,
}

/// The active tuned profile before an apply switched it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunedBefore {
    /// `None`: no profile was active.
    pub profile: Option<ProfileName>,
}

/// The host as it was before an apply, in typed keys: what rollback plans back to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostBefore {
    /// Kernel values (canonical), one per key the apply wrote.
    #[serde(default)]
    pub values: Vec<KeyValue>,
    #[serde(default)]
    pub tuned: Option<TunedBefore>,
    /// Owned files: their entries (`None`: the file did not exist).
    #[serde(default)]
    pub owned: BTreeMap<OwnedFileKind, Option<Vec<Entry>>>,
    /// Kernel arguments (GRUB drop-in entries) every boot entry already had before the apply
    /// changed the boot entries: rollback leaves them there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boot_had: Vec<Entry>,
    /// irqbalance's ban list before an apply set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irqbalance: Option<IrqbalanceBefore>,
}

/// irqbalance's ban list before an apply: its file and value (`None`: the key was not set, or
/// the file did not exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrqbalanceBefore {
    pub file: crate::model::keys::IrqbalanceFile,
    pub banned: Option<crate::cpuset::CpuSet>,
}

impl HostBefore {
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
            && self.tuned.is_none()
            && self.owned.is_empty()
            && self.irqbalance.is_none()
    }
}

/// What one apply changed, written before it changed anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// The record's directory name (UTC timestamp).
    pub id: String,
    pub created: String,
    pub hostname: String,
    pub uri: String,
    /// `apply` or `rollback`.
    pub command: String,
    pub guests: Vec<GuestBackup>,
    pub host: HostBefore,
}

/// Reads what the host steps are about to change.
pub fn host_before(root: &Path, ops: &[HostOp]) -> Result<HostBefore, StateError> {
    let mut h = HostBefore::default();
    let read = |file: &str| {
        let p = root.join(file);
        crate::host::files::read_opt(&p).map_err(io(&p))
    };
    for op in ops {
        match op {
            HostOp::Write { key, .. } => {
                if h.values.iter().any(|kv| kv.key == *key) {
                    continue;
                }
                if let Some(c) = read(&key.file())? {
                    h.values.push(KeyValue {
                        key: key.clone(),
                        value: key.readback().canonical(&c),
                    });
                }
            }
            HostOp::Tuned { .. } => {
                let now = read(crate::host::ops::TUNED_ACTIVE)?;
                let profile = now
                    .map(|c| crate::model::Readback::Tokens.canonical(&c))
                    .and_then(|c| ProfileName::new(&c).ok());
                h.tuned = Some(TunedBefore { profile });
            }
            HostOp::OwnedFile { file, .. } => {
                let entries = read(file.file())?
                    .map(|c| crate::host::persist::OwnedFile::entries_of(*file, &c));
                h.owned.insert(*file, entries);
            }
            HostOp::Irqbalance { file, .. } => {
                let banned = read(file.file())?
                    .as_deref()
                    .and_then(crate::host::irqbalance::current)
                    .and_then(|v| v.parse().ok());
                h.irqbalance = Some(IrqbalanceBefore {
                    file: *file,
                    banned,
                });
            }
            // What the boot entries had is what the drop-in said kvmtune owned: rollback
            // plans them back from the drop-in's recorded entries.
            HostOp::BootEntries { add, .. } => {
                h.boot_had = crate::host::kernel_args::entries_having(root, add)
                    .map_err(io(&root.join(crate::host::kernel_args::BLS_DIR)))?;
                let kind = OwnedFileKind::Grub;
                if let std::collections::btree_map::Entry::Vacant(v) = h.owned.entry(kind) {
                    v.insert(
                        read(kind.file())?
                            .map(|c| crate::host::persist::OwnedFile::entries_of(kind, &c)),
                    );
                }
            }
            HostOp::LoadModule { .. }
            | HostOp::MountHugetlbfs
            | HostOp::RestartIrqbalance
            | HostOp::MoveThreads { .. } => {}
        }
    }
    Ok(h)
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
    let mut host = HostBefore::default();
    for a in &plan.actions {
        match a {
            Action::Guest {
                name,
                uuid,
                old_xml,
                define: true,
                ..
            }
            | Action::Restore {
                name,
                uuid,
                old_xml,
                ..
            } => {
                let g = GuestBackup {
                    name: name.clone(),
                    uuid: uuid.clone(),
                };
                xmls.push((g.file(), old_xml.clone()));
                guests.push(g);
            }
            Action::Host(ops) => host = host_before(root, ops)?,
            _ => {}
        }
    }
    if guests.is_empty() && host.is_empty() {
        return Ok(None);
    }
    let applies = ensure_state_dir(root)?.join("applies");
    crate::host::files::real_dir_below(root, &applies).map_err(io(&applies))?;
    let mut id = record_id();
    while applies.join(&id).exists() {
        std::thread::sleep(Duration::from_millis(2));
        id = record_id();
    }
    let tmp = applies.join(format!(".{id}.tmp"));
    new_private_dir(&tmp)?;
    for (file, xml) in &xmls {
        write_private(&tmp.join(file), xml.as_bytes())?;
    }
    let manifest = Manifest {
        format: RECORD_FORMAT,
        created: crate::saved::utc(crate::saved::now_secs()).0,
        id: id.clone(),
        hostname: hostname.into(),
        uri: uri.into(),
        command: command.into(),
        guests,
        host,
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

/// Whether `name` is a record id kvmtune writes (`20261126T224607.123Z`).
pub fn is_record_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 20
        && b[8] == b'T'
        && b[15] == b'.'
        && b[19] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 8 | 15 | 19) || c.is_ascii_digit())
}

/// Record ids, oldest first: real directories named like a record (incomplete `.tmp`
/// directories and anything else are ignored).
pub fn records(root: &Path) -> Result<Vec<String>, StateError> {
    let applies = state_dir(root).join("applies");
    let Some(list) = crate::host::files::list_opt(&applies).map_err(io(&applies))? else {
        return Ok(Vec::new());
    };
    let mut ids: Vec<String> = list
        .into_iter()
        .filter(|n| is_record_id(n))
        .filter(|n| {
            std::fs::symlink_metadata(applies.join(n)).is_ok_and(|m| m.file_type().is_dir())
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// Removes the oldest records beyond `keep` (never the newest one: the record an apply just
/// wrote is how it is undone) and the temporary directories of interrupted applies (the
/// caller holds the lock, so none is being written).
pub fn prune(root: &Path, keep: usize) -> Result<(), StateError> {
    let applies = state_dir(root).join("applies");
    let ids = records(root)?;
    let excess = ids.len().saturating_sub(keep.max(1));
    for id in &ids[..excess] {
        let p = applies.join(id);
        std::fs::remove_dir_all(&p).map_err(io(&p))?;
    }
    for name in crate::host::files::list_opt(&applies)
        .map_err(io(&applies))?
        .unwrap_or_default()
    {
        let is_tmp = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".tmp"))
            .is_some_and(is_record_id);
        let p = applies.join(&name);
        if is_tmp && std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_dir()) {
            std::fs::remove_dir_all(&p).map_err(io(&p))?;
        }
    }
    Ok(())
}

/// A record's manifest, validated like configuration: format, typed keys, one-line values,
/// entries that belong to their file, and the id it was stored under. Pure.
pub fn parse_manifest(id: &str, text: &str) -> Result<Manifest, String> {
    let format = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("format").and_then(|f| f.as_u64()));
    if format != Some(RECORD_FORMAT as u64) {
        return Err(format!(
            "record format {} is not {RECORD_FORMAT} (written by another kvmtune version): roll back with that version",
            format.map_or("(none)".to_string(), |f| f.to_string())
        ));
    }
    let manifest: Manifest = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if manifest.id != id {
        return Err(format!("its manifest names record {}", manifest.id));
    }
    for kv in &manifest.host.values {
        crate::model::keys::check_value(&kv.value)?;
    }
    for (kind, entries) in &manifest.host.owned {
        for e in entries.iter().flatten() {
            e.check(*kind)?;
        }
    }
    Ok(manifest)
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
        crate::host::files::read(&dir.join("manifest.json")).map_err(|e| bad(e.to_string()))?;
    let manifest = parse_manifest(id, &text).map_err(bad)?;
    let mut xml = BTreeMap::new();
    for g in &manifest.guests {
        let x = crate::host::files::read(&dir.join(g.file())).map_err(|e| bad(e.to_string()))?;
        xml.insert(g.uuid.to_string(), x);
    }
    Ok(Record { manifest, xml })
}

/// How an apply ended, written into its record (`result.json`, 0600) once it is over. A
/// record without one is an apply that did not finish (killed, or still running).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyResult {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// When the apply ended, seconds since the epoch.
    pub finished_unix: u64,
    /// Every target applied.
    pub ok: bool,
    /// Targets that failed (`host`, `guest/<name>`).
    #[serde(default)]
    pub failed: Vec<String>,
}

/// The result file inside a record directory.
pub const RESULT_FILE: &str = "result.json";

/// Writes how the apply of record `id` ended (temp file + rename inside the record, so a
/// reader sees all of it or none).
pub fn record_result(root: &Path, id: &str, result: &ApplyResult) -> Result<(), StateError> {
    if !is_record_id(id) {
        return Err(StateError::NoRecord(Some(id.to_string())));
    }
    let dir = state_dir(root).join("applies").join(id);
    let tmp = dir.join(format!(".{RESULT_FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let json = serde_json::to_string_pretty(result).expect("result serializes");
    write_private(&tmp, json.as_bytes())?;
    let dest = dir.join(RESULT_FILE);
    std::fs::rename(&tmp, &dest).map_err(io(&dest))
}

/// The newest apply record, as monitoring sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastApply {
    pub id: String,
    /// When it ended (its result), else when it started (its id).
    pub unix: u64,
    /// `None`: it has no result (it did not finish).
    pub result: Option<ApplyResult>,
}

/// The newest record and how it ended; `None` when there is none. Its manifest is read and
/// validated ([`load`]); a result that does not parse is an error naming the record.
pub fn last_apply(root: &Path) -> Result<Option<LastApply>, StateError> {
    let rec = match load(root, None) {
        Ok(r) => r,
        Err(StateError::NoRecord(None)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let id = rec.manifest.id;
    let p = state_dir(root).join("applies").join(&id).join(RESULT_FILE);
    let bad = |msg: String| StateError::BadRecord {
        id: id.clone(),
        msg: format!("{RESULT_FILE}: {msg}"),
    };
    let result = match crate::host::files::read_opt(&p).map_err(|e| bad(e.to_string()))? {
        None => None,
        Some(text) => {
            let r: ApplyResult = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            if r.format != RECORD_FORMAT {
                return Err(bad(format!("format {} is not {RECORD_FORMAT}", r.format)));
            }
            for t in &r.failed {
                crate::model::keys::check_value(t).map_err(&bad)?;
            }
            Some(r)
        }
    };
    let unix = match &result {
        Some(r) => r.finished_unix,
        None => record_unix(&id).unwrap_or(0),
    };
    Ok(Some(LastApply { id, unix, result }))
}

/// The start of record `id` (`20261126T224607.123Z`) in seconds since the epoch.
pub fn record_unix(id: &str) -> Option<u64> {
    if !is_record_id(id) {
        return None;
    }
    let n = |a: usize, b: usize| id[a..b].parse::<i64>().ok();
    let (y, m, d) = (n(0, 4)?, n(4, 6)?, n(6, 8)?);
    let (hh, mm, ss) = (n(9, 11)?, n(11, 13)?, n(13, 15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), the inverse of [`crate::saved::utc`].
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_give_their_start_time() {
        for secs in [0, 951_782_400, 1_764_706_245, 4_102_444_799] {
            let (_, compact) = crate::saved::utc(secs);
            let id = format!("{}.000Z", compact.trim_end_matches('Z'));
            assert_eq!(record_unix(&id), Some(secs), "{id}");
        }
        assert_eq!(record_unix("20261399T000000.000Z"), None);
        assert_eq!(record_unix("latest"), None);
    }
}
