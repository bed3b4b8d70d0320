//! Drift as Prometheus metrics (`kvmtune verify --format prometheus`, `--textfile`).
//!
//! Invariant: pure. [`collect`] is a function of what verify, a read-only plan, the newest
//! apply record and the isolation findings say; [`Metrics::render`] writes the text exposition
//! format (0.0.4) in a fixed order — families by name, series by label values — with `# HELP`
//! and `# TYPE` for every family and every label value escaped, so the same inputs give the
//! same bytes. Names follow Prometheus conventions: `kvmtune_` prefix, snake_case, the unit
//! in the name (`_seconds`), no `_total` (every family is a gauge).
//!
//! A declared setting is in sync when nothing kvmtune owns for it differs from the
//! declaration: its runtime value and its persisted line (host), its definition (the plan),
//! what the running guest has (verify's checks) and what waits for a restart (pending).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::desired::Desired;
use crate::plan::Plan;
use crate::state::LastApply;
use crate::verify::{GuestState, Report};

/// What isolation verification found on the host CPUs reserved for guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IntruderKind {
    /// A host thread allowed on a guest's CPUs.
    Thread,
    /// An IRQ whose affinity includes a guest's CPUs.
    Irq,
    /// A vCPU thread of one guest on another guest's dedicated CPUs.
    Vcpu,
}

impl IntruderKind {
    pub const ALL: [IntruderKind; 3] =
        [IntruderKind::Thread, IntruderKind::Irq, IntruderKind::Vcpu];

    pub fn as_str(self) -> &'static str {
        match self {
            IntruderKind::Thread => "thread",
            IntruderKind::Irq => "irq",
            IntruderKind::Vcpu => "vcpu",
        }
    }
}

/// A source of isolation findings: how many intruders of each kind it saw.
pub trait IsolationFindings {
    fn intruders(&self, kind: IntruderKind) -> u64;
}

/// No isolation check ran (or none is declared): zero of each kind.
pub struct NoFindings;

impl IsolationFindings for NoFindings {
    fn intruders(&self, _kind: IntruderKind) -> u64 {
        0
    }
}

/// Verify's isolation checks: one failing check per intruder, under its kind's setting.
impl IsolationFindings for Report {
    fn intruders(&self, kind: IntruderKind) -> u64 {
        use crate::verify::isolation::{IRQS, OTHER_GUESTS, THREADS};
        let setting = match kind {
            IntruderKind::Thread => THREADS,
            IntruderKind::Irq => IRQS,
            IntruderKind::Vcpu => OTHER_GUESTS,
        };
        self.host
            .iter()
            .filter(|c| !c.ok && c.setting == setting)
            .count() as u64
    }
}

/// Everything the metrics are made of. `None` parts could not be read (the error is the
/// caller's to say): their families are left out and `kvmtune_verify_success` is 0.
pub struct Inputs<'a> {
    pub desired: Option<&'a Desired>,
    pub plan: Option<&'a Plan>,
    pub verify: Option<&'a Report>,
    pub last_apply: Option<&'a LastApply>,
    pub isolation: &'a dyn IsolationFindings,
    /// Whether every part was read.
    pub success: bool,
    pub duration_secs: Option<f64>,
}

/// One metric family: a gauge with fixed label names.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub help: &'static str,
    pub labels: &'static [&'static str],
    /// Label values (in `labels` order) → value.
    pub series: BTreeMap<Vec<String>, f64>,
}

/// Metric families by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub families: BTreeMap<&'static str, Family>,
}

impl Metrics {
    fn family(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> &mut Family {
        self.families.entry(name).or_insert_with(|| Family {
            help,
            labels,
            series: BTreeMap::new(),
        })
    }

    fn set(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.family(name, help, &[])
            .series
            .insert(Vec::new(), value);
    }

    /// One series' value, for tests and callers that check a value.
    pub fn value(&self, name: &str, labels: &[&str]) -> Option<f64> {
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        self.families.get(name)?.series.get(&key).copied()
    }

    /// The text exposition format; a family without series is left out.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, f) in self.families.iter().filter(|(_, f)| !f.series.is_empty()) {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(f.help));
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (values, v) in &f.series {
                out.push_str(name);
                if !values.is_empty() {
                    let pairs: Vec<String> = f
                        .labels
                        .iter()
                        .zip(values)
                        .map(|(l, v)| format!("{l}=\"{}\"", escape_label(v)))
                        .collect();
                    let _ = write!(out, "{{{}}}", pairs.join(","));
                }
                let _ = writeln!(out, " {}", number(*v));
            }
        }
        out
    }
}

