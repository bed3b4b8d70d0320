//! `cpu_pool.isolate.host_threads`: move every movable host thread onto the reserved CPUs now.
//!
//! Invariants:
//! - Observation reads `/proc/<pid>/task/<tid>/{stat,status}` below the root (pids and tids
//!   are digits-only names, at most [`MAX_TASKS`] tasks); a task that exits while being read is
//!   skipped. Planning is pure over what was read.
//! - Never moved: QEMU processes (`qemu-system-*`, `qemu-kvm`: guests, managed or not, all
//!   their threads), per-CPU kernel threads (`PF_NO_SETAFFINITY`, or a kernel thread allowed on
//!   one CPU only), kvmtune itself, threads already within the reserved CPUs, and threads the
//!   refusal record names (tid and start time).
//! - Moving is `sched_setaffinity(2)` on the running kernel, not a file write: the executor does
//!   it through [`HostCommands::set_affinity`], whose real implementation refuses any root but
//!   the running system's `/` (pids read from another tree could be unrelated real processes).
//!   Before each move the thread's start time must be the planned one (a reused tid is left
//!   alone) and its CPUs the planned ones (the stale check). A thread that exited (ESRCH) is
//!   fine; one that refuses (EINVAL: its cpuset has no reserved CPU) is recorded and reported.

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::commands::HostCommands;
use super::files::HostFiles;
use super::isolate::{Refused, RefusedThread};
use super::ops::{HostOp, HostWriteError};
use super::{Builder, HostChange, HostObserved};
use crate::cpuset::CpuSet;
use crate::model::names::printable;
use crate::model::Effect;

/// `PF_KTHREAD` (include/linux/sched.h).
pub const PF_KTHREAD: u64 = 0x0020_0000;
/// `PF_NO_SETAFFINITY`: userland may not change the thread's affinity (per-CPU kthreads).
pub const PF_NO_SETAFFINITY: u64 = 0x0400_0000;
/// The most tasks read (beyond it observation fails rather than read without end).
pub const MAX_TASKS: usize = 1 << 18;

/// One task of the host as read from `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostThread {
    pub pid: u32,
    pub tid: u32,
    /// The thread's name (printable, as in `stat`).
    pub comm: String,
    /// The process's name (its main thread's).
    pub process: String,
    pub cpus: Option<CpuSet>,
    /// `stat` field 9.
    pub flags: u64,
    /// `stat` field 22 (clock ticks after boot).
    pub start: u64,
}

impl HostThread {
    /// A thread of a QEMU process.
    pub fn is_qemu(&self) -> bool {
        is_qemu(&self.process)
    }

    /// A per-CPU kernel thread (its affinity is the kernel's to keep).
    pub fn per_cpu_kthread(&self) -> bool {
        self.flags & PF_NO_SETAFFINITY != 0
            || (self.flags & PF_KTHREAD != 0 && self.cpus.as_ref().is_some_and(|c| c.len() == 1))
    }
}

pub fn is_qemu(process: &str) -> bool {
    process.starts_with("qemu-system-") || process == "qemu-kvm"
}

/// A thread to move, as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadRef {
    pub tid: u32,
    /// Start time: the same tid with another start time is another thread.
    pub start: u64,
    /// Its CPUs when planned (the stale check).
    pub before: CpuSet,
}

fn digits(name: &str) -> Option<u32> {
    if name.is_empty() || name.len() > 10 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

fn gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// `(comm, flags, start)` of a `stat` line (`comm` may hold spaces and parentheses).
pub fn parse_stat(stat: &str) -> Option<(String, u64, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    Some((
        printable(comm, 64),
        rest.get(6)?.parse().ok()?,
        rest.get(19)?.parse().ok()?,
    ))
}

/// `Cpus_allowed_list` of a `status` file.
pub fn cpus_allowed(status: &str) -> Option<CpuSet> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads a file below the root; `Ok(None)` when the task is gone.
fn task_file(root: &Path, rel: &str) -> std::io::Result<Option<String>> {
    match super::files::read_opt(&root.join(rel)) {
        Err(e) if gone(&e) => Ok(None),
        r => r,
    }
}

/// Every task below `root/proc`, by pid then tid.
pub fn read(root: &Path) -> std::io::Result<Vec<HostThread>> {
    let named = |rel: String| {
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("/{rel}: {e}"))
    };
    let pids = super::files::list_opt(&root.join("proc")).map_err(named("proc".into()))?;
    let mut out = Vec::new();
    let mut pids: Vec<u32> = pids
        .unwrap_or_default()
        .iter()
        .filter_map(|n| digits(n))
        .collect();
    pids.sort();
    for pid in pids {
        let task_dir = format!("proc/{pid}/task");
        let tids = match super::files::list_opt(&root.join(&task_dir)) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(named(task_dir)(e)),
        };
        let Some(process) = task_file(root, &format!("proc/{pid}/comm"))
            .map_err(named(format!("proc/{pid}/comm")))?
        else {
            continue;
        };
        let process = printable(process.trim_end_matches('\n'), 64);
        let mut tids: Vec<u32> = tids.iter().filter_map(|n| digits(n)).collect();
        tids.sort();
        for tid in tids {
            let base = format!("{task_dir}/{tid}");
            let stat =
                task_file(root, &format!("{base}/stat")).map_err(named(format!("{base}/stat")))?;
            let status = task_file(root, &format!("{base}/status"))
                .map_err(named(format!("{base}/status")))?;
            let (Some(stat), Some(status)) = (stat, status) else {
                continue;
            };
            let Some((comm, flags, start)) = parse_stat(&stat) else {
                continue;
            };
            out.push(HostThread {
                pid,
                tid,
                comm,
                process: process.clone(),
                cpus: cpus_allowed(&status),
                flags,
                start,
            });
            if out.len() > MAX_TASKS {
                return Err(std::io::Error::other(format!(
                    "/proc lists more than {MAX_TASKS} tasks: refusing to read further"
                )));
            }
        }
    }
    Ok(out)
}

