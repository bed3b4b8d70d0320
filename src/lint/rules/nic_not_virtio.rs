//! `nic-not-virtio`: emulated NIC models.
//!
//! Invariant: the models are the declared `"*"` model, else the XML's (libvirt's default
//! `rtl8139` where an interface names none; `hostdev` interfaces are not NICs of a model),
//! plus every model declared per MAC; fires once per guest, naming each non-virtio model once.

use std::collections::BTreeSet;

use crate::desired::DeviceKey;
use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity, View};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "nic-not-virtio",
    level: Severity::Warning,
    level_note: None,
    sections: &["4.3"],
    reads: &[Input::Desired, Input::GuestXml],
    scope: Scope::EachGuest,
    summary: "interfaces of another model",
    doc: "Emulated NICs (`e1000`, `rtl8139`, ...) cost the host an exit and a device model per \
          packet. The guide's 4.3 uses paravirtualised virtio NICs, whose data path vhost_net \
          moves into the host kernel.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check_guest(&self, _cx: &Cx, v: &View, out: &mut Out) {
        let all_model =
            v.gd.interfaces
                .get(&DeviceKey::All)
                .and_then(|i| i.model.clone());
        let models: Vec<String> = match (&all_model, &v.xml) {
            (Some(m), _) => vec![m.clone()],
            (None, Some(x)) => x.nic_models.clone(),
            _ => Vec::new(),
        };
        let mut non_virtio: BTreeSet<String> = models
            .iter()
            .filter(|m| !m.starts_with("virtio"))
            .cloned()
            .collect();
        for i in v.gd.interfaces.values() {
            if let Some(m) = i.model.as_ref().filter(|m| !m.starts_with("virtio")) {
                non_virtio.insert(m.clone());
            }
        }
        if !non_virtio.is_empty() {
            out.guest(
                v,
                &["interfaces"],
                format!(
                    "interfaces of model {} are emulated: virtio with vhost_net is the fast path",
                    non_virtio.into_iter().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
}
