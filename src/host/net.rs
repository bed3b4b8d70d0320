//! `host.interfaces`: per-NIC /sys/class/net/<name>/mtu and device/sriov_numvfs.
//!
//! Invariants: a missing interface or a NIC without SR-IOV is an error for that key only; a
//! VF count above `sriov_totalvfs` is refused at plan time; changing a non-zero VF count goes
//! through 0 (the kernel refuses a direct change). NIC settings are runtime only: network
//! configuration at boot belongs to the distribution's network tooling (see README).

use super::{Builder, HostObserved, Reads};
use crate::desired::HostDesired;
use crate::model::{HostKey, IfName, NicAttr};

fn key(name: &IfName, attr: NicAttr) -> HostKey {
    HostKey::Interface {
        name: name.clone(),
        attr,
    }
}

fn totalvfs(name: &IfName) -> String {
    format!("sys/class/net/{name}/device/sriov_totalvfs")
}

pub fn reads(d: &HostDesired, r: &mut Reads) {
    for (name, nic) in &d.interfaces {
        r.files.insert(key(name, NicAttr::Mtu).file());
        if nic.sriov_numvfs.is_some() {
            r.files.insert(key(name, NicAttr::SriovNumvfs).file());
            r.files.insert(totalvfs(name));
        }
    }
}

pub fn plan(d: &HostDesired, obs: &HostObserved, b: &mut Builder) {
    for (name, nic) in &d.interfaces {
        let yaml = |k: &str| vec!["interfaces".to_string(), name.to_string(), k.to_string()];
        if obs.file(&key(name, NicAttr::Mtu).file()).is_none() {
            b.issue(
                vec!["interfaces".into(), name.to_string()],
                format!("no network interface named {name} on this host (/sys/class/net/{name} does not exist)"),
            );
            continue;
        }
        if let Some(mtu) = nic.mtu {
            b.runtime(
                obs,
                yaml("mtu"),
                key(name, NicAttr::Mtu),
                mtu.to_string(),
                String::new(),
            );
        }
        if let Some(vfs) = nic.sriov_numvfs {
            let k = key(name, NicAttr::SriovNumvfs);
            let file = k.file();
            let Some(current) = obs.file(&file).map(|c| c.trim().to_string()) else {
                b.issue(
                    yaml("sriov_numvfs"),
                    format!("{name} does not support SR-IOV (/{file} does not exist)"),
                );
                continue;
            };
            let total = obs
                .file(&totalvfs(name))
                .and_then(|t| t.trim().parse::<u32>().ok());
            if let Some(t) = total.filter(|t| vfs > *t) {
                b.issue(
                    yaml("sriov_numvfs"),
                    format!(
                        "{name} supports at most {t} virtual functions (sriov_totalvfs), not {vfs}"
                    ),
                );
                continue;
            }
            if current != "0" && vfs != 0 && current != vfs.to_string() {
                b.extra_write(k.clone(), current, "0".into());
            }
            b.runtime(obs, yaml("sriov_numvfs"), k, vfs.to_string(), String::new());
        }
    }
}
