//! `numa-spread`: a guest's vCPUs on several NUMA nodes, or its memory away from them.
//!
//! Invariant: only pinned guests, and only with the host topology known; vCPUs over several
//! nodes fire under 2.3.4, else memory bound to several nodes or to another node than the
//! vCPUs' fires under 7.2.1 (at most one of the two per guest).

use std::collections::BTreeSet;

use crate::cpuset::CpuSet;
use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity, View};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "numa-spread",
    level: Severity::Warning,
    level_note: None,
    sections: &["2.3.4", "7.2.1"],
    reads: &[Input::Desired, Input::GuestXml, Input::Topology],
    scope: Scope::EachGuest,
    summary: "pinned vCPUs on several nodes, or memory nodes other than the vCPUs'",
    doc: "The guide pins a guest's vCPUs within one NUMA node (2.3.4) and binds its memory to \
          the node its vCPUs run on (7.2.1): a vCPU on another node than its memory pays for \
          every remote access. A guest whose pins span nodes, or whose `numatune` nodeset \
          names several nodes or another node than its vCPUs', gets this warning.",
};

fn show(s: &BTreeSet<u32>) -> String {
    CpuSet::from_cpus(s.iter().copied())
        .map(|c| c.to_string())
        .unwrap_or_default()
}

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check_guest(&self, cx: &Cx, v: &View, out: &mut Out) {
        let Some(t) = cx.topology() else { return };
        if v.pins.is_empty() {
            return;
        }
        let nodes = t.nodes_of(v.pins.values().flat_map(|s| s.iter()));
        let mem: Option<BTreeSet<u32>> =
            v.gd.numa_memory
                .as_ref()
                .and_then(|m| m.nodeset.as_ref())
                .map(|n| n.iter().collect());
        if nodes.len() > 1 {
            out.guest_as(
                Severity::Warning,
                "2.3.4",
                v,
                &["cputune", "vcpupin"],
                format!("vCPUs are pinned across NUMA nodes {}", show(&nodes)),
            );
        } else if let Some(m) = mem.filter(|m| m.len() > 1 || *m != nodes) {
            out.guest_as(
                Severity::Warning,
                "7.2.1",
                v,
                &["numatune", "memory", "nodeset"],
                format!(
                    "memory on node(s) {} while the vCPUs are on node {}",
                    show(&m),
                    show(&nodes)
                ),
            );
        }
    }
}
