//! `numatune.memory`: the guest memory's NUMA mode, node set and placement
//! (`<numatune><memory mode= nodeset= placement=/>`).
//!
//! Invariant: libvirt's defaults compare as written (`mode='strict'`; `placement` is `static`
//! with a nodeset, else the vCPU placement); a nodeset implies static placement unless one is
//! declared, and `placement: auto` drops the nodeset. Only the nodeset changes live.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{not_on_host, GuestDesired, GuestKey, Validation};
use crate::config::raw::{NumaMode, Placement, RawCpuSet, RawGuest, RawNumaMemory, RawNumatune};
use crate::cpuset::CpuSet;
use crate::domain::edit::{canon_cpuset, Editor};
use crate::domain::import::{cpuset_attr, raw_set};
use crate::domain::running::{check, sets_of, Check, Running};
use crate::domain::LocatedIssue;
use crate::libvirt::{LiveOp, NodeInfo};
use crate::xmltree::Document;

pub struct Setting;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "NumatuneKey")]
pub enum Key {
    Mode,
    Nodeset,
    Placement,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Key::Mode => "numatune.memory.mode",
            Key::Nodeset => "numatune.memory.nodeset",
            Key::Placement => "numatune.memory.placement",
        })
    }
}

impl From<Key> for GuestKey {
    fn from(k: Key) -> GuestKey {
        GuestKey::Numatune(k)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NumaMemory {
    pub mode: Option<NumaMode>,
    pub nodeset: Option<CpuSet>,
    pub placement: Option<Placement>,
}

impl super::GuestSetting for Setting {
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        let Some(nm) = g.numatune.as_ref().and_then(|n| n.memory.as_ref()) else {
            return;
        };
        let at = ["numatune", "memory"];
        let nodeset = match &nm.nodeset {
            Some(RawCpuSet::Set(s)) if s == "auto" => {
                match out.auto_pin.as_mut() {
                    Some(a) => a.nodeset = true,
                    None => v.err(
                        &["numatune", "memory", "nodeset"],
                        "`nodeset: auto` follows the vCPUs: it needs `cputune.vcpupin: auto`",
                    ),
                }
                None
            }
            n => n
                .as_ref()
                .and_then(|n| v.cpuset(&["numatune", "memory", "nodeset"], n)),
        };
        if nm.placement == Some(Placement::Auto) && nm.nodeset.is_some() {
            v.err(
                &at,
                "`placement: auto` lets numad choose the nodes: remove `nodeset`",
            );
        }
        if nm.mode.is_none() && nm.nodeset.is_none() && nm.placement.is_none() {
            v.err(&at, "expected at least one of mode, nodeset, placement");
        }
        out.numa_memory = Some(NumaMemory {
            mode: nm.mode,
            nodeset,
            placement: nm.placement,
        });
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        let Some(nm) = &d.numa_memory else { return };
        let el = ed.path_child(&["numatune", "memory"]);
        if let Some(m) = nm.mode {
            let before = el.map(|e| ed.doc.attr(e, "mode").unwrap_or_else(|| "strict".into()));
            if ed.change(Key::Mode, before, Some(m.as_str().into())) {
                let e = ensure(ed);
                ed.doc.set_attr(e, "mode", m.as_str());
            }
        }
        let nodeset_attr = el.and_then(|e| ed.doc.attr(e, "nodeset"));
        if let Some(ns) = &nm.nodeset {
            if ed.change(
                Key::Nodeset,
                canon_cpuset(nodeset_attr.clone()),
                Some(ns.to_string()),
            ) {
                let e = ensure(ed);
                ed.doc.set_attr(e, "nodeset", &ns.to_string());
            }
        }
        // A nodeset means static placement unless placement is declared.
        let placement = nm
            .placement
            .or(nm.nodeset.as_ref().map(|_| Placement::Static));
        if let Some(p) = placement {
            let vcpu_auto = ed
                .doc
                .child(ed.root(), "vcpu")
                .and_then(|v| ed.doc.attr(v, "placement"))
                .filter(|p| p == "auto");
            let before = el.map(|e| {
                ed.doc.attr(e, "placement").unwrap_or_else(|| {
                    if nodeset_attr.is_some() {
                        "static".into()
                    } else {
                        vcpu_auto.clone().unwrap_or_else(|| "static".into())
                    }
                })
            });
            let declared = nm.placement.is_some();
            if (declared || before.as_deref() == Some("auto"))
                && ed.change(Key::Placement, before, Some(p.as_str().into()))
            {
                let e = ensure(ed);
                ed.doc.set_attr(e, "placement", p.as_str());
                if p == Placement::Auto && nodeset_attr.is_some() {
                    ed.change(Key::Nodeset, canon_cpuset(nodeset_attr), None);
                    ed.doc.remove_attr(e, "nodeset");
                }
            }
        }
    }

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        out.numatune = import(doc);
    }