/// Integers without a fraction; others with microsecond precision.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.6}")
    }
}

/// A label value: `\`, `"` and newline escaped (the exposition format's rules).
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The setting a plan path names: `sysctl.vm.swappiness (persisted)` → `sysctl.vm.swappiness`.
pub fn setting_of(path: &str) -> &str {
    path.strip_suffix(" (persisted)")
        .or_else(|| path.strip_suffix(" (boot)"))
        .unwrap_or(path)
}

const IN_SYNC: &str = "kvmtune_setting_in_sync";

/// In sync (1) or drifting (0), per (target, setting); a setting is in sync only when every
/// source agrees.
fn settings(i: &Inputs) -> BTreeMap<(String, String), bool> {
    let mut s: BTreeMap<(String, String), bool> = BTreeMap::new();
    let mut put = |target: &str, setting: &str, ok: bool| {
        *s.entry((target.to_string(), setting.to_string()))
            .or_insert(true) &= ok;
    };
    if let Some(d) = i.desired {
        for k in crate::host::declared_settings(&d.host) {
            put("host", &k, true);
        }
    }
    if let Some(r) = i.verify {
        for g in &r.guests {
            for c in &g.checks {
                put(&format!("guest/{}", g.name), &c.setting, c.ok);
            }
        }
    }
    if let Some(p) = i.plan {
        for c in &p.changes {
            put(&c.target, setting_of(&c.path), false);
        }
        for c in &p.pending_restart {
            put(&c.target, setting_of(&c.path), false);
        }
        // A declared setting that cannot be planned is not in sync either.
        for e in &p.errors {
            let prefix = match e.target.strip_prefix("guest/") {
                Some(g) => format!("guests.{g}."),
                None => format!("{}.", e.target),
            };
            if let Some(k) = e.key.strip_prefix(&prefix) {
                let key = (e.target.clone(), k.to_string());
                if let Some(v) = s.get_mut(&key) {
                    *v = false;
                }
            }
        }
    }
    s
}

/// The targets of the configuration: `host`, then `guest/<name>` by name.
fn targets(d: &Desired) -> Vec<String> {
    std::iter::once("host".to_string())
        .chain(d.guests.keys().map(crate::model::guest_target))
        .collect()
}

/// All metrics from what was read. Pure.
pub fn collect(i: &Inputs) -> Metrics {
    let mut m = Metrics::default();
    let sync = settings(i);
    {
        let f = m.family(
            IN_SYNC,
            "Whether a declared setting is in effect as declared (1) or drifts (0): runtime value, persisted value, guest definition and running guest.",
            &["target", "setting"],
        );
        for ((t, k), ok) in &sync {
            f.series
                .insert(vec![t.clone(), k.clone()], *ok as u8 as f64);
        }
    }
    if let Some(d) = i.desired {
        if i.plan.is_some() {
            drifting(&mut m, d, i.plan, &sync);
        }
        guests(&mut m, d, i);
    }
    let f = m.family(
        "kvmtune_isolation_intruders",
        "Threads, IRQs and vCPUs found on host CPUs reserved for other guests.",
        &["kind"],
    );
    for k in IntruderKind::ALL {
        f.series.insert(
            vec![k.as_str().to_string()],
            i.isolation.intruders(k) as f64,
        );
    }
    if let Some(a) = i.last_apply {
        m.set(
            "kvmtune_last_apply_timestamp_seconds",
            "When the newest apply (or rollback) that changed something ended (started, if it did not finish), in seconds since the epoch.",
            a.unix as f64,
        );
        m.set(
            "kvmtune_last_apply_success",
            "Whether the newest apply (or rollback) finished with every target applied.",
            a.result.as_ref().is_some_and(|r| r.ok) as u8 as f64,
        );
    }
    m.set(
        "kvmtune_verify_success",
        "Whether the configuration, the host, the hypervisor and the apply records could all be read.",
        i.success as u8 as f64,
    );
    if let Some(s) = i.duration_secs {
        m.set(
            "kvmtune_verify_duration_seconds",
            "How long collecting these metrics took.",
            s,
        );
    }
    m
}

