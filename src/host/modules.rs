//! `host.modules`: kernel modules that must be loaded, persisted in
//! /etc/modules-load.d/90-kvmtune.conf.
//!
//! Invariants: a module counts as loaded when /sys/module/<name> exists or the kernel lists
//! it as built in (lib/modules/<release>/modules.builtin); otherwise `modprobe <name>` is
//! planned and must make /sys/module/<name> appear. A kernel without module support
//! (no /proc/modules) is a plan error for that key, never a modprobe attempt.

use std::collections::BTreeSet;

use super::persist::{OwnedFile, PersistKey};
use super::{Builder, HostChange, HostObserved, HostOp, Reads};
use crate::desired::HostDesired;
use crate::model::Effect;

pub const PROC_MODULES: &str = "proc/modules";
pub const OSRELEASE: &str = "proc/sys/kernel/osrelease";

pub fn reads(d: &HostDesired, r: &mut Reads) {
    if d.modules.is_empty() {
        return;
    }
    r.dirs.insert("sys/module".into());
    r.files.insert(PROC_MODULES.into());
    r.files.insert(OSRELEASE.into());
}

fn builtin_file(obs: &HostObserved) -> Option<String> {
    obs.file(OSRELEASE)
        .map(|r| format!("lib/modules/{}/modules.builtin", r.trim()))
}

pub fn reads_after(d: &HostDesired, obs: &HostObserved, more: &mut BTreeSet<String>) {
    if !d.modules.is_empty() {
        more.extend(builtin_file(obs));
    }
}

pub fn plan(d: &HostDesired, obs: &HostObserved, b: &mut Builder, persisted: &mut OwnedFile) {
    let loaded: BTreeSet<&str> = obs
        .dir("sys/module")
        .map(|v| v.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let builtin: BTreeSet<String> = builtin_file(obs)
        .and_then(|f| obs.file(&f))
        .map(|t| {
            t.lines()
                .filter_map(|l| l.rsplit('/').next())
                .map(|n| n.trim_end_matches(".ko").replace('-', "_"))
                .collect()
        })
        .unwrap_or_default();
    for (m, i) in &d.modules {
        let entry = PersistKey::Module { module: m.clone() };
        if loaded.contains(m.as_str()) || builtin.contains(m.as_str()) {
            persisted.push(entry, "loaded".into());
            continue;
        }
        let key = vec!["modules".to_string(), i.to_string()];
        if obs.file(PROC_MODULES).is_none() {
            b.issue(
                key,
                format!(
                    "kernel module {m} is not loaded (no /sys/module/{m}), and this kernel cannot load modules: /{PROC_MODULES} does not exist, so it was built without module support. Use a kernel with {m} built in or loadable, or remove it from host.modules"
                ),
            );
            continue;
        }
        persisted.push(entry, "loaded".into());
        let path = format!("modules.{m}");
        b.change(HostChange {
            path: path.clone(),
            before: Some("not loaded".into()),
            after: Some("loaded".into()),
            effect: Effect::Live,
        });
        b.pre(HostOp::LoadModule { module: m.clone() });
    }
}
