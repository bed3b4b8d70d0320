//! `unmanaged-on-dedicated`: a guest kvmtune does not manage can run on dedicated CPUs.
//!
//! Invariant: fires only when `host.cpu_pool` partitions the host (`reserved` or `shared`),
//! once per undeclared guest (by name, in name order) whose vCPUs can run on a dedicated CPU
//! (neither reserved nor shared): a vCPU without a pin and without `<vcpu cpuset>` can run
//! on every host CPU. It names the guest, its vCPUs and those CPUs.

use crate::cpuset::CpuSet;
use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "unmanaged-on-dedicated",
    level: Severity::Warning,
    level_note: None,
    sections: &["7.2.4"],
    reads: &[Input::Desired, Input::Topology, Input::OtherGuests],
    scope: Scope::Host,
    summary: "a guest not in the configuration can run on dedicated CPUs (not `cpu_pool.reserved` or `shared`)",
    doc: "With `host.cpu_pool` the host's CPUs are partitioned: reserved ones for housekeeping, \
          shared ones for floating guests, and the rest dedicated to the vCPUs `vcpupin: auto` \
          pins one to one (the guide's 7.2.4). kvmtune never touches a guest it does not \
          manage, so such a guest without pins (or with pins or a `<vcpu cpuset>` reaching \
          dedicated CPUs) competes with the pinned vCPUs there. Declare it (`vcpupin: shared` \
          floats it over the shared pool) or pin it off the dedicated CPUs.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        let pool = &cx.desired().host.cpu_pool;
        if pool.reserved.is_none() && pool.shared.is_none() {
            return;
        }
        let Some(topo) = cx.topology() else { return };
        let Some(online) = CpuSet::from_cpus(topo.cpus.iter().map(|c| c.id)) else {
            return;
        };
        let Some(dedicated) = pool.dedicated(&online) else {
            return;
        };
        for (name, vcpus) in cx.other_vcpus() {
            let mut hit: Vec<u32> = Vec::new();
            let mut which: Vec<u32> = Vec::new();
            let mut floating = false;
            for (i, aff) in vcpus.iter().enumerate() {
                let reach = match aff {
                    Some(s) => s.intersection(&dedicated),
                    None => {
                        floating = true;
                        Some(dedicated.clone())
                    }
                };
                if let Some(r) = reach {
                    hit.extend(r.iter());
                    which.push(u32::try_from(i).unwrap_or(u32::MAX));
                }
            }
            let (Some(cpus), Some(which)) = (CpuSet::from_cpus(hit), CpuSet::from_cpus(which))
            else {
                continue;
            };
            let how = if floating { " (unpinned)" } else { "" };
            out.host(
                Some(&["host", "cpu_pool"]),
                format!(
                    "guest {name} is not managed, and its vCPU(s) {which}{how} can run on dedicated CPU(s) {cpus}: declare it (`vcpupin: shared` floats it over the shared pool) or pin it off them"
                ),
            );
        }
    }
}
