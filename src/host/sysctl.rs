//! `host.sysctl`: /proc/sys values, persisted in /etc/sysctl.d/90-kvmtune.conf.
//!
//! Invariant: a sysctl key maps to exactly one file (`/proc/sys/<key with . → />`, see
//! [`HostKey::file`]); values compare as whitespace-separated tokens, at runtime and in the
//! persisted file alike.

use super::persist::{OwnedFile, PersistKey};
use super::{Builder, HostObserved, Reads};
use crate::desired::HostDesired;
use crate::model::{HostKey, Readback};

pub fn reads(d: &HostDesired, r: &mut Reads) {
    for key in d.sysctl.keys() {
        r.files.insert(HostKey::Sysctl { key: key.clone() }.file());
    }
}

pub fn plan(d: &HostDesired, obs: &HostObserved, b: &mut Builder, persisted: &mut OwnedFile) {
    for (k, v) in &d.sysctl {
        let key = HostKey::Sysctl { key: k.clone() };
        let file = key.file();
        let msg = format!("no such sysctl on this host (/{file} does not exist)");
        let exists = obs.file(&file).is_some();
        b.runtime(
            obs,
            vec!["sysctl".into(), k.to_string()],
            key,
            v.clone(),
            msg,
        );
        if exists {
            persisted.push(
                PersistKey::Sysctl { key: k.clone() },
                Readback::Tokens.canonical(v),
            );
        }
    }
}
