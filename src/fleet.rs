//! The fleet report (`kvmtune report`): per-host plans of a run in one summary.
//!
//! Invariants:
//! - Every input is untrusted: [`read_inputs`] reads bounded regular files only
//!   ([`MAX_PLAN`], [`MAX_MAP`], at most [`MAX_HOSTS`] hosts), and a file that is empty, not
//!   JSON, not a plan or an apply report, or a plan with errors makes its host *failing*
//!   with the reason — never the whole report. Every text shown is printable and bounded.
//! - [`summarize`] and the renderers ([`markdown`], [`html::page`]) are pure: hosts in name
//!   order, nothing from the clock or the environment, so the same files give the same bytes.

pub mod html;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::model::Effect;
use crate::plan::Plan;

/// The largest plan or apply report read.
pub const MAX_PLAN: u64 = 16 << 20;
/// The largest pin map embedded.
pub const MAX_MAP: u64 = 4 << 20;
/// The most hosts in one report.
pub const MAX_HOSTS: usize = 10_000;
/// The most changes listed per host (the counts are always complete).
pub const MAX_LISTED: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("{0}: no plan files (`<host>.json`) in this directory")]
    Empty(String),
    #[error("more than {MAX_HOSTS} hosts: split the report")]
    TooMany,
}

/// One host's files as read: the plan text (or why it could not be read), its pin map.
#[derive(Debug, Clone)]
pub struct Input {
    pub host: String,
    /// The file name, as shown.
    pub file: String,
    pub text: Result<String, String>,
    pub map: Option<Result<String, String>>,
}

/// How a host stands, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Failing,
    Drifting,
    Pending,
    InSync,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Failing,
        Status::Drifting,
        Status::Pending,
        Status::InSync,
    ];

    /// The machine name (CSS class, data attribute).
    pub fn id(self) -> &'static str {
        match self {
            Status::Failing => "failing",
            Status::Drifting => "drifting",
            Status::Pending => "pending",
            Status::InSync => "in_sync",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Failing => "failing",
            Status::Drifting => "drifting",
            Status::Pending => "pending restart",
            Status::InSync => "in sync",
        }
    }
}

/// One change as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub target: String,
    pub path: String,
    pub before: String,
    pub after: String,
    pub effect: Effect,
}

/// One host's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRow {
    pub host: String,
    pub file: String,
    pub status: Status,
    /// `plan`, `apply report`, or `unreadable`.
    pub kind: &'static str,
    pub changes: usize,
    /// Changes that take effect at a guest's restart / a host reboot.
    pub restart: usize,
    pub reboot: usize,
    /// Guests with settings waiting for their restart.
    pub pending: Vec<String>,
    /// Why it fails (plan errors, failed apply steps, unreadable input).
    pub errors: Vec<String>,
    /// Targets with changes, with how many, in the plan's order (host first).
    pub targets: Vec<(String, usize)>,
    /// The first [`MAX_LISTED`] changes.
    pub listed: Vec<Listed>,
    /// The pin map (an SVG document), or why it is not shown.
    pub map: Option<Result<String, String>>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    pub hosts: Vec<HostRow>,
}

impl Fleet {
    pub fn count(&self, s: Status) -> usize {
        self.hosts.iter().filter(|h| h.status == s).count()
    }

    /// Guests waiting for a restart, over all hosts.
    pub fn pending_guests(&self) -> usize {
        self.hosts.iter().map(|h| h.pending.len()).sum()
    }

    /// `5 hosts: 2 in sync, 1 drifting, 1 pending restart, 1 failing; 2 guests wait for a restart.`
    pub fn summary_line(&self) -> String {
        let parts: Vec<String> = [
            Status::InSync,
            Status::Drifting,
            Status::Pending,
            Status::Failing,
        ]
        .iter()
        .map(|s| format!("{} {}", self.count(*s), s.label()))
        .collect();
        let n = self.hosts.len();
        let g = self.pending_guests();
        format!(
            "{n} host{}: {}; {g} guest{} wait{} for a restart.",
            if n == 1 { "" } else { "s" },
            parts.join(", "),
            if g == 1 { "" } else { "s" },
            if g == 1 { "s" } else { "" },
        )
    }

    /// The worst status of any host (`InSync` for none).
    pub fn worst(&self) -> Status {
        self.hosts
            .iter()
            .map(|h| h.status)
            .min()
            .unwrap_or(Status::InSync)
    }
}

