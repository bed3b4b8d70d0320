//! `tuned-not-virtual-host`: a host with guests whose tuned profile is not `virtual-host`.
//!
//! Invariant: fires at most once, when guests are declared and the profile (declared, else
//! `/etc/tuned/active_profile`) is another one or none.

use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "tuned-not-virtual-host",
    level: Severity::Warning,
    level_note: None,
    sections: &["3.1"],
    reads: &[Input::Desired, Input::HostFacts],
    scope: Scope::Host,
    summary: "guests declared and the profile is not `virtual-host`",
    doc: "The guide's 3.1 recommends tuned's `virtual-host` profile for KVM hosts: based on \
          `enterprise-storage`, it also lowers the swapping of virtual memory and writes dirty \
          pages back more aggressively.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        let Some(f) = cx.facts() else { return };
        let d = cx.desired();
        if d.guests.is_empty() {
            return;
        }
        let profile = d
            .host
            .tuned_profile
            .as_ref()
            .map(|p| p.to_string())
            .or(f.tuned_profile.clone());
        if profile.as_deref() != Some("virtual-host") {
            out.host(
                Some(&["host", "tuned"]),
                format!(
                    "the tuned profile is {} on a host with guests: use virtual-host",
                    profile.as_deref().unwrap_or("not set")
                ),
            );
        }
    }
}
