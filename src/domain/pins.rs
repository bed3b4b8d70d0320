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
    pub vcpupin: BTreeMap<u32, CpuSet>,
    pub emulatorpin: Option<CpuSet>,
    pub threads: Option<u32>,
}

impl XmlPins {
    pub fn read(xml: &str) -> XmlPins {
        let Ok(doc) = Document::parse(xml) else {
            return XmlPins::default();
        };
        let root = doc.root();
        let mut out = XmlPins {
            vcpus: doc
                .child(root, "vcpu")
                .and_then(|v| doc.text(v).trim().parse().ok()),
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
        out
    }
}
