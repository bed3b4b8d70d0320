//! What `perf kvm` needs before it can measure a guest, and why a recording came back empty.
//!
//! Invariant: [`missing`], [`no_exits`] and [`no_guest_samples`] are pure functions of
//! observed facts ([`Facts`], [`HostVirt`]); each item they return names the exact file,
//! program or state that is missing and how to get it. Reading the facts lives in
//! [`super::observe`], never here.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Where the kernel's tracepoints are, as perf looks for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Tracing {
    /// `events/kvm/kvm_entry` and `kvm_exit` exist below `dir`.
    Ready { dir: PathBuf },
    /// tracefs is mounted (`dir/events` exists) but has no `kvm` group.
    NoKvmEvents { dir: PathBuf },
    /// `dir/events/kvm` exists without `kvm_entry`/`kvm_exit`.
    NoExitEvents { dir: PathBuf },
    /// Neither `/sys/kernel/tracing/events` nor `/sys/kernel/debug/tracing/events` exists.
    NotMounted,
    /// The tracing directory could not be read (not root: tracefs is mode 0700).
    Unreadable { dir: PathBuf, error: String },
}

/// The guest, as libvirt and the pid file say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum GuestFact {
    NotDefined,
    NotRunning,
    /// Running under a hypervisor other than KVM (`qemu`: TCG, `test`).
    NotKvm {
        domain_type: String,
    },
    /// The pid file could not be read, or names no QEMU process.
    NoPid {
        path: PathBuf,
        error: String,
    },
    Running {
        pid: u32,
    },
}

/// A file given with `--guest-kallsyms` / `--guest-modules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum FileFact {
    Ok,
    Absent,
    /// Zero bytes: what `scp` of `/proc/kallsyms` gives (guide §8.2, procedure 8.1).
    Empty,
    Unreadable {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestFile {
    pub option: &'static str,
    pub path: PathBuf,
    pub fact: FileFact,
}

/// Everything [`missing`] decides on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facts {
    pub guest_name: String,
    /// The effective user is root.
    pub root: bool,
    /// `perf` found on `PATH`.
    pub perf: Option<PathBuf>,
    pub tracing: Tracing,
    pub guest: GuestFact,
    pub guest_files: Vec<GuestFile>,
}

/// One prerequisite that does not hold, in words that say how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "missing")]
pub enum Missing {
    PerfBinary,
    NotRoot,
    TracefsNotMounted,
    TracingUnreadable {
        dir: PathBuf,
        error: String,
    },
    KvmTracepoints {
        dir: PathBuf,
    },
    ExitTracepoints {
        dir: PathBuf,
    },
    GuestNotDefined {
        guest: String,
    },
    GuestNotRunning {
        guest: String,
    },
    GuestNotKvm {
        guest: String,
        domain_type: String,
    },
    GuestPid {
        guest: String,
        path: PathBuf,
        error: String,
    },
    GuestFile {
        option: &'static str,
        path: PathBuf,
        fact: FileFact,
    },
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::PerfBinary => write!(
                f,
                "perf is not installed (no `perf` on PATH): install it \
                 (Debian: apt-get install linux-perf; RHEL: yum install perf, guide §8.2)"
            ),
            Missing::NotRoot => write!(
                f,
                "not running as root: perf kvm must attach to QEMU's process (libvirt runs it \
                 as another user) and read the kvm tracepoints; run kvmtune perf as root"
            ),
            Missing::TracefsNotMounted => write!(
                f,
                "tracefs is not mounted: /sys/kernel/tracing/events is missing \
                 (mount it: mount -t tracefs nodev /sys/kernel/tracing)"
            ),
            Missing::TracingUnreadable { dir, error } => {
                write!(f, "cannot read {}: {error}", dir.display())
            }
            Missing::KvmTracepoints { dir } => write!(
                f,
                "the kernel has no kvm tracepoints: {}/events/kvm is missing \
                 (KVM is not loaded, or the kernel is built without tracing)",
                dir.display()
            ),
            Missing::ExitTracepoints { dir } => write!(
                f,
                "{}/events/kvm has no kvm_entry/kvm_exit tracepoints: perf kvm stat needs both",
                dir.display()
            ),
            Missing::GuestNotDefined { guest } => {
                write!(
                    f,
                    "guest {guest}: no such domain is defined on this hypervisor"
                )
            }
            Missing::GuestNotRunning { guest } => write!(
                f,
                "guest {guest} is not running: perf kvm measures a running guest \
                 (virsh start {guest})"
            ),
            Missing::GuestNotKvm { guest, domain_type } => write!(
                f,
                "guest {guest} runs under `{domain_type}`, not KVM (domain type='{domain_type}'): \
                 it makes no VM exits for perf kvm to count; define it with type='kvm'"
            ),
            Missing::GuestPid { guest, path, error } => write!(
                f,
                "guest {guest}: cannot find its QEMU process from {}: {error}",
                path.display()
            ),
            Missing::GuestFile { option, path, fact } => {
                let why = match fact {
                    FileFact::Ok => "ok".to_string(),
                    FileFact::Absent => "no such file".to_string(),
                    FileFact::Empty => "the file is empty (a copy of /proc/kallsyms or \
                        /proc/modules made with scp is; save it in the guest with cat first, \
                        guide §8.2 procedure 8.1)"
                        .to_string(),
                    FileFact::Unreadable { error } => error.clone(),
                };
                write!(f, "{option} {}: {why}", path.display())
            }
        }
    }
}

