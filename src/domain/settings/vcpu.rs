//! `vcpu`: the vCPU count, the count online at boot (`current`), placement and default CPU set
//! (`<vcpu placement= cpuset= current=>N</vcpu>`).
//!
//! Invariant: `current` never ends up above the count: lowering the count lowers an observed
//! `current` with it, and a declared `current` equal to the count is written as no attribute
//! (libvirt's form). With a `<vcpus>` list libvirt reads `current` from its enabled entries
//! (not the attribute): a changed count or `current` rewrites the list to one entry per vCPU
//! with exactly `current` enabled, by libvirt's rules (vCPU 0 stays enabled, an offline vCPU
//! is hotpluggable, the enabled ones all have an `order` or none has). The count is at most
//! [`MAX_VCPUS`]. Only `current` changes live.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{not_on_host, GuestDesired, GuestKey, Validation};
use crate::config::raw::{Placement, RawGuest, RawVcpu};
use crate::domain::edit::{canon_cpuset, parse_u32, sorted_anchors, Editor};
use crate::domain::import::{cpuset_attr, raw_set};
use crate::domain::{GuestIssue, LocatedIssue};
use crate::libvirt::{LiveOp, NodeInfo};
use crate::xmltree::{Document, NodeId};

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

/// The most vCPUs a guest can have: QEMU's limit for x86 (`q35` machine types since QEMU 9.0,
/// `max_cpus = 4096`; older types and `pc` allow fewer, which libvirt checks at define time),
/// also KVM's `KVM_MAX_VCPUS` ceiling on x86.
pub const MAX_VCPUS: u32 = 4096;

/// (id, element) of each `<vcpus><vcpu>` entry, in document order (`None`: an id that does
/// not parse).
type Entries = Vec<(Option<u32>, NodeId)>;

/// The `<vcpus>` list and its entries.
fn vcpus_list(doc: &Document) -> Option<(NodeId, Entries)> {
    let l = doc.child(doc.root(), "vcpus")?;
    let entries = doc
        .children_named(l, "vcpu")
        .into_iter()
        .map(|v| (parse_u32(doc.attr(v, "id")), v))
        .collect();
    Some((l, entries))
}

fn enabled(doc: &Document, v: NodeId) -> bool {
    doc.attr(v, "enabled").as_deref() == Some("yes")
}

