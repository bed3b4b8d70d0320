//! `host.tuned.profile`: the active tuned profile, switched with `tuned-adm profile` and
//! checked with `tuned-adm verify`.
//!
//! Invariants: tuned counts as installed when /usr/sbin/tuned-adm exists below the root (that
//! is the program run); the known profiles are the directories with a `tuned.conf` under
//! /usr/lib/tuned and /etc/tuned (what `tuned-adm list` shows), so an unknown profile is an
//! error listing them even where tuned cannot run; the active profile is /etc/tuned/active_profile.
//! The switch runs before every other runtime write, and when it is planned all declared
//! runtime values are written again after it (tuned may have changed them).
//!
//! Done the tuned way: when the declared profile (through its `include=` chain, read from its
//! files and never evaluated) sets a value the configuration declares otherwise — a
//! `[sysctl]` key, `[vm]` transparent huge pages, or `[variables] isolated_cores` (derived
//! from `host.cpu_pool.reserved`: the online CPUs outside it) — kvmtune writes its own
//! child profile, /etc/tuned/kvmtune/tuned.conf (`include=<declared>` plus exactly those
//! values), before the switch, and activates `kvmtune` instead, so tuned itself sets what the
//! configuration says and `tuned-adm verify` holds. Without such a value (or with
//! `persist: false`, which writes nothing under /etc) the declared profile is activated
//! directly, as before. A changed child that is already active is activated again (tuned
//! reloads it). Rollback restores the recorded profile and child file as they were.

use std::collections::BTreeSet;
use std::path::Path;

pub use super::ops::{TUNED_ACTIVE as ACTIVE, TUNED_ADM};
use super::persist::{Entry, OwnedFile, PersistKey};
use super::tuned_include::{resolve, Resolved, Setting};
use super::{Builder, HostChange, HostObserved, HostOp, Reads};
use crate::cpuset::CpuSet;
use crate::desired::HostDesired;
pub use crate::model::keys::{TUNED_CHILD as CHILD, TUNED_CHILD_CONF as CHILD_CONF};
use crate::model::{Effect, OwnedFileKind, ProfileName, Readback, TunedVariable, TunedVmOption};
/// Where tuned looks for profiles, in its order: a profile under /etc/tuned wins.
pub const PROFILE_DIRS: [&str; 2] = ["usr/lib/tuned", "etc/tuned"];
/// The online CPUs (for `isolated_cores`).
pub const CPU_ONLINE: &str = "sys/devices/system/cpu/online";

pub fn reads(d: &HostDesired, r: &mut Reads) {
    if d.tuned_profile.is_none() {
        return;
    }
    r.files.insert(ACTIVE.into());
    if d.cpu_pool.reserved.is_some() {
        r.files.insert(CPU_ONLINE.into());
    }
    r.dirs.insert("usr/sbin".into());
    for dir in PROFILE_DIRS {
        r.dirs.insert(dir.into());
    }
}

fn candidates(obs: &HostObserved) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for dir in PROFILE_DIRS {
        for name in obs.dir(dir).unwrap_or_default() {
            v.push((name.clone(), format!("{dir}/{name}/tuned.conf")));
        }
    }
    v
}

pub fn reads_after(d: &HostDesired, obs: &HostObserved, more: &mut BTreeSet<String>) {
    if d.tuned_profile.is_some() {
        more.extend(candidates(obs).into_iter().map(|(_, f)| f));
    }
}

/// Profiles tuned knows on this root.
pub fn profiles(obs: &HostObserved) -> BTreeSet<String> {
    candidates(obs)
        .into_iter()
        .filter(|(_, f)| obs.file(f).is_some())
        .map(|(n, _)| n)
        .collect()
}

/// The validation-time check: `Some(message)` when the profile is unknown on this root
/// (only when some profile directory exists; a host without tuned is a plan error instead).
pub fn profile_issue(root: &Path, d: &HostDesired) -> std::io::Result<Option<String>> {
    let Some(p) = &d.tuned_profile else {
        return Ok(None);
    };
    let only = HostDesired {
        tuned_profile: Some(p.clone()),
        runtime_only: true,
        ..Default::default()
    };
    let obs = super::observe(root, &only, Default::default())?;
    let known = profiles(&obs);
    if known.is_empty() {
        return Ok(None);
    }
    if !known.contains(p.as_str()) {
        return Ok(Some(unknown(p, &known)));
    }
    let found = lookup(&obs);
    let issue = resolve(p.as_str(), &found).err().map(|e| e.to_string());
    Ok(issue)
}

