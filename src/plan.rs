//! The planner: a pure, deterministic function from (desired, observed) to a complete [`Plan`].
//!
//! Invariant: `plan` does no I/O and makes every decision; the executor ([`crate::apply`]) only
//! carries out [`Plan::actions`]. Same inputs, same plan (targets and changes in a fixed order:
//! host first, then guests by name).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::source::{dotted, KeyPath};
use crate::desired::{Desired, DomainName};
use crate::domain::{plan_guest, GuestPlan};
use crate::host::{plan_host, HostObserved, HostOp};
use crate::libvirt::GuestObserved;

/// Everything observed that the plan depends on.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub host: HostObserved,
    /// Declared guest name → its state, `None` when no such domain exists.
    pub guests: BTreeMap<String, Option<GuestObserved>>,
}

/// When a change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `host` or `guest/<name>`.
    pub target: String,
    /// YAML key names: `cputune.vcpupin.0`, `sysctl.vm.swappiness`.
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub effect: Effect,
}

/// A declared setting that cannot be planned (missing guest, missing sysctl, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub changes: usize,
    pub targets: usize,
    pub errors: usize,
}

/// What the executor does for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Host steps (writes, owned-file replacements, commands), in order.
    Host(Vec<HostOp>),
    /// Define `new_xml` for the guest (whose persistent XML was `old_xml`).
    Guest {
        name: DomainName,
        uuid: String,
        old_xml: String,
        new_xml: String,
    },
}

impl Action {
    pub fn target(&self) -> String {
        match self {
            Action::Host(_) => "host".into(),
            Action::Guest { name, .. } => guest_target(name),
        }
    }
}

pub fn guest_target(name: &DomainName) -> String {
    format!("guest/{name}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub format_version: u32,
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PlanError>,
    /// Facts that are not changes (where guests find hugetlbfs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub summary: Summary,
    #[serde(skip)]
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

fn locate(d: &Desired, key: &KeyPath) -> Option<String> {
    d.sources.find(key).map(|l| l.to_string())
}

/// Computes the plan. Pure.
pub fn plan(d: &Desired, obs: &Observed) -> Plan {
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    let mut actions = Vec::new();

    let host = plan_host(&d.host, &obs.host);
    for i in host.issues {
        let mut key = vec!["host".to_string()];
        key.extend(i.key);
        errors.push(PlanError {
            target: "host".into(),
            location: locate(d, &key),
            key: dotted(&key),
            message: i.message,
        });
    }
    for c in host.changes {
        changes.push(Change {
            target: "host".into(),
            path: c.path,
            before: c.before,
            after: c.after,
            effect: c.effect,
        });
    }
    if !host.ops.is_empty() {
        actions.push(Action::Host(host.ops));
    }
    let notes = host.notes;

    for (name, gd) in &d.guests {
        let target = guest_target(name);
        let Some(Some(g)) = obs.guests.get(name.as_str()) else {
            errors.push(PlanError {
                target,
                location: locate(d, &gd.key_path),
                key: dotted(&gd.key_path),
                message: format!("no guest named `{name}` is defined on this hypervisor"),
            });
            continue;
        };
        match plan_guest(gd, &g.xml, obs.host.default_hugepage) {
            Ok(GuestPlan {
                changes: gc,
                new_xml,
            }) => {
                if gc.is_empty() {
                    continue;
                }
                let effect = if g.active {
                    Effect::Restart
                } else {
                    Effect::Live
                };
                changes.extend(gc.into_iter().map(|c| Change {
                    target: target.clone(),
                    path: c.path,
                    before: c.before,
                    after: c.after,
                    effect,
                }));
                actions.push(Action::Guest {
                    name: name.clone(),
                    uuid: g.uuid.clone(),
                    old_xml: g.xml.clone(),
                    new_xml,
                });
            }
            Err(issues) => {
                for i in issues {
                    errors.push(PlanError {
                        target: target.clone(),
                        location: locate(d, &i.key),
                        key: dotted(&i.key),
                        message: format!("guest {name}: {}", i.issue),
                    });
                }
            }
        }
    }
    let targets = actions.len();
    Plan {
        format_version: 1,
        summary: Summary {
            changes: changes.len(),
            targets,
            errors: errors.len(),
        },
        changes,
        errors,
        notes,
        actions,
    }
}
