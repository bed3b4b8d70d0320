//! `topology-sockets`: a guest CPU topology of several one-core sockets.
//!
//! Invariant: reads the declared topology only; fires when it has more than one socket and
//! one core per socket, suggesting the same vCPUs as cores of one socket.

use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity, View};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "topology-sockets",
    level: Severity::Info,
    level_note: None,
    sections: &["2.3.3"],
    reads: &[Input::Desired],
    scope: Scope::EachGuest,
    summary: "several sockets of one core each",
    doc: "The guide's 2.3.3 presents a guest's vCPUs as cores of one socket rather than as \
          many one-core sockets: guest operating systems and licences that count sockets, and \
          schedulers that reason about shared caches, do better with the former.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check_guest(&self, _cx: &Cx, v: &View, out: &mut Out) {
        let Some(t) = v.gd.cpu.as_ref().and_then(|c| c.topology) else {
            return;
        };
        if t.sockets > 1 && t.cores == 1 {
            out.guest(
                v,
                &["cpu", "topology"],
                format!(
                    "{} sockets of 1 core: present the vCPUs as cores of one socket (sockets: 1, cores: {})",
                    t.sockets,
                    t.sockets * t.dies
                ),
            );
        }
    }
}
