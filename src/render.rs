//! Rendering plans and apply reports for people (text) and machines (JSON).
//!
//! Invariant: rendering is a pure function of the plan/report and the [`Style`]; output order
//! is the plan's order, so the same plan always renders the same bytes.

use std::fmt::Write;

pub mod map;

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

/// Values of host files under /etc and of things kvmtune adds read `(absent)` when missing.
pub fn show_for<'a>(path: &str, v: &'a Option<String>) -> &'a str {
    match v {
        None if path.ends_with(" (persisted)")
            || path.ends_with(" (boot)")
            || path.ends_with(" (boot entries)")
            || path.starts_with("tuned.kvmtune.") =>
        {
            "(absent)"
        }
        None if path == "tuned.profile" => "(none)",
        None if path == "hugetlbfs" => "(not mounted)",
        _ => show(v),
    }
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
            show_for(&c.path, &c.before),
            show_for(&c.path, &c.after),
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
    if !plan.restarts.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        for t in &plan.restarts {
            let _ = writeln!(
                out,
                "{} {}: graceful shutdown, then start (--restart-guests)",
                style.paint("33", "↻"),
                heading(t)
            );
        }
    }
    if !plan.pending_restart.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{}",
            style.paint("1", "pending restart (defined, not yet in effect):")
        );
        for p in &plan.pending_restart {
            let _ = writeln!(
                out,
                "  {}: {} {} → {}",
                heading(&p.target),
                p.path,
                show(&p.running),
                show(&p.defined)
            );
        }
    }
    for e in &plan.errors {
        let _ = writeln!(out, "{} {e}", style.paint("31", "error:"));
    }
    for n in &plan.notes {
        let _ = writeln!(out, "{} {n}", style.paint("36", "note:"));
    }
    if !out.is_empty() {
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
        let reboot = plan
            .changes
            .iter()
            .filter(|c| c.effect == Effect::Reboot)
            .count();
        if reboot > 0 {
            let _ = write!(
                s,
                " {reboot} take{} effect at the next host reboot.",
                if reboot == 1 { "s" } else { "" }
            );
        }
        s
    };
    if !plan.pending_restart.is_empty() {
        let n = plan.pending_restart.len();
        let _ = write!(
            s,
            " {n} setting{} wait{} for a guest restart.",
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" }
        );
    }
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

/// The plan as JSON with `"diff"` (`plan --format json --diff`): each change in the words of
/// the human plan (`(absent)`, `(unset)`, ...) with its effect marker, and each guest's
/// defined and planned domain XML, for tools that show diffs (the Ansible module's diff mode).
pub fn plan_json_with_diff(plan: &Plan) -> String {
    let changes: Vec<serde_json::Value> = plan
        .changes
        .iter()
        .map(|c| {
            serde_json::json!({
                "target": c.target,
                "heading": heading(&c.target),
                "path": c.path,
                "before": show_for(&c.path, &c.before),
                "after": show_for(&c.path, &c.after),
                "effect": c.effect.as_str(),
                "marker": match c.effect {
                    Effect::Live => String::new(),
                    e => format!("({} needed)", e.as_str()),
                },
            })
        })
        .collect();
    let guests: Vec<serde_json::Value> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Guest {
                name,
                old_xml,
                new_xml,
                ..
            } => Some(serde_json::json!({
                "name": name.as_str(),
                "defined": old_xml,
                "planned": new_xml,
            })),
            _ => None,
        })
        .collect();
    let mut v = serde_json::to_value(plan).expect("plan serializes");
    if let serde_json::Value::Object(m) = &mut v {
        m.insert(
            "diff".into(),
            serde_json::json!({ "changes": changes, "guests": guests }),
        );
    }
    serde_json::to_string_pretty(&v).expect("plan serializes") + "\n"
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
                for (path, why) in &r.deferred {
                    let _ = writeln!(out, "    {path}: {why}");
                }
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
    for n in &report.notes {
        let _ = writeln!(out, "  {n}");
    }
    let applied: usize = report.results.iter().map(|r| r.applied.len()).sum();
    let failed: usize = report.results.iter().map(|r| r.failed.len()).sum();
    let counts: Vec<String> = [
        (report.defines, "guest define"),
        (report.live_changes, "live change"),
        (report.host_writes, "host write"),
        (report.host_commands, "host command"),
        (report.restarts, "restart"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}{}", if *n == 1 { "" } else { "s" }))
    .collect();
    let counts = if counts.is_empty() {
        "nothing written".to_string()
    } else {
        counts.join(", ")
    };
    let _ = writeln!(
        out,
        "Apply {}: {applied} applied, {failed} failed ({counts}).",
        if failed == 0 { "complete" } else { "failed" },
    );
    out
}

/// `ok` (green) or `DIFFERS` (red): one verify check's result.
fn check_word(ok: bool, style: Style) -> String {
    if ok {
        style.paint("32", "ok")
    } else {
        style.paint("31", "DIFFERS")
    }
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
            let result = check_word(c.ok, style);
            let _ = writeln!(
                out,
                "  {:ws$}  {:we$}  {:wa$}  {result}",
                c.setting, c.expected, c.actual
            );
        }
        out.push('\n');
    }
    if !report.host.is_empty() {
        let _ = writeln!(out, "{}", style.paint("1", "host isolation:"));
        let we = report
            .host
            .iter()
            .map(|c| c.expected.chars().count())
            .max()
            .unwrap_or(0);
        for c in &report.host {
            let result = check_word(c.ok, style);
            let _ = writeln!(
                out,
                "  {}  {:we$}  {}  {result}",
                c.setting, c.expected, c.actual
            );
        }
        out.push('\n');
    }
    for n in &report.notes {
        let _ = writeln!(out, "note: {n}");
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
