//! The executor: carries out a [`Plan`]'s actions and reports what happened to each target.
//!
//! Invariant: apply makes no decisions. It performs exactly the plan's actions, in order; a
//! failure on one target does not stop the others; every guest stays defined (define only,
//! never undefine); each write is read back and checked.

use std::path::Path;

use serde::Serialize;

use crate::desired::{Desired, GuestDesired};
use crate::domain::{plan_guest, GuestKey};
use crate::host;
use crate::host::persist::PersistKey;
use std::collections::BTreeMap;
use std::ops::ControlFlow;

use crate::libvirt::{DefineMode, Hypervisor};
use crate::model::{DomainName, HostKey};
use crate::plan::{Action, LiveStep, Plan};

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

/// Where and how apply reaches the system.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub root: &'a Path,
    pub hv: Option<&'a Hypervisor>,
    pub io: HostIo<'a>,
}

/// Executes `plan`. `desired` gives the typed settings each guest action is checked
/// against, and that what libvirt stored is verified with.
pub fn apply(plan: &Plan, desired: &Desired, root: &Path, hv: Option<&Hypervisor>) -> ApplyReport {
    let t = Target {
        root,
        hv,
        io: HostIo::REAL,
    };
    apply_with(plan, desired, t, &mut |_, _, _| {})
}

/// [`apply`] through the given seams, calling `progress(done, total, target)` before each
/// action.
pub fn apply_with(
    plan: &Plan,
    desired: &Desired,
    t: Target,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> ApplyReport {
    apply_with_options(plan, desired, t, ApplyOptions::default(), progress)
}

/// How guest definitions are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// `--validate`: libvirtd also checks every definition kvmtune built against its RelaxNG
    /// schema (about 9 ms of daemon CPU a guest). Without it libvirt still parses and checks
    /// every value, and kvmtune verifies what libvirt stored; definitions kvmtune did not
    /// build (rollback's recorded XML) are always schema-checked.
    pub validate: bool,
}

/// Guests to define from which on their defines run on a pool of connections.
const POOL_FROM: usize = 16;
/// Connections of the define pool (libvirtd's gain flattens out beyond 4 on 2 cores).
const POOL_CONNECTIONS: usize = 4;

