//! The planner: a pure, deterministic function from (desired, observed) to a complete [`Plan`].
//!
//! Invariant: `plan` does no I/O and makes every decision; the executor ([`crate::apply`]) only
//! carries out [`Plan::actions`]. Same inputs, same plan (targets and changes in a fixed order:
//! host first, then guests by name).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::model::{guest_target, Change, Effect, PlanError};

use crate::config::source::{dotted, KeyPath};
use crate::desired::Desired;
use crate::domain::{plan_guest, GuestKey, GuestPlan, LocatedIssue};
use crate::host::{plan_host, HostOp};
use crate::libvirt::{GuestObserved, LiveOp, NodeInfo};
use crate::model::{DomainName, Uuid};
pub use crate::observe::Observed;

/// Choices the user makes on the command line that change what the plan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanOptions {
    /// Restart running guests that have changes waiting for a restart (`--restart-guests`).
    pub restart_guests: bool,
    /// How long a graceful shutdown may take before the guest is left running.
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub changes: usize,
    pub targets: usize,
    pub errors: usize,
}

/// A setting written to a running guest's persistent definition that is not in effect yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    pub target: String,
    pub path: String,
    /// What the running guest has.
    pub running: Option<String>,
    /// What it gets at its next start.
    pub defined: Option<String>,
}

/// One live operation and the setting it serves (a saved plan's step must be exactly what the
/// settings give for its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveStep {
    pub key: GuestKey,
    pub op: LiveOp,
}

/// What the executor does for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "action", rename_all = "snake_case")]
pub enum Action {
    /// Host steps (typed writes, owned-file replacements, commands), in order.
    Host(Vec<HostOp>),
    /// Define `new_xml` for the guest (when `define`), then make `live` changes on the running
    /// guest. `old_xml` is its persistent definition when planned (the stale check);
    /// `new_xml` is exactly what the typed settings give when applied to it
    /// ([`check_guest_action`]), with the same name and UUID.
    Guest {
        name: DomainName,
        uuid: Uuid,
        old_xml: String,
        new_xml: String,
        define: bool,
        live: Vec<LiveStep>,
    },
    /// Rollback only (never in a saved plan): define a recorded definition of the same domain
    /// (same name and UUID) over `old_xml`.
    #[serde(skip)]
    Restore {
        name: DomainName,
        uuid: Uuid,
        old_xml: String,
        xml: String,
        define: bool,
        live: Vec<LiveStep>,
    },
    /// Define `new_xml` for a libvirt network (when set), then set its autostart flag (when
    /// set). `old_xml` is its persistent definition when planned (`None`: it did not exist),
    /// the stale check; `new_xml` is exactly what the declared network gives when applied to
    /// it ([`crate::network::check_action`]).
    Network {
        name: crate::model::NetworkName,
        old_xml: Option<String>,
        new_xml: Option<String>,
        autostart: Option<bool>,
    },
    /// Gracefully restart a running guest so that its pending changes take effect.
    Restart {
        name: DomainName,
        /// At most a day.
        #[schemars(range(max = 86400))]
        timeout_secs: u64,
    },
}

impl Action {
    pub fn target(&self) -> String {
        match self {
            Action::Host(_) => "host".into(),
            Action::Network { name, .. } => network_target(name),
            Action::Guest { name, .. }
            | Action::Restore { name, .. }
            | Action::Restart { name, .. } => guest_target(name),
        }
    }
}

/// What planning read of the host that guest actions are derived from: the executor checks
/// each guest action against its typed settings with these same values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanInputs {
    /// The kernel's default huge page size.
    pub host_page: Option<crate::units::PageSize>,
    /// Host CPU and NUMA node counts.
    pub node: Option<NodeInfo>,
}