    fn live_capable(&self, key: &GuestKey) -> bool {
        *key == GuestKey::Numatune(Key::Nodeset)
    }

    fn live(&self, d: &GuestDesired, key: &GuestKey, _node: Option<NodeInfo>) -> Option<LiveOp> {
        match key {
            GuestKey::Numatune(Key::Nodeset) => Some(LiveOp::NumaNodeset {
                nodeset: d.numa_memory.as_ref()?.nodeset.as_ref()?.to_string(),
            }),
            _ => None,
        }
    }

    fn host_fit(&self, d: &GuestDesired, node: NodeInfo, out: &mut Vec<LocatedIssue>) {
        if let Some(n) = d.numa_memory.as_ref().and_then(|m| m.nodeset.as_ref()) {
            let at = ["numatune", "memory", "nodeset"];
            not_on_host(d, &at, n, node.nodes, "NUMA node", out);
        }
    }

    /// For mode strict/restrictive libvirt writes the cgroup's `cpuset.mems`, which every
    /// QEMU thread's `Mems_allowed_list` reflects; for interleave/preferred, the memory policy
    /// of the guest RAM mapping in `numa_maps`.
    fn verify(&self, d: &GuestDesired, run: &Running, out: &mut Vec<Check>) {
        let Some(nodeset) = d.numa_memory.as_ref().and_then(|n| n.nodeset.as_ref()) else {
            return;
        };
        let live = run.live;
        let mode = d.numa_memory.as_ref().and_then(|n| n.mode);
        let actual = match mode {
            None | Some(NumaMode::Strict) | Some(NumaMode::Restrictive) => {
                sets_of(live.threads.iter().filter(|t| !t.kernel_worker), |t| {
                    &t.mems_allowed
                })
            }
            Some(m) => {
                // The guest RAM is the largest mapping; its policy is `interleave:0-1` etc.
                let policy = live
                    .mappings
                    .iter()
                    .max_by_key(|m| m.size_kib)
                    .and_then(|m| m.policy.clone())
                    .unwrap_or_else(|| "(unknown)".into());
                let prefix = if m == NumaMode::Interleave {
                    "interleave:"
                } else {
                    "prefer"
                };
                match policy.split_once(':') {
                    Some((p, nodes)) if format!("{p}:").starts_with(prefix) => nodes
                        .parse::<CpuSet>()
                        .map(|c| c.to_string())
                        .unwrap_or(policy),
                    _ => format!("policy {policy}"),
                }
            }
        };
        let key = GuestKey::from(Key::Nodeset);
        check(out, key.to_string(), nodeset.to_string(), actual);
    }
}

fn ensure(ed: &mut Editor) -> crate::xmltree::NodeId {
    let nt = ed.domain_child("numatune");
    ed.doc.ensure_child(nt, "memory")
}

fn import(doc: &Document) -> Option<RawNumatune> {
    let m = doc.child(doc.child(doc.root(), "numatune")?, "memory")?;
    let mode = match doc.attr(m, "mode").as_deref() {
        Some("strict") => Some(NumaMode::Strict),
        Some("interleave") => Some(NumaMode::Interleave),
        Some("preferred") => Some(NumaMode::Preferred),
        Some("restrictive") => Some(NumaMode::Restrictive),
        _ => None,
    };
    let placement = match doc.attr(m, "placement").as_deref() {
        Some("static") => Some(Placement::Static),
        Some("auto") => Some(Placement::Auto),
        _ => None,
    };
    let nodeset = cpuset_attr(doc, m, "nodeset").filter(|_| placement != Some(Placement::Auto));
    if doc.attr(m, "nodeset").is_some() && nodeset.is_none() {
        // A nodeset kvmtune cannot express: declaring placement would plan its removal.
        return None;
    }
    let mem = RawNumaMemory {
        mode,
        nodeset: nodeset.map(|c| raw_set(&c)),
        placement,
    };
    (mem != RawNumaMemory::default()).then_some(RawNumatune { memory: Some(mem) })
}
