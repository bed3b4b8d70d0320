//! `kvmtune validate`: schema and semantic checks, no hypervisor.
//!
//! Invariant: reads only the configuration and the root's static tuned profiles. Every file
//! is checked on its own too, whatever host its `hosts:` selects (CI validates the whole
//! repository on one machine), then the files that apply to this host together.

use anyhow::Context;

use super::{json, load, Exit};
use crate::cli::{Cli, Files, Format};

pub fn run(cli: &Cli, files: &Files, format: Format) -> anyhow::Result<Exit> {
    let sources = match super::paths(cli, files).and_then(|p| crate::config::read_sources(&p)) {
        Ok(s) => s,
        Err(e) => {
            say!("{e}");
            return Ok(Exit::Failure);
        }
    };
    // Files for other hosts: each with the files every host shares (no `hosts:`), as that
    // host would load them.
    let selects = |s: &crate::config::source::SourceFile| {
        serde_yaml::from_str::<serde_yaml::Value>(&s.text)
            .ok()
            .is_some_and(|v| v.get("hosts").is_some())
    };
    let shared: Vec<_> = sources.iter().filter(|s| !selects(s)).cloned().collect();
    let here = super::hostname(cli);
    let mut bad = false;
    for s in sources.iter().filter(|s| selects(s)) {
        if crate::config::applies_here(s, &here) {
            continue; // checked with the rest below
        }
        let mut set = shared.clone();
        set.push(s.clone());
        if let Err(e) = crate::desired::load_sources_for(&set, None) {
            say!("{e}");
            bad = true;
        }
    }
    if bad {
        return Ok(Exit::Failure);
    }
    let d = match load(cli, files) {
        Ok((d, _)) => d,
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
                "host_settings": settings,
                "guests": d.guests.keys().map(|g| g.as_str()).collect::<Vec<_>>(),
            }))?
        ),
    }
    Ok(Exit::Success)
}
