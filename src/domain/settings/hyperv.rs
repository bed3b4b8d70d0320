//! `hyperv`: Hyper-V enlightenments (`<features><hyperv><relaxed state='on'/>…`) and the
//! `hypervclock` timer (`<clock><timer name='hypervclock' present='yes'/>`), as a preset
//! (`recommended`: what virt-install sets for Windows guests) or feature by feature.
//!
//! Invariant: only the declared features are edited; other `<hyperv>` children, the
//! `<hyperv mode>` and other timers are kept. A feature compares by its state (and
//! `spinlocks` by its retries when on). Nothing changes live.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{GuestDesired, GuestKey, Validation};
use crate::config::raw::{HypervPreset, RawGuest, RawHvValue, RawHyperv};
use crate::domain::edit::Editor;
use crate::xmltree::{Document, NodeId};

pub struct Setting;

/// The `<hyperv>` features kvmtune manages (libvirt's element names), and the clock.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "HypervKey")]
pub enum Key {
    Relaxed,
    Vapic,
    Spinlocks,
    Vpindex,
    Runtime,
    Synic,
    Stimer,
    Reset,
    Frequencies,
    Reenlightenment,
    Tlbflush,
    Ipi,
    Evmcs,
    Avic,
    /// `<clock><timer name='hypervclock'>`.
    Hypervclock,
}

impl Key {
    const ALL: [Key; 15] = [
        Key::Relaxed,
        Key::Vapic,
        Key::Spinlocks,
        Key::Vpindex,
        Key::Runtime,
        Key::Synic,
        Key::Stimer,
        Key::Reset,
        Key::Frequencies,
        Key::Reenlightenment,
        Key::Tlbflush,
        Key::Ipi,
        Key::Evmcs,
        Key::Avic,
        Key::Hypervclock,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Key::Relaxed => "relaxed",
            Key::Vapic => "vapic",
            Key::Spinlocks => "spinlocks",
            Key::Vpindex => "vpindex",
            Key::Runtime => "runtime",
            Key::Synic => "synic",
            Key::Stimer => "stimer",
            Key::Reset => "reset",
            Key::Frequencies => "frequencies",
            Key::Reenlightenment => "reenlightenment",
            Key::Tlbflush => "tlbflush",
            Key::Ipi => "ipi",
            Key::Evmcs => "evmcs",
            Key::Avic => "avic",
            Key::Hypervclock => "hypervclock",
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hyperv.{}", self.as_str())
    }
}

impl From<Key> for GuestKey {
    fn from(k: Key) -> GuestKey {
        GuestKey::Hyperv(k)
    }
}

/// Fewest spinlock retries libvirt accepts.
const MIN_RETRIES: u32 = 4095;

/// virt-install's set for Windows guests (virtinst/domain/features.py `_set_hyperv_defaults`
/// and clock.py), less the host-vendor-specific `evmcs` (Intel) and `avic` (AMD).
pub const RECOMMENDED: &[(Key, Option<u32>)] = &[
    (Key::Relaxed, None),
    (Key::Vapic, None),
    (Key::Spinlocks, Some(8191)),
    (Key::Vpindex, None),
    (Key::Runtime, None),
    (Key::Synic, None),
    (Key::Stimer, None),
    (Key::Frequencies, None),
    (Key::Tlbflush, None),
    (Key::Ipi, None),
    (Key::Hypervclock, None),
];

/// One declared feature: off, or on (with `spinlocks`' retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HvState {
    Off,
    On(Option<u32>),
}

impl HvState {
    fn show(self) -> String {
        match self {
            HvState::Off => "off".into(),
            HvState::On(None) => "on".into(),
            HvState::On(Some(r)) => format!("on ({r} retries)"),
        }
    }
}

