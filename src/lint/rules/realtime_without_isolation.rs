//! `realtime-without-isolation`: real-time vCPUs on a host without RT partitioning.
//!
//! Invariant: fires once per guest that declares `realtime` or a `fifo` / `rr`
//! `cputune.vcpusched` entry while the host declares no `cpu_pool.reserved` or no
//! `cpu_pool.isolate.kernel`.

use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity, View};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "realtime-without-isolation",
    level: Severity::Warning,
    level_note: None,
    sections: &["7.2.4"],
    reads: &[Input::Desired],
    scope: Scope::EachGuest,
    summary: "real-time vCPUs on a host without isolated CPUs (cpu_pool.reserved + isolate.kernel)",
    doc: "A SCHED_FIFO vCPU never yields to ordinary host threads on its CPU: without CPUs \
          reserved for housekeeping and isolated from the kernel's scheduler, timers and RCU \
          (`host.cpu_pool.reserved` with `isolate.kernel`, the guide's 7.2.4), kernel threads \
          and IRQs that land there starve or are throttled by RT throttling, which is what \
          Nova's `hw:cpu_realtime_mask` deployments avoid with isolated host CPUs.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check_guest(&self, cx: &Cx, v: &View, out: &mut Out) {
        let rt_sched = v.gd.realtime_exclude.is_some()
            || v.gd
                .vcpusched
                .iter()
                .flatten()
                .any(|s| s.scheduler.realtime());
        let pool = &cx.desired().host.cpu_pool;
        if rt_sched && (pool.reserved.is_none() || !pool.isolate.kernel) {
            let key: &[&str] = if v.gd.realtime_exclude.is_some() {
                &["realtime"]
            } else {
                &["cputune", "vcpusched"]
            };
            out.guest(
                v,
                key,
                "real-time vCPUs on a host without RT partitioning: declare host.cpu_pool.reserved and cpu_pool.isolate.kernel so host work stays off their CPUs".into(),
            );
        }
    }
}
