//! Saved plans (`kvmtune plan --out plan.json`, `kvmtune apply plan.json`).
//!
//! Invariant: a saved plan carries everything the executor needs (the plan's actions, the
//! configuration it was made from for post-define verification) plus a fingerprint of every
//! observed target; it is applied only on the host and libvirt URI it was made for, and only
//! while every target's fingerprint still matches what is observed now. Then exactly the saved
//! actions run: nothing is re-planned.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::{guest_target, Action, Observed, Plan};

/// `kind` of a saved plan file.
pub const KIND: &str = "kvmtune-saved-plan";
/// Version of the saved plan format this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;

/// A configuration file as it was when the plan was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigText {
    pub path: String,
    pub text: String,
}

/// Command-line choices that shaped the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SavedOptions {
    pub restart_guests: bool,
    pub shutdown_timeout_secs: u64,
}

/// The file `kvmtune plan --out` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "kvmtune saved plan")]
#[serde(deny_unknown_fields)]
pub struct SavedPlan {
    /// Always `kvmtune-saved-plan`.
    pub kind: String,
    /// Format of this file; a build refuses versions it does not know.
    pub format_version: u32,
    /// The kvmtune version that wrote it.
    pub kvmtune_version: String,
    /// Hostname of the machine it was planned on.
    pub hostname: String,
    /// libvirt URI it was planned against.
    pub uri: String,
    /// `--root` it was planned with.
    pub root: String,
    /// UTC time of planning (`2026-11-26T22:46:07Z`).
    pub created: String,
    /// Target (`host`, `guest/<name>`) → SHA-256 of the observed state the plan was made from.
    pub fingerprints: BTreeMap<String, String>,
    pub options: SavedOptions,
    /// The configuration files (used to re-observe the same targets and to verify defines).
    pub config: Vec<ConfigText>,
    /// The plan as `plan --format json` prints it.
    pub plan: Plan,
    /// Exactly what apply will do, in order: typed keys and guest definitions, never a path
    /// or a command.
    pub actions: Vec<Action>,
    /// The automatic pins the plan resolved (what `--lock-file` gets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<crate::pinning::Lock>,
    /// What the guest actions were derived from.
    pub inputs: crate::plan::PlanInputs,
}

/// Why a saved plan cannot be applied here and now.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SavedPlanError {
    #[error("not a kvmtune saved plan: {0}")]
    Parse(String),
    #[error("saved plan format {found} is not supported by this kvmtune (it reads format {FORMAT_VERSION}); plan again")]
    Version { found: String },
    #[error(
        "saved plan was made on host `{planned}`, this is `{here}`: refusing to apply it here"
    )]
    OtherHost { planned: String, here: String },
    #[error("saved plan was made against libvirt `{planned}`, this run uses `{here}`: refusing")]
    OtherUri { planned: String, here: String },
    #[error("saved plan was made with --root {planned}, this run uses --root {here}: refusing")]
    OtherRoot { planned: String, here: String },
    #[error("stale plan: the state of {} changed since it was planned; plan again", .0.join(", "))]
    Stale(Vec<String>),
    #[error("refusing the saved plan, nothing was applied: {0}")]
    Refused(String),
}

/// Where a plan is made (and must be applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub hostname: String,
    pub uri: String,
    pub root: String,
}

impl SavedPlan {
    /// The saved form of `plan`, made from `obs` with the configuration `sources`.
    pub fn new(
        plan: &Plan,
        obs: &Observed,
        desired: &crate::desired::Desired,
        sources: &[crate::config::source::SourceFile],
        origin: Origin,
        opts: crate::plan::PlanOptions,
    ) -> SavedPlan {
        SavedPlan {
            kind: KIND.into(),
            format_version: FORMAT_VERSION,
            kvmtune_version: env!("CARGO_PKG_VERSION").into(),
            hostname: origin.hostname,
            uri: origin.uri,
            root: origin.root,
            created: utc(now_secs()).0,
            fingerprints: fingerprints(obs, !desired.host.is_empty()),
            options: SavedOptions {
                restart_guests: opts.restart_guests,
                shutdown_timeout_secs: opts.shutdown_timeout_secs,
            },
            config: sources
                .iter()
                .map(|f| ConfigText {
                    path: f.path.display().to_string(),
                    text: f.text.clone(),
                })
                .collect(),
            actions: plan.actions.clone(),
            lock: plan.lock.clone(),
            inputs: plan.inputs,
            plan: plan.clone(),
        }
    }