/// A profile's file as tuned finds it (`/etc/tuned` first) and its content.
fn lookup(obs: &HostObserved) -> impl Fn(&str) -> Option<(String, String)> + '_ {
    move |name: &str| {
        PROFILE_DIRS.iter().rev().find_map(|dir| {
            let f = format!("{dir}/{name}/tuned.conf");
            obs.file(&f).map(|c| (format!("/{f}"), c.to_string()))
        })
    }
}

/// A value the configuration declares that the profile sets otherwise: the child profile's
/// line that sets the declared value instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The YAML key below `host` it comes from.
    pub key: Vec<String>,
    pub entry: Entry,
    /// The profile's own value (opaque text) and the profile in the chain whose file sets it.
    pub profile: Setting,
}

impl Override {
    /// The setting as named in tuned's file (`vm.swappiness`, `isolated_cores`).
    pub fn name(&self) -> String {
        self.entry
            .file_key()
            .split_once('.')
            .map_or_else(String::new, |(_, o)| o.to_string())
    }
}

/// Why a child profile cannot be planned: the YAML key below `host` and the message.
pub type ChildIssue = (Vec<String>, String);

/// What the configuration overrides in profile `p` (through its includes), in the child
/// profile's order. Empty: the profile can be activated as it is.
pub fn overrides(
    d: &HostDesired,
    obs: &HostObserved,
    p: &ProfileName,
) -> Result<Vec<Override>, ChildIssue> {
    let key = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let r = resolve(p.as_str(), &lookup(obs))
        .map_err(|e| (key(&["tuned", "profile"]), e.to_string()))?;
    let mut out = isolated_cores(d, obs, p, &r)?;
    for (k, v) in &d.sysctl {
        let Some(s) = r.get("sysctl", &k.to_string()) else {
            continue;
        };
        if Readback::Tokens.canonical(&s.value) != Readback::Tokens.canonical(v) {
            out.push(Override {
                key: key(&["sysctl", &k.to_string()]),
                entry: Entry {
                    key: PersistKey::TunedSysctl { key: k.clone() },
                    value: Readback::Tokens.canonical(v),
                },
                profile: s.clone(),
            });
        }
    }
    let thp = [
        (
            crate::model::ThpKnob::Enabled,
            d.thp_enabled.map(|v| v.as_str()),
        ),
        (
            crate::model::ThpKnob::Defrag,
            d.thp_defrag.map(|v| v.as_str()),
        ),
    ];
    for (knob, want) in thp {
        let Some(want) = want else { continue };
        for option in TunedVmOption::ALL.into_iter().filter(|o| o.knob() == knob) {
            match r.get("vm", option.as_str()) {
                Some(s) if s.value.trim() != want => out.push(Override {
                    key: key(&["transparent_hugepage", knob.as_str()]),
                    entry: Entry {
                        key: PersistKey::TunedVm { option },
                        value: want.to_string(),
                    },
                    profile: s.clone(),
                }),
                _ => {}
            }
        }
    }
    Ok(out)
}

/// `isolated_cores` when the profile takes it (cpu-partitioning, realtime and their children)
/// and `host.cpu_pool.reserved` is declared: the online CPUs outside the reserved ones.
fn isolated_cores(
    d: &HostDesired,
    obs: &HostObserved,
    p: &ProfileName,
    r: &Resolved,
) -> Result<Vec<Override>, ChildIssue> {
    let (Some(reserved), Some(s)) = (&d.cpu_pool.reserved, r.get("variables", "isolated_cores"))
    else {
        return Ok(Vec::new());
    };
    let key = vec!["cpu_pool".to_string(), "reserved".to_string()];
    let online = obs
        .file(CPU_ONLINE)
        .ok_or_else(|| {
            (
                key.clone(),
                format!("tuned profile `{p}` takes isolated_cores, derived from the online CPUs, but /{CPU_ONLINE} does not exist"),
            )
        })?
        .trim()
        .parse::<CpuSet>()
        .map_err(|e| (key.clone(), format!("/{CPU_ONLINE}: {e}")))?;
    let iso = online.without(reserved).ok_or_else(|| {
        (
            key.clone(),
            format!("tuned profile `{p}` needs isolated_cores, but host.cpu_pool.reserved ({reserved}) covers every online CPU ({online})"),
        )
    })?;
    if s.value.trim() == iso.to_string() {
        return Ok(Vec::new());
    }
    Ok(vec![Override {
        key,
        entry: Entry {
            key: PersistKey::TunedVariable {
                name: TunedVariable::IsolatedCores,
            },
            value: iso.to_string(),
        },
        profile: s.clone(),
    }])
}