impl super::GuestSetting for Setting {
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        let Some(h) = &g.hyperv else { return };
        match h {
            RawHyperv::Preset(HypervPreset::Recommended) => {
                for (k, r) in RECOMMENDED {
                    out.hyperv.insert(*k, HvState::On(*r));
                }
            }
            RawHyperv::Map(m) => {
                for (name, val) in m {
                    let at = ["hyperv", name.as_str()];
                    let Some(k) = Key::ALL.into_iter().find(|k| k.as_str() == name) else {
                        let known: Vec<&str> = Key::ALL.iter().map(|k| k.as_str()).collect();
                        v.err(
                            &at,
                            format!("unknown Hyper-V feature (known: {})", known.join(", ")),
                        );
                        continue;
                    };
                    let state = match (k, *val) {
                        (_, RawHvValue::On(false)) => HvState::Off,
                        (Key::Spinlocks, RawHvValue::Retries(r)) if r >= MIN_RETRIES => {
                            HvState::On(Some(r))
                        }
                        (Key::Spinlocks, _) => {
                            v.err(&at, format!("spinlocks takes its retry count ({MIN_RETRIES} or more, e.g. 8191) or false"));
                            continue;
                        }
                        (_, RawHvValue::On(true)) => HvState::On(None),
                        (_, RawHvValue::Retries(_)) => {
                            v.err(&at, "expected true or false");
                            continue;
                        }
                    };
                    out.hyperv.insert(k, state);
                }
            }
        }
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        for (k, want) in &d.hyperv {
            if *k == Key::Hypervclock {
                edit_clock(ed, *want);
                continue;
            }
            let el = ed.path_child(&["features", "hyperv", k.as_str()]);
            let now = el.and_then(|e| state(&ed.doc, e, *k));
            if now == Some(*want) {
                continue;
            }
            let before = el.map(|e| match now {
                Some(s) => s.show(),
                None => ed.doc.attr(e, "state").unwrap_or_default(),
            });
            ed.change(*k, before, Some(want.show()));
            let f = ed.domain_child("features");
            let hv = ed.doc.ensure_child(f, "hyperv");
            let e = ed.doc.ensure_child(hv, k.as_str());
            match want {
                HvState::Off => {
                    ed.doc.set_attr(e, "state", "off");
                    ed.doc.remove_attr(e, "retries");
                }
                HvState::On(r) => {
                    ed.doc.set_attr(e, "state", "on");
                    if let Some(r) = r {
                        ed.doc.set_attr(e, "retries", &r.to_string());
                    }
                }
            }
        }
    }

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        let mut m = BTreeMap::new();
        if let Some(hv) = doc
            .child(doc.root(), "features")
            .and_then(|f| doc.child(f, "hyperv"))
        {
            for k in Key::ALL {
                let Some(e) = doc.child(hv, k.as_str()) else {
                    continue;
                };
                let val = match state(doc, e, k) {
                    Some(HvState::Off) => RawHvValue::On(false),
                    Some(HvState::On(Some(r))) if r >= MIN_RETRIES => RawHvValue::Retries(r),
                    Some(HvState::On(None)) if k != Key::Spinlocks => RawHvValue::On(true),
                    _ => continue,
                };
                m.insert(k.as_str().to_string(), val);
            }
        }
        if let Some(t) = clock_timer(doc) {
            match doc.attr(t, "present").as_deref() {
                Some("yes") | None => m.insert("hypervclock".into(), RawHvValue::On(true)),
                Some("no") => m.insert("hypervclock".into(), RawHvValue::On(false)),
                Some(_) => None,
            };
        }
        if !m.is_empty() {
            out.hyperv = Some(RawHyperv::Map(m));
        }
    }
}

/// A feature's state: `state='on|off'` (spinlocks with its retries); else unknown.
fn state(doc: &Document, e: NodeId, k: Key) -> Option<HvState> {
    match doc.attr(e, "state").as_deref() {
        Some("off") => Some(HvState::Off),
        Some("on") if k == Key::Spinlocks => {
            let r = doc.attr(e, "retries")?.trim().parse().ok()?;
            Some(HvState::On(Some(r)))
        }
        Some("on") => Some(HvState::On(None)),
        _ => None,
    }
}