fn text(s: &str) -> String {
    crate::model::names::printable(s, 500)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FleetError + '_ {
    move |err| FleetError::Io {
        path: path.display().to_string(),
        err,
    }
}

/// A bounded read of a regular file; why not, as one line.
fn read_bounded(p: &Path, max: u64) -> Result<String, String> {
    let len = std::fs::metadata(p)
        .map_err(|e| text(&e.to_string()))?
        .len();
    if len > max {
        return Err(format!(
            "{len} bytes: larger than {} MiB, not read",
            max >> 20
        ));
    }
    crate::host::files::read(p).map_err(|e| text(&e.to_string()))
}

/// The host a plan file is named for: `hv-1.json` → `hv-1`.
fn host_of(p: &Path) -> String {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let host = name.strip_suffix(".json").unwrap_or(&name);
    text(host)
}

/// Whether a directory entry is a host's plan (`<host>.json`, not a `.map.json`, not hidden).
fn is_plan_name(n: &str) -> bool {
    n.ends_with(".json") && !n.ends_with(".map.json") && !n.starts_with('.') && n.len() > 5
}

/// The plan files the arguments name: files as given, directories' `<host>.json`, sorted.
fn plan_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, FleetError> {
    let mut out = Vec::new();
    for p in paths {
        let m = std::fs::metadata(p).map_err(io(p))?;
        if m.is_dir() {
            let names = crate::host::files::list_opt(p)
                .map_err(io(p))?
                .unwrap_or_default();
            let before = out.len();
            out.extend(
                names
                    .into_iter()
                    .filter(|n| is_plan_name(n))
                    .map(|n| p.join(n)),
            );
            if out.len() == before {
                return Err(FleetError::Empty(p.display().to_string()));
            }
        } else {
            out.push(p.clone());
        }
        if out.len() > MAX_HOSTS {
            return Err(FleetError::TooMany);
        }
    }
    Ok(out)
}

/// Reads every host's plan and pin map (`<host>.map.svg` beside the plan). A host whose file
/// cannot be read is an input with the reason; only a missing argument fails the report.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, FleetError> {
    let mut out = Vec::new();
    for p in plan_files(paths)? {
        let host = host_of(&p);
        let map_path = p.with_file_name(format!(
            "{}.map.svg",
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .trim_end_matches(".json")
        ));
        let map = std::fs::symlink_metadata(&map_path)
            .is_ok()
            .then(|| read_bounded(&map_path, MAX_MAP).and_then(|s| check_svg(&s).map(|_| s)));
        out.push(Input {
            file: text(&p.file_name().unwrap_or_default().to_string_lossy()),
            host,
            text: read_bounded(&p, MAX_PLAN),
            map,
        });
    }
    Ok(out)
}

/// An SVG document: well-formed XML whose root is `<svg>` in the SVG namespace.
pub fn check_svg(s: &str) -> Result<(), String> {
    let doc = crate::xmltree::Document::parse(s)
        .map_err(|e| text(&format!("not an SVG document: {e}")))?;
    let root = doc.root();
    let ns = doc.attr(root, "xmlns");
    if doc.name(root) != "svg" || ns.as_deref() != Some("http://www.w3.org/2000/svg") {
        return Err(format!(
            "not an SVG document: its root is <{}> (xmlns {}), not <svg xmlns=\"http://www.w3.org/2000/svg\">",
            text(doc.name(root)),
            text(ns.as_deref().unwrap_or("(none)"))
        ));
    }
    Ok(())
}

fn failing(i: &Input, kind: &'static str, errors: Vec<String>) -> HostRow {
    HostRow {
        host: i.host.clone(),
        file: i.file.clone(),
        status: Status::Failing,
        kind,
        changes: 0,
        restart: 0,
        reboot: 0,
        pending: Vec::new(),
        errors,
        targets: Vec::new(),
        listed: Vec::new(),
        map: i.map.clone(),
    }
}

/// Adds `n` to the target's count, keeping first-seen order.
fn count(targets: &mut Vec<(String, usize)>, target: &str, n: usize) {
    let t = text(target);
    match targets.iter_mut().find(|(x, _)| *x == t) {
        Some((_, c)) => *c += n,
        None => targets.push((t, n)),
    }
}

/// A value as the CLI shows it (`(unset)`, `(absent)` for a persisted line).
fn show(path: &str, v: &Option<String>) -> String {
    text(crate::render::show_for(path, v))
}