/// Whether `value` can be the child profile's `isolated_cores` for `d` (saved plans: the
/// online CPUs it was derived from are checked by the plan's fingerprint of the host).
pub fn isolated_cores_declared(d: &HostDesired, value: &str) -> bool {
    let (Some(reserved), Ok(set)) = (&d.cpu_pool.reserved, value.parse::<CpuSet>()) else {
        return false;
    };
    d.tuned_profile.is_some() && !set.intersects(reserved)
}

/// Plans the child profile's file (a step before the switch); returns whether it changes.
fn child_file(obs: &HostObserved, b: &mut Builder, entries: Vec<Entry>, forced: bool) -> bool {
    let f = OwnedFile::with_entries(OwnedFileKind::TunedProfile, entries);
    let (changes, op) = if forced {
        f.plan_forced(obs.file(f.file))
    } else {
        f.plan(obs.file(f.file))
    };
    changes.into_iter().for_each(|c| b.change(c));
    let changed = op.is_some();
    if let Some(op) = op {
        b.pre(op);
    }
    changed
}

fn unknown(p: &ProfileName, known: &BTreeSet<String>) -> String {
    format!(
        "tuned has no profile `{p}`; available: {}",
        known.iter().cloned().collect::<Vec<_>>().join(", ")
    )
}

/// Where the child profile comes from.
#[derive(Debug, Clone, Copy)]
pub enum Child<'a> {
    /// Derived from the configuration and the profile's files.
    Derive,
    /// Rollback: the recorded profile is activated as it is, and the child file gets its
    /// recorded entries back (`None`: the apply did not write it).
    Recorded(Option<&'a [Entry]>),
}

