//! What `verify` observes of a running guest, and the check vocabulary the setting units
//! report in.
//!
//! Invariant: pure data and pure helpers: nothing here reads `/proc` or libvirt (that is
//! [`crate::verify`]'s); a [`Check`] holds exactly when its `expected` and `actual` texts,
//! written in the same canonical form, are equal.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cpuset::CpuSet;
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

/// A running guest as the units check it: what was read, its live XML parsed (when it
/// parses), and the host's default huge page size.
pub struct Running<'a> {
    pub live: &'a LiveGuest,
    pub doc: Option<&'a Document>,
    pub host_page: Option<PageSize>,
}

impl Running<'_> {
    /// The guest's `<memory>` in KiB.
    pub fn memory_kib(&self) -> Option<u64> {
        let doc = self.doc?;
        let m = doc.child(doc.root(), "memory")?;
        let v: u64 = doc.text(m).trim().parse().ok()?;
        to_kib(v, &doc.attr(m, "unit").unwrap_or_else(|| "KiB".into())).ok()
    }
}

/// The vCPU index of a QEMU vCPU thread (`CPU 3/KVM`, `CPU 3/TCG`).
pub fn vcpu_index(comm: &str) -> Option<u32> {
    comm.strip_prefix("CPU ")?.split('/').next()?.parse().ok()
}

/// QEMU names IOThread threads `IO <object id>`; libvirt's IOThread ids are `iothreadN`.
pub fn is_iothread(comm: &str) -> bool {
    comm.starts_with("IO iothread")
}

pub fn set_text(s: &Option<CpuSet>) -> String {
    s.as_ref()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "(unknown)".into())
}

/// Adds a check that holds when `expected` equals `actual`.
pub fn check(out: &mut Vec<Check>, setting: String, expected: String, actual: String) {
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
pub fn sets_of<'a>(
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
