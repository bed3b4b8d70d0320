//! `thp-always-with-hugepages`: transparent huge pages `always` next to static huge pages.
//!
//! Invariant: fires at most once, when some guest is backed by static huge pages and THP's
//! `enabled` (declared, else the host's) is `always`.

use crate::lint::cx::hugepage_backed;
use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "thp-always-with-hugepages",
    level: Severity::Info,
    level_note: None,
    sections: &["5.2"],
    reads: &[Input::Desired, Input::HostFacts],
    scope: Scope::Host,
    summary: "THP `always` next to huge-page-backed guests",
    doc: "With guests on static huge pages (the guide's 5.2) transparent huge pages add \
          nothing for them, while `always` keeps khugepaged scanning and compacting memory. \
          `madvise` leaves THP to the processes that ask for it.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        let Some(f) = cx.facts() else { return };
        let any_hp = cx.desired().guests.values().any(hugepage_backed);
        let thp = cx
            .desired()
            .host
            .thp_enabled
            .map(|t| t.as_str().to_string())
            .or(f.thp_enabled.clone());
        if any_hp && thp.as_deref() == Some("always") {
            out.host(
                Some(&["host", "transparent_hugepage"]),
                "transparent huge pages are `always` next to guests backed by static huge pages: `madvise` keeps khugepaged off their memory".into(),
            );
        }
    }
}
