//! `verify`'s host part: does the isolation that `cpu_pool.isolate` declares hold?
//!
//! Invariant: [`compare`] is pure over [`HostFacts`]; reading (`/proc`, `/proc/irq`, libvirt's
//! live XML of guests not declared) is in [`read`]. Dedicated CPUs are the online ones neither
//! reserved nor shared. Checked, each only when a part that promises it is declared:
//! - host threads (`host_threads`, `systemd` or `kernel`): every task whose
//!   `Cpus_allowed_list` reaches a dedicated CPU, except QEMU processes (guests: their vCPUs are
//!   checked below and by the guests' own checks), per-CPU kernel threads and kvmtune itself;
//! - IRQs (`irqs` or `kernel`): every IRQ whose `effective_affinity_list` (else
//!   `smp_affinity_list`) reaches one; IRQs the kernel manages (recorded when they refused a new
//!   affinity) are notes, not differences, since only the boot-time isolation moves them, and so
//!   are IRQs whose affinity is already off the dedicated CPUs while delivery still is not (x86
//!   moves an IRQ at its next interrupt);
//! - guests not declared (any part): every vCPU of a running one whose pin (else the
//!   `<vcpu cpuset>`, else every online CPU) reaches one.
//!
//! Each finding is one failing check naming the thread (pid, tid, name) or IRQ (number,
//! devices) or guest and vCPU, and the CPUs; a clean category is one passing check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{Check, VerifyError};
use crate::cpuset::CpuSet;
use crate::desired::{Desired, HostDesired};
use crate::host::irqs;
use crate::host::isolate::{Refused, CPU_ONLINE, REFUSED};
use crate::host::threads::HostThread;
use crate::libvirt::Hypervisor;
use crate::model::keys::{IrqNum, IRQ_DIR};

/// One IRQ as read for verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqFact {
    pub irq: IrqNum,
    pub devices: String,
    /// Where it may be delivered (`smp_affinity_list`).
    pub affinity: Option<CpuSet>,
    /// Where it is delivered (`effective_affinity_list`; `None` on kernels without it).
    pub effective: Option<CpuSet>,
}

impl IrqFact {
    /// Where it is delivered: the effective affinity, else the affinity.
    pub fn cpus(&self) -> Option<&CpuSet> {
        self.effective.as_ref().or(self.affinity.as_ref())
    }
}

/// Everything the host checks read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub online: Option<CpuSet>,
    pub threads: Vec<HostThread>,
    pub irqs: Vec<IrqFact>,
    pub refused: Refused,
    /// Live XML of the running guests not declared.
    pub others: BTreeMap<String, String>,
    /// kvmtune's own pid (never a finding), when the root is `/`.
    pub self_pid: Option<u32>,
}

struct Parts {
    threads: bool,
    irqs: bool,
    guests: bool,
}

fn parts(h: &HostDesired) -> Option<Parts> {
    let i = h.cpu_pool.isolate;
    (h.cpu_pool.reserved.is_some() && i.any()).then_some(Parts {
        threads: i.host_threads || i.systemd || i.kernel,
        irqs: i.irqs || i.kernel,
        guests: true,
    })
}

fn host_err(path: &str) -> impl Fn(std::io::Error) -> VerifyError + '_ {
    move |err| VerifyError::Host {
        path: format!("/{path}"),
        err,
    }
}

/// Reads what the declared isolation parts need (nothing when none is declared).
pub fn read(d: &Desired, root: &Path, hv: &Hypervisor) -> Result<Option<HostFacts>, VerifyError> {
    let Some(p) = parts(&d.host) else {
        return Ok(None);
    };
    let read_opt = |f: &str| crate::host::files::read_opt(&root.join(f)).map_err(host_err(f));
    let mut facts = HostFacts {
        online: read_opt(CPU_ONLINE)?.and_then(|c| c.trim().parse().ok()),
        refused: read_opt(REFUSED)?
            .as_deref()
            .map(Refused::parse)
            .unwrap_or_default(),
        self_pid: crate::host::isolate::is_live_root(root).then(std::process::id),
        ..Default::default()
    };
    if p.threads {
        facts.threads = crate::host::threads::read(root).map_err(host_err("proc"))?;
    }
    if p.irqs {
        let listing =
            crate::host::files::list_opt(&root.join(IRQ_DIR)).map_err(host_err(IRQ_DIR))?;
        for irq in listing
            .as_deref()
            .and_then(irqs::numbers)
            .unwrap_or_default()
        {
            let dir = format!("{IRQ_DIR}/{irq}");
            let Some(names) =
                crate::host::files::list_opt(&root.join(&dir)).map_err(host_err(&dir))?
            else {
                continue;
            };
            let set = |f: &str| -> Result<Option<CpuSet>, VerifyError> {
                Ok(read_opt(&format!("{dir}/{f}"))?.and_then(|c| c.trim().parse().ok()))
            };
            facts.irqs.push(IrqFact {
                irq,
                devices: irqs::devices(Some(&names)),
                affinity: set("smp_affinity_list")?,
                effective: set("effective_affinity_list")?,
            });
        }
    }
    if p.guests {
        let names: BTreeSet<String> = d.guests.keys().map(|n| n.as_str().to_string()).collect();
        facts.others = hv.other_running_xml(&names)?;
    }
    Ok(Some(facts))
}

