//! `kvmtune rollback`: a plan that puts back what one apply record says was there before.
//!
//! Invariant: rollback goes through the same plan → show → apply path as `apply`. Guests:
//! the record's persistent XML is imported ([`crate::domain::import`]) into a desired state
//! and planned normally (so running guests get the same live changes and pending-restart
//! report), and the define writes the backed-up XML itself, so what `import` cannot express
//! (removed devices) comes back too. Host: each kernel file gets its previous value, each
//! owned file under /etc its previous content (one that did not exist is emptied, never
//! deleted), tuned its previous profile. A guest whose UUID
//! changed since (another domain with the same name) is a plan error, never overwritten.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::raw::RawConfig;
use crate::desired::{Desired, DomainName};
use crate::host::{Check, CommandRun, FileWrite, HostOp, HostWrite, Readback, ROOT_ARG};
use crate::libvirt::Hypervisor;
use crate::plan::{guest_target, Action, Change, Effect, Plan, PlanError, Summary};
use crate::state::Record;

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("record {id}: the backed-up XML of guest {name}: {msg}")]
    Import {
        id: String,
        name: String,
        msg: String,
    },
    #[error(transparent)]
    Observe(#[from] crate::observe::ObserveError),
    #[error("reading host file /{file}: {err}")]
    Host { file: String, err: std::io::Error },
}

/// The rollback plan and the desired state apply verifies defines against.
pub struct RollbackPlan {
    pub plan: Plan,
    pub desired: Desired,
}

