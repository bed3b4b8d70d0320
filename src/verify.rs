//! `verify`: is the declared tuning of running guests actually in effect?
//!
//! Invariant: [`compare`] is a pure function of (desired guest, [`LiveGuest`]) and yields exactly
//! one [`Check`] per declared setting it can observe on a running guest, in a fixed order, with
//! `expected` and `actual` in the same canonical text (CPU sets as `0-3`, sizes in KiB); a check
//! holds only when the running reality equals the declaration. All reading (libvirt's live XML,
//! `/proc/<pid>/...` below the root) lives in [`procfs`] and [`verify`], never in [`compare`].
//! Verify never writes anything. Each setting unit holds its own checks
//! ([`crate::domain::settings::GuestSetting::verify`]).
//!
//! What is compared, and where it is read (libvirt 9.0, QEMU 7.2, cgroup v1 cpuset):
//! - `cputune.vcpupin.N`: `Cpus_allowed_list` of the thread named `CPU N/KVM` (`CPU N/TCG`).
//! - `cputune.emulatorpin`: `Cpus_allowed_list` of every other QEMU thread except IOThreads
//!   (`IO iothreadN`) and kernel-created workers (`PF_USER_WORKER`: vhost, `kvm-nx-lpage-re`).
//!   libvirt puts exactly these threads in the domain's `emulator` cpuset cgroup, and a live
//!   `virsh emulatorpin` moves all of them.
//! - `numatune.memory.nodeset`: for mode strict/restrictive, libvirt writes the cgroup's
//!   `cpuset.mems`, which every QEMU thread's `Mems_allowed_list` reflects; for interleave/
//!   preferred, the memory policy of the guest RAM mapping in `numa_maps`.
//! - `memory_backing.hugepages`: the mappings in `smaps` whose `KernelPageSize` is the declared
//!   page size must together be at least the guest's `<memory>`.
//! - `disks.DEV.cache` / `.io`: the live XML (`virDomainGetXMLDesc` with flags 0).
//! - `cputune.iothreadpin.N`: `Cpus_allowed_list` of the thread `IO iothreadN`.
//! - the host (`cpu_pool.isolate`): host threads, IRQs and guests not declared that reach a
//!   dedicated CPU ([`isolation`]).

pub mod isolation;
pub mod procfs;

use std::path::Path;

use serde::Serialize;

use crate::desired::{Desired, GuestDesired};
use crate::domain::running::Running;
use crate::libvirt::{Hypervisor, LibvirtError};
use crate::units::PageSize;
use crate::xmltree::Document;