/// Pure: the host checks and notes.
pub fn compare(h: &HostDesired, f: &HostFacts) -> (Vec<Check>, Vec<String>) {
    let (mut checks, mut notes) = (Vec::new(), Vec::new());
    let Some(p) = parts(h) else {
        return (checks, notes);
    };
    let Some(online) = &f.online else {
        checks.push(finding(
            "cpu_pool.isolate",
            "online CPUs",
            format!("/{CPU_ONLINE} unreadable"),
        ));
        return (checks, notes);
    };
    let Some(dedicated) = h.cpu_pool.dedicated(online) else {
        notes.push(
            "cpu_pool: every online CPU is reserved or shared: no dedicated CPU to verify".into(),
        );
        return (checks, notes);
    };
    let on = |c: &Option<CpuSet>| c.as_ref().and_then(|c| c.intersection(&dedicated));
    if p.threads {
        let found = f
            .threads
            .iter()
            .filter(|t| !t.is_qemu() && !t.per_cpu_kthread() && Some(t.pid) != f.self_pid)
            .filter(|t| on(&t.cpus).is_some())
            .map(|t| {
                format!(
                    "pid {} tid {} ({}) on {}",
                    t.pid,
                    t.tid,
                    t.comm,
                    crate::domain::running::set_text(&t.cpus)
                )
            });
        category(&mut checks, THREADS, &dedicated, found);
    }
    if p.irqs {
        let (mut found, mut managed, mut pending) = (Vec::new(), Vec::new(), Vec::new());
        for i in f.irqs.iter().filter(|i| on(&i.cpus().cloned()).is_some()) {
            let text = format!(
                "IRQ {} on {}",
                irqs::label(i.irq, &i.devices),
                crate::domain::running::set_text(&i.cpus().cloned())
            );
            if f.refused.irq(i.irq, &i.devices) {
                managed.push(text);
            } else if i
                .affinity
                .as_ref()
                .is_some_and(|a| !a.intersects(&dedicated))
            {
                pending.push(text);
            } else {
                found.push(text);
            }
        }
        if !pending.is_empty() {
            notes.push(format!(
                "cpu_pool.isolate.irqs: affinity set off the dedicated CPUs, delivery moves at the next interrupt (the kernel defers the move): {}",
                pending.join("; ")
            ));
        }
        if !managed.is_empty() {
            notes.push(format!(
                "cpu_pool.isolate.irqs: managed by the kernel (they refused a new affinity), on dedicated CPUs until isolcpus=managed_irq takes effect at boot: {}",
                managed.join("; ")
            ));
        }
        category(&mut checks, IRQS, &dedicated, found.into_iter());
    }
    if p.guests {
        let found = f
            .others
            .iter()
            .flat_map(|(name, xml)| guest_vcpus(name, xml, online, &dedicated));
        category(&mut checks, OTHER_GUESTS, &dedicated, found);
    }
    (checks, notes)
}

/// The vCPUs of a guest not declared that can run on a dedicated CPU.
fn guest_vcpus(name: &str, xml: &str, online: &CpuSet, dedicated: &CpuSet) -> Vec<String> {
    let pins = crate::domain::pins::XmlPins::read(xml);
    let cpuset = crate::xmltree::Document::parse(xml).ok().and_then(|doc| {
        let v = doc.child(doc.root(), "vcpu")?;
        doc.attr(v, "cpuset")?.parse::<CpuSet>().ok()
    });
    (0..pins.vcpus.unwrap_or(1).min(4096))
        .filter_map(|i| {
            let can = pins.vcpupin.get(&i).or(cpuset.as_ref()).unwrap_or(online);
            can.intersects(dedicated)
                .then(|| format!("guest {name} vCPU {i} can run on {can}"))
        })
        .collect()
}

/// The settings isolation checks report under (one per kind of intruder).
pub const THREADS: &str = "cpu_pool.isolate.host_threads";
pub const IRQS: &str = "cpu_pool.isolate.irqs";
pub const OTHER_GUESTS: &str = "guests not declared";

fn finding(setting: &str, expected: &str, actual: String) -> Check {
    Check {
        setting: setting.into(),
        expected: expected.into(),
        actual,
        ok: false,
    }
}

/// One failing check per finding, or one passing check when there is none.
fn category(
    out: &mut Vec<Check>,
    setting: &str,
    dedicated: &CpuSet,
    found: impl Iterator<Item = String>,
) {
    let expected = format!("nothing on dedicated CPUs {dedicated}");
    let before = out.len();
    for f in found {
        out.push(finding(setting, &expected, f));
    }
    if out.len() == before {
        out.push(Check {
            setting: setting.into(),
            expected: expected.clone(),
            actual: expected,
            ok: true,
        });
    }
}
