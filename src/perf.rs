//! `kvmtune perf GUEST`: what chapter 8 of the guide does by hand with `perf kvm`, for one
//! running guest — VM exits by reason with their time (`perf kvm stat`), the guide's advice
//! where it applies, and with the guest's kallsyms/modules a host+guest symbol profile
//! (`perf kvm --host --guest record/report`).
//!
//! Invariant: [`observe`] only reads (libvirt's live XML, files below the root) and
//! [`preflight::missing`] decides from what it read whether perf can run at all; perf is
//! run only through [`runner`] (argv from typed values, bounded output, data size and time)
//! on a temporary directory kvmtune creates and removes; perf's output is untrusted text for
//! the total parsers [`stat::parse`] and [`profile::parse`]; the summary and its advice are
//! pure functions of what was parsed ([`summary::summarize`], [`advice::advise`]).

pub mod advice;
pub mod preflight;
pub mod profile;
pub mod runner;
pub mod stat;
pub mod summary;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::libvirt::{Hypervisor, LibvirtError};
use crate::model::names::printable;
use crate::model::DomainName;
use crate::xmltree::Document;
use preflight::{Facts, FileFact, GuestFact, GuestFile, HostVirt, Tracing};
use runner::{GuestSymbols, Invocation};
use summary::Summary;

/// A recording's duration: 1 to 3600 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Seconds(u32);

impl Seconds {
    pub const MAX: u32 = 3600;

    pub fn new(n: u32) -> Result<Seconds, String> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Seconds(n))
        } else {
            Err(format!(
                "{n}: the duration must be 1 to {} seconds",
                Self::MAX
            ))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl std::str::FromStr for Seconds {
    type Err = String;
    fn from_str(s: &str) -> Result<Seconds, String> {
        let n: u32 = s
            .parse()
            .map_err(|_| format!("{}: not a number of seconds", printable(s, 40)))?;
        Seconds::new(n)
    }
}

/// What the advice needs to know about the guest (from its live XML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestContext {
    /// `<domain type=…>`: `kvm`, `qemu` (TCG), `test`.
    pub domain_type: String,
    pub vcpus: u32,
    /// Every vCPU has a `<vcpupin>`.
    pub pinned: bool,
    /// `<memoryBacking><hugepages/>`.
    pub hugepages: bool,
}

/// Reads the context from a domain XML; what is absent or unreadable counts as not set.
pub fn guest_context(xml: &str) -> GuestContext {
    let Ok(doc) = Document::parse(xml) else {
        return GuestContext {
            domain_type: String::new(),
            vcpus: 1,
            pinned: false,
            hugepages: false,
        };
    };
    let root = doc.root();
    let vcpus = doc
        .child(root, "vcpu")
        .map(|v| {
            doc.attr(v, "current")
                .unwrap_or_else(|| doc.text(v))
                .trim()
                .parse::<u32>()
                .unwrap_or(1)
        })
        .unwrap_or(1)
        .max(1);
    let pins = doc
        .child(root, "cputune")
        .map_or(0, |c| doc.children_named(c, "vcpupin").len());
    let hugepages = doc
        .child(root, "memoryBacking")
        .and_then(|m| doc.child(m, "hugepages"))
        .is_some();
    GuestContext {
        domain_type: printable(&doc.attr(root, "type").unwrap_or_default(), 40),
        vcpus,
        pinned: pins as u64 >= u64::from(vcpus),
        hugepages,
    }
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub guest: DomainName,
    pub secs: Seconds,
    pub symbols: Option<GuestSymbols>,
}

/// What [`observe`] found.
#[derive(Debug, Clone)]
pub struct Observed {
    pub facts: Facts,
    pub host: HostVirt,
    /// The guest's context, when it is defined.
    pub context: Option<GuestContext>,
}