/// Why a guest action is not what its typed settings give.
pub fn check_guest_action(
    gd: &crate::desired::GuestDesired,
    inputs: PlanInputs,
    action: &Action,
) -> Result<(), String> {
    let same_domain = |xml: &str, what: &str, name: &DomainName, uuid: &Uuid| {
        match crate::domain::identity(xml) {
            Some((n, u)) if n == name.as_str() && u == uuid.as_str() => Ok(()),
            Some((n, u)) => Err(format!(
                "its {what} is of domain `{n}` (UUID {u}), not of `{name}` (UUID {uuid})"
            )),
            None => Err(format!(
                "its {what} is not a domain definition with a name and UUID"
            )),
        }
    };
    match action {
        Action::Guest {
            name,
            uuid,
            old_xml,
            new_xml,
            define,
            live,
        } => {
            same_domain(old_xml, "recorded definition", name, uuid)?;
            same_domain(new_xml, "new definition", name, uuid)?;
            let derived = crate::domain::plan_guest(gd, old_xml, inputs.host_page)
                .map_err(|_| "its settings do not apply to its recorded definition".to_string())?;
            if derived.new_xml != *new_xml || *define == derived.changes.is_empty() {
                return Err(
                    "its new definition is not what its settings give when applied to its recorded definition (only the elements kvmtune owns may change)".into(),
                );
            }
            check_live(gd, inputs, live)
        }
        Action::Restore {
            name,
            uuid,
            xml,
            live,
            ..
        } => {
            same_domain(xml, "recorded definition", name, uuid)?;
            check_live(gd, inputs, live)
        }
        Action::Restart { timeout_secs, .. } if *timeout_secs > MAX_SHUTDOWN_SECS => Err(format!(
            "shutdown timeout {timeout_secs} s is above {MAX_SHUTDOWN_SECS} s"
        )),
        Action::Restart { .. } | Action::Host(_) | Action::Network { .. } => Ok(()),
    }
}

/// The plan target of a libvirt network: `network/<name>`.
pub fn network_target(name: &crate::model::NetworkName) -> String {
    format!("network/{name}")
}

/// What planning the declared networks adds to the plan.
#[derive(Default)]
struct NetworkOutcome {
    errors: Vec<PlanError>,
    changes: Vec<Change>,
    pending: Vec<Pending>,
    actions: Vec<Action>,
    notes: Vec<String>,
}

/// The VF pools (`forward: hostdev` networks) whose PF has fewer VFs
/// (`host.interfaces.<pf>.sriov_numvfs`) than the declared guests' `sriov` entries ask for.
fn vf_shortfalls(d: &Desired, out: &mut NetworkOutcome) {
    let demand = crate::domain::settings::sriov::demand(d.guests.values());
    for (name, nd) in &d.networks {
        let (Some(pf), Some(&want)) = (&nd.pf, demand.get(name)) else {
            continue;
        };
        match d.host.interfaces.get(pf).and_then(|n| n.sriov_numvfs) {
            Some(have) if u64::from(have) < want => {
                let mut key = nd.key_path.clone();
                key.push("pf".into());
                out.errors.push(PlanError {
                    target: network_target(name),
                    location: locate(d, &key),
                    key: dotted(&key),
                    message: format!(
                        "network {name}: the declared guests ask for {want} VFs, but {pf} has {have} (host.interfaces.{pf}.sriov_numvfs)"
                    ),
                });
            }
            Some(_) => {}
            None => out.notes.push(format!(
                "network {name}: VFs of {pf} not checked (declare host.interfaces.{pf}.sriov_numvfs); the declared guests ask for {want}"
            )),
        }
    }
}

