//! `vcpu-overcommit`: the declared guests have more vCPUs than the host has CPUs.
//!
//! Invariant: compares the sum of the vCPU counts known (declared, else from the XML) with
//! the host's CPU count (topology, else libvirt's node info); silent when the host's count is
//! unknown.

use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "vcpu-overcommit",
    level: Severity::Warning,
    level_note: None,
    sections: &["2.3.1"],
    reads: &[Input::Desired, Input::GuestXml, Input::Topology],
    scope: Scope::Host,
    summary: "declared guests' vCPUs above the host's CPUs",
    doc: "Giving the guests more vCPUs in total than the host has CPUs is overcommitting them \
          (the guide's 2.3.1): vCPUs then wait for each other's CPU time, which can hurt \
          performance. Only the declared guests are counted, with the vCPU counts they \
          declare or, failing that, have in their XML.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        let total: u64 = cx
            .views()
            .iter()
            .filter_map(|v| v.vcpus)
            .map(u64::from)
            .sum();
        if let Some(h) = cx.host_cpus().filter(|h| total > *h) {
            out.host(
                None,
                format!("the declared guests have {total} vCPUs, the host has {h} CPUs"),
            );
        }
    }
}