fn tracing_missing(t: &Tracing) -> Option<Missing> {
    match t {
        Tracing::Ready { .. } => None,
        Tracing::NotMounted => Some(Missing::TracefsNotMounted),
        Tracing::NoKvmEvents { dir } => Some(Missing::KvmTracepoints { dir: dir.clone() }),
        Tracing::NoExitEvents { dir } => Some(Missing::ExitTracepoints { dir: dir.clone() }),
        Tracing::Unreadable { dir, error } => Some(Missing::TracingUnreadable {
            dir: dir.clone(),
            error: error.clone(),
        }),
    }
}

fn guest_missing(name: &str, g: &GuestFact) -> Option<Missing> {
    let guest = name.to_string();
    match g {
        GuestFact::Running { .. } => None,
        GuestFact::NotDefined => Some(Missing::GuestNotDefined { guest }),
        GuestFact::NotRunning => Some(Missing::GuestNotRunning { guest }),
        GuestFact::NotKvm { domain_type } => Some(Missing::GuestNotKvm {
            guest,
            domain_type: domain_type.clone(),
        }),
        GuestFact::NoPid { path, error } => Some(Missing::GuestPid {
            guest,
            path: path.clone(),
            error: error.clone(),
        }),
    }
}

/// Every prerequisite that does not hold, most fundamental first; empty when perf can run.
/// Without root the tracing directory is unreadable by design, so only "not root" is said.
pub fn missing(f: &Facts) -> Vec<Missing> {
    let mut out = Vec::new();
    if f.perf.is_none() {
        out.push(Missing::PerfBinary);
    }
    if !f.root {
        out.push(Missing::NotRoot);
    }
    match tracing_missing(&f.tracing) {
        Some(Missing::TracingUnreadable { .. }) if !f.root => {}
        Some(m) => out.push(m),
        None => {}
    }
    out.extend(guest_missing(&f.guest_name, &f.guest));
    for g in &f.guest_files {
        // A guest kernel with everything built in has an empty /proc/modules; an empty
        // kallsyms is always a bad copy.
        let fine =
            g.fact == FileFact::Ok || (g.fact == FileFact::Empty && g.option == "--guest-modules");
        if !fine {
            out.push(Missing::GuestFile {
                option: g.option,
                path: g.path.clone(),
                fact: g.fact.clone(),
            });
        }
    }
    out
}

/// What the host's virtualization looks like (read once, for the diagnoses below).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HostVirt {
    /// `vmx` or `svm` in `/proc/cpuinfo`'s flags; `None` when cpuinfo was unreadable.
    pub hw_virt: Option<bool>,
    /// `/sys/module/kvm_pvm` exists: KVM's PVM backend (no hardware virtualization).
    pub pvm: bool,
    /// A hardware PMU (`/sys/bus/event_source/devices/cpu`, `cpu_core` or `cpu_atom`).
    pub pmu: bool,
    /// `/sys/module/kvm/parameters/halt_poll_ns`.
    pub halt_poll_ns: Option<u64>,
}

/// Why a recording of a running KVM guest holds no VM exits, as far as the facts tell.
pub fn no_exits(h: &HostVirt, pid: u32) -> Vec<String> {
    let mut out = vec![format!(
        "perf recorded no kvm_exit events for QEMU process {pid}"
    )];
    if h.pvm {
        out.push(
            "this host's /dev/kvm is KVM's PVM backend (/sys/module/kvm_pvm): it runs guests \
             without hardware virtualization; a guest kernel not built for PVM runs almost \
             entirely in KVM's instruction emulator (kvm:kvm_emulate_insn events), and PVM's \
             switches in and out of the guest fire no kvm_entry/kvm_exit tracepoints"
                .to_string(),
        );
    } else if h.hw_virt == Some(false) {
        out.push(
            "the CPU advertises neither vmx nor svm (/proc/cpuinfo): KVM here cannot use \
             hardware virtualization, so the kvm_exit tracepoint does not fire"
                .to_string(),
        );
    } else {
        out.push(
            "the guest's vCPUs did not run during the recording (paused, or stopped in the \
             firmware); check `virsh domstate`"
                .to_string(),
        );
    }
    out
}

