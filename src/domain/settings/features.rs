//! `features`: hypervisor features of the guest in `<features>`: the virtual PMU
//! (`<pmu state='on|off'/>`).
//!
//! Invariant: only the declared feature elements are edited (other `<features>` children,
//! `<acpi/>` and the like, are kept); `<pmu/>` without a state means on, as libvirt reads
//! it. Nothing changes live.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{GuestDesired, GuestKey, Validation};
use crate::config::raw::{RawFeatures, RawGuest};
use crate::domain::edit::Editor;
use crate::xmltree::Document;

pub struct Setting;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "FeaturesKey")]
pub enum Key {
    Pmu,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Pmu => f.write_str("features.pmu"),
        }
    }
}

impl From<Key> for GuestKey {
    fn from(k: Key) -> GuestKey {
        GuestKey::Features(k)
    }
}

/// `on` / `off` as libvirt writes a switch.
fn switch(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// A switch's state: absent means on; anything but on/off is unknown (`None`).
fn state_of(doc: &Document, el: crate::xmltree::NodeId) -> Option<bool> {
    match doc.attr(el, "state").as_deref() {
        None | Some("on") => Some(true),
        Some("off") => Some(false),
        Some(_) => None,
    }
}

impl super::GuestSetting for Setting {
    fn validate(&self, _v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        // `realtime` may have set it already; a declared value conflicting with it is an
        // error there.
        if let Some(pmu) = g.features.as_ref().and_then(|f| f.pmu) {
            out.pmu = Some(pmu);
        }
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        let Some(want) = d.pmu else { return };
        let el = ed.path_child(&["features", "pmu"]);
        let now = el.map(|e| match state_of(&ed.doc, e) {
            Some(on) => switch(on).to_string(),
            None => ed.doc.attr(e, "state").unwrap_or_default(),
        });
        if ed.change(Key::Pmu, now, Some(switch(want).to_string())) {
            let f = ed.domain_child("features");
            let e = ed.doc.ensure_child(f, "pmu");
            ed.doc.set_attr(e, "state", switch(want));
        }
    }

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        let pmu = doc
            .child(doc.root(), "features")
            .and_then(|f| doc.child(f, "pmu"))
            .and_then(|e| state_of(doc, e));
        if pmu.is_some() {
            out.features = Some(RawFeatures { pmu });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{changes, converges, domain};

    #[test]
    fn pmu_is_switched_off_keeping_the_other_features_and_imports_back() {
        let xml = domain("<features>\n    <acpi/>\n    <pmu/>\n  </features>");
        let p = converges("    features: { pmu: false }\n", &xml);
        assert_eq!(
            changes(&p),
            [("features.pmu".into(), Some("on".into()), Some("off".into()))]
        );
        assert!(p.new_xml.contains("<acpi/>"), "{}", p.new_xml);
        assert!(!super::super::live_capable(&p.changes[0].key));
        let raw = crate::domain::import::import_guest(&p.new_xml).unwrap();
        assert_eq!(raw.features.unwrap().pmu, Some(false));
        // Without <features>, it is created at libvirt's position (after <os>).
        let xml = domain("<os><type>hvm</type></os>\n  <devices/>");
        let p = converges("    features: { pmu: false }\n", &xml);
        assert_eq!(changes(&p)[0].1, None);
        let os = p.new_xml.find("</os>").unwrap();
        let f = p.new_xml.find("<features>").unwrap();
        let devices = p.new_xml.find("<devices/>").unwrap();
        assert!(os < f && f < devices, "{}", p.new_xml);
        // Already on (no state attribute) and declared on: no change.
        let xml = domain("<features><pmu/></features>");
        assert!(converges("    features: { pmu: true }\n", &xml)
            .changes
            .is_empty());
    }
}
