//! `cpu`: the guest CPU mode, model, topology and feature policies
//! (`<cpu mode=><model/><topology sockets= dies= cores= threads=/><feature/></cpu>`).
//!
//! Invariant: the topology multiplies to the vCPU count (declared or, when only the count is
//! declared, the one the XML has); changing the mode drops the attributes libvirt rejects on
//! the new one (`check`, `migratable`, `match`, `<model>`); an absent `dies` is 1 and an absent
//! feature policy `require`. Nothing changes live, and with `host-model` the live XML never
//! reads like the definition.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{GuestDesired, GuestKey, Validation};
use crate::config::raw::{CpuMode, RawCpu, RawCpuFeatures, RawGuest, RawTopology};
use crate::domain::edit::{parse_u32, Editor};
use crate::domain::GuestIssue;
use crate::xmltree::{Document, NodeId};

pub struct Setting;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "CpuKey")]
pub enum Key {
    Mode,
    Model,
    Topology(TopologyAttr),
    /// The policy of one named feature.
    Feature(String),
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TopologyAttr {
    Sockets,
    Dies,
    Cores,
    Threads,
}

impl TopologyAttr {
    pub fn as_str(self) -> &'static str {
        match self {
            TopologyAttr::Sockets => "sockets",
            TopologyAttr::Dies => "dies",
            TopologyAttr::Cores => "cores",
            TopologyAttr::Threads => "threads",
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Mode => f.write_str("cpu.mode"),
            Key::Model => f.write_str("cpu.model"),
            Key::Topology(a) => write!(f, "cpu.topology.{}", a.as_str()),
            Key::Feature(name) => write!(f, "cpu.features.{name}"),
        }
    }
}

impl From<Key> for GuestKey {
    fn from(k: Key) -> GuestKey {
        GuestKey::Cpu(k)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    pub sockets: u32,
    pub dies: u32,
    pub cores: u32,
    pub threads: u32,
}

impl Topology {
    pub fn vcpus(&self) -> u64 {
        self.sockets as u64 * self.dies as u64 * self.cores as u64 * self.threads as u64
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CpuDesired {
    pub mode: Option<CpuMode>,
    pub model: Option<String>,
    pub topology: Option<Topology>,
    /// Feature name → policy (`require` / `disable`); unlisted features are left alone.
    pub features: BTreeMap<String, &'static str>,
}

fn feature_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl super::GuestSetting for Setting {
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        let Some(c) = &g.cpu else { return };
        if let Some(m) = &c.model {
            if m.trim().is_empty() || m.contains(['<', '>', '&', '\'', '"']) {
                v.err(
                    &["cpu", "model"],
                    format!("`{}` is not a CPU model name", m.escape_debug()),
                );
            }
            match c.mode {
                Some(CpuMode::Custom) => {}
                Some(other) => v.err(
                    &["cpu", "model"],
                    format!(
                        "a CPU model goes with `mode: custom`, not `{}`",
                        other.as_str()
                    ),
                ),
                None => v.err(
                    &["cpu", "model"],
                    "a CPU model needs `mode: custom` beside it",
                ),
            }
        } else if c.mode == Some(CpuMode::Custom) {
            v.err(
                &["cpu", "mode"],
                "`mode: custom` needs a `model` (e.g. Skylake-Server)",
            );
        }
        let topology = c
            .topology
            .as_ref()
            .and_then(|t| validate_topology(v, t, out.vcpu_count));
        let mut features = BTreeMap::new();
        if let Some(f) = &c.features {
            for (policy, names) in [("require", &f.require), ("disable", &f.disable)] {
                for n in names {
                    let at = ["cpu", "features", policy];
                    if !feature_name_ok(n) {
                        v.err(
                            &at,
                            format!("`{}` is not a CPU feature name", n.escape_debug()),
                        );
                    } else if features.insert(n.clone(), policy).is_some() {
                        v.err(&at, format!("feature `{n}` is listed twice"));
                    }
                }
            }
        }
        out.cpu = Some(CpuDesired {
            mode: c.mode,
            model: c.model.clone(),
            topology,
            features,
        });
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        let declared_topology = d.cpu.as_ref().is_some_and(|c| c.topology.is_some());
        if let (false, Some(want)) = (declared_topology, d.vcpu_count) {
            // libvirt rejects a vCPU count that the guest's existing topology does not multiply to.
            if let Some(t) = ed.path_child(&["cpu", "topology"]) {
                let product: u64 = ["sockets", "dies", "cores", "threads"]
                    .iter()
                    .map(|a| parse_u32(ed.doc.attr(t, a)).unwrap_or(1) as u64)
                    .product();
                if product != want as u64 {
                    ed.issue(
                        &["vcpu", "count"],
                        GuestIssue::CountVsTopology(want, product),
                    );
                }
            }
        }
        let Some(c) = &d.cpu else { return };
        let el = ed.doc.child(ed.root(), "cpu");
        if let Some(mode) = c.mode {
            edit_mode(ed, el, c, mode);
        }
        if let Some(model) = &c.model {
            let before = el
                .and_then(|e| ed.doc.child(e, "model"))
                .map(|m| ed.doc.text(m));
            if ed.change(Key::Model, before, Some(model.clone())) {
                let e = ed.domain_child("cpu");
                let m = ed.doc.ensure_child(e, "model");
                ed.doc.set_text(m, model);
            }
        }
        if let Some(t) = c.topology {
            edit_topology(ed, t);
        }
        for (name, policy) in &c.features {
            edit_feature(ed, name, policy);
        }
    }

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        out.cpu = read(doc, super::vcpu::observed_count(doc)).0;
    }

