//! `cpu_pool.isolate.irqs`: `/proc/irq/default_smp_affinity` (hex mask) and every
//! `/proc/irq/<N>/smp_affinity_list` that reaches beyond the reserved CPUs, then irqbalance's
//! ban list ([`super::irqbalance`]).
//!
//! Invariants: IRQ numbers come only from `/proc/irq` entry names that are ASCII digits
//! ([`IrqNum::parse_dir`]), at most [`MAX_IRQS`] of them; an IRQ already within the reserved
//! CPUs is left as it is (a NIC queue pinned to one reserved CPU stays there); an IRQ the
//! refusal record names with the same devices (a managed IRQ) is not planned again, only noted.
//! The executor turns a refused write (EIO / EPERM) into a reported skip and a record entry.

use std::path::Path;

use super::files::HostFiles;
use super::isolate::{yaml, Refused, RefusedIrq};
use super::ops::HostWriteError;
use super::persist::{OwnedFile, PersistKey};
use super::{Builder, HostObserved, Reads};
use crate::cpuset::CpuSet;
use crate::model::keys::{IrqNum, IRQ_DIR};
use crate::model::names::printable;
use crate::model::HostKey;

/// The most IRQs planned (more `/proc/irq` entries than that is not a kernel's).
pub const MAX_IRQS: usize = 65_536;

/// Attribute files of `/proc/irq/<N>`; every other entry there is a device (action) name.
const ATTRS: [&str; 7] = [
    "affinity_hint",
    "effective_affinity",
    "effective_affinity_list",
    "node",
    "smp_affinity",
    "smp_affinity_list",
    "spurious",
];

pub fn reads(r: &mut Reads) {
    r.files.insert(HostKey::IrqDefaultAffinity.file());
    r.dirs.insert(IRQ_DIR.into());
    super::irqbalance::reads(r);
}

/// The IRQ numbers of a `/proc/irq` listing (digits-only names), ascending; `None` when there
/// are more than [`MAX_IRQS`].
pub fn numbers(listing: &[String]) -> Option<Vec<IrqNum>> {
    let mut v: Vec<IrqNum> = listing
        .iter()
        .filter_map(|n| IrqNum::parse_dir(n))
        .collect();
    if v.len() > MAX_IRQS {
        return None;
    }
    v.sort();
    Some(v)
}

/// The second round: each IRQ's affinity and its directory (for the device names).
pub fn reads_after(obs: &HostObserved, r: &mut Reads) {
    let Some(irqs) = obs.dir(IRQ_DIR).and_then(numbers) else {
        return;
    };
    for irq in irqs {
        r.files.insert(HostKey::IrqAffinity { irq }.file());
        r.dirs.insert(format!("{IRQ_DIR}/{irq}"));
    }
}

/// The device names of an IRQ directory listing, comma-separated (printable, bounded).
pub fn devices(listing: Option<&[String]>) -> String {
    listing
        .unwrap_or_default()
        .iter()
        .filter(|n| !ATTRS.contains(&n.as_str()))
        .map(|n| printable(n, 64))
        .collect::<Vec<_>>()
        .join(",")
}

/// `36 (virtio1-req.0)`, or just the number when the IRQ has no device.
pub fn label(irq: IrqNum, devices: &str) -> String {
    if devices.is_empty() {
        irq.to_string()
    } else {
        format!("{irq} ({devices})")
    }
}

pub fn plan(reserved: &CpuSet, obs: &HostObserved, b: &mut Builder, tmpfiles: &mut OwnedFile) {
    let key = HostKey::IrqDefaultAffinity;
    let mask = reserved.to_hex_mask();
    b.runtime(
        obs,
        yaml("irqs"),
        key.clone(),
        mask.clone(),
        format!(
            "this kernel has no /{} (IRQ affinity cannot be set)",
            key.file()
        ),
    );
    tmpfiles.push(PersistKey::Value { key }, mask);
    let Some(listing) = obs.dir(IRQ_DIR) else {
        return;
    };
    let Some(irqs) = numbers(listing) else {
        b.issue(
            yaml("irqs"),
            format!("/{IRQ_DIR} lists more than {MAX_IRQS} IRQs: refusing to plan them"),
        );
        return;
    };
    let refused = Refused::of(obs);
    let mut managed = Vec::new();
    for irq in irqs {
        let key = HostKey::IrqAffinity { irq };
        let Some(now) = obs.file(&key.file()) else {
            continue; // no affinity file (the kernel's own IRQs on some architectures)
        };
        if now
            .trim()
            .parse::<CpuSet>()
            .is_ok_and(|c| c.is_subset(reserved))
        {
            continue;
        }
        let devs = devices(obs.dir(&format!("{IRQ_DIR}/{irq}")));
        if refused.irq(irq, &devs) {
            managed.push(label(irq, &devs));
            continue;
        }
        b.runtime(obs, yaml("irqs"), key, reserved.to_string(), String::new());
    }
    if !managed.is_empty() {
        b.note(format!(
            "cpu_pool.isolate.irqs: the kernel manages the affinity of IRQ {} (it refused a new one at an earlier apply): left as they are; `isolate.kernel` (isolcpus=managed_irq) keeps them off isolated CPUs from the next boot",
            managed.join(", ")
        ));
    }
    super::irqbalance::plan(reserved, obs, b);
}

/// Whether a failed write to an IRQ's affinity is the kernel refusing it (a managed IRQ:
/// EIO, or EPERM on kernels since 6.x), rather than a real failure.
pub fn refused(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EIO) | Some(libc::EPERM))
}

/// The executor's side of a refused IRQ write: record it (named by its devices) and turn it
/// into a reported skip.
pub fn skip(
    files: &dyn HostFiles,
    root: &Path,
    irq: IrqNum,
    err: &std::io::Error,
) -> HostWriteError {
    let devs = super::files::list_opt(&root.join(format!("{IRQ_DIR}/{irq}")))
        .ok()
        .flatten();
    let devs = devices(devs.as_deref());
    let recorded = Refused::add(
        files,
        root,
        &[RefusedIrq {
            irq,
            devices: devs.clone(),
        }],
        &[],
    );
    let note = match recorded {
        Ok(()) => "recorded: not planned again".to_string(),
        Err(e) => format!("could not record it in /{}: {e}", super::isolate::REFUSED),
    };
    HostWriteError::Skipped {
        path: HostKey::IrqAffinity { irq }.path(),
        why: format!(
            "IRQ {}: the kernel refused a new affinity ({err}): a managed IRQ, left as it is ({note})",
            label(irq, &devs)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_strict_and_sorted() {
        let l: Vec<String> = ["default_smp_affinity", "10", "2", "+3", "0x4", "36"]
            .map(String::from)
            .to_vec();
        let n: Vec<u32> = numbers(&l).unwrap().into_iter().map(IrqNum::get).collect();
        assert_eq!(n, [2, 10, 36]);
        let many: Vec<String> = (0..=MAX_IRQS).map(|i| i.to_string()).collect();
        assert_eq!(numbers(&many), None);
    }

    #[test]
    fn devices_are_the_non_attribute_entries() {
        let l: Vec<String> = ["node", "smp_affinity", "virtio1-req.0", "spurious", "eth0"]
            .map(String::from)
            .to_vec();
        assert_eq!(devices(Some(&l)), "virtio1-req.0,eth0");
        assert_eq!(devices(None), "");
    }
}
