//! Lints as text, JSON and generated Markdown docs.
//!
//! Invariant: rendering is pure and deterministic. Text groups lints by target (host first,
//! then guests by name) and orders each group by severity, then id; JSON keeps the order
//! [`super::lints`] produced. The Markdown table and reference list every declared lint, in
//! registry order, from its [`LintDecl`] alone.

use std::collections::BTreeMap;

use super::{decls, Lint, LintDecl, Scope, Severity};

/// Exit code of `check`: 1 with errors, 2 with warnings, else 0.
pub fn exit_code(lints: &[Lint]) -> u8 {
    match lints.iter().map(|l| l.severity).max() {
        Some(Severity::Error) => 1,
        Some(Severity::Warning) => 2,
        _ => 0,
    }
}

/// Human output, grouped by target (host first, then guests by name).
pub fn render_text(lints: &[Lint]) -> String {
    let mut by: BTreeMap<(bool, &str), Vec<&Lint>> = BTreeMap::new();
    for l in lints {
        by.entry((l.target != "host", l.target.as_str()))
            .or_default()
            .push(l);
    }
    let mut s = String::new();
    for ((_, target), ls) in by {
        s.push_str(&format!("{target}:\n"));
        let mut ls = ls;
        ls.sort_by_key(|l| (std::cmp::Reverse(l.severity), l.id));
        for l in ls {
            s.push_str(&format!(
                "  {}[{}] {} (guide {}){}\n",
                l.severity.as_str(),
                l.id,
                l.message,
                l.section,
                l.location
                    .as_ref()
                    .map(|x| format!(" at {x}"))
                    .unwrap_or_default()
            ));
        }
        s.push('\n');
    }
    let count = |sev| lints.iter().filter(|l| l.severity == sev).count();
    s.push_str(&format!(
        "Check: {} error(s), {} warning(s), {} info.\n",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    ));
    s
}

/// `--format json`: `{"format_version": 1, "lints": [...], "summary": {...}}`.
pub fn render_json(lints: &[Lint]) -> String {
    let count = |sev| lints.iter().filter(|l| l.severity == sev).count();
    let v = serde_json::json!({
        "format_version": 1,
        "lints": lints,
        "summary": {
            "errors": count(Severity::Error),
            "warnings": count(Severity::Warning),
            "info": count(Severity::Info),
        }
    });
    serde_json::to_string_pretty(&v).expect("serializes") + "\n"
}

fn level(d: &LintDecl) -> &'static str {
    d.level_note.unwrap_or(d.level.as_str())
}

fn reads(d: &LintDecl) -> String {
    d.reads
        .iter()
        .map(|i| i.label())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The README's lint table (between `<!-- lints:start -->` and `<!-- lints:end -->`).
pub fn markdown_table() -> String {
    let mut s =
        String::from("| id | severity | guide | reads | fires when |\n|---|---|---|---|---|\n");
    for d in decls() {
        s.push_str(&format!(
            "| [`{}`](docs/lints.md#{}) | {} | {} | {} | {} |\n",
            d.id,
            d.id,
            level(d),
            d.sections.join(", "),
            reads(d),
            d.summary
        ));
    }
    s
}

/// `docs/lints.md`: every lint with its declaration and its paragraph.
pub fn markdown_reference() -> String {
    let mut s = String::from(
        "# `kvmtune check` lints\n\n\
         <!-- Generated from the registry in src/lint/rules/mod.rs: \
         UPDATE_README=1 cargo test --test lints rewrites it. Do not edit. -->\n\n\
         Sections are those of the RHEL 6 Virtualization Tuning and Optimization Guide \
         (`../shared/seed` from the repository root). Error-level lints also stop `plan` and `apply`.\n",
    );
    for d in decls() {
        let scope = match d.scope {
            Scope::Host => "the host",
            Scope::Guests => "the guests together",
            Scope::EachGuest => "each guest",
        };
        s.push_str(&format!(
            "\n## {}\n\n- level: {}\n- guide: {}\n- looks at: {scope}\n- reads: {}\n- fires: {}\n\n{}\n",
            d.id,
            level(d),
            d.sections.join(", "),
            reads(d),
            d.summary,
            d.doc
        ));
    }
    s
}
