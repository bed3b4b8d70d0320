//! `hugetlbfs-missing`: guests backed by huge pages and no hugetlbfs mounted.
//!
//! Invariant: fires at most once, when a declared guest is backed by static huge pages and
//! the host's `/proc/mounts` has no hugetlbfs.

use crate::lint::cx::hugepage_backed;
use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "hugetlbfs-missing",
    level: Severity::Warning,
    level_note: None,
    sections: &["5.2"],
    reads: &[Input::Desired, Input::HostFacts],
    scope: Scope::Host,
    summary: "huge-page-backed guests and no hugetlbfs mount",
    doc: "QEMU maps a guest's static huge pages (the guide's 5.2) from a hugetlbfs mount; \
          without one, libvirt cannot start the guests that ask for them. `apply` mounts \
          `/dev/hugepages` when guests need it, so this tells about the host as it is now.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        let Some(f) = cx.facts() else { return };
        let any_hp = cx.desired().guests.values().any(hugepage_backed);
        if any_hp && !f.hugetlbfs {
            out.host(
                None,
                "guests are backed by huge pages but no hugetlbfs is mounted (apply mounts /dev/hugepages)".into(),
            );
        }
    }
}