fn from_plan(i: &Input, p: &Plan) -> HostRow {
    let mut row = failing(i, "plan", Vec::new());
    row.errors = p.errors.iter().map(|e| text(&e.to_string())).collect();
    row.changes = p.changes.len();
    row.restart = p
        .changes
        .iter()
        .filter(|c| c.effect == Effect::Restart)
        .count();
    row.reboot = p
        .changes
        .iter()
        .filter(|c| c.effect == Effect::Reboot)
        .count();
    for c in &p.changes {
        count(&mut row.targets, &c.target, 1);
    }
    row.listed = p
        .changes
        .iter()
        .take(MAX_LISTED)
        .map(|c| Listed {
            target: text(&c.target),
            path: text(&c.path),
            before: show(&c.path, &c.before),
            after: show(&c.path, &c.after),
            effect: c.effect,
        })
        .collect();
    let mut pending: Vec<String> = p
        .pending_restart
        .iter()
        .map(|c| text(c.target.strip_prefix("guest/").unwrap_or(&c.target)))
        .collect();
    pending.dedup();
    row.pending = pending;
    row.status = if !row.errors.is_empty() {
        Status::Failing
    } else if row.changes > 0 {
        Status::Drifting
    } else if !row.pending.is_empty() {
        Status::Pending
    } else {
        Status::InSync
    };
    row
}

/// An apply report (`apply --format json`): failing when a target failed, else in sync
/// (apply verifies what it did), pending for what libvirt deferred to a restart.
fn from_apply(i: &Input, v: &serde_json::Value) -> Result<HostRow, String> {
    let results = v
        .get("results")
        .and_then(|r| r.as_array())
        .ok_or("its `results` is not a list")?;
    let mut row = failing(i, "apply report", Vec::new());
    for r in results {
        let target = r.get("target").and_then(|t| t.as_str()).unwrap_or("?");
        let pairs = |k: &str| -> Vec<(String, String)> {
            r.get(k)
                .and_then(|f| f.as_array())
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some((
                        p.get(0)?.as_str()?.to_string(),
                        p.get(1)?.as_str()?.to_string(),
                    ))
                })
                .collect()
        };
        for (path, why) in pairs("failed") {
            row.errors.push(text(&format!("{target}: {path}: {why}")));
        }
        if r.get("outcome").and_then(|o| o.as_str()) == Some("failed") && pairs("failed").is_empty()
        {
            row.errors.push(text(&format!("{target}: failed")));
        }
        if !pairs("deferred").is_empty() {
            row.pending
                .push(text(target.strip_prefix("guest/").unwrap_or(target)));
        }
        let applied = r
            .get("applied")
            .and_then(|a| a.as_array())
            .map_or(0, Vec::len);
        if applied > 0 {
            count(&mut row.targets, target, applied);
        }
    }
    row.status = if !row.errors.is_empty() {
        Status::Failing
    } else if !row.pending.is_empty() {
        Status::Pending
    } else {
        Status::InSync
    };
    Ok(row)
}

/// One host from its input. Pure.
pub fn host_row(i: &Input) -> HostRow {
    let t = match &i.text {
        Err(e) => return failing(i, "unreadable", vec![e.clone()]),
        Ok(t) => t,
    };
    if t.trim().is_empty() {
        return failing(
            i,
            "unreadable",
            vec!["empty: the plan command printed nothing (it failed before planning; see its error output)".into()],
        );
    }
    let v: serde_json::Value = match serde_json::from_str(t) {
        Ok(v) => v,
        Err(e) => return failing(i, "unreadable", vec![text(&format!("not JSON: {e}"))]),
    };
    if v.get("format_version").is_some() && v.get("changes").is_some() {
        return match serde_json::from_value::<Plan>(v) {
            Ok(p) => from_plan(i, &p),
            Err(e) => failing(
                i,
                "unreadable",
                vec![text(&format!("not a kvmtune plan: {e}"))],
            ),
        };
    }
    if v.get("results").is_some() {
        return from_apply(i, &v).unwrap_or_else(|e| {
            failing(
                i,
                "unreadable",
                vec![text(&format!("not a kvmtune apply report: {e}"))],
            )
        });
    }
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return failing(i, "unreadable", vec![text(e)]);
    }
    failing(
        i,
        "unreadable",
        vec![
            "not a kvmtune plan (`plan --format json`) or apply report (`apply --format json`)"
                .into(),
        ],
    )
}

