//! The model layer: typed keys, validated names, and the change vocabulary every other layer
//! speaks ([`Effect`], [`Change`], [`PlanError`]).
//!
//! Invariant: this layer depends on nothing in the crate but the leaf value modules
//! ([`crate::units`], [`crate::cpuset`]); a setting or a target is a typed value here, never
//! a string that later code parses back.

pub mod keys;
pub mod live;
pub mod lock;
pub mod names;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use keys::{
    HostKey, KsmKnob, NicAttr, OwnedFileKind, Readback, ThpKnob, TunedVariable, TunedVmOption,
};
pub use names::{
    DomainName, IfName, MacAddr, ModuleName, NetworkName, ProfileName, SysctlKey, Uuid,
};

/// When a change takes effect.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// In effect once applied.
    Live,
    /// Written to the persistent definition; in effect at the guest's next start.
    Restart,
    /// Needs a host reboot.
    Reboot,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Live => "live",
            Effect::Restart => "restart",
            Effect::Reboot => "reboot",
        }
    }
}

/// One setting that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// `host` or `guest/<name>`.
    pub target: String,
    /// YAML key names: `cputune.vcpupin.0`, `sysctl.vm.swappiness`.
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub effect: Effect,
}

/// A declared setting that cannot be planned (missing guest, missing sysctl, a lint error...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanError {
    pub target: String,
    /// Dotted YAML key path.
    pub key: String,
    /// `file:line:column` of the key, when known.
    pub location: Option<String>,
    pub message: String,
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Some(l) => write!(f, "{l}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// The target name of a guest: `guest/<name>`.
pub fn guest_target(name: &DomainName) -> String {
    format!("guest/{name}")
}
