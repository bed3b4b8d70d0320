//! `cputune.vcpusched` (`<cputune><vcpusched vcpus= scheduler= priority=/>`) and the
//! `realtime: { mask }` shorthand that derives it, Nova's `hw:cpu_realtime_mask` way.
//!
//! Invariant: a declared list is authoritative (entries not listed are removed) and compares
//! as a set of (vCPUs, policy, priority) whatever the order and the cpuset spelling; entries
//! never overlap. `realtime` gives the vCPUs not in its mask fifo priority 1 (from the
//! guest's vCPU count at edit time), locks the memory and turns the PMU off; declaring it
//! beside `vcpusched`, `locked: false` or `pmu: true` is an error. Nothing changes live.

use std::collections::BTreeSet;

use super::{Key, MAX_VCPUS};
use crate::config::raw::{RawGuest, RawVcpusched, SchedPolicy};
use crate::cpuset::CpuSet;
use crate::domain::edit::{canon_cpuset, Editor};
use crate::domain::import::{cpuset_attr, raw_set};
use crate::domain::settings::{memory_backing, GuestDesired, Validation};
use crate::domain::GuestIssue;
use crate::xmltree::{Document, NodeId};

/// One validated `<vcpusched>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vcpusched {
    pub vcpus: CpuSet,
    pub scheduler: SchedPolicy,
    pub priority: Option<u32>,
}

impl Vcpusched {
    fn describe(&self) -> String {
        match self.priority {
            Some(p) => format!("{} {} {p}", self.vcpus, self.scheduler.as_str()),
            None => format!("{} {}", self.vcpus, self.scheduler.as_str()),
        }
    }
}

fn priority_ok(s: SchedPolicy, p: Option<u32>) -> bool {
    match p {
        Some(p) => s.realtime() && (1..=99).contains(&p),
        None => !s.realtime(),
    }
}

/// Parses a mask of exclusions (`^0`, `^0-1,^4`) into the excluded vCPUs.
pub fn parse_mask(mask: &str) -> Result<CpuSet, String> {
    let mut parts = Vec::new();
    for item in mask.split(',') {
        let item = item.trim();
        let Some(range) = item.strip_prefix('^') else {
            return Err(format!(
                "`{}` is not an exclusion: the mask lists the vCPUs that are not real-time, each as ^N or ^N-M",
                item.escape_debug()
            ));
        };
        parts.push(range.to_string());
    }
    parts
        .join(",")
        .parse::<CpuSet>()
        .map_err(|e| format!("invalid mask: {e}"))
}

pub(super) fn validate(v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
    if let Some(list) = g.cputune.as_ref().and_then(|c| c.vcpusched.as_ref()) {
        out.vcpusched = Some(validate_list(v, list, out.vcpu_count));
    }
    let Some(rt) = &g.realtime else { return };
    match parse_mask(&rt.mask) {
        Ok(ex) => out.realtime_exclude = Some(ex),
        Err(e) => v.err(&["realtime", "mask"], e),
    }
    if out.vcpusched.is_some() {
        v.err(
            &["realtime"],
            "`realtime` sets cputune.vcpusched: declare one or the other",
        );
    }
    if g.memory_backing.as_ref().and_then(|m| m.locked) == Some(false) {
        v.err(
            &["memory_backing", "locked"],
            "`realtime` locks the guest's memory: remove `locked: false`",
        );
    }
    if g.features.as_ref().and_then(|f| f.pmu) == Some(true) {
        v.err(
            &["features", "pmu"],
            "`realtime` turns the PMU off: remove `pmu: true`",
        );
    }
    out.memory_flags.insert(memory_backing::Key::Locked, true);
    out.pmu = Some(false);
}

fn validate_list(v: &mut Validation, list: &[RawVcpusched], count: Option<u32>) -> Vec<Vcpusched> {
    let limit = count.unwrap_or(MAX_VCPUS);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let idx = i.to_string();
        let Some(vcpus) = v.cpuset(&["cputune", "vcpusched", &idx, "vcpus"], &e.vcpus) else {
            continue;
        };
        if vcpus.highest() >= limit {
            v.err(
                &["cputune", "vcpusched", &idx, "vcpus"],
                format!(
                    "vCPU {} is out of range: the guest has {limit} vCPUs",
                    vcpus.highest()
                ),
            );
        }
        if !priority_ok(e.scheduler, e.priority) {
            v.err(
                &["cputune", "vcpusched", &idx, "priority"],
                format!(
                    "scheduler {} {}",
                    e.scheduler.as_str(),
                    if e.scheduler.realtime() {
                        "needs a priority 1-99"
                    } else {
                        "takes no priority"
                    }
                ),
            );
        }
        let overlap: Vec<u32> = vcpus.iter().filter(|c| seen.contains(c)).collect();
        if let Some(c) = overlap.first() {
            v.err(
                &["cputune", "vcpusched", &idx, "vcpus"],
                format!("vCPU {c} is already in an earlier entry"),
            );
        }
        seen.extend(vcpus.iter());
        out.push(Vcpusched {
            vcpus,
            scheduler: e.scheduler,
            priority: e.priority,
        });
    }
    out
}