fn clock_timer(doc: &Document) -> Option<NodeId> {
    let clock = doc.child(doc.root(), "clock")?;
    doc.children_named(clock, "timer")
        .into_iter()
        .find(|t| doc.attr(*t, "name").as_deref() == Some("hypervclock"))
}

fn edit_clock(ed: &mut Editor, want: HvState) {
    let on = want != HvState::Off;
    let t = clock_timer(&ed.doc);
    let now = t.map(|t| ed.doc.attr(t, "present").unwrap_or_else(|| "yes".into()));
    let yes = if on { "yes" } else { "no" };
    if !ed.change(Key::Hypervclock, now, Some(yes.to_string())) {
        return;
    }
    let t = match t {
        Some(t) => t,
        None => {
            let clock = ed.domain_child("clock");
            let t = ed.doc.append_element(clock, "timer");
            ed.doc.set_attr(t, "name", "hypervclock");
            t
        }
    };
    ed.doc.set_attr(t, "present", yes);
}

#[cfg(test)]
mod tests {
    use super::super::testing::{changes, converges, domain, invalid};

    #[test]
    fn recommended_sets_virt_installs_set_keeping_the_rest_and_imports_back() {
        let xml = domain("<features>\n    <acpi/>\n    <hyperv mode='custom'>\n      <relaxed state='on'/>\n      <vendor_id state='on' value='KVMKVMKVM'/>\n      <spinlocks state='on' retries='4096'/>\n    </hyperv>\n  </features>\n  <clock offset='localtime'>\n    <timer name='rtc' tickpolicy='catchup'/>\n  </clock>");
        let p = converges("    hyperv: recommended\n", &xml);
        let c = changes(&p);
        assert_eq!(c.len(), 10, "{c:?}");
        assert_eq!(
            c[1],
            (
                "hyperv.spinlocks".into(),
                Some("on (4096 retries)".into()),
                Some("on (8191 retries)".into())
            )
        );
        assert_eq!(
            c[9],
            ("hyperv.hypervclock".into(), None, Some("yes".into()))
        );
        for keep in [
            "<acpi/>",
            "vendor_id",
            "<timer name='rtc' tickpolicy='catchup'/>",
            "mode='custom'",
            "offset='localtime'",
        ] {
            assert!(p.new_xml.contains(keep), "{keep}\n{}", p.new_xml);
        }
        assert!(!crate::domain::settings::live_capable(&p.changes[0].key));
        // Import gives a map that means the same.
        let raw = crate::domain::import::import_guest(&p.new_xml).unwrap();
        let cfg = crate::config::raw::RawConfig {
            guests: [("g".to_string(), raw)].into(),
            ..Default::default()
        };
        let yaml = crate::import::to_yaml(&cfg, None);
        let d = crate::desired::load_str("i.yaml", &yaml).unwrap();
        let again =
            crate::domain::plan_guest(d.guests.values().next().unwrap(), &p.new_xml, None).unwrap();
        assert!(again.changes.is_empty(), "{yaml}");
        assert!(yaml.contains("spinlocks: 8191"), "{yaml}");
        // Individual features: off, and the clock off.
        let p = converges(
            "    hyperv: { relaxed: false, hypervclock: false }\n",
            &p.new_xml,
        );
        assert_eq!(changes(&p).len(), 2);
        assert!(p.new_xml.contains("<relaxed state='off'/>"));
        assert!(p
            .new_xml
            .contains("<timer name='hypervclock' present='no'/>"));
        assert_eq!(
            invalid("    hyperv: { spinlocks: true, relaxed: 5, bogus: true }\n"),
            "guests.g.hyperv.bogus: unknown Hyper-V feature (known: relaxed, vapic, spinlocks, vpindex, runtime, synic, stimer, reset, frequencies, reenlightenment, tlbflush, ipi, evmcs, avic, hypervclock)\n\
             guests.g.hyperv.relaxed: expected true or false\n\
             guests.g.hyperv.spinlocks: spinlocks takes its retry count (4095 or more, e.g. 8191) or false"
        );
    }
}