fn plan_networks(d: &Desired, obs: &Observed) -> NetworkOutcome {
    let mut out = NetworkOutcome::default();
    vf_shortfalls(d, &mut out);
    for (name, nd) in &d.networks {
        let target = network_target(name);
        let observed = obs.networks.get(name.as_str()).and_then(Option::as_ref);
        let p = match crate::network::plan_network(name, nd, observed) {
            Ok(p) => p,
            Err((key, message)) => {
                out.errors.push(PlanError {
                    target,
                    location: locate(d, &key),
                    key: dotted(&key),
                    message: format!("network {name}: {message}"),
                });
                continue;
            }
        };
        if p.changes.is_empty() {
            continue;
        }
        let waiting: Vec<&str> = p
            .changes
            .iter()
            .filter(|c| c.restart)
            .map(|c| c.field)
            .collect();
        for c in &p.changes {
            out.changes.push(Change {
                target: target.clone(),
                path: c.field.to_string(),
                before: c.before.clone(),
                after: Some(c.after.clone()),
                effect: if c.restart {
                    Effect::Restart
                } else {
                    Effect::Live
                },
            });
            if c.restart {
                out.pending.push(Pending {
                    target: target.clone(),
                    path: c.field.to_string(),
                    running: c.before.clone(),
                    defined: Some(c.after.clone()),
                });
            }
        }
        if !waiting.is_empty() {
            let users = obs
                .network_users
                .get(name.as_str())
                .filter(|u| !u.is_empty());
            let attached = users.map_or("no running guest is attached".to_string(), |u| {
                format!("running guests attached: {}", u.join(", "))
            });
            out.notes.push(format!(
                "network {name} runs: {} take effect when it is restarted (virsh net-destroy {name}; virsh net-start {name}), which kvmtune does not do; {attached}",
                waiting.join(", ")
            ));
        }
        out.actions.push(Action::Network {
            name: name.clone(),
            old_xml: observed.map(|o| o.xml.clone()),
            new_xml: p.new_xml,
            autostart: p.autostart,
        });
    }
    out
}

fn check_live(
    gd: &crate::desired::GuestDesired,
    inputs: PlanInputs,
    live: &[LiveStep],
) -> Result<(), String> {
    for step in live {
        if live_op(gd, &step.key, inputs.node).as_ref() != Some(&step.op) {
            return Err(format!(
                "its live step for {} is not what the settings give",
                step.key
            ));
        }
    }
    Ok(())
}

/// The longest graceful shutdown `--restart-guests` waits for (a day).
pub const MAX_SHUTDOWN_SECS: u64 = 86_400;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub format_version: u32,
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PlanError>,
    /// Written to the persistent definition of a running guest, in effect after its restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_restart: Vec<Pending>,
    /// Guests `--restart-guests` will restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarts: Vec<String>,
    /// Facts that are not changes (where guests find hugetlbfs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub summary: Summary,
    /// What the executor does; not part of the printed plan (`--format json`), saved with
    /// `plan --out` (see [`crate::saved`]).
    #[serde(skip)]
    pub actions: Vec<Action>,
    /// Guests with automatic pinning as planned (concrete pins), for apply's verification.
    #[serde(skip)]
    pub resolved: BTreeMap<DomainName, crate::desired::GuestDesired>,
    /// What `--lock-file` gets: the automatic pins of this plan (`None` without `auto`).
    #[serde(skip)]
    pub lock: Option<crate::pinning::Lock>,
    /// What guest actions were derived from (saved with `plan --out`).
    #[serde(skip)]
    pub inputs: PlanInputs,
}

impl Plan {
    /// The settings a guest action was made from: its resolved (automatic pins filled in)
    /// desired state, else the declared one.
    pub fn guest_desired<'a>(
        &'a self,
        d: &'a Desired,
        name: &DomainName,
    ) -> Option<&'a crate::desired::GuestDesired> {
        self.resolved.get(name).or_else(|| d.guests.get(name))
    }
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

/// What planning takes besides the desired and observed state, worked out before it (see
/// [`crate::pipeline`]): the automatic pins and the lint errors that reject the configuration.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub auto: Option<crate::pinning::Resolution>,
    pub lint_errors: Vec<PlanError>,
}

