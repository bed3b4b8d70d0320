//! `iothreads`: the number of I/O threads (`<iothreads>N</iothreads>`).
//!
//! Invariant: an absent element counts as 0 threads; the count changes at the next start
//! only (I/O thread ids that pins and disks name are checked against it at validation).

use super::{GuestDesired, GuestKey, Validation};
use crate::config::raw::RawGuest;
use crate::domain::edit::{parse_u32, Editor};
use crate::xmltree::Document;

pub struct Setting;

/// The I/O thread count the XML has.
pub(crate) fn observed(doc: &Document) -> Option<u32> {
    doc.child(doc.root(), "iothreads")
        .and_then(|e| parse_u32(Some(doc.text(e))))
}

impl super::GuestSetting for Setting {
    fn validate(&self, _v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        out.iothreads = g.iothreads;
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        let Some(want) = d.iothreads else { return };
        let el = ed.doc.child(ed.root(), "iothreads");
        let now = el.and_then(|e| parse_u32(Some(ed.doc.text(e))));
        if now.unwrap_or(0) == want {
            return;
        }
        ed.change(
            GuestKey::Iothreads,
            el.map(|e| ed.doc.text(e)),
            Some(want.to_string()),
        );
        let e = ed.domain_child("iothreads");
        ed.doc.set_text(e, &want.to_string());
    }

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        out.iothreads = observed(doc);
    }
}
