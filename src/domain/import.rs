//! Domain XML → the raw YAML model (`kvmtune import`): each setting unit's reading direction
//! ([`super::settings::GuestSetting::import`]), in registry order.
//!
//! Invariant (tested on libvirt's test-suite corpus and on real libvirtd): for any domain XML
//! `x`, validating [`import_guest`]`(x)` succeeds and [`super::plan_guest`] of it against `x`
//! plans zero changes. A setting is imported only when it can be expressed exactly in the
//! YAML format and passes validation; otherwise it is left out (unmanaged), never approximated.
//! Each unit's reader mirrors the comparison of its editor.

use crate::config::raw::{RawCpuSet, RawGuest};
use crate::cpuset::CpuSet;
use crate::xmltree::{Document, NodeId};

pub use super::settings::os_variant::osinfo_short;

/// The owned settings of a domain, as YAML would declare them.
pub fn import_guest(xml: &str) -> Result<RawGuest, String> {
    let doc = Document::parse(xml).map_err(|e| e.to_string())?;
    let mut g = RawGuest::default();
    for s in super::settings::SETTINGS {
        s.import(&doc, &mut g);
    }
    Ok(g)
}

/// The CPU set in attribute `attr` of `n`, when it parses.
pub(crate) fn cpuset_attr(doc: &Document, n: NodeId, attr: &str) -> Option<CpuSet> {
    doc.attr(n, attr)?.parse().ok()
}

pub(crate) fn raw_set(c: &CpuSet) -> RawCpuSet {
    RawCpuSet::Set(c.to_string())
}

/// The number in the text of `parent`'s child `name`.
pub(crate) fn number(doc: &Document, parent: NodeId, name: &str) -> Option<u64> {
    doc.child(parent, name)
        .and_then(|e| doc.text(e).trim().parse().ok())
}
