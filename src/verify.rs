//! `verify`: is the declared tuning of running guests actually in effect?
//!
//! Invariant: [`compare`] is a pure function of (desired guest, [`LiveGuest`]) and yields exactly
//! one [`Check`] per declared setting it can observe on a running guest, in a fixed order, with
//! `expected` and `actual` in the same canonical text (CPU sets as `0-3`, sizes in KiB); a check
//! holds only when the running reality equals the declaration. All reading (libvirt's live XML,
//! `/proc/<pid>/...` below the root) lives in [`procfs`] and [`verify`], never in [`compare`].
//! Verify never writes anything.
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

pub mod procfs;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::config::raw::NumaMode;
use crate::cpuset::CpuSet;
use crate::desired::{Desired, DeviceKey, GuestDesired, HugepagesBacking};
use crate::libvirt::{Hypervisor, LibvirtError};
use crate::units::{to_kib, PageSize};
use crate::xmltree::Document;

/// One thread of the QEMU process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    pub tid: u32,
    pub comm: String,
    pub cpus_allowed: Option<CpuSet>,
    pub mems_allowed: Option<CpuSet>,
    /// Created by the kernel inside the process (`PF_USER_WORKER`): vhost, KVM's NX recovery.
    pub kernel_worker: bool,
}

/// One memory mapping of the QEMU process (from smaps / numa_maps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub size_kib: u64,
    pub kernel_page_kib: u64,
    /// The numa_maps policy (`default`, `bind:0`, `interleave:0-1`, `prefer:1`), when read.
    pub policy: Option<String>,
}

/// Everything verify observes about one running guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGuest {
    pub pid: u32,
    /// The live domain XML (flags 0).
    pub xml: String,
    pub threads: Vec<ThreadInfo>,
    pub mappings: Vec<Mapping>,
}

/// One declared setting, as declared and as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// YAML key names: `cputune.vcpupin.0`, `disks.vda.cache`.
    pub setting: String,
    pub expected: String,
    pub actual: String,
    pub ok: bool,
}

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
    pub summary: VerifySummary,
}

