//! `cpu-model-not-host`: a guest CPU not copied from the host.
//!
//! Invariant: the declared CPU mode wins, else the XML's (`custom` when `<cpu>` has no
//! mode); fires when that is `custom` or unknown.

use crate::config::raw::CpuMode;
use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity, View};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "cpu-model-not-host",
    level: Severity::Info,
    level_note: None,
    sections: &["2.3.2"],
    reads: &[Input::Desired, Input::GuestXml],
    scope: Scope::EachGuest,
    summary: "CPU mode `custom` (declared or in the XML)",
    doc: "The guide's 2.3.2 copies the host CPU's model and features into the guest: \
          `host-model` or `host-passthrough` let the guest use every instruction the host has, \
          while a named `custom` model hides the newer ones. Keep `custom` only for guests that \
          migrate between hosts with different CPUs.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check_guest(&self, _cx: &Cx, v: &View, out: &mut Out) {
        let mode =
            v.gd.cpu
                .as_ref()
                .and_then(|c| c.mode)
                .map(|m| m.as_str().to_string())
                .or_else(|| v.xml.as_ref().and_then(|x| x.cpu_mode.clone()));
        if mode
            .as_deref()
            .is_none_or(|m| m == CpuMode::Custom.as_str())
        {
            out.guest(
                v,
                &["cpu"],
                "the CPU model is not copied from the host: host-model or host-passthrough exposes its features (custom only where guests migrate between different hosts)".into(),
            );
        }
    }
}
