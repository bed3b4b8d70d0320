//! `host.sysctl`: /proc/sys values, persisted in /etc/sysctl.d/90-kvmtune.conf.
//!
//! Invariant: a sysctl key maps to exactly one file (`/proc/sys/<key with . → />`); values
//! compare as whitespace-separated tokens, at runtime and in the persisted file alike.

use super::persist::OwnedFile;
use super::{Builder, HostObserved, HostWrite, Readback, Reads};
use crate::desired::HostDesired;

pub fn writes(d: &HostDesired) -> Vec<HostWrite> {
    d.sysctl
        .iter()
        .map(|(k, v)| HostWrite {
            path: format!("sysctl.{k}"),
            file: format!("proc/sys/{}", k.proc_path()),
            value: v.clone(),
            readback: Readback::Tokens,
        })
        .collect()
}

pub fn reads(d: &HostDesired, r: &mut Reads) {
    r.files.extend(writes(d).into_iter().map(|w| w.file));
}

pub fn plan(d: &HostDesired, obs: &HostObserved, b: &mut Builder, persisted: &mut OwnedFile) {
    for (w, (k, v)) in writes(d).into_iter().zip(&d.sysctl) {
        let msg = format!("no such sysctl on this host (/{} does not exist)", w.file);
        let exists = obs.file(&w.file).is_some();
        b.runtime(obs, vec!["sysctl".into(), k.to_string()], w, msg);
        if exists {
            persisted.push(
                k.to_string(),
                format!("sysctl.{k} (persisted)"),
                Readback::Tokens.canonical(v),
            );
        }
    }
}