#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
    #[error("creating a temporary directory for perf's data: {0}")]
    TempDir(std::io::Error),
    #[error("running {cmd}: {err}")]
    Spawn { cmd: String, err: std::io::Error },
    #[error("{cmd} failed ({how}): {stderr}")]
    Failed {
        cmd: String,
        how: String,
        stderr: String,
    },
    #[error("{cmd}: {err}")]
    Parse { cmd: String, err: stat::StatError },
}

fn is_dir(p: &Path) -> bool {
    p.is_dir()
}

/// Where the kvm tracepoints are below `root` (tracefs, or debugfs's `tracing`).
pub fn tracing_fact(root: &Path) -> Tracing {
    let mut unreadable = None;
    for rel in ["sys/kernel/tracing", "sys/kernel/debug/tracing"] {
        let dir = root.join(rel);
        let events = dir.join("events");
        match std::fs::read_dir(&events) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                unreadable.get_or_insert((dir, e.to_string()));
                continue;
            }
            Err(_) => continue,
        }
        let kvm = events.join("kvm");
        if !is_dir(&kvm) {
            return Tracing::NoKvmEvents { dir };
        }
        if is_dir(&kvm.join("kvm_exit")) && is_dir(&kvm.join("kvm_entry")) {
            return Tracing::Ready { dir };
        }
        return Tracing::NoExitEvents { dir };
    }
    match unreadable {
        Some((dir, error)) => Tracing::Unreadable { dir, error },
        None => Tracing::NotMounted,
    }
}

/// `perf` on `PATH`.
pub fn find_perf() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("perf"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn file_fact(p: &Path) -> FileFact {
    match std::fs::metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileFact::Absent,
        Err(e) => FileFact::Unreadable {
            error: e.to_string(),
        },
        Ok(m) if !m.is_file() => FileFact::Unreadable {
            error: "not a regular file".into(),
        },
        Ok(m) if m.len() == 0 => FileFact::Empty,
        Ok(_) => match std::fs::File::open(p) {
            Ok(_) => FileFact::Ok,
            Err(e) => FileFact::Unreadable {
                error: e.to_string(),
            },
        },
    }
}

/// The running guest's QEMU pid, checked against `proc/PID/comm` (a stale pid file must not
/// make perf trace some other process).
fn guest_pid(root: &Path, name: &DomainName) -> GuestFact {
    let pidfile = root.join(format!("run/libvirt/qemu/{name}.pid"));
    let pid = match crate::verify::procfs::qemu_pid(root, name.as_str()) {
        Ok(p) => p,
        Err((_, e)) => {
            return GuestFact::NoPid {
                path: pidfile,
                error: e.to_string(),
            }
        }
    };
    let comm = root.join(format!("proc/{pid}/comm"));
    match crate::host::files::read(&comm) {
        Ok(c) if c.starts_with("qemu") => GuestFact::Running { pid },
        Ok(c) => GuestFact::NoPid {
            path: pidfile,
            error: format!(
                "process {pid} is {:?}, not QEMU (a stale pid file?)",
                printable(c.trim(), 40)
            ),
        },
        Err(e) => GuestFact::NoPid {
            path: pidfile,
            error: format!("{}: {e}", comm.display()),
        },
    }
}

fn cpu_has_virt(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_whitespace())
        .any(|f| f == "vmx" || f == "svm")
}

/// The host's virtualization facts below `root`.
pub fn host_virt(root: &Path) -> HostVirt {
    let cpuinfo = crate::host::files::read(&root.join("proc/cpuinfo")).ok();
    let halt = crate::host::files::read(&root.join("sys/module/kvm/parameters/halt_poll_ns"));
    HostVirt {
        hw_virt: cpuinfo.as_deref().map(cpu_has_virt),
        pvm: is_dir(&root.join("sys/module/kvm_pvm")),
        pmu: ["cpu", "cpu_core", "cpu_atom"]
            .iter()
            .any(|d| root.join("sys/bus/event_source/devices").join(d).exists()),
        halt_poll_ns: halt.ok().and_then(|s| s.trim().parse().ok()),
    }
}

