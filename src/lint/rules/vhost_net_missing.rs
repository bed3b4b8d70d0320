//! `vhost-net-missing`: virtio NICs while vhost_net is neither loaded nor declared.
//!
//! Invariant: fires at most once, when some guest has a virtio NIC (declared or in its XML),
//! `/sys/module/vhost_net` is absent and `host.modules` does not load it.

use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "vhost-net-missing",
    level: Severity::Warning,
    level_note: None,
    sections: &["4.3"],
    reads: &[Input::Desired, Input::GuestXml, Input::HostFacts],
    scope: Scope::Host,
    summary: "virtio NICs, `/sys/module/vhost_net` absent and not in `host.modules`",
    doc: "vhost_net (the guide's 4.3) moves virtio-net's data path from QEMU's userspace into \
          the host kernel, cutting latency and CPU use. Without the module loaded, virtio NICs \
          fall back to QEMU; declaring it in `host.modules` makes `apply` load it.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        let Some(f) = cx.facts() else { return };
        let virtio_guests = cx.views().iter().any(|v| {
            v.gd.interfaces
                .values()
                .any(|i| i.model.as_deref().is_some_and(|m| m.starts_with("virtio")))
                || v.xml
                    .as_ref()
                    .is_some_and(|x| x.nic_models.iter().any(|m| m.starts_with("virtio")))
        });
        if virtio_guests
            && !f.vhost_net
            && !cx
                .desired()
                .host
                .modules
                .keys()
                .any(|m| m.as_str() == "vhost_net")
        {
            out.host(
                Some(&["host", "modules"]),
                "guests have virtio NICs but vhost_net is not loaded: add it to host.modules"
                    .into(),
            );
        }
    }
}
