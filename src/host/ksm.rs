//! `host.ksm`: kernel samepage merging, /sys/kernel/mm/ksm/{merge_across_nodes,
//! sleep_millisecs,pages_to_scan,run}, persisted as tmpfiles.d `w` lines.
//!
//! Invariants: written in that order (the merge policy before merging starts); booleans are
//! the kernel's 1/0; `merge_across_nodes` is only planned to change while
//! `pages_shared` is 0, because the kernel refuses it otherwise (EBUSY).

use super::persist::{OwnedFile, PersistKey};
use super::{Builder, HostObserved, Reads};
use crate::desired::HostDesired;
use crate::model::keys::KSM_DIR;
use crate::model::{HostKey, KsmKnob};

/// The declared values, in the order they are written.
pub fn wanted(d: &HostDesired) -> Vec<(KsmKnob, String)> {
    let b = |v: bool| (v as u8).to_string();
    let mut v = Vec::new();
    if let Some(m) = d.ksm.merge_across_nodes {
        v.push((KsmKnob::MergeAcrossNodes, b(m)));
    }
    if let Some(s) = d.ksm.sleep_millisecs {
        v.push((KsmKnob::SleepMillisecs, s.to_string()));
    }
    if let Some(p) = d.ksm.pages_to_scan {
        v.push((KsmKnob::PagesToScan, p.to_string()));
    }
    if let Some(r) = d.ksm.run {
        v.push((KsmKnob::Run, b(r)));
    }
    v
}

pub fn reads(d: &HostDesired, r: &mut Reads) {
    for (knob, _) in wanted(d) {
        r.files.insert(HostKey::Ksm { knob }.file());
    }
    if d.ksm.merge_across_nodes.is_some() {
        r.files.insert(format!("{KSM_DIR}/pages_shared"));
    }
}

pub fn plan(d: &HostDesired, obs: &HostObserved, b: &mut Builder, persisted: &mut OwnedFile) {
    for (knob, value) in wanted(d) {
        let hk = HostKey::Ksm { knob };
        let file = hk.file();
        let key = vec!["ksm".to_string(), knob.as_str().to_string()];
        let Some(current) = obs.file(&file) else {
            b.issue(
                key,
                format!("this kernel has no KSM control (/{file} does not exist)"),
            );
            continue;
        };
        if knob == KsmKnob::MergeAcrossNodes && current.trim() != value {
            let shared = obs
                .file(&format!("{KSM_DIR}/pages_shared"))
                .map(str::trim)
                .unwrap_or("0");
            if shared != "0" {
                b.issue(
                    key,
                    format!(
                        "merge_across_nodes can only change while no pages are shared, and /{KSM_DIR}/pages_shared is {shared}: write 2 to /{KSM_DIR}/run to unmerge them first (or change it before guests start)"
                    ),
                );
                continue;
            }
        }
        b.runtime(obs, key, hk.clone(), value.clone(), String::new());
        persisted.push(PersistKey::Value { key: hk }, value);
    }
}
