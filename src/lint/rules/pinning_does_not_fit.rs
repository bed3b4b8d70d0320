//! `pinning-does-not-fit`: automatic pinning found no CPUs for a guest.
//!
//! Invariant: reports the resolver's failures exactly, one per guest, in guest-name order;
//! `check` hands them over (`plan` reports the same failures as its own errors, so the plan
//! path has none here).

use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "pinning-does-not-fit",
    level: Severity::Error,
    level_note: None,
    sections: &["2.3.4"],
    reads: &[Input::Desired, Input::Topology],
    scope: Scope::Guests,
    summary: "automatic pinning found no CPUs (also a plan error)",
    doc: "`vcpupin: auto` pins each vCPU to its own CPU within one NUMA node where it can (the \
          guide's 2.3.4), avoiding reserved CPUs and CPUs other guests hold. When the free \
          CPUs cannot hold a guest's vCPUs there is no pinning to apply, and the message says \
          what was missing.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        for (n, e) in cx.pin_errors() {
            if let Some(v) = cx.view(n) {
                out.guest(v, &["cputune", "vcpupin"], e.clone());
            }
        }
    }
}