    /// The configuration the plan was made from, with the plan's automatic pins in place
    /// (from its lock: nothing is allocated again), after checking that every action is one
    /// that configuration asks for and that the shown changes are exactly what the actions do.
    pub fn prepare(&mut self, hostname: &str) -> Result<crate::desired::Desired, SavedPlanError> {
        let d = self
            .desired(hostname)
            .map_err(|e| SavedPlanError::Refused(format!("its configuration: {e}")))?;
        let auto = d.guests.values().any(|g| g.auto_pin.is_some());
        self.plan.resolved = match (&self.lock, auto) {
            (Some(l), true) => crate::pinning::from_lock(&d, l).map_err(SavedPlanError::Refused)?,
            (None, true) => {
                return Err(SavedPlanError::Refused(
                    "its configuration uses vcpupin: auto, but it carries no pins".into(),
                ))
            }
            (_, false) => Default::default(),
        };
        self.check_actions(&d).map_err(SavedPlanError::Refused)?;
        Ok(d)
    }

    fn check_actions(&self, d: &crate::desired::Desired) -> Result<(), String> {
        use crate::desired::HugepagesBacking;
        let hugetlbfs = d.guests.values().any(|g| {
            matches!(
                g.hugepages,
                Some(HugepagesBacking::DefaultSize | HugepagesBacking::Size(_))
            )
        });
        let mut acted: std::collections::BTreeSet<(String, String)> = Default::default();
        for a in &self.actions {
            let target = a.target();
            match a {
                Action::Host(ops) => {
                    for op in ops {
                        op.check().map_err(|e| format!("host: {e}"))?;
                        if let Some(e) = crate::host::undeclared(&d.host, op, hugetlbfs) {
                            return Err(format!("host: {e}"));
                        }
                        for p in op.paths() {
                            acted.insert((target.clone(), p));
                        }
                    }
                }
                Action::Guest { name, .. } | Action::Restart { name, .. } => {
                    let gd = self.plan.guest_desired(d, name).ok_or_else(|| {
                        format!("{target}: the configuration does not declare this guest")
                    })?;
                    crate::plan::check_guest_action(gd, self.inputs, a)
                        .map_err(|e| format!("{target}: {e}"))?;
                    acted.insert((target.clone(), String::new()));
                }
                Action::Network {
                    name,
                    old_xml,
                    new_xml,
                    autostart,
                } => {
                    let nd = d.networks.get(name).ok_or_else(|| {
                        format!("{target}: the configuration does not declare this network")
                    })?;
                    crate::network::check_action(
                        name,
                        nd,
                        old_xml.as_deref(),
                        new_xml.as_deref(),
                        *autostart,
                    )
                    .map_err(|e| format!("{target}: {e}"))?;
                    acted.insert((target.clone(), String::new()));
                }
                Action::Restore { .. } => return Err(format!("{target}: not a saved action")),
            }
        }
        self.check_shown(&acted)
    }

    /// Every shown change has an action and every action a shown change; a host value's
    /// shown before/after is what its writes check and write.
    fn check_shown(
        &self,
        acted: &std::collections::BTreeSet<(String, String)>,
    ) -> Result<(), String> {
        for c in &self.plan.changes {
            let covered = if c.target == "host" {
                acted.contains(&(c.target.clone(), c.path.clone()))
            } else {
                acted.contains(&(c.target.clone(), String::new()))
            };
            if !covered {
                return Err(format!(
                    "{}: {}: shown as a change, but no action makes it",
                    c.target, c.path
                ));
            }
        }
        for (target, path) in acted {
            let shown = self
                .plan
                .changes
                .iter()
                .any(|c| c.target == *target && (path.is_empty() || c.path == *path));
            let restart_only = path.is_empty() && self.plan.restarts.contains(target);
            if !shown && !restart_only {
                return Err(format!(
                    "{target}: an action changes {path} but the plan does not show it"
                ));
            }
        }
        for a in &self.actions {
            let Action::Host(ops) = a else { continue };
            for c in self.plan.changes.iter().filter(|c| c.target == "host") {
                let writes: Vec<(&Option<String>, &String)> = ops
                    .iter()
                    .filter_map(|op| match op {
                        crate::host::HostOp::Write {
                            key,
                            before,
                            value,
                            reassert: false,
                        } if key.path() == c.path => Some((before, value)),
                        _ => None,
                    })
                    .collect();
                let (Some(first), Some(last)) = (writes.first(), writes.last()) else {
                    continue;
                };
                if *first.0 != c.before || Some(last.1) != c.after.as_ref() {
                    return Err(format!(
                        "host: {}: shown as {} → {}, but the plan writes {}",
                        c.path,
                        c.before.as_deref().unwrap_or("(absent)"),
                        c.after.as_deref().unwrap_or("(absent)"),
                        last.1
                    ));
                }
            }
        }
        Ok(())
    }