/// [`apply_with`] with the define options.
pub fn apply_with_options(
    plan: &Plan,
    desired: &Desired,
    t: Target,
    opts: ApplyOptions,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> ApplyReport {
    let mut report = ApplyReport::default();
    let total = plan.actions.len();
    // Independent guests' defines first, a few at a time (each one checked, defined and
    // verified on its worker's connection); everything else in plan order below.
    let mut defined = predefine(plan, desired, t, opts);
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
            Action::Host(ops) => host_steps(ops, t, &mut report, &mut res),
            Action::Network { .. } => {
                network_step(action, desired, t.hv, &mut report, &mut res, paths)
            }
            Action::Guest { .. } | Action::Restore { .. } => {
                let g = GuestRun {
                    plan,
                    desired,
                    hv: t.hv,
                    opts,
                    defined: defined.remove(&i),
                };
                g.run(action, paths, &mut report, &mut res)
            }
            Action::Restart { name, timeout_secs } => {
                report.restarts += 1;
                let secs = (*timeout_secs).min(crate::plan::MAX_SHUTDOWN_SECS);
                let timeout = std::time::Duration::from_secs(secs);
                match t.hv.map(|hv| hv.restart(name.as_str(), timeout)) {
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

fn host_steps(ops: &[host::HostOp], t: Target, report: &mut ApplyReport, res: &mut TargetResult) {
    // Keys whose runtime step failed: they are not persisted for boot (the failure would
    // repeat at every boot).
    let mut unverified: Vec<PersistKey> = Vec::new();
    for op in ops {
        if op.is_command() {
            report.host_commands += 1;
        } else {
            report.host_writes += 1;
        }
        let (op, skipped) = without_unverified(op, &unverified);
        for label in skipped {
            res.failed.push((
                label,
                "not persisted: its runtime change failed (see above)".into(),
            ));
        }
        let paths = op.paths();
        let result = host::execute(t.io.files, t.io.cmds, t.root, &op);
        crate::faults::point(if op.is_command() {
            "host-command"
        } else {
            "host-write"
        });
        match result {
            Ok(note) => {
                res.applied.extend(paths);
                report.notes.extend(note);
            }
            // Not done and not a failure (a managed IRQ): reported, as the kernel keeps it.
            Err(e @ host::HostWriteError::Skipped { .. }) => report.notes.push(e.to_string()),
            Err(e) => {
                unverified.extend(persisted_as(&op));
                let why = e.to_string();
                if paths.is_empty() {
                    res.failed.push((op.name(), why));
                } else {
                    res.failed
                        .extend(paths.into_iter().map(|p| (p, why.clone())));
                }
            }
        }
    }
}

/// One network action: checks that the network is still as planned, defines its new
/// definition and verifies what libvirt stored, then sets autostart and reads it back.
fn network_step(
    action: &Action,
    desired: &Desired,
    hv: Option<&Hypervisor>,
    report: &mut ApplyReport,
    res: &mut TargetResult,
    paths: Vec<String>,
) {
    let Action::Network {
        name,
        old_xml,
        new_xml,
        autostart,
    } = action
    else {
        return;
    };
    let fail = |res: &mut TargetResult, fields: &[String], why: String| {
        res.failed
            .extend(fields.iter().map(|p| (p.clone(), why.clone())));
    };
    let (def_paths, auto_paths): (Vec<String>, Vec<String>) =
        paths.into_iter().partition(|p| p != "autostart");
    let checked = (|| -> Result<&Hypervisor, String> {
        let hv = hv.ok_or("no libvirt connection")?;
        let nd = desired
            .networks
            .get(name)
            .ok_or("the configuration does not declare this network")?;
        crate::network::check_action(name, nd, old_xml.as_deref(), new_xml.as_deref(), *autostart)?;
        let now = hv.network(name.as_str()).map_err(|e| e.to_string())?;
        if now.as_ref().map(|n| &n.xml) != old_xml.as_ref() {
            return Err("its definition changed since the plan was made (plan again)".into());
        }
        Ok(hv)
    })();
    let hv = match checked {
        Ok(hv) => hv,
        Err(why) => {
            let why = format!("network {name}: refusing: {why}");
            return fail(res, &[def_paths, auto_paths].concat(), why);
        }
    };
    if let Some(xml) = new_xml {
        report.defines += 1;
        let stored = hv.define_network(name.as_str(), xml);
        crate::faults::point("define");
        let left = match (&stored, desired.networks.get(name)) {
            (Ok(s), Some(nd)) => crate::network::not_kept(name, nd, s),
            _ => Vec::new(),
        };
        match stored {
            Err(e) => return fail(res, &[def_paths, auto_paths].concat(), e.to_string()),
            Ok(_) if !left.is_empty() => {
                let why = format!("defined, but libvirt did not keep: {}", left.join("; "));
                return fail(res, &[def_paths, auto_paths].concat(), why);
            }
            Ok(_) => res.applied.extend(def_paths),
        }
    }
    if let Some(on) = autostart {
        report.live_changes += 1;
        match hv.set_network_autostart(name.as_str(), *on) {
            Ok(now) if now == *on => res.applied.extend(auto_paths),
            Ok(now) => fail(res, &auto_paths, format!("libvirt reports autostart {now}")),
            Err(e) => fail(res, &auto_paths, e.to_string()),
        }
    }
}

/// The owned-file entry a runtime step's value is persisted as.
fn persisted_as(op: &host::HostOp) -> Option<PersistKey> {
    match op {
        host::HostOp::Write {
            key: HostKey::Sysctl { key },
            ..
        } => Some(PersistKey::Sysctl { key: key.clone() }),
        host::HostOp::Write { key, .. } => Some(PersistKey::Value { key: key.clone() }),
        host::HostOp::LoadModule { module } => Some(PersistKey::Module {
            module: module.clone(),
        }),
        _ => None,
    }
}

/// `op` without the owned-file entries of keys whose runtime step failed, and the labels of
/// the entries left out.
fn without_unverified(op: &host::HostOp, unverified: &[PersistKey]) -> (host::HostOp, Vec<String>) {
    let host::HostOp::OwnedFile {
        file,
        entries,
        before,
        labels,
    } = op
    else {
        return (op.clone(), Vec::new());
    };
    let (keep, drop): (Vec<_>, Vec<_>) = entries
        .iter()
        .cloned()
        .partition(|e| !unverified.contains(&e.key));
    if drop.is_empty() {
        return (op.clone(), Vec::new());
    }
    let dropped: Vec<String> = drop.iter().map(|e| e.label()).collect();
    let op = host::HostOp::OwnedFile {
        file: *file,
        entries: keep,
        before: before.clone(),
        labels: labels
            .iter()
            .filter(|l| !dropped.contains(l))
            .cloned()
            .collect(),
    };
    (op, dropped)
}

/// The defines of a plan's guest actions, when there are enough of them to share a pool of
/// connections: action index → outcome. Empty otherwise (they then run in plan order).
fn predefine(
    plan: &Plan,
    desired: &Desired,
    t: Target,
    opts: ApplyOptions,
) -> BTreeMap<usize, Result<(), String>> {
    let mut out = BTreeMap::new();
    let Some(hv) = t.hv else { return out };
    let idx: Vec<usize> = plan
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a, Action::Guest { define: true, .. }))
        .map(|(i, _)| i)
        .collect();
    if idx.len() < POOL_FROM {
        return out;
    }
    let pool = match hv.define_pool(POOL_CONNECTIONS) {
        Ok(p) => p,
        Err(_) => return out, // one connection then: in plan order
    };
    pool.run(
        idx.len(),
        |j, hv| define_one(plan, desired, &plan.actions[idx[j]], hv, opts),
        |j, r| {
            crate::faults::point("define");
            out.insert(idx[j], r);
            ControlFlow::Continue(())
        },
    );
    out
}

/// Checks a guest action (see [`precheck`]), defines its new definition and verifies what
/// libvirt stored. When the stored definition lacks an owned value, the previous definition
/// is defined back: the guest stays wholly what it was.
fn define_one(
    plan: &Plan,
    desired: &Desired,
    action: &Action,
    hv: &Hypervisor,
    opts: ApplyOptions,
) -> Result<(), String> {
    let (name, old_xml, xml, built) = match action {
        Action::Guest {
            name,
            old_xml,
            new_xml,
            ..
        } => (name, old_xml, new_xml, true),
        Action::Restore {
            name, old_xml, xml, ..
        } => (name, old_xml, xml, false),
        _ => return Ok(()),
    };
    let gd = plan.guest_desired(desired, name);
    precheck(gd, plan, action, hv).map_err(|why| format!("guest {name}: refusing: {why}"))?;
    let mode = if opts.validate || !built {
        DefineMode::Schema
    } else {
        DefineMode::Parse
    };
    let stored = hv
        .define_with(name.as_str(), xml, mode)
        .map_err(|e| e.to_string())?;
    if !built {
        return Ok(());
    }
    verify(gd, name, &stored).map_err(|e| {
        match hv.define_with(name.as_str(), old_xml, DefineMode::Parse) {
            Ok(_) => format!("{e}; its previous definition was defined back"),
            Err(r) => format!("{e}; defining its previous definition back failed too: {r}"),
        }
    })
}

/// One guest action in plan order: its define (unless the pool made it), then its live
/// changes on the running guest.
struct GuestRun<'a> {
    plan: &'a Plan,
    desired: &'a Desired,
    hv: Option<&'a Hypervisor>,
    opts: ApplyOptions,
    /// The define's outcome when [`predefine`] made it.
    defined: Option<Result<(), String>>,
}

impl GuestRun<'_> {
    fn run(
        self,
        action: &Action,
        paths: Vec<String>,
        report: &mut ApplyReport,
        res: &mut TargetResult,
    ) {
        let fail_all = |res: &mut TargetResult, why: String| {
            let mut ps = paths.clone();
            if ps.is_empty() {
                ps.push("definition".into());
            }
            res.failed = ps.into_iter().map(|p| (p, why.clone())).collect();
        };
        let (name, define, live): (_, bool, &[LiveStep]) = match action {
            Action::Guest {
                name, define, live, ..
            }
            | Action::Restore {
                name, define, live, ..
            } => (name, *define, live),
            _ => return,
        };
        let Some(hv) = self.hv else {
            return fail_all(res, "no libvirt connection".into());
        };
        let outcome = match self.defined {
            Some(r) => {
                report.defines += 1;
                r
            }
            None if define => {
                report.defines += 1;
                let r = define_one(self.plan, self.desired, action, hv, self.opts);
                crate::faults::point("define");
                r
            }
            None => {
                let gd = self.plan.guest_desired(self.desired, name);
                precheck(gd, self.plan, action, hv)
                    .map_err(|why| format!("guest {name}: refusing: {why}"))
            }
        };
        if let Err(e) = outcome {
            // Nothing of this guest's definition changed.
            return fail_all(res, e);
        }
        for step in live {
            report.live_changes += 1;
            let result = hv.live(name.as_str(), &step.op);
            crate::faults::point("live");
            match result {
                Ok(()) => {}
                Err(e) if e.unsupported => res.deferred.push((
                    step.key.to_string(),
                    format!(
                        "libvirt cannot change it on the running guest ({e}); in effect at restart"
                    ),
                )),
                Err(e) => res.failed.push((step.key.to_string(), e.to_string())),
            }
        }
        let failed: Vec<&str> = res.failed.iter().map(|(p, _)| p.as_str()).collect();
        res.applied = paths
            .into_iter()
            .filter(|p| !failed.contains(&p.as_str()))
            .collect();
    }
}

