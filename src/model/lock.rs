//! The pinning lock file's contents (`kvmtune.lock.yaml`).
//!
//! Invariant: a lock parses only with version 1 and no unknown fields; it names guests and
//! CPU numbers, nothing else.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `kvmtune.lock.yaml`: the CPUs automatic pinning chose, so a later run reproduces them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    #[serde(default)]
    pub guests: BTreeMap<String, LockedGuest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LockedGuest {
    /// Host CPU of each vCPU, by vCPU index.
    pub vcpupin: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulatorpin: Option<String>,
    pub nodeset: String,
    /// `vcpupin: shared`: the guest's `<vcpu cpuset>` (the shared pool); no `vcpupin` then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// `iothreadpin: auto`: I/O thread id → host CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iothreadpin: Option<BTreeMap<u32, String>>,
}

impl Lock {
    pub const HEADER: &'static str = "# kvmtune.lock.yaml: CPUs chosen by automatic pinning (vcpupin: auto | shared).\n# Written by `kvmtune apply --lock-file`; commit it so later runs reproduce these pins.\n";

    pub fn parse(text: &str) -> Result<Lock, String> {
        let l: Lock = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if l.version != 1 {
            return Err(format!("lock file version {} is not 1", l.version));
        }
        Ok(l)
    }

    pub fn render(&self) -> String {
        format!(
            "{}{}",
            Lock::HEADER,
            serde_yaml::to_string(self).expect("lock serializes")
        )
    }
}