    /// The desired state the plan was made from (to re-observe the same targets and verify).
    pub fn desired(
        &self,
        hostname: &str,
    ) -> Result<crate::desired::Desired, crate::config::ConfigErrors> {
        let sources: Vec<_> = self
            .config
            .iter()
            .map(|c| crate::config::source::SourceFile::from_text(&c.path, &c.text))
            .collect();
        crate::desired::load_sources_for(&sources, Some(hostname))
    }

    /// Refuses the plan when any target's state moved since it was made.
    pub fn check_current(
        &self,
        obs: &Observed,
        desired: &crate::desired::Desired,
    ) -> Result<(), SavedPlanError> {
        let moved = self.moved(&fingerprints(obs, !desired.host.is_empty()));
        if moved.is_empty() {
            Ok(())
        } else {
            Err(SavedPlanError::Stale(moved))
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("saved plan serializes") + "\n"
    }

    /// Parses a saved plan, checking its kind and format version first.
    pub fn from_json(text: &str) -> Result<SavedPlan, SavedPlanError> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SavedPlanError::Parse(e.to_string()))?;
        if v.get("kind").and_then(|k| k.as_str()) != Some(KIND) {
            return Err(SavedPlanError::Parse(format!("`kind` is not `{KIND}`")));
        }
        let found = match v.get("format_version") {
            None => return Err(SavedPlanError::Parse("no `format_version`".into())),
            Some(f) => f,
        };
        if found.as_u64() != Some(FORMAT_VERSION as u64) {
            return Err(SavedPlanError::Version {
                found: crate::model::names::printable(&found.to_string(), 40),
            });
        }
        let mut s: SavedPlan =
            serde_json::from_value(v).map_err(|e| SavedPlanError::Parse(e.to_string()))?;
        s.plan.actions = s.actions.clone();
        s.plan.lock = s.lock.clone();
        s.plan.inputs = s.inputs;
        Ok(s)
    }

    /// Refuses a plan made on another host, against another URI or root.
    pub fn check_origin(&self, o: &Origin) -> Result<(), SavedPlanError> {
        let (hostname, uri, root) = (o.hostname.as_str(), o.uri.as_str(), o.root.as_str());
        if self.hostname != hostname {
            return Err(SavedPlanError::OtherHost {
                planned: self.hostname.clone(),
                here: hostname.into(),
            });
        }
        if self.uri != uri {
            return Err(SavedPlanError::OtherUri {
                planned: self.uri.clone(),
                here: uri.into(),
            });
        }
        if self.root != root {
            return Err(SavedPlanError::OtherRoot {
                planned: self.root.clone(),
                here: root.into(),
            });
        }
        Ok(())
    }

    /// Targets whose fingerprint differs from `now` (or appeared / disappeared).
    pub fn moved(&self, now: &BTreeMap<String, String>) -> Vec<String> {
        let mut keys: Vec<&String> = self.fingerprints.keys().chain(now.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter(|k| self.fingerprints.get(*k) != now.get(*k))
            .cloned()
            .collect()
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Length-prefixed field, so that concatenations cannot collide.
fn field(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// The part of a host file the plan depends on: counters that move on their own
/// (memory statistics, module use counts, KSM sharing, unrelated mounts) are reduced to
/// what planning reads from them.
fn host_relevant(file: &str, content: &str) -> String {
    match file {
        crate::host::MEMINFO => content
            .lines()
            .filter(|l| l.starts_with("Hugepagesize:"))
            .collect::<Vec<_>>()
            .join("\n"),
        "proc/modules" => content
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect::<Vec<_>>()
            .join("\n"),
        "proc/mounts" => content
            .lines()
            .filter(|l| l.contains("hugetlbfs"))
            .collect::<Vec<_>>()
            .join("\n"),
        f if f.ends_with("ksm/pages_shared") => {
            if content.trim() == "0" {
                "0".into()
            } else {
                "shared".into()
            }
        }
        _ => content.to_string(),
    }
}

/// SHA-256 of every observed target: the host's files and directory listings (when the host is
/// declared or guests needed host files, such as the default huge page size); each declared
/// guest's persistent XML, live XML and active flag (or its absence); each declared network's
/// persistent XML, active and autostart flags (or its absence).
pub fn fingerprints(obs: &Observed, host_declared: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if host_declared || !obs.host.files.is_empty() || !obs.host.dirs.is_empty() {
        let mut h = Sha256::new();
        for (f, c) in &obs.host.files {
            field(&mut h, f);
            match c {
                Some(c) => field(&mut h, &host_relevant(f, c)),
                None => h.update([0xff]),
            }
        }
        for (d, l) in &obs.host.dirs {
            field(&mut h, d);
            match l {
                Some(l) if d == "usr/sbin" => {
                    let has = |p: &str| l.iter().any(|n| n == p);
                    field(
                        &mut h,
                        &format!("{} {}", has("tuned-adm"), has("irqbalance")),
                    )
                }
                Some(l) => field(&mut h, &l.join("\n")),
                None => h.update([0xff]),
            }
        }
        out.insert("host".to_string(), hex(&h.finalize()));
    }
    for (name, g) in &obs.guests {
        let target = match crate::desired::DomainName::new(name) {
            Ok(n) => guest_target(&n),
            Err(_) => format!("guest/{name}"),
        };
        let mut h = Sha256::new();
        match g {
            None => h.update(b"absent"),
            Some(g) => {
                field(&mut h, &g.uuid);
                field(&mut h, &g.xml);
                field(&mut h, g.live_xml.as_deref().unwrap_or(""));
                h.update([g.active as u8]);
            }
        }
        out.insert(target, hex(&h.finalize()));
    }
    for (name, n) in &obs.networks {
        let mut h = Sha256::new();
        match n {
            None => h.update(b"absent"),
            Some(n) => {
                field(&mut h, &n.xml);
                h.update([n.active as u8, n.autostart as u8]);
            }
        }
        out.insert(format!("network/{name}"), hex(&h.finalize()));
    }
    out
}

/// The machine's hostname (`/proc/sys/kernel/hostname`, else `$HOSTNAME`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Seconds since the epoch → (`2026-11-26T22:46:07Z`, `20261126T224607Z`).
pub fn utc(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    (
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
        format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z"),
    )
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// JSON Schema of the saved plan file, pretty, with a trailing newline.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(SavedPlan);
    serde_json::to_string_pretty(&schema).expect("schema serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats() {
        assert_eq!(utc(0).0, "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_795_733_167).1, "20261126T224607Z");
        assert_eq!(utc(951_782_400).0, "2000-02-29T00:00:00Z");
    }

    fn sample() -> SavedPlan {
        let d =
            crate::desired::load_str("t.yaml", "host:\n  sysctl: { vm.swappiness: 1 }\n").unwrap();
        let mut obs = Observed::default();
        obs.host
            .files
            .insert("proc/sys/vm/swappiness".into(), Some("60\n".into()));
        let plan = crate::pipeline::plan(&d, &obs);
        assert!(!plan.actions.is_empty());
        let origin = Origin {
            hostname: "hv-1".into(),
            uri: "qemu:///system".into(),
            root: "/".into(),
        };
        SavedPlan::new(&plan, &obs, &d, &[], origin, Default::default())
    }

    #[test]
    fn a_saved_plan_round_trips_with_its_actions() {
        let s = sample();
        assert!(!s.actions.is_empty());
        let back = SavedPlan::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.plan.actions, s.actions);
    }

    #[test]
    fn origin_and_staleness_checks() {
        let s = sample();
        let o = |h: &str, u: &str| Origin {
            hostname: h.into(),
            uri: u.into(),
            root: "/".into(),
        };
        assert!(s.check_origin(&o("hv-1", "qemu:///system")).is_ok());
        assert!(matches!(
            s.check_origin(&o("hv-2", "qemu:///system")),
            Err(SavedPlanError::OtherHost { .. })
        ));
        assert!(matches!(
            s.check_origin(&o("hv-1", "qemu:///session")),
            Err(SavedPlanError::OtherUri { .. })
        ));
        let mut now = s.fingerprints.clone();
        assert!(s.moved(&now).is_empty());
        now.insert("host".into(), "x".into());
        now.insert("guest/new".into(), "y".into());
        assert_eq!(s.moved(&now), ["guest/new", "host"]);
        let bad = s.to_json().replace("kvmtune-saved-plan", "other");
        assert!(matches!(
            SavedPlan::from_json(&bad),
            Err(SavedPlanError::Parse(_))
        ));
    }

    #[test]
    fn volatile_host_counters_do_not_move_the_fingerprint() {
        assert_eq!(
            host_relevant("proc/meminfo", "MemFree: 1 kB\nHugepagesize: 2048 kB\n"),
            host_relevant("proc/meminfo", "MemFree: 2 kB\nHugepagesize: 2048 kB\n")
        );
        assert_ne!(
            host_relevant("sys/kernel/mm/ksm/pages_shared", "0\n"),
            host_relevant("sys/kernel/mm/ksm/pages_shared", "12\n")
        );
    }
}
