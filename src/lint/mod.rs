//! The seed guide's rules as lints (`kvmtune check`), each a declared unit.
//!
//! Invariant: every lint is one [`LintRule`] in the one registry, [`RULES`], declared once by
//! its [`LintDecl`] (id, level, guide sections, the inputs it reads, scope, docs); nothing
//! else names a lint. [`lints`] is pure over (desired state with concrete pins, observed
//! state, optional host [`Facts`]) and runs the registry in order, so its output is in
//! registry order (a run of consecutive [`Scope::EachGuest`] rules goes guest by guest).
//! `plan` runs it without facts: only error-level rules run, only errors are kept and no
//! guest XML is parsed, so plans stay as fast as before. `check` reads [`Facts`] and shows
//! every lint. The README's lint table and `docs/lints.md` are generated from the registry.

mod cx;
mod facts;
mod render;
mod rules;

use serde::Serialize;

use crate::config::source::KeyPath;
use crate::desired::{Desired, DomainName};
use crate::observe::Observed;

pub use cx::{Cx, Out, View};
pub use facts::{read_facts, Facts};
pub use render::{exit_code, markdown_reference, markdown_table, render_json, render_text};
pub use rules::RULES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lint {
    pub id: &'static str,
    pub severity: Severity,
    /// `host` or `guest/<name>`.
    pub target: String,
    /// Section of the guide (`2.3.4`).
    pub section: &'static str,
    pub message: String,
    /// The YAML key it is about, when there is one.
    #[serde(skip)]
    pub key: Option<KeyPath>,
    /// `file:line:column` of that key (filled by [`locate`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// What a rule reads besides nothing at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The desired state (the configuration, automatic pins resolved).
    Desired,
    /// The observed guests' libvirt XML, for what the configuration leaves out (`check` only).
    GuestXml,
    /// The host CPU and NUMA topology (libvirt capabilities and sysfs).
    Topology,
    /// Host files below `--root`: `/proc`, `/sys`, `/etc` (`check` only).
    HostFacts,
    /// The guests the configuration does not declare: their vCPUs' CPUs (`check` only).
    OtherGuests,
}

impl Input {
    pub fn label(self) -> &'static str {
        match self {
            Input::Desired => "config",
            Input::GuestXml => "guest XML",
            Input::Topology => "topology",
            Input::HostFacts => "host files",
            Input::OtherGuests => "other guests",
        }
    }
}

/// What a rule looks at, which decides how the runner calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The host: reports with target `host` ([`LintRule::check`]).
    Host,
    /// The guests together, comparing them ([`LintRule::check`]).
    Guests,
    /// One guest at a time ([`LintRule::check_guest`]); consecutive such rules in the
    /// registry run guest by guest, so their lints come grouped by guest.
    EachGuest,
}

/// A lint's declaration: everything about it but its logic.
#[derive(Debug)]
pub struct LintDecl {
    /// Stable id (`shared-pin`), in output and docs.
    pub id: &'static str,
    /// The highest severity it reports (what it reports unless `level_note` says otherwise).
    /// Error-level rules also run in `plan`, whose errors they become.
    pub level: Severity,
    /// When the severity varies: how (`error with automatic pins, else warning`).
    pub level_note: Option<&'static str>,
    /// The seed guide's sections it comes from; the first unless the rule says otherwise.
    pub sections: &'static [&'static str],
    /// The inputs it reads; its [`Cx`] gives it nothing else.
    pub reads: &'static [Input],
    pub scope: Scope,
    /// When it fires, in a phrase (the README's table).
    pub summary: &'static str,
    /// Why, in one paragraph (`docs/lints.md`).
    pub doc: &'static str,
}

/// One lint. Implement `check` for [`Scope::Host`] and [`Scope::Guests`] rules,
/// `check_guest` for [`Scope::EachGuest`] ones.
pub trait LintRule: Sync {
    fn decl(&self) -> &'static LintDecl;

    fn check(&self, _cx: &Cx, _out: &mut Out) {}

    fn check_guest(&self, _cx: &Cx, _guest: &View, _out: &mut Out) {}
}

/// The declarations of [`RULES`], in order.
pub fn decls() -> impl Iterator<Item = &'static LintDecl> {
    RULES.iter().map(|r| r.decl())
}

/// All lints. Without `facts` (the plan path) only the error-level rules are evaluated.
pub fn lints(d: &Desired, obs: &Observed, facts: Option<&Facts>) -> Vec<Lint> {
    run(d, obs, facts, &[])
}

/// Runs the registry; `pin_errors` are automatic pinning's failures (`check` only).
fn run(
    d: &Desired,
    obs: &Observed,
    facts: Option<&Facts>,
    pin_errors: &[(DomainName, String)],
) -> Vec<Lint> {
    let base = cx::Base::new(d, obs, facts, pin_errors);
    let mut out = Out::new(facts.is_none());
    let runs = |r: &dyn LintRule| facts.is_some() || r.decl().level == Severity::Error;
    let mut rest: &[&dyn LintRule] = RULES;
    while let Some(first) = rest.first() {
        if first.decl().scope != Scope::EachGuest {
            if runs(*first) {
                out.start(first.decl());
                first.check(&base.cx(first.decl()), &mut out);
            }
            rest = &rest[1..];
            continue;
        }
        let n = rest
            .iter()
            .take_while(|r| r.decl().scope == Scope::EachGuest)
            .count();
        let group: Vec<(&dyn LintRule, Cx)> = rest[..n]
            .iter()
            .filter(|r| runs(**r))
            .map(|r| (*r, base.cx(r.decl())))
            .collect();
        for i in 0..base.guest_count() {
            for (r, cx) in &group {
                out.start(r.decl());
                r.check_guest(cx, &cx.views()[i], &mut out);
            }
        }
        rest = &rest[n..];
    }
    out.into_lints()
}

/// Everything `check` shows: automatic pins resolved, all lints, located (automatic
/// pinning's failures are the `pinning-does-not-fit` lint).
pub fn check(d: &Desired, obs: &Observed, facts: &Facts) -> Vec<Lint> {
    let mut view = d.clone();
    let mut pin_errors = Vec::new();
    if d.guests.values().any(|g| g.auto_pin.is_some()) {
        let r = crate::pinning::resolve(d, obs);
        for (n, g) in r.guests {
            view.guests.insert(n, g);
        }
        pin_errors = r
            .errors
            .into_iter()
            .map(|(n, e)| (n, e.to_string()))
            .collect();
    }
    let mut all = run(&view, obs, Some(facts), &pin_errors);
    locate(d, &mut all);
    all
}

/// Fills each lint's `location` from the configuration's source map.
pub fn locate(d: &Desired, lints: &mut [Lint]) {
    for l in lints {
        l.location = l
            .key
            .as_ref()
            .and_then(|k| d.sources.find(k))
            .map(|loc| loc.to_string());
    }
}
