//! `vcpu-on-reserved`: a vCPU pinned only to reserved CPUs.
//!
//! Invariant: fires once per such vCPU, naming the reserved CPUs it is pinned to; a vCPU
//! with at least one unreserved CPU in its set is left alone.

use crate::cpuset::CpuSet;
use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity, View};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "vcpu-on-reserved",
    level: Severity::Error,
    level_note: None,
    sections: &["7.2.4"],
    reads: &[Input::Desired, Input::GuestXml],
    scope: Scope::EachGuest,
    summary: "a vCPU is pinned only to `cpu_pool.reserved` CPUs",
    doc: "`host.cpu_pool.reserved` sets CPUs aside for the host's housekeeping and the guests' \
          emulator threads (the guide's 7.2.4 pins those with `emulatorpin` away from the vCPUs). \
          A vCPU whose whole pin set lies there competes with exactly what the reservation \
          protects, so the configuration contradicts itself: `plan` refuses it.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check_guest(&self, cx: &Cx, v: &View, out: &mut Out) {
        let Some(res) = &cx.desired().host.cpu_pool.reserved else {
            return;
        };
        for (i, s) in &v.pins {
            let hit: Vec<u32> = s.iter().filter(|c| res.contains(*c)).collect();
            if !hit.is_empty() && s.iter().all(|c| res.contains(c)) {
                out.guest(
                    v,
                    &["cputune", "vcpupin", &i.to_string()],
                    format!(
                        "vCPU {i} is pinned to reserved CPU(s) {}: host.cpu_pool.reserved is for housekeeping and emulator threads",
                        CpuSet::from_cpus(hit).expect("non-empty")
                    ),
                );
            }
        }
    }
}
