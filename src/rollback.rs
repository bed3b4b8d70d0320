//! `kvmtune rollback`: the forward planner, run on what one apply record says was there before.
//!
//! Invariant: rollback has no planner of its own. Host: the record's typed values become a
//! [`HostDesired`] (validated like configuration) and its owned files' entries become the
//! owned files' contents, and [`crate::host::plan_host_with`] plans them, so the order and the
//! kernel's rules (tuned first, VFs through 0, the global pool before node pools) are the
//! forward path's. An owned file that did not exist is written declaring nothing (kvmtune
//! never deletes files). Guests: the record's persistent XML is imported into a desired state
//! and planned normally (running guests get the same live changes and pending-restart
//! report), and the define restores the recorded XML itself ([`Action::Restore`]: same name
//! and UUID, checked by the executor), so what `import` cannot express (removed devices)
//! comes back too. A guest whose UUID changed since (another domain with the same name) is a
//! plan error, never overwritten.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::raw::{RawConfig, ThpDefrag, ThpEnabled};
use crate::desired::{Desired, DomainName, HostDesired, NicDesired};
use crate::host::persist::Entry;
use crate::libvirt::Hypervisor;
use crate::model::{guest_target, HostKey, KsmKnob, NicAttr, OwnedFileKind, ThpKnob, Uuid};
use crate::plan::{Action, Plan, PlanError, Summary};
use crate::state::{HostBefore, Record};

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("record {id}: the backed-up XML of guest {name}: {msg}")]
    Import {
        id: String,
        name: String,
        msg: String,
    },
    #[error("record {id}: {msg}")]
    Record { id: String, msg: String },
    #[error(transparent)]
    Observe(#[from] crate::observe::ObserveError),
    #[error("reading host file /{file}: {err}")]
    Host { file: String, err: std::io::Error },
}

/// The rollback plan and the desired state apply checks guest actions and defines against.
pub struct RollbackPlan {
    pub plan: Plan,
    pub desired: Desired,
}

/// The host state a record describes, as desired state (runtime values only: the owned
/// files come from the record's entries).
pub fn host_desired(h: &HostBefore) -> Result<HostDesired, String> {
    let mut d = HostDesired {
        runtime_only: true,
        ..Default::default()
    };
    let num = |k: &HostKey, v: &str| {
        v.parse::<u64>()
            .map_err(|_| format!("{}: `{}` is not a number", k.path(), v.escape_debug()))
    };
    let small = |k: &HostKey, v: &str| {
        num(k, v)
            .and_then(|n| u32::try_from(n).map_err(|_| format!("{}: {n} is too large", k.path())))
    };
    for kv in &h.values {
        let (k, v) = (&kv.key, kv.value.as_str());
        crate::model::keys::check_value(v)?;
        match k {
            HostKey::Sysctl { key } => {
                d.sysctl.insert(key.clone(), v.to_string());
            }
            HostKey::Thp { knob, .. } => {
                let bad = |_| format!("{}: `{}` is not a THP setting", k.path(), v.escape_debug());
                match knob {
                    ThpKnob::Enabled => {
                        d.thp_enabled =
                            Some(serde_json::from_value::<ThpEnabled>(v.into()).map_err(bad)?)
                    }
                    ThpKnob::Defrag => {
                        d.thp_defrag =
                            Some(serde_json::from_value::<ThpDefrag>(v.into()).map_err(bad)?)
                    }
                }
            }
            HostKey::HugePagePool { size, node } => {
                d.hugepages.insert((*size, *node), num(k, v)?);
            }
            HostKey::Ksm { knob } => match knob {
                KsmKnob::Run => d.ksm.run = Some(num(k, v)? != 0),
                KsmKnob::MergeAcrossNodes => d.ksm.merge_across_nodes = Some(num(k, v)? != 0),
                KsmKnob::SleepMillisecs => d.ksm.sleep_millisecs = Some(small(k, v)?),
                KsmKnob::PagesToScan => d.ksm.pages_to_scan = Some(small(k, v)?),
            },
            HostKey::Interface { name, attr } => {
                let nic = d.interfaces.entry(name.clone()).or_insert(NicDesired {
                    mtu: None,
                    sriov_numvfs: None,
                });
                match attr {
                    NicAttr::Mtu => nic.mtu = Some(small(k, v)?),
                    NicAttr::SriovNumvfs => nic.sriov_numvfs = Some(small(k, v)?),
                }
            }
            HostKey::IrqDefaultAffinity
            | HostKey::IrqAffinity { .. }
            | HostKey::WorkqueueCpumask => {
                d.restore.insert(k.clone(), v.to_string());
            }
        }
    }
    d.restore_irqbalance = h.irqbalance.as_ref().map(|i| (i.file, i.banned.clone()));
    d.tuned_profile = h.tuned.as_ref().and_then(|t| t.profile.clone());
    Ok(d)
}

/// What each owned file gets back: its recorded entries, or none when it did not exist.
fn owned_entries(h: &HostBefore) -> BTreeMap<OwnedFileKind, Vec<Entry>> {
    h.owned
        .iter()
        .map(|(k, e)| (*k, e.clone().unwrap_or_default()))
        .collect()
}

