//! `arp-filter-off`: `arp_filter` 0 while several interfaces reach one subnet.
//!
//! Invariant: fires at most once, when `net.ipv4.conf.all.arp_filter` (declared sysctl, else
//! the host's) is `0` and `/proc/net/route` reaches some subnet through more than one
//! interface; the first such subnet is named.

use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "arp-filter-off",
    level: Severity::Warning,
    level_note: None,
    sections: &["4.2"],
    reads: &[Input::Desired, Input::HostFacts],
    scope: Scope::Host,
    summary: "`arp_filter` 0 while `/proc/net/route` reaches one subnet through several interfaces",
    doc: "With several interfaces on one subnet, a host answers ARP requests for an address \
          from any of them (ARP flux), so peers may send its traffic to the wrong interface. The \
          guide's 4.2 sets `net.ipv4.conf.all.arp_filter` to 1 to prevent it.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        let Some(f) = cx.facts() else { return };
        let arp = cx
            .desired()
            .host
            .sysctl
            .iter()
            .find(|(k, _)| k.as_str() == "net.ipv4.conf.all.arp_filter")
            .map(|(_, v)| v.clone())
            .or(f.arp_filter.clone());
        let Some((net, ifs)) = f.shared_subnets.first() else {
            return;
        };
        if arp.as_deref() == Some("0") {
            out.host(
                Some(&["host", "sysctl"]),
                format!(
                    "net.ipv4.conf.all.arp_filter is 0 while {} share subnet {net}: ARP flux",
                    ifs.join(", ")
                ),
            );
        }
    }
}
