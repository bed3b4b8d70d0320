//! `kvmtune validate`: schema and semantic checks, no hypervisor.
//!
//! Invariant: reads only the configuration and the root's static tuned profiles. Every file
//! of the repository is checked, whatever host it selects (CI validates the whole repository
//! on one machine): each file's syntax on its own, the shared files together, each per-host
//! or per-group file (`--host-config DIR`: `hosts/*.yaml`, `groups/*.yaml`, and files with a
//! `hosts:` selector) with the shared files, as a host it selects would load them; then the
//! files that apply to this host together. Each problem is printed once.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context;

use super::{json, load_quiet, Exit};
use crate::cli::{Cli, Files, Format};
use crate::config::select::{selector, Selector};
use crate::config::source::SourceFile;

/// Every file of the repository: (path, selected by path: a group or host file).
fn repository(files: &Files) -> Result<Vec<(PathBuf, bool)>, crate::config::ConfigErrors> {
    let mut out: Vec<(PathBuf, bool)> = if files.files.is_empty() {
        Vec::new()
    } else {
        crate::config::expand_paths(&files.files)?
            .into_iter()
            .map(|p| (p, false))
            .collect()
    };
    if let Some(dir) = &files.host_config {
        let (shared, own) = crate::config::select::repository_paths(dir)?;
        out.extend(shared.into_iter().map(|p| (p, false)));
        out.extend(own.into_iter().map(|p| (p, true)));
    }
    Ok(out)
}

/// Prints each problem once; whether there was any.
struct Seen(BTreeSet<String>);

impl Seen {
    fn report(&mut self, e: &dyn std::fmt::Display) {
        for line in e.to_string().lines() {
            if self.0.insert(line.to_string()) {
                say!("{line}");
            }
        }
    }
}

/// The repository's files one by one and in the combinations hosts load; how many files,
/// `None` when any is broken.
fn repository_ok(files: &Files) -> Option<usize> {
    let mut seen = Seen(BTreeSet::new());
    let paths = match repository(files) {
        Ok(p) => p,
        Err(e) => {
            seen.report(&e);
            return None;
        }
    };
    let count = paths.len();
    let mut shared = Vec::new();
    let mut selected = Vec::new();
    for (path, own) in paths {
        let file = match SourceFile::read(&path) {
            Ok(f) => f,
            Err(e) => {
                seen.report(&e);
                continue;
            }
        };
        if let Err(e) = crate::config::check_syntax(&file) {
            seen.report(&e);
            continue;
        }
        if own || selector(&file) != Selector::All {
            selected.push(file);
        } else {
            shared.push(file);
        }
    }
    if let Err(e) = crate::desired::load_sources_for(&shared, None) {
        // The selected files would repeat these errors: fix the shared files first.
        seen.report(&e);
    } else {
        for s in selected {
            let mut set = shared.clone();
            set.push(s);
            if let Err(e) = crate::desired::load_sources_for(&set, None) {
                seen.report(&e);
            }
        }
    }
    seen.0.is_empty().then_some(count)
}

pub fn run(cli: &Cli, files: &Files, format: Format) -> anyhow::Result<Exit> {
    let Some(count) = repository_ok(files) else {
        return Ok(Exit::Failure);
    };
    if let Some(dir) = &files.host_config {
        // A repository of per-host files only, none of them this machine's: nothing more to
        // combine here.
        let none = files.files.is_empty()
            && crate::config::select::layout(dir, &super::hostname(cli), &files.groups)
                .is_ok_and(|l| l.paths.is_empty());
        if none {
            match format {
                Format::Human => out!(
                    "Valid: {count} file(s); none applies to host `{}`.\n",
                    super::hostname(cli)
                ),
                Format::Json => out!(
                    "{}",
                    json(&serde_json::json!({
                        "valid": true, "files": count, "host_settings": 0, "guests": [],
                    }))?
                ),
            }
            return Ok(Exit::Success);
        }
    }
    let d = match load_quiet(cli, files) {
        Ok((d, _, _)) => d,
        Err(code) => return Ok(code),
    };
    // Checks that need the host's static files (tuned profiles under --root).
    if let Some(msg) =
        crate::host::tuned::profile_issue(&cli.root, &d.host).context("reading tuned profiles")?
    {
        let key = ["host", "tuned", "profile"].map(String::from).to_vec();
        match d.sources.find(&key) {
            Some(loc) => say!("{loc}: host.tuned.profile: {msg}"),
            None => say!("host.tuned.profile: {msg}"),
        }
        return Ok(Exit::Failure);
    }
    let settings = crate::host::setting_count(&d.host);
    match format {
        Format::Human => out!(
            "Valid: {settings} host setting(s), {} guest(s).\n",
            d.guests.len()
        ),
        Format::Json => out!(
            "{}",
            json(&serde_json::json!({
                "valid": true,
                "files": count,
                "host_settings": settings,
                "guests": d.guests.keys().map(|g| g.as_str()).collect::<Vec<_>>(),
            }))?
        ),
    }
    Ok(Exit::Success)
}
