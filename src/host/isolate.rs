//! `host.cpu_pool.isolate.{irqs,workqueues,host_threads}`: keep host work off every CPU that
//! is not reserved, now (the kernel command line does it from the next boot).
//!
//! Invariants:
//! - Only what is declared is planned: [`irqs`] for `irqs` (the default affinity, each IRQ that
//!   reaches beyond the reserved CPUs, irqbalance's ban list), the workqueue cpumask for
//!   `workqueues`, [`threads`] for `host_threads`. Values compare by meaning (hex masks and CPU
//!   lists as CPU sets); an IRQ or thread already within the reserved CPUs is left alone.
//! - The default IRQ affinity and the workqueue cpumask are plain kernel files: persisted as
//!   tmpfiles.d `w` lines like THP and KSM. Per-IRQ affinities and thread moves are runtime
//!   only (IRQ numbers and threads do not survive a reboot).
//! - What the kernel refuses (a managed IRQ's affinity: EIO, or EPERM on newer kernels; a
//!   thread whose cpuset has none of the reserved CPUs: EINVAL) is recorded by the executor in
//!   [`REFUSED`] (state directory below the root) and reported, never a failure; planning skips
//!   what the record names (an IRQ by number *and* device, a thread by tid *and* start time, so
//!   a reused number is tried again), so the plan converges to empty.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files::HostFiles;
use super::persist::{OwnedFile, PersistKey};
use super::{irqs, threads, Builder, HostObserved, Reads};
use crate::cpuset::CpuSet;
use crate::desired::HostDesired;
use crate::model::keys::IrqNum;
use crate::model::HostKey;

/// What the kernel refused at an earlier apply (below the root).
pub const REFUSED: &str = "var/lib/kvmtune/refused.json";
/// The online CPUs.
pub const CPU_ONLINE: &str = "sys/devices/system/cpu/online";
/// The most entries the refusal record keeps (oldest dropped first).
const MAX_REFUSED: usize = 65_536;

/// An IRQ whose affinity the kernel refused to change (a managed IRQ).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusedIrq {
    pub irq: IrqNum,
    /// Its devices (the action names under `/proc/irq/<N>`), comma-separated.
    pub devices: String,
}

/// A thread that refused the reserved CPUs (its cpuset has none of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusedThread {
    pub tid: u32,
    /// Start time (clock ticks after boot, `/proc/<pid>/stat` field 22): a reused tid differs.
    pub start: u64,
}

/// The refusal record ([`REFUSED`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refused {
    #[serde(default)]
    pub irqs: Vec<RefusedIrq>,
    #[serde(default)]
    pub threads: Vec<RefusedThread>,
}