pub fn plan_rollback(
    rec: &Record,
    root: &Path,
    hv: Option<&Hypervisor>,
) -> Result<RollbackPlan, RollbackError> {
    let id = &rec.manifest.id;
    let mut desired = guests_desired(rec)?;
    desired.host = host_desired(&rec.manifest.host).map_err(|msg| RollbackError::Record {
        id: id.clone(),
        msg,
    })?;
    let mut obs = crate::observe::observe(&desired, root, hv)?;
    for kind in rec.manifest.host.owned.keys() {
        let file = kind.file();
        let content =
            crate::host::files::read_opt(&root.join(file)).map_err(|err| RollbackError::Host {
                file: file.to_string(),
                err,
            })?;
        obs.host.files.insert(file.to_string(), content);
    }
    if rec.manifest.host.owned.contains_key(&OwnedFileKind::Grub) {
        // The boot entries and the running kernel, for the kernel arguments.
        crate::host::kernel_args::observe_boot(root, &mut obs.host).map_err(|err| {
            RollbackError::Host {
                file: crate::host::kernel_args::BLS_DIR.into(),
                err,
            }
        })?;
    }
    let mut plan = crate::pipeline::plan(&desired, &obs);
    // The host part, with the owned files' recorded entries.
    let owned = owned_entries(&rec.manifest.host);
    let host = crate::host::plan_host_restoring(
        &desired.host,
        &obs.host,
        Some(&owned),
        &rec.manifest.host.boot_had,
    );
    for (kind, before) in &rec.manifest.host.owned {
        if before.is_none()
            && host
                .ops
                .iter()
                .any(|op| matches!(op, crate::host::HostOp::OwnedFile { file, .. } if file == kind))
        {
            plan.notes.push(format!(
                "/{} did not exist before {id}: it is rewritten declaring nothing, not deleted (remove it by hand if you like)",
                kind.file()
            ));
        }
    }
    plan.changes.retain(|c| c.target != "host");
    plan.actions.retain(|a| !matches!(a, Action::Host(_)));
    // The host's errors are those of the recorded state (a recorded `kvmtune` child profile
    // is no error there).
    let derived: Vec<String> = crate::host::plan_host(&desired.host, &obs.host)
        .issues
        .into_iter()
        .map(|i| i.message)
        .collect();
    plan.errors
        .retain(|e| e.target != "host" || !derived.contains(&e.message));
    for i in &host.issues {
        plan.errors.push(crate::plan::PlanError {
            target: "host".into(),
            key: std::iter::once("host")
                .chain(i.key.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join("."),
            location: None,
            message: i.message.clone(),
        });
    }
    let host_changes: Vec<_> = host
        .changes
        .into_iter()
        .map(|c| crate::model::Change {
            target: "host".into(),
            path: c.path,
            before: c.before,
            after: c.after,
            effect: c.effect,
        })
        .collect();
    if !host.ops.is_empty() {
        plan.actions.insert(0, Action::Host(host.ops));
    }
    plan.changes.splice(0..0, host_changes);
    for g in &rec.manifest.guests {
        restore_guest(rec, &obs, g, &mut plan);
    }
    plan.summary = Summary {
        changes: plan.changes.len(),
        targets: plan
            .actions
            .iter()
            .map(Action::target)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        errors: plan.errors.len(),
    };
    Ok(RollbackPlan { plan, desired })
}

/// The recorded guests' XML imported into desired state.
fn guests_desired(rec: &Record) -> Result<Desired, RollbackError> {
    let id = &rec.manifest.id;
    let mut raw = RawConfig::default();
    for g in &rec.manifest.guests {
        let xml = &rec.xml[g.uuid.as_str()];
        let rg = crate::domain::import::import_guest(xml).map_err(|msg| RollbackError::Import {
            id: id.clone(),
            name: g.name.to_string(),
            msg,
        })?;
        raw.guests.insert(g.name.to_string(), rg);
    }
    crate::desired::load_str(&format!("record {id}"), &crate::import::to_yaml(&raw, None)).map_err(
        |e| RollbackError::Import {
            id: id.clone(),
            name: "(all)".into(),
            msg: e.to_string(),
        },
    )
}

/// Replaces the planned define of a recorded guest by the define of its recorded XML.
fn restore_guest(
    rec: &Record,
    obs: &crate::observe::Observed,
    g: &crate::state::GuestBackup,
    plan: &mut Plan,
) {
    let id = &rec.manifest.id;
    let name: &DomainName = &g.name;
    let target = guest_target(name);
    let backup = &rec.xml[g.uuid.as_str()];
    let Some(Some(now)) = obs.guests.get(name.as_str()) else {
        return; // planned as "no guest named ..." already
    };
    if Uuid::new(&now.uuid).ok().as_ref() != Some(&g.uuid) {
        plan.errors.push(PlanError {
            target: target.clone(),
            key: format!("guests.{name}"),
            location: None,
            message: format!(
                "guest {name} now has UUID {}, the backup is of UUID {}: not restoring over another domain",
                now.uuid, g.uuid
            ),
        });
        plan.changes.retain(|c| c.target != target);
        plan.actions.retain(|a| a.target() != target);
        return;
    }
    let live = plan
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Guest { name: n, live, .. } if n == name => Some(live.clone()),
            _ => None,
        })
        .unwrap_or_default();
    plan.actions
        .retain(|a| !matches!(a, Action::Guest { name: n, .. } if n == name));
    if now.xml == *backup && live.is_empty() {
        return;
    }
    if now.xml != *backup && !plan.changes.iter().any(|c| c.target == target) {
        plan.changes.push(crate::model::Change {
            target: target.clone(),
            path: "definition".into(),
            before: Some("current".into()),
            after: Some(format!("as of {id}")),
            effect: if now.active {
                crate::model::Effect::Restart
            } else {
                crate::model::Effect::Live
            },
        });
    }
    plan.actions.push(Action::Restore {
        name: name.clone(),
        uuid: g.uuid.clone(),
        old_xml: now.xml.clone(),
        xml: backup.clone(),
        define: now.xml != *backup,
        live,
    });
}