/// The plan path of one process's move.
pub fn path(pid: u32, comm: &str) -> String {
    format!("cpu_pool.isolate.host_threads.{pid} ({comm})")
}

/// Whether planning may move `t` onto `reserved`.
fn movable(t: &HostThread, obs: &HostObserved, reserved: &CpuSet) -> bool {
    !t.is_qemu()
        && !t.per_cpu_kthread()
        && Some(t.pid) != obs.self_pid
        && t.cpus.as_ref().is_some_and(|c| !c.is_subset(reserved))
}

pub fn plan(reserved: &CpuSet, obs: &HostObserved, b: &mut Builder) {
    let Some(threads) = &obs.threads else {
        return;
    };
    let refused = Refused::of(obs);
    let mut by_pid: BTreeMap<u32, (String, Vec<ThreadRef>)> = BTreeMap::new();
    let mut skipped = 0;
    for t in threads.iter().filter(|t| movable(t, obs, reserved)) {
        if refused.thread(t.tid, t.start) {
            skipped += 1;
            continue;
        }
        let Some(before) = t.cpus.clone() else {
            continue;
        };
        let e = by_pid
            .entry(t.pid)
            .or_insert_with(|| (t.process.clone(), Vec::new()));
        e.1.push(ThreadRef {
            tid: t.tid,
            start: t.start,
            before,
        });
    }
    if skipped > 0 {
        b.note(format!("cpu_pool.isolate.host_threads: {skipped} thread(s) refused the reserved CPUs at an earlier apply (their cpuset has none of them): left as they are"));
    }
    if !by_pid.is_empty() && !obs.live_kernel {
        b.note("cpu_pool.isolate.host_threads: --root is not /: apply moves host threads only on the running kernel (with --root /), never pids read from another tree".into());
    }
    for (pid, (comm, threads)) in by_pid {
        let before = threads
            .iter()
            .map(|t| t.before.clone())
            .reduce(|a, c| a.union(&c));
        b.change(HostChange {
            path: path(pid, &comm),
            before: before.map(|c| c.to_string()),
            after: Some(reserved.to_string()),
            effect: Effect::Live,
        });
        b.post(HostOp::MoveThreads {
            pid,
            comm,
            cpus: reserved.clone(),
            threads,
        });
    }
}

/// What became of the threads of one move.
#[derive(Default)]
struct Outcome {
    moved: usize,
    exited: Vec<u32>,
    stale: Vec<u32>,
    refused: Vec<RefusedThread>,
    failed: Vec<String>,
}

