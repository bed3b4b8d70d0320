//! `kvmtune validate`: schema and semantic checks, no hypervisor.
//!
//! Invariant: reads only the configuration and the root's static tuned profiles.

use anyhow::Context;

use super::{json, load, Exit};
use crate::cli::{Cli, Files, Format};

pub fn run(cli: &Cli, files: &Files, format: Format) -> anyhow::Result<Exit> {
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