/// Why a `--host --guest` profile holds no guest samples, as far as the facts tell.
pub fn no_guest_samples(h: &HostVirt, event: Option<&str>) -> Vec<String> {
    let mut out = vec!["perf attributed no samples to the guest ([g]/[u] rows)".to_string()];
    if h.pvm {
        out.push(
            "KVM's PVM backend emulated the guest in the host kernel, so the vCPU (almost) \
             never ran in guest mode: its time shows as host kernel symbols \
             ([k] x86_emulate_instruction and friends)"
                .to_string(),
        );
    }
    if !h.pmu {
        out.push(format!(
            "there is no hardware PMU (/sys/bus/event_source/devices/cpu is missing): perf \
             sampled the software event {} instead of hardware cycles",
            event.unwrap_or("cpu-clock")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Facts {
        Facts {
            guest_name: "g".into(),
            root: true,
            perf: Some("/usr/bin/perf".into()),
            tracing: Tracing::Ready {
                dir: "/sys/kernel/tracing".into(),
            },
            guest: GuestFact::Running { pid: 42 },
            guest_files: vec![],
        }
    }

    #[test]
    fn all_present_means_nothing_missing() {
        assert_eq!(missing(&ready()), vec![]);
    }

    #[test]
    fn each_fact_names_what_is_missing() {
        let mut f = ready();
        f.perf = None;
        f.tracing = Tracing::NotMounted;
        f.guest = GuestFact::NotRunning;
        let m: Vec<String> = missing(&f).iter().map(|m| m.to_string()).collect();
        assert_eq!(m.len(), 3, "{m:#?}");
        assert!(m[0].contains("linux-perf"), "{}", m[0]);
        assert!(
            m[1].contains("mount -t tracefs nodev /sys/kernel/tracing"),
            "{}",
            m[1]
        );
        assert!(m[2].contains("virsh start g"), "{}", m[2]);
    }

    #[test]
    fn without_root_the_unreadable_tracefs_is_not_a_second_error() {
        let mut f = ready();
        f.root = false;
        f.tracing = Tracing::Unreadable {
            dir: "/sys/kernel/tracing".into(),
            error: "Permission denied".into(),
        };
        assert_eq!(missing(&f), vec![Missing::NotRoot]);
        f.root = true;
        assert!(matches!(
            missing(&f)[..],
            [Missing::TracingUnreadable { .. }]
        ));
    }

    #[test]
    fn tracepoints_tcg_and_files() {
        let mut f = ready();
        f.tracing = Tracing::NoKvmEvents {
            dir: "/sys/kernel/tracing".into(),
        };
        f.guest = GuestFact::NotKvm {
            domain_type: "qemu".into(),
        };
        f.guest_files = vec![GuestFile {
            option: "--guest-kallsyms",
            path: "k".into(),
            fact: FileFact::Empty,
        }];
        f.guest_files.push(GuestFile {
            option: "--guest-modules",
            path: "m".into(),
            fact: FileFact::Empty,
        });
        let m: Vec<String> = missing(&f).iter().map(|m| m.to_string()).collect();
        assert_eq!(m.len(), 3, "an empty modules file is fine: {m:?}");
        assert!(
            m[0].contains("/sys/kernel/tracing/events/kvm is missing"),
            "{m:?}"
        );
        assert!(m[1].contains("type='qemu'"), "{m:?}");
        assert!(
            m[2].starts_with("--guest-kallsyms k: the file is empty"),
            "{m:?}"
        );
    }

    #[test]
    fn empty_recordings_are_explained_by_the_host() {
        let pvm = HostVirt {
            hw_virt: Some(false),
            pvm: true,
            pmu: false,
            halt_poll_ns: None,
        };
        assert!(no_exits(&pvm, 7)[1].contains("kvm_pvm"));
        let plain = HostVirt {
            hw_virt: Some(false),
            ..HostVirt::default()
        };
        assert!(no_exits(&plain, 7)[1].contains("neither vmx nor svm"));
        let hw = HostVirt {
            hw_virt: Some(true),
            pmu: true,
            ..HostVirt::default()
        };
        assert!(no_exits(&hw, 7)[1].contains("did not run"));
        let g = no_guest_samples(&pvm, Some("cpu-clock:pppG"));
        assert!(g[1].contains("never ran in guest mode"), "{g:?}");
        assert!(
            g[2].contains("no hardware PMU") && g[2].contains("cpu-clock:pppG"),
            "{g:?}"
        );
        assert_eq!(no_guest_samples(&hw, None).len(), 1);
    }
}