pub fn plan_rollback(
    rec: &Record,
    root: &Path,
    hv: Option<&Hypervisor>,
) -> Result<RollbackPlan, RollbackError> {
    let id = &rec.manifest.id;
    let mut raw = RawConfig::default();
    for g in &rec.manifest.guests {
        let xml = &rec.xml[&g.uuid];
        let rg = crate::domain::import::import_guest(xml).map_err(|msg| RollbackError::Import {
            id: id.clone(),
            name: g.name.clone(),
            msg,
        })?;
        raw.guests.insert(g.name.clone(), rg);
    }
    let desired =
        crate::config::load_str(&format!("record {id}"), &crate::import::to_yaml(&raw, None))
            .map_err(|e| RollbackError::Import {
                id: id.clone(),
                name: "(all)".into(),
                msg: e.to_string(),
            })?;
    let obs = crate::observe::observe(&desired, root, hv)?;
    let mut plan = crate::plan::plan(&desired, &obs);
    for g in &rec.manifest.guests {
        let Ok(name) = DomainName::new(&g.name) else {
            continue;
        };
        let target = guest_target(&name);
        let backup = &rec.xml[&g.uuid];
        let Some(Some(now)) = obs.guests.get(&g.name) else {
            continue; // planned as "no guest named ..." already
        };
        if now.uuid != g.uuid {
            plan.errors.push(PlanError {
                target: target.clone(),
                key: format!("guests.{}", g.name),
                location: None,
                message: format!(
                    "guest {} now has UUID {}, the backup is of UUID {}: not restoring over another domain",
                    g.name, now.uuid, g.uuid
                ),
            });
            plan.changes.retain(|c| c.target != target);
            plan.actions.retain(|a| a.target() != target);
            continue;
        }
        let differs = &now.xml != backup;
        let mut found = false;
        for a in plan.actions.iter_mut() {
            if let Action::Guest {
                name: n,
                new_xml,
                define,
                ..
            } = a
            {
                if *n == name {
                    found = true;
                    *new_xml = backup.clone();
                    *define = differs;
                }
            }
        }
        if !found && differs {
            plan.changes.push(Change {
                target: target.clone(),
                path: "definition".into(),
                before: Some("current".into()),
                after: Some(format!("as of {id}")),
                effect: if now.active {
                    Effect::Restart
                } else {
                    Effect::Live
                },
            });
            plan.actions.push(Action::Guest {
                name,
                uuid: g.uuid.clone(),
                old_xml: now.xml.clone(),
                new_xml: backup.clone(),
                define: true,
                live: Vec::new(),
            });
        }
    }
    let (host_changes, ops, notes) = host_rollback(rec, root)?;
    if !ops.is_empty() {
        plan.actions.insert(0, Action::Host(ops));
    }
    let mut changes = host_changes;
    changes.append(&mut plan.changes);
    plan.changes = changes;
    plan.notes.extend(notes);
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

/// First words of an owned file emptied by a rollback.
const EMPTIED: &str = "# kvmtune: emptied by rollback to before apply";

type HostRollback = (Vec<Change>, Vec<HostOp>, Vec<String>);

fn host_rollback(rec: &Record, root: &Path) -> Result<HostRollback, RollbackError> {
    let mut changes = Vec::new();
    let mut pre = Vec::new();
    let mut writes = Vec::new();
    let mut files = Vec::new();
    let mut notes = Vec::new();
    let files_before: &BTreeMap<String, Option<String>> = &rec.manifest.host_files;
    for (file, prev) in files_before {
        let now =
            crate::host::files::read_opt(&root.join(file)).map_err(|err| RollbackError::Host {
                file: file.clone(),
                err,
            })?;
        let change = |path: String, before: Option<String>, after: Option<String>| Change {
            target: "host".into(),
            path,
            before,
            after,
            effect: Effect::Live,
        };
        if file == crate::host::tuned::ACTIVE {
            let tok = |s: &Option<String>| {
                s.as_deref()
                    .map(|s| Readback::Tokens.canonical(s))
                    .filter(|s| !s.is_empty())
            };
            let (was, is) = (tok(prev), tok(&now));
            if let Some(p) = was.clone().filter(|w| Some(w) != is.as_ref()) {
                changes.push(change("tuned.profile".into(), is, Some(p.clone())));
                let adm = format!("{ROOT_ARG}{}", crate::host::tuned::TUNED_ADM);
                pre.push(HostOp::Run(CommandRun {
                    paths: vec!["tuned.profile".into()],
                    argv: vec![adm.clone(), "profile".into(), p.clone()],
                    check: Check::FileValue {
                        file: file.clone(),
                        value: p,
                    },
                    verify: Some(vec![adm, "verify".into()]),
                }));
            }
        } else if file.starts_with("etc/") {
            match prev {
                Some(c) if now.as_ref() != Some(c) => {
                    let path = format!("/{file} (persisted)");
                    let lines = |s: &str| format!("{} lines", s.lines().count());
                    changes.push(change(
                        path.clone(),
                        now.as_deref().map(lines),
                        Some(format!("{} as of {}", lines(c), rec.manifest.id)),
                    ));
                    files.push(HostOp::File(FileWrite {
                        paths: vec![path],
                        file: file.clone(),
                        content: c.clone(),
                    }));
                }
                // kvmtune never deletes files: it empties the one it created, so nothing the
                // rolled-back apply persisted comes back at boot.
                None if now.as_deref().is_some_and(|n| !n.starts_with(EMPTIED)) => {
                    let path = format!("/{file} (persisted)");
                    let content = format!(
                        "{EMPTIED} {}: this file did not exist before that apply and declares nothing.\n",
                        rec.manifest.id
                    );
                    changes.push(change(
                        path.clone(),
                        now.as_deref()
                            .map(|n| format!("{} lines", n.lines().count())),
                        Some("(emptied)".into()),
                    ));
                    files.push(HostOp::File(FileWrite {
                        paths: vec![path],
                        file: file.clone(),
                        content,
                    }));
                    notes.push(format!(
                        "/{file} did not exist before {}: it is emptied, not deleted (remove it by hand if you like)",
                        rec.manifest.id
                    ));
                }
                _ => {}
            }
        } else if let Some(c) = prev {
            let readback = if c.contains('[') {
                Readback::Selected
            } else {
                Readback::Tokens
            };
            let value = readback.canonical(c);
            let current = now.as_deref().map(|n| readback.canonical(n));
            if current.as_deref() != Some(value.as_str()) {
                let path = format!("/{file}");
                changes.push(change(path.clone(), current, Some(value.clone())));
                writes.push(HostOp::Write {
                    write: HostWrite {
                        path,
                        file: file.clone(),
                        value,
                        readback,
                    },
                    reassert: false,
                });
            }
        }
    }
    let mut ops = pre;
    ops.extend(writes);
    ops.extend(files);
    Ok((changes, ops, notes))
}
