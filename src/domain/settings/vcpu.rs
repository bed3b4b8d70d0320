//! `vcpu`: the vCPU count, the count online at boot (`current`), placement and default CPU set
//! (`<vcpu placement= cpuset= current=>N</vcpu>`).
//!
//! Invariant: `current` never ends up above the count: lowering the count lowers an observed
//! `current` with it, and a declared `current` equal to the count is written as no attribute
//! (libvirt's form). Only `current` changes live.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{not_on_host, GuestDesired, GuestKey, Validation};
use crate::config::raw::{Placement, RawGuest, RawVcpu};
use crate::domain::edit::{canon_cpuset, parse_u32, Editor};
use crate::domain::import::{cpuset_attr, raw_set};
use crate::domain::{GuestIssue, LocatedIssue};
use crate::libvirt::{LiveOp, NodeInfo};
use crate::xmltree::Document;

pub struct Setting;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "VcpuKey")]
pub enum Key {
    Count,
    Current,
    Placement,
    Cpuset,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Key::Count => "vcpu.count",
            Key::Current => "vcpu.current",
            Key::Placement => "vcpu.placement",
            Key::Cpuset => "vcpu.cpuset",
        })
    }
}

impl From<Key> for GuestKey {
    fn from(k: Key) -> GuestKey {
        GuestKey::Vcpu(k)
    }
}

/// The vCPU count the XML has.
pub(crate) fn observed_count(doc: &Document) -> Option<u32> {
    doc.child(doc.root(), "vcpu")
        .and_then(|e| parse_u32(Some(doc.text(e))))
}

impl super::GuestSetting for Setting {
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        let Some(raw) = &g.vcpu else { return };
        if raw.count == Some(0) {
            v.err(&["vcpu", "count"], "vcpu count must be at least 1");
        }
        out.vcpu_count = raw.count.filter(|c| *c > 0);
        if let Some(cur) = raw.current {
            if cur == 0 {
                v.err(&["vcpu", "current"], "vcpu current must be at least 1");
            } else if let Some(c) = raw.count.filter(|c| cur > *c) {
                v.err(
                    &["vcpu", "current"],
                    format!("current {cur} is above the vcpu count {c}"),
                );
            }
            out.vcpu_current = Some(cur);
        }
        out.vcpu_placement = raw.placement;
        if let Some(cs) = &raw.cpuset {
            out.vcpu_cpuset = v.cpuset(&["vcpu", "cpuset"], cs);
        }
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        let el = ed.doc.child(ed.root(), "vcpu");
        let observed = el.and_then(|e| parse_u32(Some(ed.doc.text(e))));
        let before_text = el.map(|e| ed.doc.text(e));
        if let Some(c) = d.vcpu_count {
            if observed != Some(c) && ed.change(Key::Count, before_text, Some(c.to_string())) {
                let e = ed.domain_child("vcpu");
                ed.doc.set_text(e, &c.to_string());
            }
        }
        let count = d.vcpu_count.or(observed);
        // libvirt rejects `current` above the count: lowering the count lowers `current` with it.
        if let (None, Some(c), Some(e)) = (d.vcpu_current, d.vcpu_count, el) {
            if let Some(cur) = parse_u32(ed.doc.attr(e, "current")).filter(|cur| *cur > c) {
                ed.change(Key::Current, Some(cur.to_string()), Some(c.to_string()));
                ed.doc.remove_attr(e, "current");
            }
        }
        if let Some(cur) = d.vcpu_current {
            current(ed, el, cur, observed, count);
        }
        if let Some(p) = d.vcpu_placement {
            let before = el.map(|e| {
                ed.doc
                    .attr(e, "placement")
                    .unwrap_or_else(|| "static".into())
            });
            if ed.change(Key::Placement, before, Some(p.as_str().into())) {
                let e = ed.domain_child("vcpu");
                ed.doc.set_attr(e, "placement", p.as_str());
            }
        }
        if let Some(cs) = &d.vcpu_cpuset {
            let before = canon_cpuset(el.and_then(|e| ed.doc.attr(e, "cpuset")));
            if ed.change(Key::Cpuset, before, Some(cs.to_string())) {
                let e = ed.domain_child("vcpu");
                ed.doc.set_attr(e, "cpuset", &cs.to_string());
            }
        }
    }

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        let Some(e) = doc.child(doc.root(), "vcpu") else {
            return;
        };
        let observed_count = observed_count(doc);
        // Whether the topology is importable decides whether vcpu.count is.
        let (_, topology_ok) = super::cpu::read(doc, observed_count);
        let v = RawVcpu {
            count: observed_count.filter(|c| *c > 0 && topology_ok),
            current: parse_u32(doc.attr(e, "current"))
                .filter(|c| *c > 0 && observed_count.is_none_or(|n| c <= &n)),
            placement: match doc.attr(e, "placement").as_deref() {
                Some("static") => Some(Placement::Static),
                Some("auto") => Some(Placement::Auto),
                _ => None,
            },
            cpuset: cpuset_attr(doc, e, "cpuset").map(|c| raw_set(&c)),
        };
        if v != RawVcpu::default() {
            out.vcpu = Some(v);
        }
    }

    fn live_capable(&self, key: &GuestKey) -> bool {
        *key == GuestKey::Vcpu(Key::Current)
    }

    fn live(&self, d: &GuestDesired, key: &GuestKey, _node: Option<NodeInfo>) -> Option<LiveOp> {
        match key {
            GuestKey::Vcpu(Key::Current) => Some(LiveOp::SetVcpus {
                count: d.vcpu_current?,
            }),
            _ => None,
        }
    }

    fn host_fit(&self, d: &GuestDesired, node: NodeInfo, out: &mut Vec<LocatedIssue>) {
        if let Some(c) = &d.vcpu_cpuset {
            not_on_host(d, &["vcpu", "cpuset"], c, node.cpus, "CPU", out);
        }
    }
}

/// A declared `current`: what is in effect now, and what would be once `vcpu.count` is
/// written.
fn current(
    ed: &mut Editor,
    el: Option<crate::xmltree::NodeId>,
    cur: u32,
    observed: Option<u32>,
    count: Option<u32>,
) {
    if let Some(c) = count.filter(|c| cur > *c) {
        ed.issue(&["vcpu", "current"], GuestIssue::CurrentAboveCount(cur, c));
    }
    let attr = parse_u32(el.and_then(|e| ed.doc.attr(e, "current")));
    let now = attr.or(observed);
    let untouched = attr.or(count);
    if now != Some(cur) || untouched != Some(cur) {
        ed.push_change(
            Key::Current,
            now.map(|n| n.to_string()),
            Some(cur.to_string()),
        );
        let e = ed.domain_child("vcpu");
        if Some(cur) == count {
            ed.doc.remove_attr(e, "current");
        } else {
            ed.doc.set_attr(e, "current", &cur.to_string());
        }
    }
}
