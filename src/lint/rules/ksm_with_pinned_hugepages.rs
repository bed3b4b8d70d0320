//! `ksm-with-pinned-hugepages`: KSM running next to pinned, huge-page-backed guests.
//!
//! Invariant: fires at most once, when some guest is both pinned (declared or XML pins) and
//! backed by static huge pages, and KSM runs (declared `host.ksm.run`, else the host's).

use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "ksm-with-pinned-hugepages",
    level: Severity::Warning,
    level_note: None,
    sections: &["5.2"],
    reads: &[Input::Desired, Input::GuestXml, Input::HostFacts],
    scope: Scope::Host,
    summary: "KSM running next to pinned, huge-page-backed guests",
    doc: "Guests that are pinned and backed by static huge pages (the guide's 5.2) are tuned \
          for locality. KSM cannot merge huge pages, so it only spends CPU scanning, and where \
          it does merge it does so across NUMA nodes, undoing the placement.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        let Some(f) = cx.facts() else { return };
        let pinned_hp = cx
            .views()
            .iter()
            .any(|v| v.hugepage_backed() && !v.pins.is_empty());
        let ksm_on = cx.desired().host.ksm.run.or(f.ksm_run).unwrap_or(false);
        if pinned_hp && ksm_on {
            out.host(
                Some(&["host", "ksm"]),
                "KSM is on next to pinned, huge-page-backed guests: it cannot merge huge pages and merging across nodes undoes NUMA placement".into(),
            );
        }
    }
}
