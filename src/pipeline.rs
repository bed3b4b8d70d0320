//! The planning pipeline: resolve (automatic pinning) → lint → plan.
//!
//! Invariant: pure, like each stage; every decision is taken here once, and the resulting
//! [`Plan`] carries it (pins, lock contents, inputs), so nothing downstream decides again.

use crate::config::source::dotted;
use crate::desired::Desired;
use crate::lint::{Lint, Severity};
use crate::observe::Observed;
use crate::plan::{Plan, PlanError, PlanOptions, Prepared};

/// The plan with default options. Pure.
pub fn plan(d: &Desired, obs: &Observed) -> Plan {
    plan_with(d, obs, PlanOptions::default())
}

/// Resolves automatic pins, runs the lints that reject a configuration, and plans. Pure.
pub fn plan_with(d: &Desired, obs: &Observed, opts: PlanOptions) -> Plan {
    let auto = d
        .guests
        .values()
        .any(|g| g.auto_pin.is_some())
        .then(|| crate::pinning::resolve(d, obs));
    let view = auto.as_ref().map(|a| a.view(d));
    let lint_errors = lint_errors(d, crate::lint::lints(view.as_ref().unwrap_or(d), obs, None));
    crate::plan::plan(d, obs, opts, Prepared { auto, lint_errors })
}

/// The guide's rules that reject a configuration, as plan errors (`kvmtune check` shows all).
pub fn lint_errors(d: &Desired, lints: Vec<Lint>) -> Vec<PlanError> {
    lints
        .into_iter()
        .filter(|l| l.severity == Severity::Error)
        .map(|l| PlanError {
            target: l.target.clone(),
            location: l
                .key
                .as_ref()
                .and_then(|k| d.sources.find(k))
                .map(|l| l.to_string()),
            key: l.key.as_ref().map(|k| dotted(k)).unwrap_or_default(),
            message: format!("[{}] {} (guide {})", l.id, l.message, l.section),
        })
        .collect()
}
