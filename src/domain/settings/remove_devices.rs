//! `remove_devices`: device classes the guest should not have (`<sound>`, a tablet, USB
//! redirection, …), removed from `<devices>`; the memory balloon is set to `model='none'`.
//!
//! Invariant: only devices of a declared class are touched; an absent balloon is written as
//! `model='none'` because libvirt would add a default one back. Nothing is ever added back,
//! and nothing changes live or is imported (absence is not a declaration).

use super::{GuestDesired, GuestKey, Validation};
use crate::config::raw::{DeviceClass, RawGuest};
use crate::domain::edit::Editor;
use crate::xmltree::{Document, NodeId};

pub struct Setting;

impl super::GuestSetting for Setting {
    fn validate(&self, _v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        if let Some(rd) = &g.remove_devices {
            out.remove_devices = rd.iter().copied().collect();
        }
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        let Some(devs) = ed.doc.child(ed.root(), "devices") else {
            return;
        };
        for class in &d.remove_devices {
            if *class == DeviceClass::Memballoon {
                memballoon(ed, devs);
                continue;
            }
            let matches: Vec<NodeId> = ed
                .doc
                .elements(devs)
                .into_iter()
                .filter(|e| is_of(&ed.doc, *e, *class))
                .collect();
            if matches.is_empty() {
                continue;
            }
            ed.change(
                GuestKey::RemoveDevices(*class),
                Some(format!("{} present", matches.len())),
                None,
            );
            for m in matches {
                ed.doc.remove(m);
            }
        }
    }

    fn import(&self, _doc: &Document, _out: &mut RawGuest) {}
}

/// Whether the `<devices>` child `e` is a device of `class`.
fn is_of(doc: &Document, e: NodeId, class: DeviceClass) -> bool {
    use DeviceClass as C;
    let name = doc.name(e);
    let attr = |a: &str| doc.attr(e, a);
    match class {
        C::Sound => name == "sound",
        C::Tablet => name == "input" && attr("type").as_deref() == Some("tablet"),
        C::UsbRedirect => name == "redirdev" && attr("bus").as_deref().unwrap_or("usb") == "usb",
        C::Smartcard => name == "smartcard",
        C::Parallel => name == "parallel",
        C::Watchdog => name == "watchdog",
        C::SpiceChannel => name == "channel" && attr("type").as_deref() == Some("spicevmc"),
        C::Memballoon => false,
    }
}

fn memballoon(ed: &mut Editor, devs: NodeId) {
    let mb = ed.doc.child(devs, "memballoon");
    let model = mb.and_then(|m| ed.doc.attr(m, "model"));
    if model.as_deref() == Some("none") {
        return;
    }
    ed.change(
        GuestKey::RemoveDevices(DeviceClass::Memballoon),
        model.or(Some("(default)".into())),
        Some("none".into()),
    );
    let m = ed.doc.ensure_child(devs, "memballoon");
    ed.doc.set_attr(m, "model", "none");
    for c in ed.doc.elements(m) {
        ed.doc.remove(c);
    }
}
