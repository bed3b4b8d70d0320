//! `memtune`: the guest's memory limits (`<memtune><hard_limit unit='KiB'>…`).
//!
//! Invariant: limits compare in KiB whatever the unit and are written in KiB; the soft limit is
//! never above the hard limit nor the swap limit below it. Every limit changes live.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{GuestDesired, GuestKey, Validation};
use crate::config::raw::{RawGuest, RawMemtune, RawSize};
use crate::domain::edit::Editor;
use crate::libvirt::{LiveOp, NodeInfo};
use crate::units::to_kib;
use crate::xmltree::Document;

pub struct Setting;

/// One `<memtune>` limit (ordered as the element names sort).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MemtuneField {
    HardLimit,
    MinGuarantee,
    SoftLimit,
    SwapHardLimit,
}

impl MemtuneField {
    /// The libvirt element name.
    pub fn as_str(self) -> &'static str {
        match self {
            MemtuneField::HardLimit => "hard_limit",
            MemtuneField::MinGuarantee => "min_guarantee",
            MemtuneField::SoftLimit => "soft_limit",
            MemtuneField::SwapHardLimit => "swap_hard_limit",
        }
    }
}

impl fmt::Display for MemtuneField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<MemtuneField> for GuestKey {
    fn from(k: MemtuneField) -> GuestKey {
        GuestKey::Memtune(k)
    }
}

/// Memory sizes as people write them: `8G`, `512M`, else KiB.
pub fn show_kib(kib: u64) -> String {
    if kib > 0 && kib.is_multiple_of(1024 * 1024) {
        format!("{}G", kib / (1024 * 1024))
    } else if kib > 0 && kib.is_multiple_of(1024) {
        format!("{}M", kib / 1024)
    } else {
        format!("{kib}K")
    }
}

impl super::GuestSetting for Setting {
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        use MemtuneField as F;
        let Some(mt) = &g.memtune else { return };
        for (k, raw) in [
            (F::HardLimit, &mt.hard_limit),
            (F::SoftLimit, &mt.soft_limit),
            (F::SwapHardLimit, &mt.swap_hard_limit),
            (F::MinGuarantee, &mt.min_guarantee),
        ] {
            let Some(raw) = raw else { continue };
            let kib = match raw {
                RawSize::Kib(k) => Ok(*k),
                RawSize::Text(t) => crate::units::parse_kib(t),
            };
            match kib {
                Ok(kib) => {
                    out.memtune.insert(k, kib);
                }
                Err(e) => v.err(&["memtune", k.as_str()], e.to_string()),
            }
        }
        let hard = out.memtune.get(&F::HardLimit);
        if let (Some(h), Some(sw)) = (hard, out.memtune.get(&F::SwapHardLimit)) {
            if sw < h {
                v.err(
                    &["memtune", "swap_hard_limit"],
                    "swap_hard_limit must not be below hard_limit",
                );
            }
        }
        let hard = out.memtune.get(&F::HardLimit);
        if let (Some(h), Some(so)) = (hard, out.memtune.get(&F::SoftLimit)) {
            if so > h {
                v.err(
                    &["memtune", "soft_limit"],
                    "soft_limit must not be above hard_limit",
                );
            }
        }
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        for (k, v) in &d.memtune {
            let el = ed.path_child(&["memtune", k.as_str()]);
            let now = el.and_then(|e| {
                let n: u64 = ed.doc.text(e).trim().parse().ok()?;
                to_kib(n, &ed.doc.attr(e, "unit").unwrap_or_else(|| "KiB".into())).ok()
            });
            if now == Some(*v) {
                continue;
            }
            let before = el.map(|e| now.map(show_kib).unwrap_or_else(|| ed.doc.text(e)));
            ed.change(*k, before, Some(show_kib(*v)));
            let mt = ed.domain_child("memtune");
            let e = ed.doc.ensure_child(mt, k.as_str());
            ed.doc.set_attr(e, "unit", "KiB");
            ed.doc.set_text(e, &v.to_string());
        }
    }

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        let Some(mt) = doc.child(doc.root(), "memtune") else {
            return;
        };
        let kib = |name: &str| {
            let e = doc.child(mt, name)?;
            let n: u64 = doc.text(e).trim().parse().ok()?;
            to_kib(n, &doc.attr(e, "unit").unwrap_or_else(|| "KiB".into())).ok()
        };
        let hard = kib("hard_limit");
        let soft = kib("soft_limit").filter(|s| hard.is_none_or(|h| *s <= h));
        let swap = kib("swap_hard_limit").filter(|s| hard.is_none_or(|h| *s >= h));
        let t = RawMemtune {
            hard_limit: hard.map(RawSize::Kib),
            soft_limit: soft.map(RawSize::Kib),
            swap_hard_limit: swap.map(RawSize::Kib),
            min_guarantee: kib("min_guarantee").map(RawSize::Kib),
        };
        if t != RawMemtune::default() {
            out.memtune = Some(t);
        }
    }

    fn live_capable(&self, key: &GuestKey) -> bool {
        matches!(key, GuestKey::Memtune(_))
    }

    fn live(&self, d: &GuestDesired, key: &GuestKey, _node: Option<NodeInfo>) -> Option<LiveOp> {
        let GuestKey::Memtune(field) = key else {
            return None;
        };
        Some(LiveOp::Memtune {
            field: field.as_str().to_string(),
            kib: *d.memtune.get(field)?,
        })
    }
}
