//! `host.interfaces`: per-NIC /sys/class/net/<name>/mtu and device/sriov_numvfs.
//!
//! Invariants: a missing interface or a NIC without SR-IOV is an error for that key only; a
//! VF count above `sriov_totalvfs` is refused at plan time; changing a non-zero VF count goes
//! through 0 (the kernel refuses a direct change). NIC settings are runtime only: network
//! configuration at boot belongs to the distribution's network tooling (see README).

use super::{Builder, HostObserved, HostWrite, Readback, Reads};
use crate::desired::HostDesired;

fn dir(name: &str) -> String {
    format!("sys/class/net/{name}")
}

pub fn reads(d: &HostDesired, r: &mut Reads) {
    for (name, nic) in &d.interfaces {
        r.files.insert(format!("{}/mtu", dir(name)));
        if nic.sriov_numvfs.is_some() {
            r.files.insert(format!("{}/device/sriov_numvfs", dir(name)));
            r.files
                .insert(format!("{}/device/sriov_totalvfs", dir(name)));
        }
    }
}

pub fn plan(d: &HostDesired, obs: &HostObserved, b: &mut Builder) {
    for (name, nic) in &d.interfaces {
        let base = dir(name);
        let key = |k: &str| vec!["interfaces".to_string(), name.clone(), k.to_string()];
        if obs.file(&format!("{base}/mtu")).is_none() {
            b.issue(
                vec!["interfaces".into(), name.clone()],
                format!("no network interface named {name} on this host (/{base} does not exist)"),
            );
            continue;
        }
        if let Some(mtu) = nic.mtu {
            let w = HostWrite {
                path: format!("interfaces.{name}.mtu"),
                file: format!("{base}/mtu"),
                value: mtu.to_string(),
                readback: Readback::Tokens,
            };
            b.runtime(obs, key("mtu"), w, String::new());
        }
        if let Some(vfs) = nic.sriov_numvfs {
            let file = format!("{base}/device/sriov_numvfs");
            let Some(current) = obs.file(&file).map(|c| c.trim().to_string()) else {
                b.issue(
                    key("sriov_numvfs"),
                    format!("{name} does not support SR-IOV (/{file} does not exist)"),
                );
                continue;
            };
            let total = obs
                .file(&format!("{base}/device/sriov_totalvfs"))
                .and_then(|t| t.trim().parse::<u32>().ok());
            if let Some(t) = total.filter(|t| vfs > *t) {
                b.issue(
                    key("sriov_numvfs"),
                    format!(
                        "{name} supports at most {t} virtual functions (sriov_totalvfs), not {vfs}"
                    ),
                );
                continue;
            }
            let path = format!("interfaces.{name}.sriov_numvfs");
            if current != "0" && vfs != 0 && current != vfs.to_string() {
                b.extra_write(HostWrite {
                    path: path.clone(),
                    file: file.clone(),
                    value: "0".into(),
                    readback: Readback::Tokens,
                });
            }
            let w = HostWrite {
                path,
                file,
                value: vfs.to_string(),
                readback: Readback::Tokens,
            };
            b.runtime(obs, key("sriov_numvfs"), w, String::new());
        }
    }
}
