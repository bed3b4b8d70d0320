//! `emulator-overlaps-vcpus`: emulator threads on CPUs dedicated to vCPUs.
//!
//! Invariant: an error when one of the overlapped vCPUs was pinned automatically (kvmtune
//! chose both, so it must not), else a warning; at most a few overlapped vCPUs are named and
//! a message is formatted only when it is kept, so a host of guests pinned alike costs no
//! guests² text.

use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "emulator-overlaps-vcpus",
    level: Severity::Error,
    level_note: Some("error with auto pins, else warning"),
    sections: &["7.2.4"],
    reads: &[Input::Desired, Input::GuestXml],
    scope: Scope::Guests,
    summary: "`emulatorpin` covers a CPU dedicated to a vCPU",
    doc: "The guide's 7.2.4 pins a guest's emulator threads (`emulatorpin`) so that they do not \
          run where its vCPUs do. A CPU that is the only CPU of some vCPU (of this guest or \
          another) is dedicated to it; emulator threads there take its time. With automatic \
          pinning kvmtune chose the dedicated CPUs itself, so an overlap is an error that \
          `plan` refuses; with hand-written pins it is a warning.",
};

/// How many overlapped vCPUs a message names.
const SHOWN: usize = 6;

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        let dedicated = cx.dedicated();
        for v in cx.views() {
            let Some(e) = &v.emulator else { continue };
            let hits = || {
                e.iter().flat_map(|c| {
                    dedicated
                        .get(&c)
                        .into_iter()
                        .flatten()
                        .map(move |(g, i, auto)| (c, *g, *i, *auto))
                })
            };
            let Some(_) = hits().next() else { continue };
            let sev = if hits().any(|(.., auto)| auto) {
                Severity::Error
            } else {
                Severity::Warning
            };
            if !out.wants(sev) {
                continue;
            }
            let total = hits().count();
            let mut names: Vec<String> = hits()
                .take(SHOWN)
                .map(|(c, g, i, _)| {
                    if g == v.name {
                        format!("its vCPU {i} (CPU {c})")
                    } else {
                        format!("vCPU {i} of {g} (CPU {c})")
                    }
                })
                .collect();
            if total > SHOWN {
                names.push(format!("and {} more", total - SHOWN));
            }
            out.guest_as(
                sev,
                "7.2.4",
                v,
                &["cputune", "emulatorpin"],
                format!(
                    "emulator threads ({e}) share CPUs with dedicated vCPUs: {}",
                    names.join(", ")
                ),
            );
        }
    }
}