/// Reads everything the preflight and the advice need. Libvirt errors are errors; every
/// other absence is a fact.
pub fn observe(root: &Path, hv: &Hypervisor, req: &Request) -> Result<Observed, PerfError> {
    let dom = hv.live_guest(req.guest.as_str())?;
    let context = dom.as_ref().map(|d| guest_context(&d.xml));
    let guest = match (&dom, &context) {
        (None, _) => GuestFact::NotDefined,
        (Some(d), _) if !d.active => GuestFact::NotRunning,
        (Some(_), Some(c)) if c.domain_type != "kvm" => GuestFact::NotKvm {
            domain_type: c.domain_type.clone(),
        },
        (Some(_), _) => guest_pid(root, &req.guest),
    };
    let guest_files = req
        .symbols
        .iter()
        .flat_map(|s| {
            [
                ("--guest-kallsyms", &s.kallsyms),
                ("--guest-modules", &s.modules),
            ]
        })
        .map(|(option, path)| GuestFile {
            option,
            path: path.clone(),
            fact: file_fact(path),
        })
        .collect();
    // SAFETY: geteuid(2) has no preconditions.
    let euid = unsafe { libc::geteuid() };
    Ok(Observed {
        facts: Facts {
            guest_name: req.guest.to_string(),
            root: euid == 0,
            perf: find_perf(),
            tracing: tracing_fact(root),
            guest,
            guest_files,
        },
        host: host_virt(root),
        context,
    })
}

fn tail(s: &str) -> String {
    let t: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = t.len().saturating_sub(5);
    printable(&t[start..].join(" / "), 600)
}

fn finish(running: runner::Running, inv: &Invocation) -> Result<runner::Output, PerfError> {
    let cmd = inv.display();
    let out = running.finish().map_err(|err| PerfError::Spawn {
        cmd: cmd.clone(),
        err,
    })?;
    if out.ok() {
        return Ok(out);
    }
    let how = if out.timed_out {
        format!("killed after {} s", inv.timeout().as_secs())
    } else {
        match out.code {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".into(),
        }
    };
    Err(PerfError::Failed {
        cmd,
        how,
        stderr: tail(&out.stderr),
    })
}

fn spawn(perf: &Path, inv: &Invocation) -> Result<runner::Running, PerfError> {
    runner::spawn(perf, inv).map_err(|err| PerfError::Spawn {
        cmd: inv.display(),
        err,
    })
}

