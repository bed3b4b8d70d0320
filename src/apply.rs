//! The executor: carries out a [`Plan`]'s actions and reports what happened to each target.
//!
//! Invariant: apply makes no decisions. It performs exactly the plan's actions, in order; a
//! failure on one target does not stop the others; every guest stays defined (define only,
//! never undefine); each write is read back and checked.

use std::path::Path;

use serde::Serialize;

use crate::desired::Desired;
use crate::domain::plan_guest;
use crate::host;
use crate::libvirt::Hypervisor;
use crate::plan::{Action, Plan};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Applied,
    Failed,
}

/// What happened to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetResult {
    pub target: String,
    pub outcome: Outcome,
    /// Paths of the changes that were made.
    pub applied: Vec<String>,
    /// Paths written to the definition whose live change libvirt refused: in effect at restart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<(String, String)>,
    /// Paths of the changes that were not made, with why.
    pub failed: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    pub results: Vec<TargetResult>,
    /// libvirt define calls made.
    pub defines: usize,
    /// Host files written (kernel files and owned files under /etc).
    pub host_writes: usize,
    /// Live (running guest) operations attempted.
    pub live_changes: usize,
    /// Guests restarted (`--restart-guests`).
    pub restarts: usize,
    /// Host commands run (tuned-adm, modprobe, mount).
    pub host_commands: usize,
    /// What verification commands said (`tuned-adm verify`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ApplyReport {
    pub fn ok(&self) -> bool {
        self.results.iter().all(|r| r.outcome == Outcome::Applied)
    }
}

/// How apply reaches the host: the file and command seams ([`HostIo::REAL`] outside tests).
#[derive(Clone, Copy)]
pub struct HostIo<'a> {
    pub files: &'a dyn host::HostFiles,
    pub cmds: &'a dyn host::HostCommands,
}

impl HostIo<'static> {
    pub const REAL: HostIo<'static> = HostIo {
        files: &host::RealFiles,
        cmds: &host::RealCommands,
    };
}

/// Executes `plan`. `desired` is used only to verify that what libvirt stored matches.
pub fn apply(plan: &Plan, desired: &Desired, root: &Path, hv: Option<&Hypervisor>) -> ApplyReport {
    apply_with(plan, desired, root, hv, HostIo::REAL, &mut |_, _, _| {})
}

/// [`apply`] through the given host seams, calling `progress(done, total, target)` before
/// each action.
pub fn apply_with(
    plan: &Plan,
    desired: &Desired,
    root: &Path,
    hv: Option<&Hypervisor>,
    io: HostIo,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> ApplyReport {
    let (files, cmds) = (io.files, io.cmds);
    let mut report = ApplyReport::default();
    let total = plan.actions.len();
    for (i, action) in plan.actions.iter().enumerate() {
        let target = action.target();
        progress(i, total, &target);
        let paths: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| c.target == target)
            .map(|c| c.path.clone())
            .collect();
        let mut res = TargetResult {
            target: target.clone(),
            outcome: Outcome::Applied,
            applied: Vec::new(),
            deferred: Vec::new(),
            failed: Vec::new(),
        };
        match action {
            Action::Host(ops) => {
                for op in ops {
                    match op {
                        host::HostOp::Run(_) => report.host_commands += 1,
                        _ => report.host_writes += 1,
                    }
                    let paths = op.paths();
                    let result = host::execute(files, cmds, root, op);
                    crate::faults::point(match op {
                        host::HostOp::Run(_) => "host-command",
                        _ => "host-write",
                    });
                    match result {
                        Ok(note) => {
                            res.applied.extend(paths);
                            report.notes.extend(note);
                        }
                        Err(e) => {
                            let why = e.to_string();
                            if paths.is_empty() {
                                res.failed.push((host_step_name(op), why));
                            } else {
                                res.failed
                                    .extend(paths.into_iter().map(|p| (p, why.clone())));
                            }
                        }
                    }
                }
            }
            Action::Guest {
                name,
                new_xml,
                define,
                live,
                ..
            } => {
                let Some(hv) = hv else {
                    res.failed = paths
                        .into_iter()
                        .map(|p| (p, "no libvirt connection".into()))
                        .collect();
                    res.outcome = Outcome::Failed;
                    report.results.push(res);
                    continue;
                };
                let mut defined = true;
                if *define {
                    report.defines += 1;
                    if let Err(e) = hv
                        .define(name.as_str(), new_xml)
                        .map_err(|e| e.to_string())
                        .and_then(|stored| verify(desired, &plan.resolved, name, &stored))
                    {
                        defined = false;
                        // Nothing of this guest's definition changed (or it did not stick).
                        res.failed = paths.iter().map(|p| (p.clone(), e.clone())).collect();
                    }
                    crate::faults::point("define");
                }
                if defined {
                    for step in live {
                        report.live_changes += 1;
                        let result = hv.live(name.as_str(), &step.op);
                        crate::faults::point("live");
                        match result {
                            Ok(()) => {}
                            Err(e) if e.unsupported => res.deferred.push((
                                step.path.clone(),
                                format!("libvirt cannot change it on the running guest ({e}); in effect at restart"),
                            )),
                            Err(e) => res.failed.push((step.path.clone(), e.to_string())),
                        }
                    }
                    let failed: Vec<&str> = res.failed.iter().map(|(p, _)| p.as_str()).collect();
                    res.applied = paths
                        .into_iter()
                        .filter(|p| !failed.contains(&p.as_str()))
                        .collect();
                }
            }
            Action::Restart { name, timeout_secs } => {
                report.restarts += 1;
                let timeout = std::time::Duration::from_secs(*timeout_secs);
                match hv.map(|hv| hv.restart(name.as_str(), timeout)) {
                    Some(Ok(())) => res.applied.push("restart".into()),
                    Some(Err(e)) => res.failed.push(("restart".into(), e.to_string())),
                    None => res
                        .failed
                        .push(("restart".into(), "no libvirt connection".into())),
                }
            }
        }
        if !res.failed.is_empty() {
            res.outcome = Outcome::Failed;
        }
        report.results.push(res);
    }
    report
}

/// Re-plans the guest against what libvirt stored: every owned value must have landed.
fn verify(
    desired: &Desired,
    resolved: &std::collections::BTreeMap<crate::desired::DomainName, crate::desired::GuestDesired>,
    name: &crate::desired::DomainName,
    stored: &str,
) -> Result<(), String> {
    let Some(gd) = resolved.get(name).or_else(|| desired.guests.get(name)) else {
        return Ok(());
    };
    match plan_guest(gd, stored, None) {
        Ok(p) => {
            // Huge page "default size" needs the host page size; ignore it in verification.
            let left: Vec<String> = p
                .changes
                .iter()
                .filter(|c| c.path != "memory_backing.hugepages")
                .map(|c| {
                    format!(
                        "{}: wanted {}, libvirt stored {}",
                        c.path,
                        c.after.as_deref().unwrap_or("null"),
                        c.before.as_deref().unwrap_or("null")
                    )
                })
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "guest {name}: defined, but libvirt did not keep: {}",
                    left.join("; ")
                ))
            }
        }
        Err(issues) => Err(format!(
            "guest {name}: stored XML no longer plans: {}",
            issues
                .iter()
                .map(|i| i.issue.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}

/// A name for a host step that carries no plan path (a re-assert write, `mkdir`).
fn host_step_name(op: &host::HostOp) -> String {
    match op {
        host::HostOp::Write { write, .. } => write.path.clone(),
        host::HostOp::File(f) => format!("/{}", f.file),
        host::HostOp::Run(r) => r.argv.first().cloned().unwrap_or_default(),
    }
}
