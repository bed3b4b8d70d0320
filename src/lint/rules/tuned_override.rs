//! `tuned-override`: a declared value that the declared tuned profile (through its includes)
//! sets otherwise.
//!
//! Invariant: one lint per overridden value, in the child profile's order, computed by the
//! same function the planner uses ([`crate::host::tuned::overrides`]) over the profile files
//! observation read; silent when no profile is declared or its files cannot be resolved (the
//! plan reports that).

use crate::host::tuned::{overrides, CHILD};
use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "tuned-override",
    level: Severity::Info,
    level_note: None,
    sections: &["3.1"],
    reads: &[Input::Desired, Input::HostFacts],
    scope: Scope::Host,
    summary: "a declared value overrides what the tuned profile sets",
    doc: "tuned applies its profile's values again whenever it starts and `tuned-adm verify` \
          compares the host against them, so a value kvmtune writes over the profile's makes \
          verify fail for good. kvmtune therefore writes such values (`[sysctl]` keys, \
          `[vm]` transparent huge pages, and `isolated_cores` from `cpu_pool.reserved` for \
          cpu-partitioning and realtime profiles) into its own child profile \
          `/etc/tuned/kvmtune/tuned.conf`, which includes the declared one, and activates \
          that (with `persist: false` it cannot, and verify will report the value).",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        let Some(obs) = cx.host_observed() else {
            return;
        };
        let d = &cx.desired().host;
        let Some(p) = &d.tuned_profile else { return };
        let Ok(found) = overrides(d, obs, p) else {
            return;
        };
        let how = if d.runtime_only {
            "persist: false writes no child profile, so `tuned-adm verify` will report it"
                .to_string()
        } else {
            format!("set in the {CHILD} child profile")
        };
        for o in found {
            let from = if o.profile.from == p.as_str() {
                String::new()
            } else {
                format!(" (from {})", o.profile.from)
            };
            let key: Vec<&str> = std::iter::once("host")
                .chain(o.key.iter().map(String::as_str))
                .collect();
            out.host(
                Some(&key),
                format!(
                    "{}: {} overrides {p}'s {}{from} — {how}",
                    o.name(),
                    o.entry.value,
                    o.profile.value
                ),
            );
        }
    }
}