/// What must hold before a guest action runs: it names a declared guest (rollback: a
/// recorded one), it is what its typed settings give, and the domain is still the one (same
/// UUID, same persistent definition) it was planned against.
fn precheck(
    gd: Option<&GuestDesired>,
    plan: &Plan,
    action: &Action,
    hv: &Hypervisor,
) -> Result<(), String> {
    let (name, uuid, old_xml) = match action {
        Action::Guest {
            name,
            uuid,
            old_xml,
            ..
        }
        | Action::Restore {
            name,
            uuid,
            old_xml,
            ..
        } => (name, uuid, old_xml),
        _ => return Ok(()),
    };
    let gd = gd.ok_or("the configuration does not declare this guest")?;
    crate::plan::check_guest_action(gd, plan.inputs, action)?;
    match hv.current(name.as_str()).map_err(|e| e.to_string())? {
        None => Err("no such domain is defined now".into()),
        Some((u, _)) if !u.eq_ignore_ascii_case(uuid.as_str()) => Err(format!(
            "the domain now has UUID {u}, the plan is for UUID {uuid}"
        )),
        Some((_, xml)) if xml != *old_xml => {
            Err("its definition changed since the plan was made (plan again)".into())
        }
        Some(_) => Ok(()),
    }
}

/// Re-plans the guest against what libvirt stored: every owned value must have landed.
fn verify(gd: Option<&GuestDesired>, name: &DomainName, stored: &str) -> Result<(), String> {
    let Some(gd) = gd else {
        return Ok(());
    };
    match plan_guest(gd, stored, None) {
        Ok(p) => {
            // Huge page "default size" needs the host page size; ignore it in verification.
            let left: Vec<String> = p
                .changes
                .iter()
                .filter(|c| !matches!(c.key, GuestKey::MemoryBacking(_)))
                .map(|c| {
                    format!(
                        "{}: wanted {}, libvirt stored {}",
                        c.key,
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