/// Returns whether a profile switch is planned.
pub fn plan(d: &HostDesired, obs: &HostObserved, b: &mut Builder, child: Child) -> bool {
    let Some(p) = &d.tuned_profile else {
        if let Child::Recorded(Some(e)) = child {
            child_file(obs, b, e.to_vec(), true);
        }
        return false;
    };
    let key = vec!["tuned".to_string(), "profile".to_string()];
    let installed = obs
        .dir("usr/sbin")
        .is_some_and(|v| v.iter().any(|n| n == "tuned-adm"));
    if !installed {
        b.issue(
            key,
            format!("tuned is not installed on this host (/{TUNED_ADM} does not exist): install the tuned package or remove host.tuned"),
        );
        return false;
    }
    let known = profiles(obs);
    if !known.contains(p.as_str()) {
        b.issue(key, unknown(p, &known));
        return false;
    }
    let (target, file_changed) = match child {
        Child::Recorded(e) => (
            p.clone(),
            e.is_some_and(|e| child_file(obs, b, e.to_vec(), true)),
        ),
        Child::Derive if p.as_str() == CHILD => {
            b.issue(key, format!("`{CHILD}` is kvmtune's own child profile: declare the profile it should include"));
            return false;
        }
        Child::Derive => match overrides(d, obs, p) {
            Err((k, msg)) => {
                b.issue(k, msg);
                return false;
            }
            Ok(o) if o.is_empty() || d.runtime_only => (p.clone(), false),
            Ok(o) => {
                let mut entries = vec![Entry {
                    key: PersistKey::TunedInclude,
                    value: p.to_string(),
                }];
                entries.extend(o.into_iter().map(|o| o.entry));
                let child = ProfileName::new(CHILD).expect("a profile name");
                (child, child_file(obs, b, entries, false))
            }
        },
    };
    let active = obs
        .file(ACTIVE)
        .map(|a| a.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|a| !a.is_empty());
    let reload = file_changed && target.as_str() == CHILD;
    if active.as_deref() == Some(target.as_str()) && !reload {
        return false;
    }
    let after = if active.as_deref() == Some(target.as_str()) {
        format!("{target} (reloaded: its tuned.conf changes)")
    } else {
        target.to_string()
    };
    b.change(HostChange {
        path: "tuned.profile".into(),
        before: active.clone(),
        after: Some(after),
        effect: Effect::Live,
    });
    b.pre(HostOp::Tuned {
        before: active,
        profile: target,
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{plan_host, undeclared};

    const REAL: [&str; 8] = [
        "virtual-host",
        "virtual-guest",
        "throughput-performance",
        "cpu-partitioning",
        "realtime-virtual-host",
        "realtime",
        "network-latency",
        "latency-performance",
    ];

    /// A host with tuned, the real profiles under /usr/lib/tuned, 8 online CPUs.
    fn host(active: &str, extra: &[(&str, &str)]) -> HostObserved {
        let mut o = HostObserved::default();
        let mut put = |f: &str, c: &str| {
            o.files.insert(f.to_string(), Some(c.to_string()));
        };
        for p in REAL {
            let f = format!(
                "{}/tests/data/tuned/{p}/tuned.conf",
                env!("CARGO_MANIFEST_DIR")
            );
            put(
                &format!("usr/lib/tuned/{p}/tuned.conf"),
                &std::fs::read_to_string(f).unwrap(),
            );
        }
        put(ACTIVE, active);
        put(CPU_ONLINE, "0-7\n");
        put("proc/sys/vm/swappiness", "60\n");
        put("proc/sys/vm/dirty_ratio", "40\n");
        put(
            "sys/kernel/mm/transparent_hugepage/enabled",
            "always [madvise] never\n",
        );
        for (f, c) in extra {
            put(f, c);
        }
        let mut etc: Vec<String> = o
            .files
            .keys()
            .filter_map(|f| {
                f.strip_prefix("etc/tuned/")?
                    .split_once('/')
                    .map(|(p, _)| p.to_string())
            })
            .collect();
        etc.dedup();
        o.dirs
            .insert("usr/sbin".into(), Some(vec!["tuned-adm".into()]));
        o.dirs.insert(
            "usr/lib/tuned".into(),
            Some(REAL.iter().map(|s| s.to_string()).collect()),
        );
        o.dirs.insert("etc/tuned".into(), Some(etc));
        o
    }

    fn desired(yaml: &str) -> HostDesired {
        crate::desired::load_str("t.yaml", yaml).unwrap().host
    }

    fn child_of(p: &crate::host::HostPlan) -> Option<&Vec<Entry>> {
        p.ops.iter().find_map(|op| match op {
            HostOp::OwnedFile {
                file: OwnedFileKind::TunedProfile,
                entries,
                ..
            } => Some(entries),
            _ => None,
        })
    }

    fn switch_of(p: &crate::host::HostPlan) -> Option<String> {
        p.ops.iter().find_map(|op| match op {
            HostOp::Tuned { profile, .. } => Some(profile.to_string()),
            _ => None,
        })
    }

    #[test]
    fn a_declared_sysctl_the_profile_sets_goes_into_the_child_profile_which_becomes_active() {
        let d = desired("host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 7, vm.dirty_ratio: 40 }\n");
        let o = host("balanced\n", &[]);
        let p = plan_host(&d, &o);
        assert!(p.issues.is_empty(), "{:?}", p.issues);
        // The child file first, then the switch to it, then the runtime writes.
        assert!(matches!(
            &p.ops[0],
            HostOp::OwnedFile {
                file: OwnedFileKind::TunedProfile,
                before: None,
                ..
            }
        ));
        assert!(
            matches!(&p.ops[1], HostOp::Tuned { profile, before } if profile.as_str() == CHILD && before.as_deref() == Some("balanced"))
        );
        let entries = child_of(&p).unwrap();
        let text = OwnedFile::with_entries(OwnedFileKind::TunedProfile, entries.clone()).render();
        assert!(text.ends_with("\n[main]\nsummary=kvmtune: virtual-host with the values kvmtune's configuration declares\ninclude=virtual-host\n\n[sysctl]\nvm.swappiness=7\n"), "{text}");
        // It reads back as the same entries.
        assert_eq!(
            &OwnedFile::entries_of(OwnedFileKind::TunedProfile, &text),
            entries
        );
        let paths: Vec<&str> = p.changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "tuned.kvmtune.include",
                "tuned.kvmtune.sysctl.vm.swappiness",
                "tuned.profile",
                "sysctl.vm.swappiness",
                "sysctl.vm.dirty_ratio (persisted)",
                "sysctl.vm.swappiness (persisted)",
            ]
        );
        for op in &p.ops {
            assert_eq!(undeclared(&d, op, false), None, "{op:?}");
        }

        // Once it is active and the file is kvmtune's: nothing for tuned to do.
        let o2 = host(&format!("{CHILD}\n"), &[(CHILD_CONF, &text)]);
        let p2 = plan_host(&d, &o2);
        assert_eq!(
            (child_of(&p2), switch_of(&p2)),
            (None, None),
            "{:?}",
            p2.changes
        );
        // The declared value changes: the file is rewritten and tuned reloads it.
        let d3 =
            desired("host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 8 }\n");
        let p3 = plan_host(&d3, &o2);
        assert_eq!(switch_of(&p3).as_deref(), Some(CHILD));
        let c = p3
            .changes
            .iter()
            .find(|c| c.path == "tuned.kvmtune.sysctl.vm.swappiness")
            .unwrap();
        assert_eq!(
            (c.before.as_deref(), c.after.as_deref()),
            (Some("7"), Some("8"))
        );
        let t = p3
            .changes
            .iter()
            .find(|c| c.path == "tuned.profile")
            .unwrap();
        assert_eq!(
            t.after.as_deref(),
            Some("kvmtune (reloaded: its tuned.conf changes)")
        );
        // The profile's own value: no child, the profile itself (leaving the child).
        let d4 =
            desired("host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 10 }\n");
        let p4 = plan_host(&d4, &o2);
        assert_eq!(
            (child_of(&p4).is_some(), switch_of(&p4).as_deref()),
            (false, Some("virtual-host"))
        );
    }

    #[test]
    fn without_overrides_or_with_persist_false_the_profile_is_activated_directly() {
        let o = host("\n", &[]);
        for yaml in [
            "host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 10, vm.dirty_ratio: 40 }\n",
            "host:\n  persist: false\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 7 }\n",
            "host:\n  tuned: { profile: virtual-host }\n  cpu_pool: { reserved: \"0\" }\n",
        ] {
            let p = plan_host(&desired(yaml), &o);
            assert!(p.issues.is_empty(), "{yaml}: {:?}", p.issues);
            assert_eq!((child_of(&p), switch_of(&p).as_deref()), (None, Some("virtual-host")), "{yaml}");
        }
        // A profile under /etc/tuned wins over /usr/lib/tuned's.
        let mine = "[main]\ninclude=throughput-performance\n[sysctl]\nvm.swappiness=7\n";
        let o = host("\n", &[("etc/tuned/virtual-host/tuned.conf", mine)]);
        let p = plan_host(
            &desired("host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 7 }\n"),
            &o,
        );
        assert_eq!(
            (child_of(&p), switch_of(&p).as_deref()),
            (None, Some("virtual-host"))
        );
    }

    #[test]
    fn partitioning_profiles_get_isolated_cores_from_cpu_pool_and_thp_overrides() {
        let d = desired("host:\n  tuned: { profile: cpu-partitioning }\n  cpu_pool: { reserved: \"0,4\" }\n  transparent_hugepage: { enabled: madvise }\n");
        let p = plan_host(&d, &host("\n", &[]));
        assert!(p.issues.is_empty(), "{:?}", p.issues);
        let entries = child_of(&p).unwrap();
        let text = OwnedFile::with_entries(OwnedFileKind::TunedProfile, entries.clone()).render();
        assert!(text.ends_with("include=cpu-partitioning\n\n[variables]\nisolated_cores=1-3,5-7\n\n[vm]\ntransparent_hugepages=madvise\n"), "{text}");
        for op in &p.ops {
            assert_eq!(undeclared(&d, op, false), None, "{op:?}");
        }
        let rvh = desired("host:\n  tuned: { profile: realtime-virtual-host }\n  cpu_pool: { reserved: \"0-1\" }\n");
        let p = plan_host(&rvh, &host("\n", &[]));
        let text =
            OwnedFile::with_entries(OwnedFileKind::TunedProfile, child_of(&p).unwrap().clone())
                .render();
        assert!(
            text.ends_with("include=realtime-virtual-host\n\n[variables]\nisolated_cores=2-7\n"),
            "{text}"
        );
        // Nothing left to isolate, or no online list: a plan issue naming the key.
        let all = desired(
            "host:\n  tuned: { profile: cpu-partitioning }\n  cpu_pool: { reserved: \"0-7\" }\n",
        );
        let p = plan_host(&all, &host("\n", &[]));
        assert_eq!(p.issues[0].key, ["cpu_pool", "reserved"]);
        assert!(
            p.issues[0]
                .message
                .contains("covers every online CPU (0-7)"),
            "{:?}",
            p.issues
        );
        let mut o = host("\n", &[]);
        o.files.insert(CPU_ONLINE.into(), None);
        let p = plan_host(&d, &o);
        assert!(
            p.issues[0]
                .message
                .contains("/sys/devices/system/cpu/online does not exist"),
            "{:?}",
            p.issues
        );
    }

    #[test]
    fn bad_profiles_and_the_childs_own_name_are_plan_issues() {
        let o = host(
            "\n",
            &[(
                "etc/tuned/virtual-host/tuned.conf",
                "[main]\ninclude=virtual-host\n",
            )],
        );
        let p = plan_host(
            &desired("host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 7 }\n"),
            &o,
        );
        assert_eq!(p.issues.len(), 1, "{:?}", p.issues);
        assert_eq!(
            p.issues[0].message,
            "tuned profiles include each other in a cycle: virtual-host → virtual-host"
        );
        assert!(p.ops.is_empty() || switch_of(&p).is_none());
        let o = host("\n", &[(CHILD_CONF, "[main]\n")]);
        let p = plan_host(&desired("host:\n  tuned: { profile: kvmtune }\n"), &o);
        assert!(
            p.issues[0].message.contains("kvmtune's own child profile"),
            "{:?}",
            p.issues
        );
    }

    #[test]
    fn saved_plans_may_carry_only_what_the_configuration_derives() {
        let d = desired("host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 7 }\n  cpu_pool: { reserved: \"0\" }\n");
        let file = |key: PersistKey, value: &str| HostOp::OwnedFile {
            file: OwnedFileKind::TunedProfile,
            entries: vec![Entry {
                key,
                value: value.into(),
            }],
            before: None,
            labels: vec![],
        };
        let sysctl = |v: &str| {
            file(
                PersistKey::TunedSysctl {
                    key: crate::model::SysctlKey::new("vm.swappiness").unwrap(),
                },
                v,
            )
        };
        assert_eq!(undeclared(&d, &sysctl("7"), false), None);
        assert!(undeclared(&d, &sysctl("60"), false).is_some());
        assert!(undeclared(&d, &file(PersistKey::TunedInclude, "balanced"), false).is_some());
        let iso = |v: &str| {
            file(
                PersistKey::TunedVariable {
                    name: TunedVariable::IsolatedCores,
                },
                v,
            )
        };
        assert_eq!(undeclared(&d, &iso("1-7"), false), None);
        assert!(undeclared(&d, &iso("0-7"), false).is_some());
        let thp = file(
            PersistKey::TunedVm {
                option: TunedVmOption::TransparentHugepages,
            },
            "never",
        );
        assert!(undeclared(&d, &thp, false).is_some());
        let to = |p: &str| HostOp::Tuned {
            before: None,
            profile: ProfileName::new(p).unwrap(),
        };
        assert_eq!(undeclared(&d, &to(CHILD), false), None);
        assert!(undeclared(&d, &to("balanced"), false).is_some());
        let rt = desired("host:\n  persist: false\n  tuned: { profile: virtual-host }\n");
        assert!(undeclared(&rt, &to(CHILD), false).is_some());
        // Values tuned would evaluate or read as comments never reach the file.
        for bad in ["${f:exec:touch:/x}", "7 # x", ">5"] {
            let e = Entry {
                key: PersistKey::TunedSysctl {
                    key: crate::model::SysctlKey::new("vm.swappiness").unwrap(),
                },
                value: bad.into(),
            };
            assert!(e.check(OwnedFileKind::TunedProfile).is_err(), "{bad}");
        }
        let e = Entry {
            key: PersistKey::TunedInclude,
            value: CHILD.into(),
        };
        assert!(e.check(OwnedFileKind::TunedProfile).is_err());
    }
}
