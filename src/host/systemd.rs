//! `host.cpu_pool.isolate.systemd`: systemd's CPU affinity for PID 1 and every service it
//! starts, confined to the reserved CPUs.
//!
//! Invariants: kvmtune owns one drop-in, /etc/systemd/system.conf.d/90-kvmtune.conf, holding
//! `[Manager]` `CPUAffinity=<reserved>` (a space-separated list of CPUs and ranges, as
//! systemd.conf(5) takes it) and nothing else; the change is `effect: reboot`. systemd reads it
//! at boot; `systemctl daemon-reexec` applies it to PID 1 now, which kvmtune never runs. The
//! plan notes whether PID 1's affinity (/proc/1/status `Cpus_allowed_list`) already is the
//! reserved set.

use serde::{Deserialize, Serialize};

use super::persist::{OwnedFile, PersistKey};
use super::{Builder, HostObserved, Reads};
use crate::cpuset::CpuSet;
use crate::desired::HostDesired;

pub const PID1_STATUS: &str = "proc/1/status";

/// A `[Manager]` setting of system.conf that kvmtune writes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ManagerKey {
    /// `CPUAffinity=`.
    CpuAffinity,
}

impl ManagerKey {
    pub const ALL: [ManagerKey; 1] = [ManagerKey::CpuAffinity];

    /// As system.conf spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ManagerKey::CpuAffinity => "CPUAffinity",
        }
    }

    pub fn from_name(s: &str) -> Option<ManagerKey> {
        ManagerKey::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// systemd's form of a CPU set: `0-3 8-11`.
pub fn affinity_text(cpus: &CpuSet) -> String {
    cpus.to_string().replace(',', " ")
}

/// A `CPUAffinity=` value as systemd reads it (CPUs and ranges separated by spaces or commas)
/// in kvmtune's canonical form; `None` when it is not one.
pub fn parse_affinity(v: &str) -> Option<CpuSet> {
    let list: Vec<&str> = v
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect();
    let ok = !list.is_empty()
        && list
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
    ok.then(|| list.join(",").parse().ok()).flatten()
}

pub fn reads(d: &HostDesired, r: &mut Reads) {
    if d.cpu_pool.isolate.systemd {
        r.files.insert(PID1_STATUS.into());
    }
}

pub fn plan(d: &HostDesired, obs: &HostObserved, b: &mut Builder, file: &mut OwnedFile) {
    if !d.cpu_pool.isolate.systemd {
        return;
    }
    let key = ["cpu_pool", "isolate", "systemd"]
        .map(String::from)
        .to_vec();
    let Some(reserved) = &d.cpu_pool.reserved else {
        b.issue(key, "needs host.cpu_pool.reserved".into());
        return;
    };
    if d.runtime_only {
        b.issue(
            key,
            "systemd's CPUAffinity is a drop-in file under /etc: not with `persist: false`".into(),
        );
        return;
    }
    file.push(
        PersistKey::Manager {
            key: ManagerKey::CpuAffinity,
        },
        reserved.to_string(),
    );
    let now = obs
        .file(PID1_STATUS)
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")))
        .map(str::trim);
    let state = match now {
        Some(v) if v.parse::<CpuSet>().ok().as_ref() == Some(reserved) => {
            "in effect (PID 1 runs there)".to_string()
        }
        Some(v) => format!(
            "needs reboot or `systemctl daemon-reexec`, which kvmtune does not run (PID 1 may run on {v})"
        ),
        None => format!("cannot tell PID 1's affinity (/{PID1_STATUS} does not exist)"),
    };
    b.note(format!(
        "systemd CPUAffinity={}: {state}",
        affinity_text(reserved)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OwnedFileKind;

    #[test]
    fn the_drop_in_round_trips_and_reads_what_systemd_reads() {
        let mut f = OwnedFile::new(OwnedFileKind::Systemd);
        f.push(
            PersistKey::Manager {
                key: ManagerKey::CpuAffinity,
            },
            "0-1,8".into(),
        );
        let text = f.render();
        assert!(text.ends_with("[Manager]\nCPUAffinity=0-1 8\n"), "{text}");
        assert_eq!(f.plan(Some(&text)), (Vec::new(), None));
        assert_eq!(
            OwnedFile::entries_of(OwnedFileKind::Systemd, &text),
            f.entries
        );
        // Repeated assignments add up; other sections and keys are not kvmtune's.
        let m = f.parse("[Manager]\nCPUAffinity=0\nCPUAffinity=1,8\n[Other]\nCPUAffinity=5\n");
        assert_eq!(m.get("CPUAffinity").map(String::as_str), Some("0-1,8"));
        let m = f.parse("[Manager]\nCPUAffinity=0\nCPUAffinity=\n");
        assert_eq!(m.get("CPUAffinity"), None);
        assert_eq!(
            parse_affinity("0 2-3,8").map(|c| c.to_string()),
            Some("0,2-3,8".into())
        );
        assert_eq!(parse_affinity("0 x"), None);
        assert_eq!(parse_affinity(""), None);
    }
}