/// The list to write: declared, or derived from `realtime` and the guest's vCPU count.
fn wanted(ed: &mut Editor, d: &GuestDesired) -> Option<Vec<Vcpusched>> {
    if let Some(l) = &d.vcpusched {
        return Some(l.clone());
    }
    let ex = d.realtime_exclude.as_ref()?;
    let n = ed.vcpus?;
    let rt: Vec<u32> = (0..n).filter(|c| !ex.contains(*c)).collect();
    match CpuSet::from_cpus(rt) {
        Some(vcpus) => Some(vec![Vcpusched {
            vcpus,
            scheduler: SchedPolicy::Fifo,
            priority: Some(1),
        }]),
        None => {
            ed.issue(
                &["realtime", "mask"],
                GuestIssue::Realtime(format!(
                    "the mask excludes every vCPU of the guest (it has {n}): none would be real-time"
                )),
            );
            None
        }
    }
}

/// The observed `<vcpusched>` elements and their descriptions (`1-3 fifo 1`).
fn observed(doc: &Document, ct: Option<NodeId>) -> (Vec<NodeId>, BTreeSet<String>) {
    let els = ct
        .map(|c| doc.children_named(c, "vcpusched"))
        .unwrap_or_default();
    let desc = els
        .iter()
        .map(|e| {
            let vcpus = canon_cpuset(doc.attr(*e, "vcpus")).unwrap_or_default();
            let s = doc.attr(*e, "scheduler").unwrap_or_default();
            match doc.attr(*e, "priority") {
                Some(p) => format!("{vcpus} {s} {}", p.trim()),
                None => format!("{vcpus} {s}"),
            }
        })
        .collect();
    (els, desc)
}

fn joined(set: &BTreeSet<String>) -> Option<String> {
    (!set.is_empty()).then(|| set.iter().cloned().collect::<Vec<_>>().join("; "))
}

pub(super) fn edit(ed: &mut Editor, d: &GuestDesired) {
    if d.vcpusched.is_none() && d.realtime_exclude.is_some() && ed.vcpus.is_none() {
        ed.issue(
            &["realtime"],
            GuestIssue::Realtime("the guest's vCPU count is unknown: declare vcpu.count".into()),
        );
        return;
    }
    let Some(want) = wanted(ed, d) else { return };
    let ct = ed.doc.child(ed.root(), "cputune");
    let (els, before) = observed(&ed.doc, ct);
    let after: BTreeSet<String> = want.iter().map(Vcpusched::describe).collect();
    if !ed.change(Key::Vcpusched, joined(&before), joined(&after)) {
        return;
    }
    ed.doc.remove_many(&els);
    if !want.is_empty() {
        let ct = ed.domain_child("cputune");
        for s in &want {
            let e = ed.doc.append_element(ct, "vcpusched");
            ed.doc.set_attr(e, "vcpus", &s.vcpus.to_string());
            ed.doc.set_attr(e, "scheduler", s.scheduler.as_str());
            if let Some(p) = s.priority {
                ed.doc.set_attr(e, "priority", &p.to_string());
            }
        }
    }
    if let Some(ct) = ed.doc.child(ed.root(), "cputune") {
        ed.prune_if_empty(ct);
    }
}

