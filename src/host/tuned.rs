//! `host.tuned.profile`: the active tuned profile, switched with `tuned-adm profile` and
//! checked with `tuned-adm verify`.
//!
//! Invariants: tuned counts as installed when /usr/sbin/tuned-adm exists below the root (that
//! is the program run); the known profiles are the directories with a `tuned.conf` under
//! /usr/lib/tuned and /etc/tuned (what `tuned-adm list` shows), so an unknown profile is an
//! error listing them even where tuned cannot run; the active profile is /etc/tuned/active_profile.
//! The switch runs before every other runtime write, and when it is planned all declared
//! runtime values are written again after it (tuned may have changed them).

use std::collections::BTreeSet;
use std::path::Path;

pub use super::ops::{TUNED_ACTIVE as ACTIVE, TUNED_ADM};
use super::{Builder, HostChange, HostObserved, HostOp, Reads};
use crate::desired::HostDesired;
use crate::model::{Effect, ProfileName};
pub const PROFILE_DIRS: [&str; 2] = ["usr/lib/tuned", "etc/tuned"];

pub fn reads(d: &HostDesired, r: &mut Reads) {
    if d.tuned_profile.is_none() {
        return;
    }
    r.files.insert(ACTIVE.into());
    r.dirs.insert("usr/sbin".into());
    for dir in PROFILE_DIRS {
        r.dirs.insert(dir.into());
    }
}

fn candidates(obs: &HostObserved) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for dir in PROFILE_DIRS {
        for name in obs.dir(dir).unwrap_or_default() {
            v.push((name.clone(), format!("{dir}/{name}/tuned.conf")));
        }
    }
    v
}

pub fn reads_after(d: &HostDesired, obs: &HostObserved, more: &mut BTreeSet<String>) {
    if d.tuned_profile.is_some() {
        more.extend(candidates(obs).into_iter().map(|(_, f)| f));
    }
}

/// Profiles tuned knows on this root.
pub fn profiles(obs: &HostObserved) -> BTreeSet<String> {
    candidates(obs)
        .into_iter()
        .filter(|(_, f)| obs.file(f).is_some())
        .map(|(n, _)| n)
        .collect()
}

/// The validation-time check: `Some(message)` when the profile is unknown on this root
/// (only when some profile directory exists; a host without tuned is a plan error instead).
pub fn profile_issue(root: &Path, d: &HostDesired) -> std::io::Result<Option<String>> {
    let Some(p) = &d.tuned_profile else {
        return Ok(None);
    };
    let only = HostDesired {
        tuned_profile: Some(p.clone()),
        runtime_only: true,
        ..Default::default()
    };
    let obs = super::observe(root, &only, Default::default())?;
    let known = profiles(&obs);
    if known.is_empty() || known.contains(p.as_str()) {
        return Ok(None);
    }
    Ok(Some(unknown(p, &known)))
}

fn unknown(p: &ProfileName, known: &BTreeSet<String>) -> String {
    format!(
        "tuned has no profile `{p}`; available: {}",
        known.iter().cloned().collect::<Vec<_>>().join(", ")
    )
}

/// Returns whether a profile switch is planned.
pub fn plan(d: &HostDesired, obs: &HostObserved, b: &mut Builder) -> bool {
    let Some(p) = &d.tuned_profile else {
        return false;
    };
    let key = vec!["tuned".to_string(), "profile".to_string()];
    let installed = obs
        .dir("usr/sbin")
        .is_some_and(|v| v.iter().any(|n| n == "tuned-adm"));
    if !installed {
        b.issue(
            key,
            format!("tuned is not installed on this host (/{TUNED_ADM} does not exist): install the tuned package or remove host.tuned"),
        );
        return false;
    }
    let known = profiles(obs);
    if !known.contains(p.as_str()) {
        b.issue(key, unknown(p, &known));
        return false;
    }
    let active = obs
        .file(ACTIVE)
        .map(|a| a.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|a| !a.is_empty());
    if active.as_deref() == Some(p.as_str()) {
        return false;
    }
    b.change(HostChange {
        path: "tuned.profile".into(),
        before: active.clone(),
        after: Some(p.to_string()),
        effect: Effect::Live,
    });
    b.pre(HostOp::Tuned {
        before: active,
        profile: p.clone(),
    });
    true
}