/// Moves the planned threads of one process (see the module invariants).
pub fn execute(
    files: &dyn HostFiles,
    cmds: &dyn HostCommands,
    root: &Path,
    op: (u32, &str, &CpuSet, &[ThreadRef]),
) -> Result<Option<String>, HostWriteError> {
    let (pid, comm, cpus, threads) = op;
    let mut o = Outcome::default();
    // What planning never moves is refused here too, whatever a (saved) plan says.
    let process = files.read(&root.join(format!("proc/{pid}/comm")));
    if let Ok(p) = &process {
        if is_qemu(p.trim_end_matches('\n')) || pid == std::process::id() {
            return Err(HostWriteError::Refused {
                path: path(pid, comm),
                why: format!(
                    "{}: a QEMU process or kvmtune itself is never moved",
                    path(pid, comm)
                ),
            });
        }
    }
    for t in threads {
        let base = root.join(format!("proc/{pid}/task/{}", t.tid));
        let read = |f: &str| match files.read(&base.join(f)) {
            Ok(s) => Ok(Some(s)),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(e),
        };
        let state = read("stat").and_then(|st| Ok((st, read("status")?)));
        let (stat, status) = match state {
            Ok((Some(st), Some(s))) => (st, s),
            Ok(_) => {
                o.exited.push(t.tid);
                continue;
            }
            Err(e) => {
                o.failed.push(format!("tid {}: {e}", t.tid));
                continue;
            }
        };
        let Some((_, flags, start)) = parse_stat(&stat) else {
            o.exited.push(t.tid);
            continue;
        };
        if start != t.start {
            o.exited.push(t.tid); // the tid is another thread's now
            continue;
        }
        if flags & PF_NO_SETAFFINITY != 0 {
            o.failed.push(format!(
                "tid {} is a per-CPU kernel thread: never moved",
                t.tid
            ));
            continue;
        }
        match cpus_allowed(&status) {
            Some(now) if now.is_subset(cpus) => {
                o.moved += 1;
                continue;
            }
            Some(now) if now == t.before => {}
            _ => {
                o.stale.push(t.tid);
                continue;
            }
        }
        match cmds.set_affinity(root, t.tid, cpus) {
            Ok(()) => {
                let now = files.read(&base.join("status")).ok();
                match now.as_deref().and_then(cpus_allowed) {
                    Some(c) if c.is_subset(cpus) => o.moved += 1,
                    None => o.exited.push(t.tid),
                    Some(c) => o
                        .failed
                        .push(format!("tid {} is on {c} after the move", t.tid)),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                return Err(HostWriteError::Refused {
                    path: path(pid, comm),
                    why: e.to_string(),
                })
            }
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => o.exited.push(t.tid),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => o.refused.push(RefusedThread {
                tid: t.tid,
                start: t.start,
            }),
            Err(e) => o.failed.push(format!("tid {}: {e}", t.tid)),
        }
    }
    report(files, root, path(pid, comm), o)
}

fn report(
    files: &dyn HostFiles,
    root: &Path,
    path: String,
    o: Outcome,
) -> Result<Option<String>, HostWriteError> {
    if !o.failed.is_empty() {
        return Err(HostWriteError::Refused {
            why: format!(
                "{path}: {} moved; not moved: {}",
                o.moved,
                o.failed.join("; ")
            ),
            path,
        });
    }
    let mut parts = Vec::new();
    let list = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    if !o.exited.is_empty() {
        parts.push(format!("exited before the move: tid {}", list(&o.exited)));
    }
    if !o.stale.is_empty() {
        parts.push(format!(
            "changed since the plan, left alone (plan again): tid {}",
            list(&o.stale)
        ));
    }
    if !o.refused.is_empty() {
        let tids: Vec<u32> = o.refused.iter().map(|r| r.tid).collect();
        let rec = match Refused::add(files, root, &[], &o.refused) {
            Ok(()) => "recorded: not planned again".to_string(),
            Err(e) => format!("could not record them: {e}"),
        };
        parts.push(format!(
            "refused (EINVAL: their cpuset has no reserved CPU): tid {} ({rec})",
            list(&tids)
        ));
    }
    Ok((!parts.is_empty()).then(|| format!("{path}: {} moved; {}", o.moved, parts.join("; "))))
}

/// `sched_setaffinity(2)` of thread `tid` on the running kernel; refuses any root but `/`.
pub fn set_affinity_live(root: &Path, tid: u32, cpus: &CpuSet) -> std::io::Result<()> {
    if !super::isolate::is_live_root(root) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "host threads are moved on the running kernel only, and --root {} is not /: not moved",
                root.display()
            ),
        ));
    }
    let words = cpus.highest() as usize / 64 + 1;
    let mut mask = vec![0u64; words];
    for c in cpus.iter() {
        mask[c as usize / 64] |= 1 << (c % 64);
    }
    let tid =
        libc::pid_t::try_from(tid).map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: the kernel reads `words * 8` bytes of the mask we own; tid is a plain number.
    let r =
        unsafe { libc::sched_setaffinity(tid, words * 8, mask.as_ptr().cast::<libc::cpu_set_t>()) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_names() {
        let stat = "1662 (a) b (c) S 1 1655 1655 0 -1 69238848 0 0 0 0 0 0 0 0 20 0 1 0 4242 0 0";
        assert_eq!(parse_stat(stat), Some(("a) b (c".into(), 69238848, 4242)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn per_cpu_kthreads_and_qemu_are_recognised() {
        let t = |flags, cpus: &str, process: &str| HostThread {
            pid: 1,
            tid: 1,
            comm: "x".into(),
            process: process.into(),
            cpus: cpus.parse().ok(),
            flags,
            start: 0,
        };
        assert!(t(PF_NO_SETAFFINITY | PF_KTHREAD, "0-1", "kworker").per_cpu_kthread());
        assert!(t(PF_KTHREAD, "1", "ksoftirqd/1").per_cpu_kthread());
        assert!(!t(PF_KTHREAD, "0-1", "kthreadd").per_cpu_kthread());
        assert!(!t(0, "1", "sleep").per_cpu_kthread());
        assert!(t(0, "0-1", "qemu-system-x86").is_qemu());
        assert!(t(0, "0-1", "qemu-kvm").is_qemu());
        assert!(!t(0, "0-1", "qemu").is_qemu());
    }
}
