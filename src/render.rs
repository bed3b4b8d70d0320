//! Rendering plans and apply reports for people (text) and machines (JSON).
//!
//! Invariant: rendering is a pure function of the plan/report and the [`Style`]; output order
//! is the plan's order, so the same plan always renders the same bytes.

use std::fmt::Write;

use crate::apply::{ApplyReport, Outcome};
use crate::plan::{Action, Effect, Plan};

/// Colour on or off (on only for a TTY without `NO_COLOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub const PLAIN: Style = Style { color: false };

    fn paint(self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

fn show(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(unset)")
}

fn heading(target: &str) -> String {
    match target.strip_prefix("guest/") {
        Some(g) => format!("guest {g}"),
        None => target.to_string(),
    }
}

/// The human plan: one block per target, `~ path: before → after`, then a summary line.
pub fn plan_text(plan: &Plan, style: Style, diff: bool) -> String {
    let mut out = String::new();
    let mut current: Option<&str> = None;
    for c in &plan.changes {
        if current != Some(c.target.as_str()) {
            if current.is_some() {
                out.push('\n');
            }
            let _ = writeln!(out, "{}:", style.paint("1", &heading(&c.target)));
            current = Some(&c.target);
        }
        let (sym, code) = match (&c.before, &c.after) {
            (None, Some(_)) => ("+", "32"),
            (Some(_), None) => ("-", "31"),
            _ => ("~", "33"),
        };
        let effect = match c.effect {
            Effect::Live => String::new(),
            e => format!("  ({} needed)", e.as_str()),
        };
        let _ = writeln!(
            out,
            "  {} {}: {} → {}{}",
            style.paint(code, sym),
            c.path,
            show(&c.before),
            show(&c.after),
            style.paint("2", &effect)
        );
    }
    if diff {
        for a in &plan.actions {
            if let Action::Guest {
                name,
                old_xml,
                new_xml,
                ..
            } = a
            {
                let _ = writeln!(
                    out,
                    "\n{}",
                    style.paint("1", &format!("diff of guest {name}:"))
                );
                out.push_str(&xml_diff(old_xml, new_xml, name.as_str(), style));
            }
        }
    }
    for e in &plan.errors {
        let _ = writeln!(out, "{} {e}", style.paint("31", "error:"));
    }
    if !plan.changes.is_empty() || !plan.errors.is_empty() {
        out.push('\n');
    }
    out.push_str(&summary_line(plan));
    out.push('\n');
    out
}

pub fn summary_line(plan: &Plan) -> String {
    let mut s = if plan.changes.is_empty() && !plan.errors.is_empty() {
        "No changes can be planned for the targets with errors.".to_string()
    } else if plan.changes.is_empty() {
        "No changes. The host and guests match the configuration.".to_string()
    } else {
        let targets = plan.summary.targets;
        let restart = plan
            .changes
            .iter()
            .filter(|c| c.effect == Effect::Restart)
            .count();
        let mut s = format!(
            "Plan: {} to change on {} target{}.",
            plan.changes.len(),
            targets,
            if targets == 1 { "" } else { "s" }
        );
        if restart > 0 {
            let _ = write!(s, " {restart} take effect at the guest's next restart.");
        }
        s
    };
    if !plan.errors.is_empty() {
        let n = plan.errors.len();
        let _ = write!(
            s,
            " {n} error{} (nothing will be applied).",
            if n == 1 { "" } else { "s" }
        );
    }
    s
}

/// Unified diff of a guest's persistent XML.
pub fn xml_diff(old: &str, new: &str, name: &str, style: Style) -> String {
    let d = similar::TextDiff::from_lines(old, new);
    let text = d
        .unified_diff()
        .context_radius(3)
        .header(&format!("{name} (defined)"), &format!("{name} (planned)"))
        .to_string();
    if !style.color {
        return text;
    }
    text.lines()
        .map(|l| {
            if l.starts_with('+') && !l.starts_with("+++") {
                style.paint("32", l)
            } else if l.starts_with('-') && !l.starts_with("---") {
                style.paint("31", l)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The plan as JSON (`format_version` 1).
pub fn plan_json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).expect("plan serializes") + "\n"
}

/// What apply did, for people.
pub fn report_text(report: &ApplyReport, style: Style) -> String {
    let mut out = String::new();
    for r in &report.results {
        match r.outcome {
            Outcome::Applied => {
                let _ = writeln!(
                    out,
                    "{} {}: {} change{} applied",
                    style.paint("32", "✓"),
                    heading(&r.target),
                    r.applied.len(),
                    if r.applied.len() == 1 { "" } else { "s" }
                );
            }
            Outcome::Failed => {
                let _ = writeln!(
                    out,
                    "{} {}: {} applied, {} failed",
                    style.paint("31", "✗"),
                    heading(&r.target),
                    r.applied.len(),
                    r.failed.len()
                );
                for (path, why) in &r.failed {
                    let _ = writeln!(out, "    {path}: {why}");
                }
            }
        }
    }
    let applied: usize = report.results.iter().map(|r| r.applied.len()).sum();
    let failed: usize = report.results.iter().map(|r| r.failed.len()).sum();
    let _ = writeln!(
        out,
        "Apply {}: {applied} applied, {failed} failed ({} guest define{}, {} host write{}).",
        if failed == 0 { "complete" } else { "failed" },
        report.defines,
        if report.defines == 1 { "" } else { "s" },
        report.host_writes,
        if report.host_writes == 1 { "" } else { "s" },
    );
    out
}

/// The human verify report: per running guest a table `SETTING  EXPECTED  ACTUAL  ok|DIFFERS`;
/// stopped guests get one line; then a summary line.
pub fn verify_text(report: &crate::verify::Report, style: Style) -> String {
    use crate::verify::GuestState;
    let mut out = String::new();
    for g in &report.guests {
        if g.state == GuestState::NotRunning {
            let _ = writeln!(
                out,
                "{}: not running, nothing to verify\n",
                style.paint("1", &format!("guest {}", g.name))
            );
            continue;
        }
        let pid = g.pid.map(|p| format!(", pid {p}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{}",
            style.paint("1", &format!("guest {} (running{pid}):", g.name))
        );
        if g.checks.is_empty() {
            let _ = writeln!(out, "  nothing declared that verify observes\n");
            continue;
        }
        let w = |f: fn(&crate::verify::Check) -> &str, title: &str| {
            g.checks
                .iter()
                .map(|c| f(c).chars().count())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        };
        let (ws, we, wa) = (
            w(|c| &c.setting, "SETTING"),
            w(|c| &c.expected, "EXPECTED"),
            w(|c| &c.actual, "ACTUAL"),
        );
        let _ = writeln!(
            out,
            "  {:ws$}  {:we$}  {:wa$}  RESULT",
            "SETTING", "EXPECTED", "ACTUAL"
        );
        for c in &g.checks {
            let result = if c.ok {
                style.paint("32", "ok")
            } else {
                style.paint("31", "DIFFERS")
            };
            let _ = writeln!(
                out,
                "  {:ws$}  {:we$}  {:wa$}  {result}",
                c.setting, c.expected, c.actual
            );
        }
        out.push('\n');
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "Verify: {} setting(s) checked on {} running guest(s), {} differ.",
        s.checks,
        report
            .guests
            .iter()
            .filter(|g| g.state == GuestState::Running)
            .count(),
        s.differences
    );
    out
}

/// The JSON verify report: `{"format_version": 1, "guests": [{"name", "state", "pid",
/// "checks": [{"setting", "expected", "actual", "ok"}]}], "summary": {"checks", "differences"}}`.
pub fn verify_json(report: &crate::verify::Report) -> String {
    let mut s = serde_json::to_string_pretty(report).unwrap_or_default();
    s.push('\n');
    s
}
