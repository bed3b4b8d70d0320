//! `host.transparent_hugepage`: /sys/kernel/mm/transparent_hugepage/{enabled,defrag}, or
//! /sys/kernel/mm/redhat_transparent_hugepage on RHEL 6 kernels when only that one exists;
//! persisted as `w` lines in /etc/tmpfiles.d/90-kvmtune.conf.
//!
//! Invariant: values compare by the bracketed selection (`always [madvise] never`); the
//! standard directory wins when both exist.

use super::persist::{OwnedFile, PersistKey};
use super::{Builder, HostObserved, Reads};
use crate::desired::HostDesired;
use crate::model::keys::{RHEL6_THP_DIR, THP_DIR};
use crate::model::{HostKey, ThpKnob};

fn wanted(d: &HostDesired) -> Vec<(ThpKnob, &'static str)> {
    let mut v = Vec::new();
    if let Some(e) = d.thp_enabled {
        v.push((ThpKnob::Enabled, e.as_str()));
    }
    if let Some(e) = d.thp_defrag {
        v.push((ThpKnob::Defrag, e.as_str()));
    }
    v
}

pub fn reads(d: &HostDesired, r: &mut Reads) {
    for (knob, _) in wanted(d) {
        for rhel6 in [false, true] {
            r.files.insert(HostKey::Thp { knob, rhel6 }.file());
        }
    }
}

pub fn plan(d: &HostDesired, obs: &HostObserved, b: &mut Builder, persisted: &mut OwnedFile) {
    for (knob, value) in wanted(d) {
        let std = HostKey::Thp { knob, rhel6: false };
        let rhel = HostKey::Thp { knob, rhel6: true };
        let key = if obs.file(&std.file()).is_none() && obs.file(&rhel.file()).is_some() {
            rhel
        } else {
            std
        };
        let present = obs.file(&key.file()).is_some();
        let name = knob.as_str();
        let msg = format!(
            "this kernel has no transparent huge page control (/{THP_DIR}/{name} does not exist, nor /{RHEL6_THP_DIR}/{name})"
        );
        b.runtime(
            obs,
            vec!["transparent_hugepage".into(), name.into()],
            key.clone(),
            value.into(),
            msg,
        );
        if present {
            persisted.push(PersistKey::Value { key }, value.into());
        }
    }
}
