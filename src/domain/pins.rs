//! Pins, counts and topology read from a domain XML (what automatic pinning and observation
//! need to know of guests kvmtune does not manage too).
//!
//! Invariant: reading never fails: what does not parse is absent.

use std::collections::BTreeMap;

use crate::cpuset::CpuSet;
use crate::xmltree::Document;

/// Pins, counts and topology read from a domain XML.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlPins {
    pub vcpus: Option<u32>,
    /// `<vcpu cpuset>` (`None` also with `placement='auto'`: numad chooses).
    pub cpuset: Option<CpuSet>,
    pub vcpupin: BTreeMap<u32, CpuSet>,
    pub emulatorpin: Option<CpuSet>,
    pub threads: Option<u32>,
    /// The I/O thread ids libvirt uses: the `<iothreadids>` ones, then the lowest unused ids
    /// up to the `<iothreads>` count.
    pub iothread_ids: Vec<u32>,
    /// `<memory>` in KiB.
    pub memory_kib: Option<u64>,
    /// `<numatune><memory mode= nodeset=>` (no mode: libvirt's default, strict).
    pub numa_mode: Option<String>,
    pub numa_nodeset: Option<CpuSet>,
    /// `<memoryBacking><hugepages>`: `Some(None)` for the host's default size, `Some(Some(kib))`
    /// for one `<page>` size.
    pub hugepages: Option<Option<u64>>,
}

impl XmlPins {
    pub fn read(xml: &str) -> XmlPins {
        let Ok(doc) = Document::parse(xml) else {
            return XmlPins::default();
        };
        let root = doc.root();
        let vcpu = doc.child(root, "vcpu");
        let mut out = XmlPins {
            vcpus: vcpu.and_then(|v| doc.text(v).trim().parse().ok()),
            cpuset: vcpu
                .filter(|v| doc.attr(*v, "placement").as_deref() != Some("auto"))
                .and_then(|v| doc.attr(v, "cpuset"))
                .and_then(|c| c.parse().ok()),
            ..Default::default()
        };
        if let Some(ct) = doc.child(root, "cputune") {
            for p in doc.children_named(ct, "vcpupin") {
                let idx = doc.attr(p, "vcpu").and_then(|v| v.trim().parse().ok());
                let set = doc.attr(p, "cpuset").and_then(|v| v.parse().ok());
                if let (Some(i), Some(s)) = (idx, set) {
                    out.vcpupin.insert(i, s);
                }
            }
            out.emulatorpin = doc
                .child(ct, "emulatorpin")
                .and_then(|e| doc.attr(e, "cpuset"))
                .and_then(|v| v.parse().ok());
        }
        out.threads = doc
            .child(root, "cpu")
            .and_then(|c| doc.child(c, "topology"))
            .and_then(|t| doc.attr(t, "threads"))
            .and_then(|v| v.trim().parse().ok());
        out.iothread_ids = iothread_ids(&doc);
        out.memory_kib = doc.child(root, "memory").and_then(|m| {
            let v: u64 = doc.text(m).trim().parse().ok()?;
            crate::units::to_kib(v, &doc.attr(m, "unit").unwrap_or_else(|| "KiB".into())).ok()
        });
        if let Some(m) = doc
            .child(root, "numatune")
            .and_then(|n| doc.child(n, "memory"))
        {
            out.numa_mode = doc.attr(m, "mode");
            out.numa_nodeset = doc.attr(m, "nodeset").and_then(|v| v.parse().ok());
        }
        out.hugepages = doc
            .child(root, "memoryBacking")
            .and_then(|b| doc.child(b, "hugepages"))
            .map(|h| {
                let page = doc.child(h, "page")?;
                let size: u64 = doc.attr(page, "size")?.trim().parse().ok()?;
                let unit = doc.attr(page, "unit").unwrap_or_else(|| "KiB".into());
                crate::units::to_kib(size, &unit).ok()
            });
        out
    }
}

impl XmlPins {
    /// Each vCPU's CPUs: its pin, else the cpuset (`None`: every host CPU).
    pub fn vcpu_affinity(&self) -> Vec<Option<CpuSet>> {
        let n = self
            .vcpus
            .unwrap_or(0)
            .min(crate::domain::settings::vcpu::MAX_VCPUS);
        (0..n)
            .map(|i| self.vcpupin.get(&i).or(self.cpuset.as_ref()).cloned())
            .collect()
    }
}

fn iothread_ids(doc: &Document) -> Vec<u32> {
    let root = doc.root();
    let count: usize = doc
        .child(root, "iothreads")
        .and_then(|e| doc.text(e).trim().parse().ok())
        .unwrap_or(0);
    let mut ids: std::collections::BTreeSet<u32> = doc
        .child(root, "iothreadids")
        .map(|l| {
            doc.children_named(l, "iothread")
                .into_iter()
                .filter_map(|t| doc.attr(t, "id")?.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut next = 1;
    while ids.len() < count.min(crate::domain::settings::vcpu::MAX_VCPUS as usize) {
        if ids.insert(next) {
            continue;
        }
        next += 1;
    }
    ids.into_iter().collect()
}