impl Refused {
    /// The record as observed; a record that does not parse counts as empty (it only saves
    /// attempts: the worst a bad one does is one more refused write).
    pub fn of(obs: &HostObserved) -> Refused {
        obs.file(REFUSED).map(Refused::parse).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Refused {
        serde_json::from_str(text).unwrap_or_default()
    }

    pub fn irq(&self, irq: IrqNum, devices: &str) -> bool {
        self.irqs
            .iter()
            .any(|r| r.irq == irq && r.devices == devices)
    }

    pub fn thread(&self, tid: u32, start: u64) -> bool {
        self.threads
            .iter()
            .any(|r| r.tid == tid && r.start == start)
    }

    /// Adds entries to the record below `root` (atomic replace).
    pub fn add(
        files: &dyn HostFiles,
        root: &Path,
        irqs: &[RefusedIrq],
        threads: &[RefusedThread],
    ) -> std::io::Result<()> {
        if irqs.is_empty() && threads.is_empty() {
            return Ok(());
        }
        let full = root.join(REFUSED);
        let mut r = super::files::read_opt(&full)?
            .as_deref()
            .map(Refused::parse)
            .unwrap_or_default();
        for i in irqs {
            r.irqs.retain(|x| x.irq != i.irq);
            r.irqs.push(i.clone());
        }
        for t in threads {
            if !r.thread(t.tid, t.start) {
                r.threads.push(t.clone());
            }
        }
        if r.irqs.len() > MAX_REFUSED {
            r.irqs.drain(..r.irqs.len() - MAX_REFUSED);
        }
        if r.threads.len() > MAX_REFUSED {
            r.threads.drain(..r.threads.len() - MAX_REFUSED);
        }
        super::files::real_dir_below(root, full.parent().unwrap_or(root))?;
        let text = serde_json::to_string_pretty(&r).map_err(std::io::Error::other)? + "\n";
        files.replace(&full, &text)
    }
}

/// Whether `root` is the running system's `/` (host threads are moved on the running kernel
/// only: pids read below any other root could be unrelated real processes).
pub fn is_live_root(root: &Path) -> bool {
    root.canonicalize().is_ok_and(|p| p == Path::new("/"))
}

pub fn reads(d: &HostDesired, r: &mut Reads) {
    for k in d.restore.keys() {
        r.files.insert(k.file());
    }
    if let Some((file, _)) = &d.restore_irqbalance {
        r.files.insert(file.file().into());
    }
    let i = d.cpu_pool.isolate;
    if d.cpu_pool.reserved.is_none() {
        return;
    }
    if i.irqs {
        irqs::reads(r);
    }
    if i.workqueues {
        r.files.insert(HostKey::WorkqueueCpumask.file());
    }
    if i.irqs || i.host_threads {
        r.files.insert(REFUSED.into());
    }
}

pub fn reads_after(d: &HostDesired, obs: &HostObserved, r: &mut Reads) {
    if d.cpu_pool.reserved.is_some() && d.cpu_pool.isolate.irqs {
        irqs::reads_after(obs, r);
    }
}

/// Plans the declared isolation parts, and the values a rollback restores.
pub fn plan(d: &HostDesired, obs: &HostObserved, b: &mut Builder, tmpfiles: &mut OwnedFile) {
    for (key, value) in &d.restore {
        b.runtime(
            obs,
            vec![key.path()],
            key.clone(),
            value.clone(),
            format!("/{} does not exist", key.file()),
        );
    }
    if let Some((file, banned)) = &d.restore_irqbalance {
        super::irqbalance::plan_restore(*file, banned.as_ref(), obs, b);
    }
    let Some(reserved) = &d.cpu_pool.reserved else {
        return;
    };
    let i = d.cpu_pool.isolate;
    if i.irqs {
        irqs::plan(reserved, obs, b, tmpfiles);
    }
    if i.workqueues {
        let key = HostKey::WorkqueueCpumask;
        let value = reserved.to_hex_mask();
        b.runtime(
            obs,
            yaml("workqueues"),
            key.clone(),
            value.clone(),
            format!(
                "this kernel has no /{} (unbound workqueues cannot be confined)",
                key.file()
            ),
        );
        tmpfiles.push(PersistKey::Value { key }, value);
    }
    if i.host_threads {
        threads::plan(reserved, obs, b);
    }
}

/// `cpu_pool.isolate.<part>` as key segments.
pub fn yaml(part: &str) -> Vec<String> {
    ["cpu_pool", "isolate", part].map(String::from).to_vec()
}

/// The value `d` declares for an isolation key (`None`: not declared).
pub fn declared(d: &HostDesired, key: &HostKey) -> Option<String> {
    let reserved = d.cpu_pool.reserved.as_ref()?;
    let i = d.cpu_pool.isolate;
    match key {
        HostKey::IrqDefaultAffinity if i.irqs => Some(reserved.to_hex_mask()),
        HostKey::IrqAffinity { .. } if i.irqs => Some(reserved.to_string()),
        HostKey::WorkqueueCpumask if i.workqueues => Some(reserved.to_hex_mask()),
        _ => None,
    }
}

/// The online CPUs as observed.
pub fn online(obs: &HostObserved) -> Option<CpuSet> {
    obs.file(CPU_ONLINE).and_then(|c| c.trim().parse().ok())
}