/// Computes the plan. Pure.
pub fn plan(d: &Desired, obs: &Observed, opts: PlanOptions, prep: Prepared) -> Plan {
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
    let mut notes = host.notes;
    let nets = plan_networks(d, obs);
    errors.extend(nets.errors);
    changes.extend(nets.changes);
    actions.extend(nets.actions);
    notes.extend(nets.notes);
    let auto = prep.auto;
    errors.extend(prep.lint_errors);

    // Guests are independent: plan them on two threads when there are many (the result is
    // the same, in the same order, as planning them one by one).
    let guests: Vec<(&DomainName, &crate::desired::GuestDesired)> = d.guests.iter().collect();
    let one = |(name, gd): &(&DomainName, &crate::desired::GuestDesired)| {
        plan_one(d, obs, auto.as_ref(), opts, name, gd)
    };
    let outcomes: Vec<GuestOutcome> = if guests.len() >= PARALLEL_GUESTS {
        let half = guests.len().div_ceil(2);
        std::thread::scope(|s| {
            let (first, second) = guests.split_at(half);
            let h = s.spawn(move || second.iter().map(one).collect::<Vec<_>>());
            let mut out: Vec<GuestOutcome> = first.iter().map(one).collect();
            out.extend(h.join().expect("planning thread panicked"));
            out
        })
    } else {
        guests.iter().map(one).collect()
    };
    let mut pending = nets.pending;
    let mut restarts = Vec::new();
    for o in outcomes {
        errors.extend(o.errors);
        changes.extend(o.changes);
        pending.extend(o.pending);
        actions.extend(o.actions);
        restarts.extend(o.restart);
    }
    let targets = actions
        .iter()
        .map(Action::target)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    Plan {
        format_version: 1,
        summary: Summary {
            changes: changes.len(),
            targets,
            errors: errors.len(),
        },
        changes,
        errors,
        pending_restart: pending,
        restarts,
        notes,
        actions,
        resolved: auto.as_ref().map(|a| a.guests.clone()).unwrap_or_default(),
        lock: auto.map(|a| a.lock),
        inputs: PlanInputs {
            host_page: obs.host.default_hugepage,
            node: obs.node,
        },
    }
}

/// Guests from which on planning runs on two threads.
const PARALLEL_GUESTS: usize = 64;

/// What planning one guest adds to the plan.
#[derive(Default)]
struct GuestOutcome {
    errors: Vec<PlanError>,
    changes: Vec<Change>,
    pending: Vec<Pending>,
    actions: Vec<Action>,
    restart: Option<String>,
}

fn plan_one(
    d: &Desired,
    obs: &Observed,
    auto: Option<&crate::pinning::Resolution>,
    opts: PlanOptions,
    name: &DomainName,
    gd: &crate::desired::GuestDesired,
) -> GuestOutcome {
    let mut out = GuestOutcome::default();
    let target = guest_target(name);
    if let Some(e) = auto.and_then(|a| a.errors.get(name)) {
        let mut key = gd.key_path.clone();
        key.extend(["cputune", "vcpupin"].map(String::from));
        out.errors.push(PlanError {
            target,
            location: locate(d, &key),
            key: dotted(&key),
            message: format!("guest {name}: automatic pinning: {e}"),
        });
        return out;
    }
    let gd = auto.and_then(|a| a.guests.get(name)).unwrap_or(gd);
    let Some(Some(g)) = obs.guests.get(name.as_str()) else {
        out.errors.push(PlanError {
            target,
            location: locate(d, &gd.key_path),
            key: dotted(&gd.key_path),
            message: format!("no guest named `{name}` is defined on this hypervisor"),
        });
        return out;
    };
    let host_issues = host_fit(gd, obs.node);
    let result = plan_guest(gd, &g.xml, obs.host.default_hugepage).and_then(|p| {
        if host_issues.is_empty() {
            Ok(p)
        } else {
            Err(host_issues)
        }
    });
    let persistent = match result {
        Ok(p) => p,
        Err(issues) => {
            for i in issues {
                out.errors.push(PlanError {
                    target: target.clone(),
                    location: locate(d, &i.key),
                    key: dotted(&i.key),
                    message: format!("guest {name}: {}", i.issue),
                });
            }
            return out;
        }
    };
    let gp = plan_running(gd, g, &persistent, obs.node, &target);
    let needs_restart = g.active
        && (gp.changes.iter().any(|c| c.effect == Effect::Restart) || !gp.pending.is_empty());
    out.pending = gp.pending;
    if !gp.changes.is_empty() {
        out.changes = gp.changes;
        let Ok(uuid) = Uuid::new(&g.uuid) else {
            out.errors.push(PlanError {
                target,
                location: locate(d, &gd.key_path),
                key: dotted(&gd.key_path),
                message: format!(
                    "guest {name}: libvirt reports UUID `{}`, which is not a UUID",
                    g.uuid
                ),
            });
            return out;
        };
        out.actions.push(Action::Guest {
            name: name.clone(),
            uuid,
            old_xml: g.xml.clone(),
            define: !persistent.changes.is_empty(),
            new_xml: persistent.new_xml,
            live: gp.live,
        });
    }
    if needs_restart && opts.restart_guests {
        out.restart = Some(target);
        out.actions.push(Action::Restart {
            name: name.clone(),
            timeout_secs: opts.shutdown_timeout_secs.min(MAX_SHUTDOWN_SECS),
        });
    }
    out
}

