//! `hugepage-demand`: huge-page-backed guests need more pages than the pool has.
//!
//! Invariant: demand is summed per page size, globally and, for guests whose memory is bound
//! to one node, per node too; each (size, node) over its pool fires once, the pool being the
//! declared one, else the host's. A guest whose memory size or page size is unknown adds no
//! demand.

use std::collections::{BTreeMap, BTreeSet};

use crate::desired::{DomainName, HugepagesBacking};
use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity};
use crate::units::PageSize;

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "hugepage-demand",
    level: Severity::Warning,
    level_note: None,
    sections: &["5.2"],
    reads: &[Input::Desired, Input::GuestXml, Input::HostFacts],
    scope: Scope::Host,
    summary: "memory of huge-page-backed guests above the pool (declared, else the host's; per node with a one-node `nodeset`)",
    doc: "A guest backed by static huge pages (the guide's 5.2) takes its whole memory from the \
          pool of its page size when QEMU starts, and fails to start when the pool is short. \
          Its memory comes from its XML, the pool from `host.hugepages` or else the host's \
          `nr_hugepages`; a guest bound to one NUMA node needs its pages on that node. A \
          warning, not an error: the pool may be raised at boot by other means.",
};

type Demand<'a> = BTreeMap<(PageSize, Option<u32>), (u64, Vec<&'a DomainName>)>;

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        let default = cx.default_hugepage();
        let mut demand: Demand = BTreeMap::new();
        for v in cx.views() {
            let size = match v.gd.hugepages {
                Some(HugepagesBacking::Size(s)) => s,
                Some(HugepagesBacking::DefaultSize) => match default {
                    Some(s) => s,
                    None => continue,
                },
                _ => continue,
            };
            let Some(kib) = v.memory_kib else { continue };
            let pages = kib.div_ceil(size.kib());
            let node =
                v.gd.numa_memory
                    .as_ref()
                    .and_then(|m| m.nodeset.as_ref())
                    .filter(|n| n.len() == 1)
                    .map(|n| n.highest());
            for k in [(size, None), (size, node)] {
                let e = demand.entry(k).or_default();
                e.0 += pages;
                e.1.push(v.name);
                if node.is_none() {
                    break;
                }
            }
        }
        for ((size, node), (pages, guests)) in demand {
            // Declared pools win (they are what apply makes); else what the host has.
            let pool = cx
                .desired()
                .host
                .hugepages
                .get(&(size, node))
                .copied()
                .or_else(|| cx.facts().and_then(|f| f.pools.get(&(size, node)).copied()));
            let Some(pool) = pool else { continue };
            if pages > pool {
                let names: BTreeSet<String> = guests.iter().map(|g| g.to_string()).collect();
                let names: Vec<String> = names.into_iter().collect();
                out.host(
                    Some(&["host", "hugepages"]),
                    format!(
                        "guests backed by {size} huge pages ({}) need {pages} pages{}, the pool has {pool}",
                        names.join(", "),
                        node.map(|n| format!(" on node {n}")).unwrap_or_default()
                    ),
                );
            }
        }
    }
}
