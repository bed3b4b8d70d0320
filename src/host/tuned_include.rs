//! A tuned profile's settings as tuned merges them: the profile's `include=` chain loaded
//! depth-first, each profile's units merged over what its includes set.
//!
//! Invariant: pure over the profile files handed in (tuned's own lookup: /etc/tuned wins over
//! /usr/lib/tuned, done by the caller). It follows tuned's loader and merger (includes split on
//! `,` or `;`; `-name` is an include that may be missing; a profile file reached twice is
//! loaded once; a unit's options update the included unit's unless `replace=true`; `drop=`
//! removes options; `type`, `enabled`, `devices`, the regexes and the script hooks are unit
//! attributes, not options), except that an include cycle and a chain deeper than
//! [`MAX_DEPTH`] are refused with an error naming the chain (tuned skips the repeat
//! silently). Nothing is evaluated: an include written with `${...}` is not followed (it is
//! listed in [`Resolved::unfollowed`]) and values stay opaque text.

use super::tuned_conf::{parse, ConfError};
use crate::model::ProfileName;

/// How many profiles deep an include chain may go.
pub const MAX_DEPTH: usize = 16;

/// Keys of a unit section that are its attributes, not plugin options.
const UNIT_ATTRS: [&str; 10] = [
    "type",
    "enabled",
    "replace",
    "drop",
    "devices",
    "devices_udev_regex",
    "cpuinfo_regex",
    "uname_regex",
    "script_pre",
    "script_post",
];

/// One option's value and the profile whose file set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub from: String,
}

/// A merged unit (a section other than `[main]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub name: String,
    /// The plugin (`type=`, else the unit's name).
    pub kind: String,
    pub enabled: bool,
    /// Runs only where `uname_regex` / `cpuinfo_regex` match.
    pub conditional: bool,
    pub options: Vec<(String, Setting)>,
}

impl Unit {
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.options.iter().find(|(k, _)| k == key).map(|(_, s)| s)
    }
}

/// A profile after its includes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Profiles in load order (includes first, the profile itself last).
    pub chain: Vec<String>,
    /// Units in tuned's order.
    pub units: Vec<Unit>,
    /// Includes not followed because they are computed (`${...}`).
    pub unfollowed: Vec<String>,
}

impl Resolved {
    pub fn unit(&self, name: &str) -> Option<&Unit> {
        self.units.iter().find(|u| u.name == name)
    }