/// `current` as libvirt reads it, as the attribute it writes (`None`: all vCPUs online): the
/// enabled entries of a `<vcpus>` list (libvirt ignores the attribute then), else the
/// attribute.
fn current_attr(doc: &Document, el: Option<NodeId>, count: Option<u32>) -> Option<u32> {
    match vcpus_list(doc) {
        Some((_, entries)) => {
            let n = count?;
            let on = entries
                .iter()
                .filter(|(id, v)| id.is_some_and(|i| i < n) && enabled(doc, *v))
                .count();
            let on = u32::try_from(on).unwrap_or(u32::MAX);
            (on < n).then_some(on)
        }
        None => parse_u32(el.and_then(|e| doc.attr(e, "current"))),
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
        if let Some(c) = raw.count.filter(|c| *c > MAX_VCPUS) {
            v.err(
                &["vcpu", "count"],
                format!("vcpu count {c} is above {MAX_VCPUS}, the most QEMU accepts (x86 q35 machine types; fewer on others)"),
            );
        }
        out.vcpu_count = raw.count.filter(|c| (1..=MAX_VCPUS).contains(c));
        if let Some(cur) = raw.current {
            if cur == 0 {
                v.err(&["vcpu", "current"], "vcpu current must be at least 1");
            } else if cur > MAX_VCPUS {
                v.err(
                    &["vcpu", "current"],
                    format!("vcpu current {cur} is above {MAX_VCPUS}, the most QEMU accepts"),
                );
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
        let attr = current_attr(&ed.doc, el, observed);
        let first_change = ed.changes.len();
        if let Some(c) = d.vcpu_count {
            if observed != Some(c) && ed.change(Key::Count, before_text, Some(c.to_string())) {
                let e = ed.domain_child("vcpu");
                ed.doc.set_text(e, &c.to_string());
            }
        }
        let count = d.vcpu_count.or(observed);
        // libvirt rejects `current` above the count: lowering the count lowers `current` with it.
        if let (None, Some(c), Some(e)) = (d.vcpu_current, d.vcpu_count, el) {
            if let Some(cur) = attr.filter(|cur| *cur > c) {
                ed.change(Key::Current, Some(cur.to_string()), Some(c.to_string()));
                ed.doc.remove_attr(e, "current");
            }
        }
        if let Some(cur) = d.vcpu_current {
            current(ed, attr, cur, observed, count);
        }
        let counted = ed.changes[first_change..].iter().any(|c| {
            matches!(
                c.key,
                GuestKey::Vcpu(Key::Count) | GuestKey::Vcpu(Key::Current)
            )
        });
        if let (true, Some(c)) = (counted, count) {
            let on = d
                .vcpu_current
                .unwrap_or_else(|| attr.map_or(c, |a| a.min(c)));
            vcpus_list_for(ed, c, on);
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
            current: current_attr(doc, Some(e), observed_count)
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

/// A declared `current`: what is in effect now (`attr`, libvirt's reading), and what would
/// be once `vcpu.count` is written.
fn current(
    ed: &mut Editor,
    attr: Option<u32>,
    cur: u32,
    observed: Option<u32>,
    count: Option<u32>,
) {
    if let Some(c) = count.filter(|c| cur > *c) {
        ed.issue(&["vcpu", "current"], GuestIssue::CurrentAboveCount(cur, c));
    }
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

/// Makes a `<vcpus>` list (if there is one) what libvirt needs for `count` vCPUs with `on`
/// of them online: one entry per id below `count` (new ones offline and hotpluggable, as
/// libvirt adds them), the lowest ids enabled and the highest disabled as needed (vCPU 0
/// always enabled, a disabled one hotpluggable, newly enabled ones given an `order` exactly
/// when the enabled ones have one), and the `current` attribute libvirt writes beside it.
fn vcpus_list_for(ed: &mut Editor, count: u32, on: u32) {
    let Some((list, entries)) = vcpus_list(&ed.doc) else {
        return;
    };
    if count > MAX_VCPUS {
        ed.issue(&["vcpu", "count"], GuestIssue::TooManyVcpus(count));
        return;
    }
    let gone: Vec<NodeId> = entries
        .iter()
        .filter(|(id, _)| id.is_some_and(|i| i >= count))
        .map(|(_, v)| *v)
        .collect();
    ed.doc.remove_many(&gone);
    let kept: Vec<(u32, NodeId)> = entries
        .iter()
        .filter_map(|(id, v)| Some((id.filter(|i| *i < count)?, *v)))
        .collect();
    let have: std::collections::BTreeSet<u32> = kept.iter().map(|(i, _)| *i).collect();
    let missing: Vec<u32> = (0..count).filter(|i| !have.contains(i)).collect();
    let after = sorted_anchors(&kept, &missing);
    for (v, id) in ed
        .doc
        .insert_elements(list, &after, "vcpu")
        .into_iter()
        .zip(&missing)
    {
        ed.doc.set_attr(v, "id", &id.to_string());
        ed.doc.set_attr(v, "enabled", "no");
        ed.doc.set_attr(v, "hotpluggable", "yes");
    }
    // Every entry by id (the first of a repeated id counts).
    let mut by_id: std::collections::BTreeMap<u32, NodeId> = std::collections::BTreeMap::new();
    for v in ed.doc.children_named(list, "vcpu") {
        if let Some(i) = parse_u32(ed.doc.attr(v, "id")) {
            by_id.entry(i).or_insert(v);
        }
    }
    let online: Vec<u32> = by_id
        .iter()
        .filter(|(_, v)| enabled(&ed.doc, **v))
        .map(|(i, _)| *i)
        .collect();
    let have_on = u32::try_from(online.len()).unwrap_or(u32::MAX);
    if have_on > on {
        let surplus = (have_on - on) as usize;
        for i in online.iter().rev().filter(|i| **i != 0).take(surplus) {
            let v = by_id[i];
            ed.doc.set_attr(v, "enabled", "no");
            ed.doc.set_attr(v, "hotpluggable", "yes");
        }
    } else if have_on < on {
        let ordered = online
            .iter()
            .any(|i| ed.doc.attr(by_id[i], "order").is_some());
        let mut next_order = by_id
            .values()
            .filter_map(|v| parse_u32(ed.doc.attr(*v, "order")))
            .max()
            .unwrap_or(0);
        let offline: Vec<u32> = by_id
            .iter()
            .filter(|(_, v)| !enabled(&ed.doc, **v))
            .map(|(i, _)| *i)
            .take((on - have_on) as usize)
            .collect();
        for i in offline {
            let v = by_id[&i];
            ed.doc.set_attr(v, "enabled", "yes");
            match (ordered, ed.doc.attr(v, "order").is_some()) {
                (true, false) => {
                    next_order = next_order.saturating_add(1);
                    ed.doc.set_attr(v, "order", &next_order.to_string());
                }
                (false, true) => ed.doc.remove_attr(v, "order"),
                _ => {}
            }
        }
    }
    let e = ed.domain_child("vcpu");
    if on == count {
        ed.doc.remove_attr(e, "current");
    } else {
        ed.doc.set_attr(e, "current", &on.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{changes, converges, domain, invalid};
    use super::*;

    fn with_list(count: u32, current: &str, entries: &[(u32, bool, bool)]) -> String {
        let list: Vec<String> = entries
            .iter()
            .map(|(id, on, hot)| {
                let yn = |b: &bool| if *b { "yes" } else { "no" };
                format!(
                    "\n    <vcpu id='{id}' enabled='{}' hotpluggable='{}'/>",
                    yn(on),
                    yn(hot)
                )
            })
            .collect();
        domain(&format!(
            "<vcpu placement='static'{current}>{count}</vcpu>\n  <vcpus>{}\n  </vcpus>",
            list.concat()
        ))
    }

    /// (id, enabled, hotpluggable, order) of each `<vcpus>` entry.
    fn entries(xml: &str) -> Vec<(u32, String, String, Option<String>)> {
        let doc = Document::parse(xml).unwrap();
        let (_, e) = vcpus_list(&doc).unwrap();
        e.iter()
            .map(|(id, v)| {
                (
                    id.unwrap(),
                    doc.attr(*v, "enabled").unwrap(),
                    doc.attr(*v, "hotpluggable").unwrap(),
                    doc.attr(*v, "order"),
                )
            })
            .collect()
    }

    fn e(id: u32, on: &str, hot: &str) -> (u32, String, String, Option<String>) {
        (id, on.into(), hot.into(), None)
    }

    #[test]
    fn a_raised_count_extends_the_list_online_when_all_were_online_else_offline() {
        let all = [(0, true, false), (1, true, true)];
        let p = converges("    vcpu: { count: 3 }\n", &with_list(2, "", &all));
        assert_eq!(
            entries(&p.new_xml),
            [e(0, "yes", "no"), e(1, "yes", "yes"), e(2, "yes", "yes")]
        );
        assert!(
            p.new_xml.contains("<vcpu placement='static'>3</vcpu>"),
            "{}",
            p.new_xml
        );
        let some = [(0, true, false), (1, false, true)];
        let p = converges(
            "    vcpu: { count: 3 }\n",
            &with_list(2, " current='1'", &some),
        );
        assert_eq!(
            entries(&p.new_xml),
            [e(0, "yes", "no"), e(1, "no", "yes"), e(2, "no", "yes")]
        );
        assert!(p.new_xml.contains("current='1'>3</vcpu>"), "{}", p.new_xml);
    }

    #[test]
    fn a_lowered_count_drops_the_entries_above_it() {
        let xml = with_list(
            4,
            " current='3'",
            &[
                (0, true, false),
                (1, false, true),
                (2, true, true),
                (3, true, true),
            ],
        );
        let p = converges("    vcpu: { count: 2 }\n", &xml);
        // Three were online: both remaining ones are (vCPU 1 comes online).
        assert_eq!(entries(&p.new_xml), [e(0, "yes", "no"), e(1, "yes", "yes")]);
        assert_eq!(
            changes(&p),
            [
                ("vcpu.count".into(), Some("4".into()), Some("2".into())),
                ("vcpu.current".into(), Some("3".into()), Some("2".into())),
            ]
        );
        assert!(
            p.new_xml.contains("<vcpu placement='static'>2</vcpu>"),
            "{}",
            p.new_xml
        );
    }

    #[test]
    fn current_is_read_from_the_list_and_written_to_it() {
        // libvirt reads 2 online from the list, whatever the attribute says.
        let xml = with_list(
            4,
            " current='4'",
            &[
                (0, true, false),
                (1, true, true),
                (2, false, true),
                (3, false, true),
            ],
        );
        let p = converges("    vcpu: { current: 3 }\n", &xml);
        assert_eq!(
            changes(&p),
            [("vcpu.current".into(), Some("2".into()), Some("3".into()))]
        );
        assert_eq!(entries(&p.new_xml)[2], e(2, "yes", "yes"));
        let p = converges("    vcpu: { current: 1 }\n", &xml);
        assert_eq!(
            entries(&p.new_xml),
            [
                e(0, "yes", "no"),
                e(1, "no", "yes"),
                e(2, "no", "yes"),
                e(3, "no", "yes")
            ]
        );
        assert!(p.new_xml.contains("current='1'>4</vcpu>"), "{}", p.new_xml);
        // Enabled ones with an order: a newly enabled one gets the next.
        let ordered = xml
            .replace(
                "<vcpu id='0' enabled='yes' hotpluggable='no'/>",
                "<vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>",
            )
            .replace(
                "<vcpu id='1' enabled='yes' hotpluggable='yes'/>",
                "<vcpu id='1' enabled='yes' hotpluggable='yes' order='2'/>",
            );
        let p = converges("    vcpu: { current: 3 }\n", &ordered);
        assert_eq!(entries(&p.new_xml)[2].3.as_deref(), Some("3"));
    }

    #[test]
    fn counts_above_what_qemu_accepts_are_located_errors() {
        let e = invalid("    vcpu: { count: 4097 }\n");
        assert!(
            e.contains("guests.g.vcpu.count: vcpu count 4097 is above 4096"),
            "{e}"
        );
        let e = invalid("    vcpu: { count: 4294967295 }\n");
        assert!(e.contains("vcpu count 4294967295 is above 4096"), "{e}");
    }
}