/// Records for the requested duration (the profile alongside, when asked) and summarizes.
pub fn measure(perf: &Path, pid: u32, req: &Request, obs: &Observed) -> Result<Summary, PerfError> {
    let dir = tempfile::Builder::new()
        .prefix("kvmtune-perf-")
        .tempdir()
        .map_err(PerfError::TempDir)?;
    let stat_data = dir.path().join("kvm-stat.data");
    let prof_data = dir.path().join("kvm-profile.data");
    let rec = Invocation::StatRecord {
        pid,
        secs: req.secs,
        data: &stat_data,
    };
    let prof_rec = req.symbols.as_ref().map(|syms| Invocation::ProfileRecord {
        pid,
        secs: req.secs,
        data: &prof_data,
        syms,
    });
    let mut commands = vec![rec.display()];
    let running = spawn(perf, &rec)?;
    let prof_running = match &prof_rec {
        Some(inv) => {
            commands.push(inv.display());
            match spawn(perf, inv) {
                Ok(r) => Some(r),
                Err(e) => {
                    // Never leave the first perf running behind.
                    let _ = running.finish();
                    return Err(e);
                }
            }
        }
        None => None,
    };
    let stat_done = finish(running, &rec);
    let prof_done = prof_running
        .zip(prof_rec.as_ref())
        .map(|(r, i)| finish(r, i));
    stat_done?;
    let report = Invocation::StatReport { data: &stat_data };
    commands.push(report.display());
    let out = finish(spawn(perf, &report)?, &report)?;
    let table = stat::parse(&out.text()).map_err(|err| PerfError::Parse {
        cmd: report.display(),
        err,
    })?;
    let exits = summary::summarize(&table, req.secs.get());
    let context = obs.context.clone().unwrap_or_else(|| guest_context(""));
    let profile = match (prof_done, &req.symbols) {
        (Some(done), Some(syms)) => {
            done?;
            let inv = Invocation::ProfileReport {
                data: &prof_data,
                syms,
            };
            commands.push(inv.display());
            let out = finish(spawn(perf, &inv)?, &inv)?;
            let p = profile::parse(&out.stdout);
            let diagnosis = if p.guest_rows().next().is_none() {
                preflight::no_guest_samples(&obs.host, p.event.as_deref())
            } else {
                Vec::new()
            };
            Some(summary::profile_summary(&p, diagnosis))
        }
        _ => None,
    };
    Ok(Summary {
        format_version: 1,
        guest: req.guest.to_string(),
        pid,
        duration_secs: req.secs.get(),
        advice: advice::advise(&exits, &context),
        diagnosis: if exits.total == 0 {
            preflight::no_exits(&obs.host, pid)
        } else {
            Vec::new()
        },
        context,
        host: obs.host.clone(),
        exits,
        profile,
        commands,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_bounded() {
        assert!("0".parse::<Seconds>().is_err());
        assert!("3601".parse::<Seconds>().is_err());
        assert!("-1".parse::<Seconds>().is_err());
        assert_eq!("3600".parse::<Seconds>().unwrap().get(), 3600);
    }

    #[test]
    fn context_from_the_live_xml() {
        let c = guest_context(
            "<domain type='kvm'><vcpu current='2'>4</vcpu><cputune>\
             <vcpupin vcpu='0' cpuset='1'/><vcpupin vcpu='1' cpuset='2'/></cputune>\
             <memoryBacking><hugepages/></memoryBacking></domain>",
        );
        assert_eq!(
            c,
            GuestContext {
                domain_type: "kvm".into(),
                vcpus: 2,
                pinned: true,
                hugepages: true
            }
        );
        let c = guest_context("<domain type='qemu'><vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='1'/></cputune></domain>");
        assert!(!c.pinned && !c.hugepages && c.domain_type == "qemu");
        assert_eq!(guest_context("<not xml").vcpus, 1);
    }

    #[test]
    fn host_facts_below_the_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        assert_eq!(tracing_fact(r), Tracing::NotMounted);
        std::fs::create_dir_all(r.join("sys/kernel/tracing/events/sched")).unwrap();
        assert!(matches!(tracing_fact(r), Tracing::NoKvmEvents { .. }));
        std::fs::create_dir_all(r.join("sys/kernel/tracing/events/kvm/kvm_exit")).unwrap();
        assert!(matches!(tracing_fact(r), Tracing::NoExitEvents { .. }));
        std::fs::create_dir_all(r.join("sys/kernel/tracing/events/kvm/kvm_entry")).unwrap();
        assert!(matches!(tracing_fact(r), Tracing::Ready { .. }));
        std::fs::create_dir_all(r.join("proc")).unwrap();
        std::fs::write(r.join("proc/cpuinfo"), "flags\t\t: fpu vme sse\n").unwrap();
        std::fs::create_dir_all(r.join("sys/module/kvm_pvm")).unwrap();
        let h = host_virt(r);
        assert_eq!((h.hw_virt, h.pvm, h.pmu), (Some(false), true, false));
        std::fs::write(r.join("proc/cpuinfo"), "flags\t\t: fpu vmx sse\n").unwrap();
        assert_eq!(host_virt(r).hw_virt, Some(true));
    }
}