/// The report: one row per host, by name; a host given twice fails (its second file named).
pub fn summarize(inputs: &[Input]) -> Fleet {
    let mut hosts: BTreeMap<String, HostRow> = BTreeMap::new();
    for i in inputs {
        let row = host_row(i);
        match hosts.get_mut(&row.host) {
            Some(first) => {
                first.status = Status::Failing;
                first
                    .errors
                    .push(format!("given twice: {} and {}", first.file, row.file));
            }
            None => {
                hosts.insert(row.host.clone(), row);
            }
        }
    }
    Fleet {
        hosts: hosts.into_values().collect(),
    }
}

/// A Markdown table cell: one line, `|` and HTML escaped.
fn cell(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// What a row says in its last column.
pub fn detail(h: &HostRow) -> String {
    match h.status {
        Status::Failing => h.errors.first().cloned().unwrap_or_default(),
        _ => {
            let mut parts: Vec<String> = h
                .targets
                .iter()
                .map(|(t, n)| format!("{t} ({n})"))
                .collect();
            if !h.pending.is_empty() {
                parts.push(format!("waiting for a restart: {}", h.pending.join(", ")));
            }
            parts.join("; ")
        }
    }
}

/// The Markdown summary. Pure.
pub fn markdown(f: &Fleet) -> String {
    let mut out = String::from("# kvmtune fleet report\n\n");
    out.push_str(&f.summary_line());
    out.push_str(
        "\n\n| Host | Status | Changes | Restart | Reboot | Pending restart | Errors | Detail |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|---:|---|\n");
    for h in &f.hosts {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(&h.host),
            h.status.label(),
            h.changes,
            h.restart,
            h.reboot,
            h.pending.len(),
            h.errors.len(),
            cell(&detail(h))
        ));
    }
    let failing: Vec<&HostRow> = f
        .hosts
        .iter()
        .filter(|h| h.status == Status::Failing)
        .collect();
    if !failing.is_empty() {
        out.push_str("\n## Failing\n\n");
        for h in failing {
            out.push_str(&format!(
                "- **{}** ({}, {}):\n",
                cell(&h.host),
                cell(&h.file),
                h.kind
            ));
            for e in &h.errors {
                out.push_str(&format!("  - {}\n", cell(e)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(host: &str, text: &str) -> Input {
        Input {
            host: host.into(),
            file: format!("{host}.json"),
            text: Ok(text.into()),
            map: None,
        }
    }

    #[test]
    fn bad_inputs_fail_their_host_only() {
        let ok =
            r#"{"format_version":1,"changes":[],"summary":{"changes":0,"targets":0,"errors":0}}"#;
        let f = summarize(&[
            input("b", ok),
            input("a", "{not json"),
            input("c", ""),
            input("d", r#"{"hello":1}"#),
            input(
                "e",
                r#"{"format_version":1,"changes":[{"target":"host"}],"summary":{}}"#,
            ),
        ]);
        let got: Vec<(&str, Status)> = f
            .hosts
            .iter()
            .map(|h| (h.host.as_str(), h.status))
            .collect();
        assert_eq!(
            got,
            [
                ("a", Status::Failing),
                ("b", Status::InSync),
                ("c", Status::Failing),
                ("d", Status::Failing),
                ("e", Status::Failing)
            ]
        );
        assert!(
            f.hosts[0].errors[0].starts_with("not JSON: "),
            "{:?}",
            f.hosts[0].errors
        );
        assert!(f.hosts[4].errors[0].starts_with("not a kvmtune plan: "));
        assert_eq!(f.worst(), Status::Failing);
    }

    #[test]
    fn apply_reports_and_duplicates() {
        let rep = r#"{"results":[{"target":"host","outcome":"failed","applied":[],"failed":[["sysctl.vm.swappiness","EROFS"]]}],"defines":0}"#;
        let f = summarize(&[input("a", rep), input("a", rep)]);
        assert_eq!(f.hosts.len(), 1);
        assert_eq!(
            f.hosts[0].errors,
            [
                "host: sysctl.vm.swappiness: EROFS",
                "given twice: a.json and a.json"
            ]
        );
    }

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\n<i>"), "a\\|b &lt;i&gt;");
    }

    #[test]
    fn only_svg_maps_are_accepted() {
        assert!(check_svg("<svg xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>").is_ok());
        assert!(check_svg("<html/>")
            .unwrap_err()
            .contains("its root is <html>"));
        assert!(check_svg("<svg>").is_err());
    }
}
