//! `shared-pin`: a CPU that is the only CPU of several vCPUs.
//!
//! Invariant: fires once per (shared CPU, guest among its sharers), every sharer guest being
//! told the same message, whether the sharers are vCPUs of several guests or of one; at most
//! a few sharers are named, so a host of guests pinned alike costs no guests² text.

use std::collections::BTreeSet;

use crate::desired::DomainName;
use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "shared-pin",
    level: Severity::Warning,
    level_note: None,
    sections: &["2.3.1"],
    reads: &[Input::Desired, Input::GuestXml],
    scope: Scope::Guests,
    summary: "a CPU is the only CPU of several vCPUs (of several guests, or of one)",
    doc: "A vCPU pinned to a single CPU is meant to own it. When vCPUs of several guests are \
          each pinned to the same single CPU (or several vCPUs of one guest are) they overcommit \
          that CPU (the guide's 2.3.1) while the pins forbid the scheduler to move them \
          anywhere else, which is worse than not pinning them at all.",
};

/// How many sharers a message names.
const SHOWN: usize = 6;

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        for (cpu, users) in cx.dedicated() {
            if users.len() < 2 {
                continue;
            }
            let mut sharers: Vec<String> = users
                .iter()
                .take(SHOWN)
                .map(|(n, i, _)| format!("{n} vCPU {i}"))
                .collect();
            if users.len() > SHOWN {
                sharers.push(format!("and {} more", users.len() - SHOWN));
            }
            let message = format!("CPU {cpu} is the only CPU of {}", sharers.join(", "));
            let guests: BTreeSet<&DomainName> = users.iter().map(|u| u.0).collect();
            for g in guests {
                let v = cx.view(g).expect("a declared guest");
                out.guest(v, &["cputune", "vcpupin"], message.clone());
            }
        }
    }
}