/// Settings libvirt can change on a running guest (`VIR_DOMAIN_AFFECT_LIVE`).
pub fn live_capable(key: &GuestKey) -> bool {
    crate::domain::settings::live_capable(key)
}

struct GuestChanges {
    changes: Vec<Change>,
    live: Vec<LiveStep>,
    pending: Vec<Pending>,
}

/// Splits one guest's differences into changes (with their effect), live operations and
/// pending settings, comparing the desired state with both the persistent and the live XML.
fn plan_running(
    gd: &crate::desired::GuestDesired,
    g: &GuestObserved,
    persistent: &GuestPlan,
    node: Option<NodeInfo>,
    target: &str,
) -> GuestChanges {
    let mut out = GuestChanges {
        changes: Vec::new(),
        live: Vec::new(),
        pending: Vec::new(),
    };
    let live_xml = match (&g.live_xml, g.active) {
        (Some(x), true) => x,
        _ => {
            // Stopped: everything takes effect at the next start; nothing is pending.
            out.changes = persistent
                .changes
                .iter()
                .map(|c| change(target, c, Effect::Live))
                .collect();
            return out;
        }
    };
    let running = plan_guest(gd, live_xml, None)
        .map(|p| p.changes)
        .unwrap_or_default();
    let in_persistent: std::collections::BTreeSet<&GuestKey> =
        persistent.changes.iter().map(|c| &c.key).collect();
    let live_now =
        |k: &GuestKey| live_capable(k) && crate::domain::settings::live_applies(k, live_xml);
    for c in &persistent.changes {
        let effect = if live_now(&c.key) {
            Effect::Live
        } else {
            Effect::Restart
        };
        out.changes.push(change(target, c, effect));
    }
    for c in &running {
        let persisted = in_persistent.contains(&c.key);
        let op = live_now(&c.key)
            .then(|| live_op(gd, &c.key, node))
            .flatten();
        let setting = c.key.setting();
        match op {
            // Live-only drift is fixed live only where the unit says so (CPU pinning, which
            // libvirt always changes live); other settings that differ only on the running
            // guest (libvirt or the host refused them live) are pending, not retried forever.
            Some(op) if persisted || setting.fixes_live_drift() => {
                if !persisted {
                    // Drift on the running guest only: fix it live.
                    out.changes.push(change(target, c, Effect::Live));
                }
                out.live.push(LiveStep {
                    key: c.key.clone(),
                    op,
                });
            }
            // Written, but not in effect (libvirt could not apply it live, or it needs a
            // restart): in effect at the next start. Settings whose live XML never reads
            // like the definition are not pending.
            _ if !persisted && !setting.live_normalized(gd) => out.pending.push(Pending {
                target: target.to_string(),
                path: c.key.to_string(),
                running: c.before.clone(),
                defined: c.after.clone(),
            }),
            _ => {}
        }
    }
    out
}

fn change(target: &str, c: &crate::domain::SettingChange, effect: Effect) -> Change {
    Change {
        target: target.to_string(),
        path: c.key.to_string(),
        before: c.before.clone(),
        after: c.after.clone(),
        effect,
    }
}

/// The live operation that makes `key` what `gd` declares.
pub fn live_op(
    gd: &crate::desired::GuestDesired,
    key: &GuestKey,
    node: Option<NodeInfo>,
) -> Option<LiveOp> {
    crate::domain::settings::live_op(gd, key, node)
}

/// Declared CPUs and NUMA nodes that this host does not have (libvirt accepts them at define
/// time and fails only when the guest starts).
fn host_fit(gd: &crate::desired::GuestDesired, node: Option<NodeInfo>) -> Vec<LocatedIssue> {
    match node {
        Some(node) => crate::domain::settings::host_fit(gd, node),
        None => Vec::new(),
    }
}