    fn live_normalized(&self, d: &GuestDesired) -> bool {
        // host-model becomes an expanded custom model in the live XML.
        d.cpu.as_ref().and_then(|c| c.mode) == Some(CpuMode::HostModel)
    }
}

fn validate_topology(v: &mut Validation, t: &RawTopology, count: Option<u32>) -> Option<Topology> {
    let at = ["cpu", "topology"];
    let topo = Topology {
        sockets: t.sockets,
        dies: t.dies.unwrap_or(1),
        cores: t.cores,
        threads: t.threads,
    };
    if [topo.sockets, topo.dies, topo.cores, topo.threads].contains(&0) {
        v.err(
            &at,
            "sockets, dies, cores and threads must each be at least 1",
        );
        return None;
    }
    if let Some(count) = count {
        if topo.vcpus() != count as u64 {
            v.err(
                &at,
                format!(
                    "topology gives {} vCPUs (sockets × dies × cores × threads) but vcpu.count is {count}",
                    topo.vcpus()
                ),
            );
            return None;
        }
    }
    Some(topo)
}

fn edit_mode(ed: &mut Editor, el: Option<NodeId>, c: &CpuDesired, mode: CpuMode) {
    let before = el.map(|e| ed.doc.attr(e, "mode").unwrap_or_else(|| "custom".into()));
    if !ed.change(Key::Mode, before, Some(mode.as_str().into())) {
        return;
    }
    let e = ed.domain_child("cpu");
    ed.doc.set_attr(e, "mode", mode.as_str());
    // `check` is libvirt's own default per mode; `match` and `<model>` only fit custom.
    ed.doc.remove_attr(e, "check");
    // libvirt adds `migratable='on'` to host-passthrough and rejects it on other modes.
    if !matches!(mode, CpuMode::HostPassthrough | CpuMode::Maximum) {
        ed.doc.remove_attr(e, "migratable");
    }
    if mode != CpuMode::Custom {
        ed.doc.remove_attr(e, "match");
        if c.model.is_none() {
            if let Some(m) = ed.doc.child(e, "model") {
                ed.doc.remove(m);
            }
        }
    }
}

fn edit_topology(ed: &mut Editor, t: Topology) {
    if let Some(c) = ed.vcpus.filter(|c| t.vcpus() != *c as u64) {
        ed.issue(
            &["cpu", "topology"],
            GuestIssue::TopologyMismatch(t.vcpus(), c),
        );
    }
    let el = ed.path_child(&["cpu", "topology"]);
    for (attr, want, default) in [
        (TopologyAttr::Sockets, t.sockets, None),
        (TopologyAttr::Dies, t.dies, Some(1)),
        (TopologyAttr::Cores, t.cores, None),
        (TopologyAttr::Threads, t.threads, None),
    ] {
        let raw = el.and_then(|e| ed.doc.attr(e, attr.as_str()));
        // An absent `dies` is libvirt's default of 1, with or without a <topology>.
        let before = match (&raw, default) {
            (None, Some(d)) => Some(u32::to_string(&d)),
            _ => raw.clone(),
        };
        if parse_u32(before.clone()) == Some(want) {
            continue;
        }
        ed.change(Key::Topology(attr), before, Some(want.to_string()));
        let cpu = ed.domain_child("cpu");
        let topo = ed.doc.ensure_child(cpu, "topology");
        if raw.is_some() || default != Some(want) {
            ed.doc.set_attr(topo, attr.as_str(), &want.to_string());
        }
    }
}

fn edit_feature(ed: &mut Editor, name: &str, policy: &str) {
    let cpu_el = ed.doc.child(ed.root(), "cpu");
    let existing = cpu_el.and_then(|c| {
        ed.doc
            .children_named(c, "feature")
            .into_iter()
            .find(|f| ed.doc.attr(*f, "name").as_deref() == Some(name))
    });
    // libvirt's default policy is `require`.
    let before = existing.map(|f| ed.doc.attr(f, "policy").unwrap_or_else(|| "require".into()));
    if !ed.change(
        Key::Feature(name.to_string()),
        before,
        Some(policy.to_string()),
    ) {
        return;
    }
    let f = match existing {
        Some(f) => f,
        None => {
            let c = ed.domain_child("cpu");
            let f = ed.doc.append_element(c, "feature");
            ed.doc.set_attr(f, "policy", policy);
            ed.doc.set_attr(f, "name", name);
            f
        }
    };
    ed.doc.set_attr(f, "policy", policy);
}

/// `<cpu>` as the raw model, and whether a `vcpu.count` may be declared beside it (the
/// topology, if any, multiplies to the count `count` the XML has, or is imported too).
pub(crate) fn read(doc: &Document, count: Option<u32>) -> (Option<RawCpu>, bool) {
    let Some(el) = doc.child(doc.root(), "cpu") else {
        return (None, true);
    };
    let topo_el = doc.child(el, "topology");
    let product: u64 = topo_el
        .map(|t| {
            ["sockets", "dies", "cores", "threads"]
                .iter()
                .map(|a| parse_u32(doc.attr(t, a)).unwrap_or(1) as u64)
                .product()
        })
        .unwrap_or(0);
    let topology = topo_el.and_then(|t| {
        let get = |a| parse_u32(doc.attr(t, a)).filter(|v| *v > 0);
        let dies = match doc.attr(t, "dies") {
            Some(_) => Some(get("dies")?),
            None => None,
        };
        let topo = RawTopology {
            sockets: get("sockets")?,
            dies,
            cores: get("cores")?,
            threads: get("threads")?,
        };
        (count.is_none_or(|c| c as u64 == product)).then_some(topo)
    });
    let count_ok =
        topo_el.is_none() || topology.is_some() || count.map(|c| c as u64) == Some(product);
    let model = doc
        .child(el, "model")
        .map(|m| doc.text(m))
        .filter(|m| !m.trim().is_empty() && !m.contains(['<', '>', '&', '\'', '"']));
    let (mode, model) = match doc.attr(el, "mode").as_deref() {
        Some("host-passthrough") => (Some(CpuMode::HostPassthrough), None),
        Some("host-model") => (Some(CpuMode::HostModel), None),
        Some("maximum") => (Some(CpuMode::Maximum), None),
        Some("custom") | None => match model {
            Some(m) => (Some(CpuMode::Custom), Some(m)),
            None => (None, None),
        },
        Some(_) => (None, None),
    };
    let cpu = RawCpu {
        mode,
        model,
        topology,
        features: read_features(doc, el),
    };
    ((cpu != RawCpu::default()).then_some(cpu), count_ok)
}

fn read_features(doc: &Document, el: NodeId) -> Option<RawCpuFeatures> {
    let mut require = Vec::new();
    let mut disable = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for f in doc.children_named(el, "feature") {
        let Some(name) = doc.attr(f, "name") else {
            continue;
        };
        if !seen.insert(name.clone()) {
            continue;
        }
        let ok = feature_name_ok(&name);
        match doc.attr(f, "policy").as_deref() {
            Some("require") | None if ok => require.push(name),
            Some("disable") if ok => disable.push(name),
            _ => {}
        }
    }
    (!require.is_empty() || !disable.is_empty()).then_some(RawCpuFeatures { require, disable })
}