impl Report {
    pub fn new(guests: Vec<GuestReport>) -> Report {
        let checks = guests.iter().map(|g| g.checks.len()).sum();
        let differences = guests
            .iter()
            .flat_map(|g| &g.checks)
            .filter(|c| !c.ok)
            .count();
        Report {
            format_version: 1,
            guests,
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
    #[error("guest {name}: reading {path}: {err}")]
    Proc {
        name: String,
        path: String,
        err: std::io::Error,
    },
}

/// The vCPU index of a QEMU vCPU thread (`CPU 3/KVM`, `CPU 3/TCG`).
pub fn vcpu_index(comm: &str) -> Option<u32> {
    comm.strip_prefix("CPU ")?.split('/').next()?.parse().ok()
}

/// QEMU names IOThread threads `IO <object id>`; libvirt's IOThread ids are `iothreadN`.
fn is_iothread(comm: &str) -> bool {
    comm.starts_with("IO iothread")
}

fn set_text(s: &Option<CpuSet>) -> String {
    s.as_ref()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "(unknown)".into())
}

fn check(out: &mut Vec<Check>, setting: String, expected: String, actual: String) {
    let ok = expected == actual;
    out.push(Check {
        setting,
        expected,
        actual,
        ok,
    });
}

/// Summarizes the CPU (or node) sets of several threads: the set when they agree, otherwise
/// each distinct set with the threads that have it.
fn sets_of<'a>(
    threads: impl Iterator<Item = &'a ThreadInfo>,
    get: impl Fn(&ThreadInfo) -> &Option<CpuSet>,
) -> String {
    let mut by_set: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in threads {
        by_set
            .entry(set_text(get(t)))
            .or_default()
            .push(format!("{} ({})", t.tid, t.comm));
    }
    match by_set.len() {
        0 => "(no threads)".into(),
        1 => by_set.into_keys().next().unwrap_or_default(),
        _ => by_set
            .into_iter()
            .map(|(set, ts)| format!("{set} on {}", ts.join(", ")))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// The guest's `<memory>` in KiB.
fn memory_kib(doc: &Document) -> Option<u64> {
    let m = doc.child(doc.root(), "memory")?;
    let v: u64 = doc.text(m).trim().parse().ok()?;
    to_kib(v, &doc.attr(m, "unit").unwrap_or_else(|| "KiB".into())).ok()
}

/// Pure: the checks for one running guest.
pub fn compare(
    d: &GuestDesired,
    live: &LiveGuest,
    host_default_page: Option<PageSize>,
) -> Vec<Check> {
    let mut out = Vec::new();
    let doc = Document::parse(&live.xml).ok();

    if let Some(pins) = &d.vcpupin {
        for (idx, want) in pins {
            let t = live
                .threads
                .iter()
                .find(|t| vcpu_index(&t.comm) == Some(*idx));
            let actual = match t {
                Some(t) => set_text(&t.cpus_allowed),
                None => "(no vCPU thread)".into(),
            };
            check(
                &mut out,
                format!("cputune.vcpupin.{idx}"),
                want.to_string(),
                actual,
            );
        }
    }
    let emulator = || {
        live.threads
            .iter()
            .filter(|t| vcpu_index(&t.comm).is_none() && !is_iothread(&t.comm) && !t.kernel_worker)
    };
    if let Some(want) = &d.emulatorpin {
        let actual = sets_of(emulator(), |t| &t.cpus_allowed);
        check(
            &mut out,
            "cputune.emulatorpin".into(),
            want.to_string(),
            actual,
        );
    }
    if let Some(nodeset) = d.numa_memory.as_ref().and_then(|n| n.nodeset.as_ref()) {
        let mode = d.numa_memory.as_ref().and_then(|n| n.mode);
        let actual = match mode {
            None | Some(NumaMode::Strict) | Some(NumaMode::Restrictive) => {
                sets_of(live.threads.iter().filter(|t| !t.kernel_worker), |t| {
                    &t.mems_allowed
                })
            }
            Some(m) => {
                // The guest RAM is the largest mapping; its policy is `interleave:0-1` etc.
                let policy = live
                    .mappings
                    .iter()
                    .max_by_key(|m| m.size_kib)
                    .and_then(|m| m.policy.clone())
                    .unwrap_or_else(|| "(unknown)".into());
                let prefix = if m == NumaMode::Interleave {
                    "interleave:"
                } else {
                    "prefer"
                };
                match policy.split_once(':') {
                    Some((p, nodes)) if format!("{p}:").starts_with(prefix) => nodes
                        .parse::<CpuSet>()
                        .map(|c| c.to_string())
                        .unwrap_or(policy),
                    _ => format!("policy {policy}"),
                }
            }
        };
        check(
            &mut out,
            "numatune.memory.nodeset".into(),
            nodeset.to_string(),
            actual,
        );
    }
    if let Some(hp) = d.hugepages {
        let mem = doc.as_ref().and_then(memory_kib);
        let page = match hp {
            HugepagesBacking::Size(s) => Some(s),
            HugepagesBacking::DefaultSize => host_default_page,
            HugepagesBacking::Off => None,
        };
        let huge_kib = |page_kib: u64| -> u64 {
            live.mappings
                .iter()
                .filter(|m| m.kernel_page_kib == page_kib)
                .map(|m| m.size_kib)
                .sum()
        };
        let mem_text = mem
            .map(|m| format!("{m} KiB"))
            .unwrap_or_else(|| "the guest memory".into());
        match (hp, page) {
            (HugepagesBacking::Off, _) => {
                let huge: u64 = live
                    .mappings
                    .iter()
                    .filter(|m| m.kernel_page_kib > 4)
                    .map(|m| m.size_kib)
                    .sum();
                let actual = if huge == 0 {
                    "no huge pages".to_string()
                } else {
                    format!("{huge} KiB in huge pages")
                };
                check(
                    &mut out,
                    "memory_backing.hugepages".into(),
                    "no huge pages".into(),
                    actual,
                );
            }
            (_, Some(p)) => {
                let expected = format!("{mem_text} in {p} pages");
                let have = huge_kib(p.kib());
                let actual = match mem {
                    Some(m) if have >= m => expected.clone(),
                    _ if have == 0 => "no huge pages".to_string(),
                    _ => format!("{have} KiB in {p} pages"),
                };
                check(
                    &mut out,
                    "memory_backing.hugepages".into(),
                    expected,
                    actual,
                );
            }
            (_, None) => check(
                &mut out,
                "memory_backing.hugepages".into(),
                format!("{mem_text} in huge pages of the host's default size"),
                "(the host's default huge page size is unknown)".into(),
            ),
        }
    }
    if !d.disks.is_empty() {
        disks(&mut out, d, doc.as_ref());
    }
    out
}

fn disks(out: &mut Vec<Check>, d: &GuestDesired, doc: Option<&Document>) {
    let Some(doc) = doc else {
        check(
            out,
            "disks".into(),
            "a live XML".into(),
            "(does not parse)".into(),
        );
        return;
    };
    let list = doc
        .child(doc.root(), "devices")
        .map(|devs| doc.children_named(devs, "disk"))
        .unwrap_or_default();
    let mut seen = Vec::new();
    for disk in list {
        let Some(dev) = doc.child(disk, "target").and_then(|t| doc.attr(t, "dev")) else {
            continue;
        };
        let is_disk = doc.attr(disk, "device").is_none_or(|k| k == "disk");
        let all = d.disks.get(&DeviceKey::All).filter(|_| is_disk);
        let one = d.disks.get(&DeviceKey::One(dev.clone()));
        if one.is_some() {
            seen.push(dev.clone());
        }
        let cache = one.and_then(|o| o.cache).or(all.and_then(|a| a.cache));
        let io = one.and_then(|o| o.io).or(all.and_then(|a| a.io));
        let driver = doc.child(disk, "driver");
        let attr = |name: &str| {
            driver
                .and_then(|drv| doc.attr(drv, name))
                .unwrap_or_else(|| "(unset)".into())
        };
        if let Some(c) = cache {
            check(
                out,
                format!("disks.{dev}.cache"),
                c.as_str().into(),
                attr("cache"),
            );
        }
        if let Some(i) = io {
            check(
                out,
                format!("disks.{dev}.io"),
                i.as_str().into(),
                attr("io"),
            );
        }
    }
    for k in d.disks.keys() {
        if let DeviceKey::One(dev) = k {
            if !seen.contains(dev) {
                check(
                    out,
                    format!("disks.{dev}"),
                    "a disk".into(),
                    "(no such disk in the live XML)".into(),
                );
            }
        }
    }
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
    Ok(Report::new(guests))
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
    fn vcpu_thread_names() {
        assert_eq!(vcpu_index("CPU 0/KVM"), Some(0));
        assert_eq!(vcpu_index("CPU 12/TCG"), Some(12));
        assert_eq!(vcpu_index("qemu-system-x86"), None);
    }
}
