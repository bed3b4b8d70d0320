//! `queues-above-vcpus`: more multiqueue queues than vCPUs.
//!
//! Invariant: fires once per declared interface entry whose `queues` exceeds the guest's
//! vCPU count (declared, else from the XML); silent when the count is unknown.

use crate::desired::DeviceKey;
use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity, View};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "queues-above-vcpus",
    level: Severity::Warning,
    level_note: None,
    sections: &["4.3"],
    reads: &[Input::Desired, Input::GuestXml],
    scope: Scope::EachGuest,
    summary: "multiqueue queues above the vCPU count",
    doc: "Multiqueue virtio-net (the guide's 4.3) scales a NIC with one queue pair per vCPU; \
          queues beyond the vCPU count have no vCPU to serve them and only add interrupts and \
          memory.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check_guest(&self, _cx: &Cx, v: &View, out: &mut Out) {
        for (k, i) in &v.gd.interfaces {
            let (Some(q), Some(n)) = (i.queues, v.vcpus) else {
                continue;
            };
            if q > n {
                let kk = match k {
                    DeviceKey::All => "*".to_string(),
                    DeviceKey::One(m) => m.as_str().to_string(),
                };
                out.guest(
                    v,
                    &["interfaces", &kk, "queues"],
                    format!("{q} queues for {n} vCPUs: more queues than vCPUs only add overhead"),
                );
            }
        }
    }
}
