//! `host.transparent_hugepage`: /sys/kernel/mm/transparent_hugepage/{enabled,defrag}, or
//! /sys/kernel/mm/redhat_transparent_hugepage on RHEL 6 kernels when only that one exists;
//! persisted as `w` lines in /etc/tmpfiles.d/90-kvmtune.conf.
//!
//! Invariant: values compare by the bracketed selection (`always [madvise] never`); the
//! standard directory wins when both exist.

use super::persist::OwnedFile;
use super::{Builder, HostObserved, HostWrite, Readback, Reads};
use crate::desired::HostDesired;

pub const THP_DIR: &str = "sys/kernel/mm/transparent_hugepage";
pub const RHEL6_THP_DIR: &str = "sys/kernel/mm/redhat_transparent_hugepage";

fn wanted(d: &HostDesired) -> Vec<(&'static str, &'static str)> {
    let mut v = Vec::new();
    if let Some(e) = d.thp_enabled {
        v.push(("enabled", e.as_str()));
    }
    if let Some(e) = d.thp_defrag {
        v.push(("defrag", e.as_str()));
    }
    v
}

pub fn reads(d: &HostDesired, r: &mut Reads) {
    for (name, _) in wanted(d) {
        r.files.insert(format!("{THP_DIR}/{name}"));
        r.files.insert(format!("{RHEL6_THP_DIR}/{name}"));
    }
}

pub fn plan(d: &HostDesired, obs: &HostObserved, b: &mut Builder, persisted: &mut OwnedFile) {
    for (name, value) in wanted(d) {
        let std = format!("{THP_DIR}/{name}");
        let rhel = format!("{RHEL6_THP_DIR}/{name}");
        let file = if obs.file(&std).is_none() && obs.file(&rhel).is_some() {
            rhel
        } else {
            std
        };
        let present = obs.file(&file).is_some();
        let msg = format!(
            "this kernel has no transparent huge page control (/{file} does not exist, nor /{RHEL6_THP_DIR}/{name})"
        );
        let w = HostWrite {
            path: format!("transparent_hugepage.{name}"),
            file: file.clone(),
            value: value.into(),
            readback: Readback::Selected,
        };
        b.runtime(
            obs,
            vec!["transparent_hugepage".into(), name.into()],
            w,
            msg,
        );
        if present {
            persisted.push(
                format!("/{file}"),
                format!("transparent_hugepage.{name} (persisted)"),
                value.into(),
            );
        }
    }
}