    /// The option as the enabled unit `unit` has it.
    pub fn get(&self, unit: &str, key: &str) -> Option<&Setting> {
        self.unit(unit).filter(|u| u.enabled)?.get(key)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("tuned profile {0}")]
    Parse(#[from] ConfError),
    #[error("tuned profile `{by}` includes `{profile}`, which is not a profile on this host")]
    Missing { profile: String, by: String },
    #[error("tuned profile `{by}` includes `{include}`, which is not a profile name")]
    BadName { include: String, by: String },
    #[error("tuned profiles include each other in a cycle: {}", .0.join(" → "))]
    Cycle(Vec<String>),
    #[error("tuned profile includes go deeper than {MAX_DEPTH}: {}", .0.join(" → "))]
    TooDeep(Vec<String>),
}

/// Where a profile's file is and what it holds: `(file, content)`, `None` when there is none.
pub type Lookup<'a> = dyn Fn(&str) -> Option<(String, String)> + 'a;

/// The settings of profile `name`.
pub fn resolve(name: &str, lookup: &Lookup) -> Result<Resolved, ResolveError> {
    let mut loaded = Vec::new();
    let mut st = Walk {
        lookup,
        stack: Vec::new(),
        files: Vec::new(),
        unfollowed: Vec::new(),
    };
    st.load(&[name.to_string()], &mut loaded)?;
    let mut out = Resolved {
        unfollowed: st.unfollowed,
        ..Default::default()
    };
    for (profile, conf) in loaded {
        for s in conf.sections.iter().filter(|s| s.name != "main") {
            merge(&mut out.units, &profile, s);
        }
        out.chain.push(profile);
    }
    Ok(out)
}

struct Walk<'a, 'b> {
    lookup: &'b Lookup<'a>,
    /// The profiles being loaded (for cycles).
    stack: Vec<String>,
    /// Files already loaded.
    files: Vec<String>,
    unfollowed: Vec<String>,
}

impl Walk<'_, '_> {
    fn load(
        &mut self,
        names: &[String],
        out: &mut Vec<(String, super::tuned_conf::Conf)>,
    ) -> Result<(), ResolveError> {
        for raw in names {
            if raw.contains("${") {
                self.unfollowed.push(raw.clone());
                continue;
            }
            let (optional, name) = match raw.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, raw.as_str()),
            };
            let by = self.stack.last().cloned().unwrap_or_default();
            if ProfileName::new(name).is_err() {
                return Err(ResolveError::BadName {
                    include: raw.clone(),
                    by,
                });
            }
            if self.stack.iter().any(|s| s == name) {
                let mut c = self.stack.clone();
                c.push(name.to_string());
                return Err(ResolveError::Cycle(c));
            }
            if self.stack.len() >= MAX_DEPTH {
                let mut c = self.stack.clone();
                c.push(name.to_string());
                return Err(ResolveError::TooDeep(c));
            }
            let Some((file, text)) = (self.lookup)(name) else {
                if optional {
                    continue;
                }
                return Err(ResolveError::Missing {
                    profile: name.to_string(),
                    by,
                });
            };
            if self.files.contains(&file) {
                continue;
            }
            self.files.push(file.clone());
            let conf = parse(&file, &text)?;
            if let Some(inc) = conf.get("main", "include") {
                let includes: Vec<String> = inc
                    .split([',', ';'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                self.stack.push(name.to_string());
                self.load(&includes, out)?;
                self.stack.pop();
            }
            out.push((name.to_string(), conf));
        }
        Ok(())
    }
}

fn truthy(v: &str) -> bool {
    matches!(v, "True" | "true" | "1")
}

/// Merges one profile's section into the units (tuned's `Merger._merge_two`).
fn merge(units: &mut Vec<Unit>, profile: &str, s: &super::tuned_conf::Section) {
    let attr = |k: &str| s.get(k).map(|o| o.value.as_str());
    let options: Vec<(String, Setting)> = s
        .options
        .iter()
        .filter(|o| !UNIT_ATTRS.contains(&o.key.as_str()))
        .map(|o| {
            (
                o.key.clone(),
                Setting {
                    value: o.value.clone(),
                    from: profile.to_string(),
                },
            )
        })
        .collect();
    let kind = attr("type").unwrap_or(&s.name).to_string();
    let enabled = attr("enabled").is_none_or(truthy);
    let conditional = attr("uname_regex").is_some() || attr("cpuinfo_regex").is_some();
    let replace = attr("replace").is_some_and(truthy);
    match units.iter_mut().find(|u| u.name == s.name) {
        Some(u) if !replace => {
            u.kind = kind;
            u.enabled = enabled;
            u.conditional |= conditional;
            if let Some(drop) = attr("drop") {
                for d in drop.split([',', ';']).map(str::trim) {
                    u.options.retain(|(k, _)| k != d);
                }
            }
            for (k, v) in options {
                match u.options.iter_mut().find(|(x, _)| *x == k) {
                    Some(slot) => slot.1 = v,
                    None => u.options.push((k, v)),
                }
            }
        }
        found => {
            let unit = Unit {
                name: s.name.clone(),
                kind,
                enabled,
                conditional,
                options,
            };
            match found {
                Some(u) => *u = unit,
                None => units.push(unit),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The profiles under tests/data/tuned, by name.
    fn real(name: &str) -> Option<(String, String)> {
        let f = format!(
            "{}/tests/data/tuned/{name}/tuned.conf",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&f).ok().map(|t| (f, t))
    }

    fn fake(files: &[(&str, &str)]) -> impl Fn(&str) -> Option<(String, String)> {
        let m: BTreeMap<String, String> = files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        move |n: &str| {
            m.get(n)
                .map(|t| (format!("/usr/lib/tuned/{n}/tuned.conf"), t.clone()))
        }
    }

    #[test]
    fn virtual_host_gets_swappiness_from_throughput_performance() {
        let r = resolve("virtual-host", &real).unwrap();
        assert_eq!(r.chain, ["throughput-performance", "virtual-host"]);
        let s = r.get("sysctl", "vm.swappiness").unwrap();
        assert_eq!(
            (s.value.as_str(), s.from.as_str()),
            ("10", "throughput-performance")
        );
        // virtual-host's own value wins over its include's.
        let s = r.get("sysctl", "vm.dirty_background_ratio").unwrap();
        assert_eq!((s.value.as_str(), s.from.as_str()), ("5", "virtual-host"));
        assert_eq!(r.get("sysctl", "vm.dirty_ratio").unwrap().value, "40");
        // The aarch64-only instance is its own unit, conditional, of the sysctl plugin.
        let t = r.unit("sysctl.thunderx").unwrap();
        assert!(t.conditional && t.kind == "sysctl");
        assert!(t.get("type").is_none() && t.get("uname_regex").is_none());
        let vg = resolve("virtual-guest", &real).unwrap();
        let s = vg.get("sysctl", "vm.swappiness").unwrap();
        assert_eq!((s.value.as_str(), s.from.as_str()), ("30", "virtual-guest"));
    }

    #[test]
    fn partitioning_profiles_chain_to_latency_performance_and_take_isolated_cores() {
        let cp = resolve("cpu-partitioning", &real).unwrap();
        assert_eq!(
            cp.chain,
            ["latency-performance", "network-latency", "cpu-partitioning"]
        );
        assert_eq!(
            cp.get("variables", "isolated_cores").unwrap().value,
            "${isolated_cores}"
        );
        assert_eq!(
            cp.get("vm", "transparent_hugepages").unwrap().value,
            "never"
        );
        assert_eq!(
            cp.get("sysctl", "vm.swappiness").unwrap().from,
            "latency-performance"
        );
        let rvh = resolve("realtime-virtual-host", &real).unwrap();
        assert_eq!(
            rvh.chain,
            [
                "latency-performance",
                "network-latency",
                "realtime",
                "realtime-virtual-host"
            ]
        );
        // realtime-virtual-host's variables include replaces realtime's, in place.
        let v = rvh.unit("variables").unwrap();
        assert_eq!(
            v.get("include").unwrap().value,
            "/etc/tuned/realtime-virtual-host-variables.conf"
        );
        let pos = |k: &str| v.options.iter().position(|(x, _)| x == k).unwrap();
        assert!(pos("isolated_cores") < pos("assert1"));
        assert_eq!(
            rvh.get("sysctl", "kernel.sched_rt_runtime_us")
                .unwrap()
                .value,
            "-1"
        );
        assert_eq!(
            rvh.get("sysfs", "/sys/kernel/mm/ksm/run").unwrap().value,
            "2"
        );
    }

    #[test]
    fn cycles_depth_and_missing_includes_are_errors() {
        let l = fake(&[
            ("a", "[main]\ninclude=b\n"),
            ("b", "[main]\ninclude = c, a\n"),
            ("c", "[sysctl]\nx=1\n"),
        ]);
        assert_eq!(
            resolve("a", &l).unwrap_err().to_string(),
            "tuned profiles include each other in a cycle: a → b → a"
        );
        let l = fake(&[("self", "[main]\ninclude=self\n")]);
        assert!(matches!(resolve("self", &l), Err(ResolveError::Cycle(c)) if c.len() == 2));
        let l = fake(&[("a", "[main]\ninclude=nope\n")]);
        assert_eq!(
            resolve("a", &l).unwrap_err().to_string(),
            "tuned profile `a` includes `nope`, which is not a profile on this host"
        );
        let l = fake(&[("a", "[main]\ninclude=../../etc\n")]);
        assert!(matches!(
            resolve("a", &l),
            Err(ResolveError::BadName { .. })
        ));
        // A chain of 20 distinct profiles.
        let texts: Vec<(String, String)> = (0..20)
            .map(|i| (format!("p{i}"), format!("[main]\ninclude=p{}\n", i + 1)))
            .collect();
        let refs: Vec<(&str, &str)> = texts
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let l = fake(&refs);
        let e = resolve("p0", &l).unwrap_err();
        assert!(
            matches!(&e, ResolveError::TooDeep(c) if c.len() == MAX_DEPTH + 1),
            "{e}"
        );
        let l = fake(&[("a", "[main]\ninclude=b\n"), ("b", "include=x\n")]);
        assert_eq!(
            resolve("a", &l).unwrap_err().to_string(),
            "tuned profile /usr/lib/tuned/b/tuned.conf:1: `include=x` comes before any [section]"
        );
    }

    #[test]
    fn lists_optional_diamonds_replace_drop_and_computed_includes() {
        let l = fake(&[
            ("top", "[main]\ninclude=left; right,-gone, ${f:virt_check:a:b}\n[sysctl]\ndrop=k2\nk3=top\n"),
            ("left", "[main]\ninclude=base\n[sysctl]\nk1=left\n[vm]\ntransparent_hugepages=never\n"),
            ("right", "[main]\ninclude=base\n[vm]\nreplace=1\ntransparent_hugepage.defrag=never\n[cpu]\nenabled=false\ngovernor=x\n"),
            ("base", "[sysctl]\nk1=base\nk2=base\n"),
        ]);
        let r = resolve("top", &l).unwrap();
        // base is loaded once, before left (its first includer).
        assert_eq!(r.chain, ["base", "left", "right", "top"]);
        assert_eq!(r.unfollowed, ["${f:virt_check:a:b}"]);
        let s = r.unit("sysctl").unwrap();
        let keys: Vec<&str> = s.options.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["k1", "k3"]);
        assert_eq!(s.get("k1").unwrap().from, "left");
        assert!(r.get("vm", "transparent_hugepages").is_none());
        assert_eq!(
            r.get("vm", "transparent_hugepage.defrag").unwrap().from,
            "right"
        );
        assert!(
            r.get("cpu", "governor").is_none(),
            "a disabled unit sets nothing"
        );
    }
}