fn drifting(
    m: &mut Metrics,
    d: &Desired,
    plan: Option<&Plan>,
    sync: &BTreeMap<(String, String), bool>,
) {
    let mut count: BTreeMap<String, f64> = targets(d).into_iter().map(|t| (t, 0.0)).collect();
    for ((t, _), ok) in sync {
        if !ok {
            *count.entry(t.clone()).or_default() += 1.0;
        }
    }
    let f = m.family(
        "kvmtune_settings_drifting",
        "How many declared settings of a target drift.",
        &["target"],
    );
    for (t, n) in &count {
        f.series.insert(vec![t.clone()], *n);
    }
    let mut errors: BTreeMap<String, f64> = targets(d).into_iter().map(|t| (t, 0.0)).collect();
    for e in plan.map(|p| p.errors.as_slice()).unwrap_or_default() {
        *errors.entry(e.target.clone()).or_default() += 1.0;
    }
    let f = m.family(
        "kvmtune_plan_errors",
        "Declared settings of a target that cannot be planned (a missing guest, a sysctl this kernel lacks, a rule the configuration breaks).",
        &["target"],
    );
    for (t, n) in errors {
        f.series.insert(vec![t], n);
    }
}

fn guests(m: &mut Metrics, d: &Desired, i: &Inputs) {
    if let Some(p) = i.plan {
        let f = m.family(
            "kvmtune_pending_restart",
            "Whether a guest has settings in its definition that are in effect only after its next restart.",
            &["guest"],
        );
        for name in d.guests.keys() {
            let t = crate::model::guest_target(name);
            let pending = p.pending_restart.iter().any(|c| c.target == t);
            f.series
                .insert(vec![name.to_string()], pending as u8 as f64);
        }
    }
    if let Some(r) = i.verify {
        let f = m.family(
            "kvmtune_guest_running",
            "Whether a declared guest is running.",
            &["guest"],
        );
        for g in &r.guests {
            let running = g.state == GuestState::Running;
            f.series.insert(vec![g.name.clone()], running as u8 as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_order_is_fixed() {
        let mut m = Metrics::default();
        let f = m.family("kvmtune_b", "b\\ help\nmore", &["x"]);
        f.series.insert(vec!["q\"uo\\te\nnl".into()], 1.0);
        f.series.insert(vec!["a".into()], 0.5);
        m.set("kvmtune_a", "a", 3.0);
        assert_eq!(
            m.render(),
            "# HELP kvmtune_a a\n# TYPE kvmtune_a gauge\nkvmtune_a 3\n\
             # HELP kvmtune_b b\\\\ help\\nmore\n# TYPE kvmtune_b gauge\n\
             kvmtune_b{x=\"a\"} 0.500000\nkvmtune_b{x=\"q\\\"uo\\\\te\\nnl\"} 1\n"
        );
    }

    #[test]
    fn persisted_and_boot_paths_name_their_setting() {
        assert_eq!(
            setting_of("sysctl.vm.swappiness (persisted)"),
            "sysctl.vm.swappiness"
        );
        assert_eq!(setting_of("hugepages.1G (boot)"), "hugepages.1G");
        assert_eq!(setting_of("cputune.vcpupin.0"), "cputune.vcpupin.0");
    }

    #[test]
    fn a_setting_drifts_when_any_source_says_so() {
        let d = crate::desired::load_str(
            "t.yaml",
            "host:\n  sysctl: { vm.swappiness: 10, vm.dirty_ratio: 40 }\n",
        )
        .unwrap();
        let mut p = crate::plan::plan(
            &d,
            &crate::observe::Observed::default(),
            Default::default(),
            Default::default(),
        );
        p.errors.clear();
        p.changes = vec![crate::model::Change {
            target: "host".into(),
            path: "sysctl.vm.swappiness (persisted)".into(),
            before: None,
            after: Some("10".into()),
            effect: crate::model::Effect::Live,
        }];
        let i = Inputs {
            desired: Some(&d),
            plan: Some(&p),
            verify: None,
            last_apply: None,
            isolation: &NoFindings,
            success: true,
            duration_secs: None,
        };
        let m = collect(&i);
        assert_eq!(
            m.value(IN_SYNC, &["host", "sysctl.vm.swappiness"]),
            Some(0.0)
        );
        assert_eq!(
            m.value(IN_SYNC, &["host", "sysctl.vm.dirty_ratio"]),
            Some(1.0)
        );
        assert_eq!(m.value("kvmtune_settings_drifting", &["host"]), Some(1.0));
        assert_eq!(m.value("kvmtune_isolation_intruders", &["irq"]), Some(0.0));
        assert_eq!(m.value("kvmtune_last_apply_success", &[]), None);
    }
}