pub use crate::domain::running::{vcpu_index, Check, LiveGuest, Mapping, ThreadInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestState {
    Running,
    NotRunning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestReport {
    pub name: String,
    pub state: GuestState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifySummary {
    pub checks: usize,
    pub differences: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub guests: Vec<GuestReport>,
    /// The host's isolation checks (`cpu_pool.isolate`), when declared.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host: Vec<Check>,
    /// What verify found worth saying that is not a difference (managed IRQs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub summary: VerifySummary,
}

impl Report {
    pub fn new(guests: Vec<GuestReport>) -> Report {
        Report::with_host(guests, Vec::new(), Vec::new())
    }

    pub fn with_host(guests: Vec<GuestReport>, host: Vec<Check>, notes: Vec<String>) -> Report {
        let all = || guests.iter().flat_map(|g| &g.checks).chain(&host);
        let checks = all().count();
        let differences = all().filter(|c| !c.ok).count();
        Report {
            format_version: 1,
            guests,
            host,
            notes,
            summary: VerifySummary {
                checks,
                differences,
            },
        }
    }

    /// Every check holds.
    pub fn holds(&self) -> bool {
        self.summary.differences == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
    #[error("guest {0}: no such domain is defined on this hypervisor")]
    NoGuest(String),
    #[error("host: reading {path}: {err}")]
    Host { path: String, err: std::io::Error },
    #[error("guest {name}: reading {path}: {err}")]
    Proc {
        name: String,
        path: String,
        err: std::io::Error,
    },
}

/// Pure: the checks for one running guest, unit by unit in registry order.
pub fn compare(
    d: &GuestDesired,
    live: &LiveGuest,
    host_default_page: Option<PageSize>,
) -> Vec<Check> {
    let doc = Document::parse(&live.xml).ok();
    let run = Running {
        live,
        doc: doc.as_ref(),
        host_page: host_default_page,
    };
    let mut out = Vec::new();
    for s in crate::domain::settings::SETTINGS {
        s.verify(d, &run, &mut out);
    }
    out
}

/// Reads what is in effect for every declared guest and compares. Guests that are defined but
/// not running are reported with no checks; a declared guest that is not defined is an error.
pub fn verify(d: &Desired, root: &Path, hv: &Hypervisor) -> Result<Report, VerifyError> {
    let host_page = crate::host::default_hugepage(root).unwrap_or(None);
    let mut guests = Vec::new();
    for (name, gd) in &d.guests {
        let name = name.as_str();
        let Some(dom) = hv.live_guest(name)? else {
            return Err(VerifyError::NoGuest(name.to_string()));
        };
        if !dom.active {
            guests.push(GuestReport {
                name: name.to_string(),
                state: GuestState::NotRunning,
                pid: None,
                checks: Vec::new(),
            });
            continue;
        }
        let proc_err = |path: String, err| VerifyError::Proc {
            name: name.to_string(),
            path,
            err,
        };
        let pid = procfs::qemu_pid(root, name).map_err(|(p, e)| proc_err(p, e))?;
        let live = LiveGuest {
            pid,
            xml: dom.xml,
            threads: procfs::threads(root, pid).map_err(|(p, e)| proc_err(p, e))?,
            mappings: if gd.hugepages.is_some() || gd.numa_memory.is_some() {
                procfs::mappings(root, pid).map_err(|(p, e)| proc_err(p, e))?
            } else {
                Vec::new()
            },
        };
        guests.push(GuestReport {
            name: name.to_string(),
            state: GuestState::Running,
            pid: Some(pid),
            checks: compare(gd, &live, host_page),
        });
    }
    let (host, notes) = match isolation::read(d, root, hv)? {
        Some(facts) => isolation::compare(&d.host, &facts),
        None => (Vec::new(), Vec::new()),
    };
    Ok(Report::with_host(guests, host, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(tid: u32, comm: &str, cpus: &str) -> ThreadInfo {
        ThreadInfo {
            tid,
            comm: comm.into(),
            cpus_allowed: cpus.parse().ok(),
            mems_allowed: "0".parse().ok(),
            kernel_worker: comm.starts_with("kvm-"),
        }
    }

    fn live(threads: Vec<ThreadInfo>, mappings: Vec<Mapping>) -> LiveGuest {
        LiveGuest {
            pid: 100,
            xml: "<domain><memory unit='KiB'>65536</memory><devices>\
                  <disk device='disk'><driver name='qemu' cache='none'/><target dev='vda'/></disk>\
                  <disk device='cdrom'><target dev='sda'/></disk></devices></domain>"
                .into(),
            threads,
            mappings,
        }
    }

    fn guest(yaml: &str) -> GuestDesired {
        let d = crate::desired::load_str("t.yaml", yaml).unwrap();
        d.guests.into_values().next().unwrap()
    }

    fn standard_threads() -> Vec<ThreadInfo> {
        vec![
            thread(100, "qemu-system-x86", "1"),
            thread(101, "IO mon_iothread", "1"),
            thread(102, "CPU 0/KVM", "0"),
            thread(103, "CPU 1/KVM", "1"),
            thread(104, "IO iothread1", "0-1"),
            thread(105, "kvm-nx-lpage-re", "0-1"),
        ]
    }

    #[test]
    fn pins_hold_and_differences_name_the_setting() {
        let g = guest(
            "guests:\n  g:\n    vcpu: { count: 2 }\n    cputune: { vcpupin: { 0: \"0\", 1: \"1\" }, emulatorpin: \"1\" }\n",
        );
        let checks = compare(&g, &live(standard_threads(), vec![]), None);
        assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
        assert_eq!(checks.len(), 3);

        let mut t = standard_threads();
        t[2].cpus_allowed = "1".parse().ok();
        t[1].cpus_allowed = "0".parse().ok();
        let checks = compare(&g, &live(t, vec![]), None);
        let bad: Vec<_> = checks.iter().filter(|c| !c.ok).collect();
        assert_eq!(bad.len(), 2, "{checks:#?}");
        assert_eq!(bad[0].setting, "cputune.vcpupin.0");
        assert_eq!(
            (bad[0].expected.as_str(), bad[0].actual.as_str()),
            ("0", "1")
        );
        assert_eq!(bad[1].setting, "cputune.emulatorpin");
        assert_eq!(
            bad[1].actual,
            "0 on 101 (IO mon_iothread); 1 on 100 (qemu-system-x86)"
        );
    }

    #[test]
    fn hugepages_need_mappings_covering_the_memory() {
        let g = guest("guests:\n  g:\n    memory_backing: { hugepages: { size: 2M } }\n");
        let big = |page| Mapping {
            start: 0,
            size_kib: 65536,
            kernel_page_kib: page,
            policy: None,
        };
        let ok = compare(&g, &live(vec![], vec![big(2048)]), None);
        assert!(ok[0].ok, "{ok:?}");
        assert_eq!(ok[0].expected, "65536 KiB in 2M pages");
        let bad = compare(&g, &live(vec![], vec![big(4)]), None);
        assert_eq!(bad[0].actual, "no huge pages");
        let dflt = guest("guests:\n  g:\n    memory_backing: { hugepages: true }\n");
        assert!(
            compare(
                &dflt,
                &live(vec![], vec![big(2048)]),
                Some(PageSize::TWO_MIB)
            )[0]
            .ok
        );
    }

    #[test]
    fn disks_use_the_live_xml_and_star_applies_to_disks_only() {
        let g = guest("guests:\n  g:\n    disks: { \"*\": { cache: none, io: native } }\n");
        let checks = compare(&g, &live(vec![], vec![]), None);
        let got: Vec<_> = checks
            .iter()
            .map(|c| (c.setting.as_str(), c.actual.as_str(), c.ok))
            .collect();
        assert_eq!(
            got,
            [
                ("disks.vda.cache", "none", true),
                ("disks.vda.io", "(unset)", false)
            ]
        );
    }

    #[test]
    fn numa_strict_reads_mems_allowed() {
        let g =
            guest("guests:\n  g:\n    numatune: { memory: { mode: strict, nodeset: \"0\" } }\n");
        let checks = compare(&g, &live(standard_threads(), vec![]), None);
        assert!(checks[0].ok, "{checks:?}");
        let mut t = standard_threads();
        t[0].mems_allowed = "0-1".parse().ok();
        assert!(!compare(&g, &live(t, vec![]), None)[0].ok);
    }

    #[test]
    fn iothread_pins_read_the_iothread_threads() {
        let g = guest(
            "guests:\n  g:\n    iothreads: 2\n    cputune: { iothreadpin: { 1: \"0-1\", 2: \"1\" } }\n",
        );
        let checks = compare(&g, &live(standard_threads(), vec![]), None);
        let got: Vec<_> = checks
            .iter()
            .map(|c| (c.setting.as_str(), c.actual.as_str(), c.ok))
            .collect();
        assert_eq!(
            got,
            [
                ("cputune.iothreadpin.1", "0-1", true),
                ("cputune.iothreadpin.2", "(no IOThread thread)", false)
            ]
        );
    }

    #[test]
    fn vcpu_thread_names() {
        assert_eq!(vcpu_index("CPU 0/KVM"), Some(0));
        assert_eq!(vcpu_index("CPU 12/TCG"), Some(12));
        assert_eq!(vcpu_index("qemu-system-x86"), None);
    }
}