/// All entries, or none when one cannot be expressed (an authoritative list).
pub(super) fn import(doc: &Document, ct: NodeId, count: Option<u32>) -> Option<Vec<RawVcpusched>> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for e in doc.children_named(ct, "vcpusched") {
        let vcpus = cpuset_attr(doc, e, "vcpus")?;
        if count.is_some_and(|c| vcpus.highest() >= c) || vcpus.iter().any(|c| !seen.insert(c)) {
            return None;
        }
        let scheduler = match doc.attr(e, "scheduler")?.as_str() {
            "fifo" => SchedPolicy::Fifo,
            "rr" => SchedPolicy::Rr,
            "batch" => SchedPolicy::Batch,
            "idle" => SchedPolicy::Idle,
            _ => return None,
        };
        let priority = match doc.attr(e, "priority") {
            Some(p) => Some(p.trim().parse::<u32>().ok()?),
            None => None,
        };
        if !priority_ok(scheduler, priority) {
            return None;
        }
        out.push(RawVcpusched {
            vcpus: raw_set(&vcpus),
            scheduler,
            priority,
        });
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::{changes, converges, domain, guest, invalid, issues, plan};
    use super::*;

    #[test]
    fn vcpusched_is_an_authoritative_set_restart_only_and_imports_back() {
        let xml = domain("<vcpu>4</vcpu>\n  <cputune>\n    <vcpupin vcpu='0' cpuset='0'/>\n    <vcpusched vcpus='3,2,1' scheduler='fifo' priority='1'/>\n    <vcpusched vcpus='0' scheduler='batch'/>\n  </cputune>");
        // The same set spelled otherwise: no change.
        let same = "    cputune: { vcpusched: [ { vcpus: \"0\", scheduler: batch }, { vcpus: \"1-3\", scheduler: fifo, priority: 1 } ] }\n";
        assert!(converges(same, &xml).changes.is_empty());
        let p = converges(
            "    cputune: { vcpusched: [ { vcpus: \"1-2\", scheduler: rr, priority: 10 } ] }\n",
            &xml,
        );
        assert_eq!(
            changes(&p),
            [(
                "cputune.vcpusched".into(),
                Some("0 batch; 1-3 fifo 1".into()),
                Some("1-2 rr 10".into())
            )]
        );
        assert!(!crate::domain::settings::live_capable(&p.changes[0].key));
        assert!(p.new_xml.contains("<vcpupin vcpu='0' cpuset='0'/>"));
        let raw = crate::domain::import::import_guest(&p.new_xml).unwrap();
        let l = raw.cputune.unwrap().vcpusched.unwrap();
        assert_eq!(
            (l.len(), l[0].scheduler, l[0].priority),
            (1, SchedPolicy::Rr, Some(10))
        );
        // An empty list removes them all.
        let p = converges("    cputune: { vcpusched: [] }\n", &xml);
        assert!(!p.new_xml.contains("vcpusched"), "{}", p.new_xml);
        assert_eq!(
            invalid("    vcpu: { count: 4 }\n    cputune: { vcpusched: [ { vcpus: \"1-3\", scheduler: fifo }, { vcpus: \"3-4\", scheduler: idle, priority: 2 } ] }\n"),
            "guests.g.cputune.vcpusched.0.priority: scheduler fifo needs a priority 1-99\n\
             guests.g.cputune.vcpusched.1.vcpus: vCPU 4 is out of range: the guest has 4 vCPUs\n\
             guests.g.cputune.vcpusched.1.priority: scheduler idle takes no priority\n\
             guests.g.cputune.vcpusched.1.vcpus: vCPU 3 is already in an earlier entry"
        );
    }

    #[test]
    fn realtime_mask_derives_fifo_on_the_other_vcpus_locked_memory_and_pmu_off() {
        let xml = domain("<vcpu>4</vcpu>\n  <features><acpi/></features>");
        let p = converges("    realtime: { mask: \"^0\" }\n", &xml);
        assert_eq!(
            changes(&p),
            [
                ("cputune.vcpusched".into(), None, Some("1-3 fifo 1".into())),
                (
                    "memory_backing.locked".into(),
                    Some("false".into()),
                    Some("true".into())
                ),
                ("features.pmu".into(), None, Some("off".into())),
            ]
        );
        assert!(p
            .new_xml
            .contains("<vcpusched vcpus='1-3' scheduler='fifo' priority='1'/>"));
        let p = converges("    realtime: { mask: \"^0-1,^3\" }\n", &xml);
        assert_eq!(changes(&p)[0].2.as_deref(), Some("2 fifo 1"));
        let e = plan("    realtime: { mask: \"^0-3\" }\n", &xml).unwrap_err();
        assert_eq!(
            issues(&e),
            ["guests.g.realtime.mask: the mask excludes every vCPU of the guest (it has 4): none would be real-time"]
        );
        assert!(guest("    realtime: { mask: \"^0\" }\n")
            .realtime_exclude
            .is_some());
        assert_eq!(
            invalid("    realtime: { mask: \"0-1\" }\n    memory_backing: { locked: false }\n    features: { pmu: true }\n    cputune: { vcpusched: [] }\n"),
            "guests.g.realtime.mask: `0-1` is not an exclusion: the mask lists the vCPUs that are not real-time, each as ^N or ^N-M\n\
             guests.g.realtime: `realtime` sets cputune.vcpusched: declare one or the other\n\
             guests.g.memory_backing.locked: `realtime` locks the guest's memory: remove `locked: false`\n\
             guests.g.features.pmu: `realtime` turns the PMU off: remove `pmu: true`"
        );
    }
}
