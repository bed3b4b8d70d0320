//! `cputune`: vCPU, emulator and I/O thread pinning (`<cputune><vcpupin/><emulatorpin/>
//! <iothreadpin/>`), or `vcpupin: auto | shared` and `emulatorpin` / `iothreadpin: auto` for
//! automatic pinning (resolved by [`crate::pinning`] before the edit); and the CFS scheduler
//! parameters (`<shares/><period/><quota/><emulator_period/><emulator_quota/>`).
//!
//! Invariant: a declared pin map is authoritative (pins not listed are removed, duplicates of
//! an index collapse into one element); every key changes live, and live-only drift of a pin
//! is corrected (libvirt always changes pins live). For a `shared` guest (no pins, its vCPUs
//! float over `<vcpu cpuset>`) a `<vcpupin>` equal to that cpuset means the same as none (a
//! running guest's vCPUs re-pinned live to the pool read like that), so it is no change.
//! A scheduler parameter compares as an integer (absent: libvirt's default, so a declared
//! value is always written) and changes live through `virDomainSetSchedulerParametersFlags`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::vcpu::MAX_VCPUS;
use super::{not_on_host, GuestDesired, GuestKey, Validation};
use crate::config::raw::{
    Placement, RawCpuSet, RawCputune, RawGuest, RawIothreadpin, RawVcpupin, ThreadPolicy,
};
use crate::cpuset::CpuSet;
use crate::domain::edit::{canon_cpuset, parse_u32, sorted_anchors, Editor};
use crate::domain::import::{cpuset_attr, raw_set};
use crate::domain::running::{check, is_iothread, set_text, sets_of, vcpu_index, Check, Running};
use crate::domain::{GuestIssue, LocatedIssue};
use crate::libvirt::{LiveOp, NodeInfo};
use crate::model::live::SchedParam;
use crate::xmltree::{Document, NodeId};

pub mod sched;

pub struct Setting;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "CputuneKey")]
pub enum Key {
    /// One vCPU's pin.
    Vcpupin(u32),
    /// One I/O thread's pin.
    Iothreadpin(u32),
    Emulatorpin,
    /// One CFS scheduler parameter (`cputune.shares`, `cputune.quota` ...).
    Sched(SchedParam),
    /// The whole `<vcpusched>` list.
    Vcpusched,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Vcpupin(i) => write!(f, "cputune.vcpupin.{i}"),
            Key::Iothreadpin(i) => write!(f, "cputune.iothreadpin.{i}"),
            Key::Emulatorpin => f.write_str("cputune.emulatorpin"),
            Key::Sched(p) => write!(f, "cputune.{}", p.elem()),
            Key::Vcpusched => f.write_str("cputune.vcpusched"),
        }
    }
}

impl From<Key> for GuestKey {
    fn from(k: Key) -> GuestKey {
        GuestKey::Cputune(k)
    }
}

/// `emulatorpin: auto | isolate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmulatorAuto {
    /// The reserved CPUs of the guest's NUMA node(s).
    Reserved,
    /// One dedicated CPU of the guest's NUMA node.
    Isolate,
}

/// Automatic pinning of one guest (`cputune.vcpupin: auto` or `shared`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoPin {
    pub emulator: Option<EmulatorAuto>,
    pub nodeset: bool,
    pub numa_node: Option<u32>,
    pub threads: ThreadPolicy,
    /// `vcpupin: shared`: `<vcpu cpuset>` is `host.cpu_pool.shared`, no 1:1 pins.
    pub shared: bool,
    /// `iothreadpin: auto`: every I/O thread where the emulator goes.
    pub iothreads: bool,
}

/// The two pin maps: `<{elem} {id_attr}='N' cpuset=…/>`.
#[derive(Clone, Copy)]
enum Pins {
    Vcpu,
    Iothread,
}

impl Pins {
    fn elem(self) -> &'static str {
        match self {
            Pins::Vcpu => "vcpupin",
            Pins::Iothread => "iothreadpin",
        }
    }

    fn id_attr(self) -> &'static str {
        match self {
            Pins::Vcpu => "vcpu",
            Pins::Iothread => "iothread",
        }
    }

    fn key(self, idx: u32) -> Key {
        match self {
            Pins::Vcpu => Key::Vcpupin(idx),
            Pins::Iothread => Key::Iothreadpin(idx),
        }
    }
}

impl super::GuestSetting for Setting {
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        sched::validate(v, g, out);
        let Some(ct) = &g.cputune else { return };
        match &ct.vcpupin {
            Some(RawVcpupin::Map(pins)) => {
                let mut m = BTreeMap::new();
                // vCPU indices out of range: one error, at the first, naming how many.
                let limit = out.vcpu_count.unwrap_or(MAX_VCPUS);
                let mut out_of_range = pins.keys().filter(|i| **i >= limit);
                if let Some(first) = out_of_range.next() {
                    let more = out_of_range.count();
                    let more = match more {
                        0 => String::new(),
                        1 => " (and 1 more index)".into(),
                        n => format!(" (and {n} more indices)"),
                    };
                    let why = match out.vcpu_count {
                        Some(c) => format!("the guest has {c} vCPUs (0-{})", c - 1),
                        None => format!(
                            "a guest has at most {MAX_VCPUS} vCPUs (0-{})",
                            MAX_VCPUS - 1
                        ),
                    };
                    v.err(
                        &["cputune", "vcpupin", &first.to_string()],
                        format!("vCPU index {first} is out of range{more}: {why}"),
                    );
                }
                for (idx, cs) in pins.iter().filter(|(i, _)| **i < limit) {
                    let at = ["cputune", "vcpupin", &idx.to_string()];
                    if let Some(c) = v.cpuset(&at, cs) {
                        m.insert(*idx, c);
                    }
                }
                out.vcpupin = Some(m);
            }
            Some(RawVcpupin::Auto(_)) => {
                out.auto_pin = Some(AutoPin::default());
            }
            Some(RawVcpupin::Shared(_)) => shared(v, g, out),
            None => {}
        }
        emulatorpin(v, ct, out);
        if let Some(RawIothreadpin::Auto(_)) = &ct.iothreadpin {
            iothreadpin_auto(v, out);
        }
        if let Some(RawIothreadpin::Map(pins)) = &ct.iothreadpin {
            let mut m = BTreeMap::new();
            for (id, cs) in pins {
                let at = ["cputune", "iothreadpin", &id.to_string()];
                if *id == 0 || g.iothreads.is_some_and(|n| id > &n) {
                    v.err(&at, format!("I/O thread {id} does not exist: ids run from 1 to the iothreads count{}", g.iothreads.map(|n| format!(" ({n})")).unwrap_or_default()));
                    continue;
                }
                if let Some(c) = v.cpuset(&at, cs) {
                    m.insert(*id, c);
                }
            }
            out.iothreadpin = Some(m);
        }
        for p in SchedParam::ALL {
            let Some(val) = ct.sched(p) else { continue };
            if p.valid(val) {
                out.sched.insert(p, val);
            } else {
                v.err(
                    &["cputune", p.elem()],
                    format!("{} {val} is outside {}", p.elem(), p.range()),
                );
            }
        }
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        if let Some(pins) = &d.vcpupin {
            for idx in pins.keys() {
                if let Some(c) = ed.vcpus.filter(|c| idx >= c) {
                    ed.issue(
                        &["cputune", "vcpupin", &idx.to_string()],
                        GuestIssue::VcpuOutOfRange(*idx, c),
                    );
                }
            }
            // A shared guest's vCPUs float over <vcpu cpuset>: a pin saying the same is none.
            let floating = d
                .auto_pin
                .as_ref()
                .filter(|a| a.shared)
                .and(d.vcpu_cpuset.as_ref())
                .map(|c| c.to_string());
            pin_map(ed, Pins::Vcpu, pins, floating);
        }
        if let Some(pins) = &d.iothreadpin {
            pin_map(ed, Pins::Iothread, pins, None);
        }
        if let Some(cs) = &d.emulatorpin {
            let el = ed.path_child(&["cputune", "emulatorpin"]);
            let before = canon_cpuset(el.and_then(|e| ed.doc.attr(e, "cpuset")));
            if ed.change(Key::Emulatorpin, before, Some(cs.to_string())) {
                let ct = ed.domain_child("cputune");
                let e = ed.doc.ensure_child(ct, "emulatorpin");
                ed.doc.set_attr(e, "cpuset", &cs.to_string());
            }
        }
        sched::edit(ed, d);
        for (p, want) in &d.sched {
            let el = ed.path_child(&["cputune", p.elem()]);
            let now = el.and_then(|e| ed.doc.text(e).trim().parse::<i64>().ok());
            if now == Some(*want) {
                continue;
            }
            let before = el.map(|e| ed.doc.text(e).trim().to_string());
            ed.change(Key::Sched(*p), before, Some(want.to_string()));
            let ct = ed.domain_child("cputune");
            let e = ed.doc.ensure_child(ct, p.elem());
            ed.doc.set_text(e, &want.to_string());
        }
    }

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        let Some(ct) = doc.child(doc.root(), "cputune") else {
            return;
        };
        let count = super::vcpu::observed_count(doc);
        let iothreads = super::iothreads::observed(doc);
        let mut t = RawCputune {
            vcpupin: import_pins(doc, ct, Pins::Vcpu, |i| count.is_none_or(|c| i < c))
                .map(RawVcpupin::Map),
            emulatorpin: doc
                .child(ct, "emulatorpin")
                .and_then(|e| cpuset_attr(doc, e, "cpuset"))
                .map(|c| raw_set(&c)),
            iothreadpin: import_pins(doc, ct, Pins::Iothread, |i| {
                i > 0 && iothreads.is_none_or(|n| i <= n)
            })
            .map(RawIothreadpin::Map),
            ..RawCputune::default()
        };
        t.vcpusched = sched::import(doc, ct, count);
        for p in SchedParam::ALL {
            let val = doc
                .child(ct, p.elem())
                .and_then(|e| doc.text(e).trim().parse::<i64>().ok())
                .filter(|v| p.valid(*v));
            t.set_sched(p, val);
        }
        if t != RawCputune::default() {
            out.cputune = Some(t);
        }
    }

    /// Everything but `vcpusched` (libvirt has no live API for a vCPU's scheduler).
    fn live_capable(&self, key: &GuestKey) -> bool {
        matches!(key, GuestKey::Cputune(k) if *k != Key::Vcpusched)
    }

    /// An I/O thread is pinned live only when the running guest has it (one added to the
    /// definition exists after the restart).
    fn live_applies(&self, key: &GuestKey, live_xml: &str) -> bool {
        match key {
            GuestKey::Cputune(Key::Iothreadpin(id)) => crate::domain::pins::XmlPins::read(live_xml)
                .iothread_ids
                .contains(id),
            _ => true,
        }
    }

    fn live(&self, d: &GuestDesired, key: &GuestKey, node: Option<NodeInfo>) -> Option<LiveOp> {
        let GuestKey::Cputune(k) = key else {
            return None;
        };
        Some(match *k {
            Key::Vcpupin(vcpu) => {
                let cpuset = match d.vcpupin.as_ref()?.get(&vcpu) {
                    Some(c) => c.to_string(),
                    // Unpinned: the guest's default CPUs, else every host CPU.
                    None => match &d.vcpu_cpuset {
                        Some(c) => c.to_string(),
                        None => CpuSet::from_cpus(0..node?.cpus)?.to_string(),
                    },
                };
                LiveOp::PinVcpu { vcpu, cpuset }
            }
            Key::Iothreadpin(iothread) => {
                let cpuset = match d.iothreadpin.as_ref()?.get(&iothread) {
                    Some(c) => c.to_string(),
                    None => CpuSet::from_cpus(0..node?.cpus)?.to_string(),
                };
                LiveOp::PinIothread { iothread, cpuset }
            }
            Key::Emulatorpin => LiveOp::PinEmulator {
                cpuset: d.emulatorpin.as_ref()?.to_string(),
            },
            Key::Sched(param) => LiveOp::Scheduler {
                param,
                value: *d.sched.get(&param)?,
            },
            Key::Vcpusched => return None,
        })
    }

    fn fixes_live_drift(&self) -> bool {
        true
    }

    fn host_fit(&self, d: &GuestDesired, node: NodeInfo, out: &mut Vec<LocatedIssue>) {
        for (i, c) in d.vcpupin.iter().flatten() {
            let at = ["cputune", "vcpupin", &i.to_string()];
            not_on_host(d, &at, c, node.cpus, "CPU", out);
        }
        if let Some(c) = &d.emulatorpin {
            not_on_host(d, &["cputune", "emulatorpin"], c, node.cpus, "CPU", out);
        }
        for (i, c) in d.iothreadpin.iter().flatten() {
            let at = ["cputune", "iothreadpin", &i.to_string()];
            not_on_host(d, &at, c, node.cpus, "CPU", out);
        }
    }

    /// `cputune.vcpupin.N`: `Cpus_allowed_list` of the thread `CPU N/KVM`;
    /// `cputune.emulatorpin`: that of every other QEMU thread except IOThreads and
    /// kernel-created workers (exactly the threads libvirt puts in the `emulator` cgroup).
    fn verify(&self, d: &GuestDesired, run: &Running, out: &mut Vec<Check>) {
        let threads = &run.live.threads;
        for (idx, want) in d.vcpupin.iter().flatten() {
            let t = threads.iter().find(|t| vcpu_index(&t.comm) == Some(*idx));
            let actual = match t {
                Some(t) => set_text(&t.cpus_allowed),
                None => "(no vCPU thread)".into(),
            };
            let key = GuestKey::from(Key::Vcpupin(*idx));
            check(out, key.to_string(), want.to_string(), actual);
        }
        if let Some(want) = &d.emulatorpin {
            let emulator = threads.iter().filter(|t| {
                vcpu_index(&t.comm).is_none() && !is_iothread(&t.comm) && !t.kernel_worker
            });
            let actual = sets_of(emulator, |t| &t.cpus_allowed);
            let key = GuestKey::from(Key::Emulatorpin);
            check(out, key.to_string(), want.to_string(), actual);
        }
        for (id, want) in d.iothreadpin.iter().flatten() {
            let name = format!("IO iothread{id}");
            let actual = match threads.iter().find(|t| t.comm == name) {
                Some(t) => set_text(&t.cpus_allowed),
                None => "(no IOThread thread)".into(),
            };
            let key = GuestKey::from(Key::Iothreadpin(*id));
            check(out, key.to_string(), want.to_string(), actual);
        }
    }
}

/// `vcpupin: shared`: needs `host.cpu_pool.shared`; the pool is the guest's `<vcpu cpuset>`,
/// so it declares neither that nor `vcpu.placement: auto` (numad would ignore the cpuset).
fn shared(v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
    let at = ["cputune", "vcpupin"];
    if v.shared.is_none() {
        v.err(
            &at,
            "`vcpupin: shared` floats the vCPUs over host.cpu_pool.shared: declare it",
        );
    }
    if let Some(raw) = &g.vcpu {
        if raw.cpuset.is_some() {
            v.err(
                &["vcpu", "cpuset"],
                "`vcpupin: shared` sets the cpuset to host.cpu_pool.shared: remove vcpu.cpuset",
            );
        }
        if raw.placement == Some(Placement::Auto) {
            v.err(
                &["vcpu", "placement"],
                "`vcpupin: shared` needs static placement (numad would ignore the shared pool)",
            );
        }
    }
    out.auto_pin = Some(AutoPin {
        shared: true,
        ..Default::default()
    });
}

/// `iothreadpin: auto`: beside `vcpupin: auto | shared`; on the reserved CPUs unless the
/// emulator has an isolated CPU.
fn iothreadpin_auto(v: &mut Validation, out: &mut GuestDesired) {
    let at = ["cputune", "iothreadpin"];
    let reserved = v.reserved.is_some();
    match out.auto_pin.as_mut() {
        Some(a) => {
            a.iothreads = true;
            if a.emulator != Some(EmulatorAuto::Isolate) && !reserved {
                v.err(
                    &at,
                    "`iothreadpin: auto` runs the I/O threads on reserved CPUs: declare host.cpu_pool.reserved",
                );
            }
        }
        None => v.err(
            &at,
            "`iothreadpin: auto` follows the guest's placement: it needs `vcpupin: auto` or `vcpupin: shared`",
        ),
    }
}

/// `emulatorpin`: a CPU set, or `auto` / `isolate` beside `vcpupin: auto` (`auto` also
/// beside `vcpupin: shared`).
fn emulatorpin(v: &mut Validation, ct: &RawCputune, out: &mut GuestDesired) {
    let at = ["cputune", "emulatorpin"];
    match &ct.emulatorpin {
        Some(RawCpuSet::Set(s)) if s == "auto" || s == "isolate" => {
            let mode = if s == "auto" {
                EmulatorAuto::Reserved
            } else {
                EmulatorAuto::Isolate
            };
            match out.auto_pin.as_mut() {
                Some(a) if a.shared && mode == EmulatorAuto::Isolate => v.err(
                    &at,
                    "`emulatorpin: isolate` takes a dedicated CPU: it needs `vcpupin: auto`, not `shared`",
                ),
                Some(a) => a.emulator = Some(mode),
                None => v.err(&at, format!("`emulatorpin: {s}` needs `vcpupin: auto`")),
            }
            if mode == EmulatorAuto::Reserved && v.reserved.is_none() {
                v.err(
                    &at,
                    "`emulatorpin: auto` runs the emulator on reserved CPUs: declare host.cpu_pool.reserved",
                );
            }
        }
        Some(e) => out.emulatorpin = v.cpuset(&at, e),
        None => {}
    }
}

/// An authoritative map of `<cputune><{elem} {id_attr}='N' cpuset='...'/>` entries.
///
/// Linear in the pins (plus a sort): removals and insertions are each one pass over
/// `<cputune>`'s children, new pins going where inserting them one by one in id order
/// would put them ([`sorted_anchors`]).
/// An observed pin equal to `floating` counts as no pin.
fn pin_map(ed: &mut Editor, pins_of: Pins, pins: &BTreeMap<u32, CpuSet>, floating: Option<String>) {
    let (elem, id_attr) = (pins_of.elem(), pins_of.id_attr());
    let ct = ed.doc.child(ed.root(), "cputune");
    // Index → its elements (libvirt writes one; hand-written XML may repeat an index).
    let mut observed: BTreeMap<u32, Vec<NodeId>> = BTreeMap::new();
    for p in ct
        .map(|c| ed.doc.children_named(c, elem))
        .unwrap_or_default()
    {
        if let Some(i) = parse_u32(ed.doc.attr(p, id_attr)) {
            observed.entry(i).or_default().push(p);
        }
    }
    let all: BTreeSet<u32> = pins.keys().chain(observed.keys()).copied().collect();
    let mut gone: Vec<NodeId> = Vec::new();
    let mut added: Vec<(u32, String)> = Vec::new();
    for idx in all {
        let els = observed.get(&idx).map(Vec::as_slice).unwrap_or_default();
        let values: Vec<String> = els
            .iter()
            .map(|e| canon_cpuset(ed.doc.attr(*e, "cpuset")).unwrap_or_default())
            .collect();
        let before = (!values.is_empty())
            .then(|| values.join("; "))
            .filter(|b| Some(b) != floating.as_ref());
        let after = pins.get(&idx).map(|c| c.to_string());
        if !ed.change(pins_of.key(idx), before, after.clone()) {
            continue;
        }
        // Duplicates go; the first element carries the value.
        gone.extend(els.iter().skip(1));
        match (els.first(), after) {
            (Some(el), Some(a)) => ed.doc.set_attr(*el, "cpuset", &a),
            (Some(el), None) => gone.push(*el),
            (None, Some(a)) => added.push((idx, a)),
            (None, None) => {}
        }
    }
    ed.doc.remove_many(&gone);
    if !added.is_empty() {
        let ct = ed.domain_child("cputune");
        let existing: Vec<(u32, NodeId)> = ed
            .doc
            .children_named(ct, elem)
            .into_iter()
            .filter_map(|p| Some((parse_u32(ed.doc.attr(p, id_attr))?, p)))
            .collect();
        let ids: Vec<u32> = added.iter().map(|(i, _)| *i).collect();
        let after = sorted_anchors(&existing, &ids);
        let new = ed.doc.insert_elements(ct, &after, elem);
        for (el, (idx, a)) in new.into_iter().zip(added) {
            ed.doc.set_attr(el, id_attr, &idx.to_string());
            ed.doc.set_attr(el, "cpuset", &a);
        }
    }
    if let Some(ct) = ed.doc.child(ed.root(), "cputune") {
        ed.prune_if_empty(ct);
    }
}

/// An authoritative pin map (`vcpupin`, `iothreadpin`): all pins, or none when one of them
/// cannot be expressed (leaving one out would plan its removal).
fn import_pins(
    doc: &Document,
    cputune: NodeId,
    pins_of: Pins,
    valid: impl Fn(u32) -> bool,
) -> Option<BTreeMap<u32, RawCpuSet>> {
    let mut m = BTreeMap::new();
    for p in doc.children_named(cputune, pins_of.elem()) {
        let id = parse_u32(doc.attr(p, pins_of.id_attr())).filter(|i| valid(*i))?;
        let c = cpuset_attr(doc, p, "cpuset")?;
        if m.insert(id, raw_set(&c)).is_some() {
            return None;
        }
    }
    (!m.is_empty()).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{converges, domain, guest, invalid};
    use super::*;

    /// The pin map as the editor wrote it before it was linear: one element at a time, each
    /// new pin after the last pin with a smaller index (else appended), each removal alone.
    fn one_at_a_time(xml: &str, pins: &BTreeMap<u32, CpuSet>) -> String {
        let mut doc = Document::parse(xml).unwrap();
        let ct = doc.child(doc.root(), "cputune").unwrap();
        let mut observed: BTreeMap<u32, Vec<NodeId>> = BTreeMap::new();
        for p in doc.children_named(ct, "vcpupin") {
            if let Some(i) = parse_u32(doc.attr(p, "vcpu")) {
                observed.entry(i).or_default().push(p);
            }
        }
        let all: BTreeSet<u32> = pins.keys().chain(observed.keys()).copied().collect();
        for idx in all {
            let els = observed.get(&idx).cloned().unwrap_or_default();
            let before: Vec<String> = els
                .iter()
                .map(|e| canon_cpuset(doc.attr(*e, "cpuset")).unwrap_or_default())
                .collect();
            let before = (!before.is_empty()).then(|| before.join("; "));
            let after = pins.get(&idx).map(|c| c.to_string());
            if before == after {
                continue;
            }
            for extra in els.iter().skip(1) {
                doc.remove(*extra);
            }
            match (els.first(), after) {
                (Some(el), Some(a)) => doc.set_attr(*el, "cpuset", &a),
                (Some(el), None) => doc.remove(*el),
                (None, Some(a)) => {
                    let prev = doc
                        .children_named(ct, "vcpupin")
                        .into_iter()
                        .rfind(|p| parse_u32(doc.attr(*p, "vcpu")).is_some_and(|v| v < idx));
                    let el = match prev {
                        Some(p) => doc.insert_element_after(p, "vcpupin"),
                        None => doc.append_element(ct, "vcpupin"),
                    };
                    doc.set_attr(el, "vcpu", &idx.to_string());
                    doc.set_attr(el, "cpuset", &a);
                }
                (None, None) => {}
            }
        }
        doc.to_xml()
    }

    #[test]
    fn linear_pin_map_writes_what_the_one_at_a_time_editor_wrote() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for case in 0..300 {
            // Existing pins in random order (repeats and gaps included), an emulatorpin
            // somewhere, and a declared map overlapping them.
            let mut els: Vec<String> = (0..next(8))
                .map(|_| format!("<vcpupin vcpu='{}' cpuset='{}'/>", next(12), next(4)))
                .collect();
            let at = next(els.len() as u64 + 1) as usize;
            if next(2) == 0 {
                els.insert(at, "<emulatorpin cpuset='0'/>".into());
            }
            let inner = els.iter().map(|e| format!("\n    {e}")).collect::<String>();
            let xml = domain(&format!(
                "<vcpu>12</vcpu>\n  <cputune>{inner}\n  </cputune>"
            ));
            let pins: BTreeMap<u32, CpuSet> = (0..next(10))
                .map(|_| {
                    let c = next(4) as u32;
                    (next(12) as u32, CpuSet::from_cpus([c]).unwrap())
                })
                .collect();
            let body = format!(
                "    cputune: {{ vcpupin: {{ {} }} }}\n",
                pins.iter()
                    .map(|(i, c)| format!("{i}: \"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let p = super::super::testing::plan(&body, &xml).unwrap();
            let want = one_at_a_time(&xml, &pins);
            let got = Document::parse(&p.new_xml).unwrap().to_xml();
            // The one-at-a-time editor also pruned an emptied <cputune>.
            // (Without changes a plan keeps the input as it is.)
            let pruned = if p.changes.is_empty() {
                xml.clone()
            } else {
                let mut d = Document::parse(&want).unwrap();
                if let Some(ct) = d.child(d.root(), "cputune") {
                    if d.elements(ct).is_empty() && d.attrs(ct).is_empty() {
                        d.remove(ct);
                    }
                }
                d.to_xml()
            };
            assert_eq!(got, pruned, "case {case}\n{xml}\n{body}");
        }
    }

    #[test]
    fn the_most_vcpus_qemu_accepts_validate_and_plan_and_one_more_is_one_error() {
        let n = MAX_VCPUS;
        let map = |n: u32| {
            (0..n)
                .map(|i| format!("{i}: \"{}\"", i % 64))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Existing pins on every other vCPU, all re-pinned, the rest added.
        let existing: String = (0..n)
            .step_by(2)
            .map(|i| format!("\n    <vcpupin vcpu='{i}' cpuset='{}'/>", (i + 1) % 64))
            .collect();
        let xml = domain(&format!(
            "<vcpu>{n}</vcpu>\n  <cputune>{existing}\n  </cputune>"
        ));
        let body = format!(
            "    vcpu: {{ count: {n} }}\n    cputune: {{ vcpupin: {{ {} }} }}\n",
            map(n)
        );
        let p = converges(&body, &xml);
        assert_eq!(p.changes.len(), n as usize);
        let doc = Document::parse(&p.new_xml).unwrap();
        let ct = doc.child(doc.root(), "cputune").unwrap();
        let order: Vec<u32> = doc
            .children_named(ct, "vcpupin")
            .into_iter()
            .map(|e| parse_u32(doc.attr(e, "vcpu")).unwrap())
            .collect();
        assert_eq!(order, (0..n).collect::<Vec<_>>());
        assert_eq!(guest(&body).vcpupin.unwrap().len(), n as usize);
        // Beyond it: one error for the whole map, at its first out-of-range index.
        let e = invalid(&format!(
            "    cputune: {{ vcpupin: {{ {} }} }}\n",
            map(n + 3)
        ));
        assert_eq!(
            e,
            "guests.g.cputune.vcpupin.4096: vCPU index 4096 is out of range (and 2 more indices): a guest has at most 4096 vCPUs (0-4095)"
        );
    }

    #[test]
    fn shared_and_iothreadpin_auto_validate_and_their_misuse_is_located() {
        let g = guest("    cputune: { vcpupin: shared }\n");
        let a = g.auto_pin.unwrap();
        assert!(a.shared && a.emulator.is_none() && !a.iothreads);
        let g = guest("    cputune: { vcpupin: auto, emulatorpin: isolate, iothreadpin: auto }\n");
        assert!(g.auto_pin.unwrap().iothreads);
        assert_eq!(
            invalid("    cputune: { vcpupin: shared, emulatorpin: isolate }\n"),
            "guests.g.cputune.emulatorpin: `emulatorpin: isolate` takes a dedicated CPU: it needs `vcpupin: auto`, not `shared`"
        );
        assert_eq!(
            invalid("    vcpu: { cpuset: \"0-1\", placement: auto }\n    cputune: { vcpupin: shared }\n"),
            "guests.g.vcpu.cpuset: `vcpupin: shared` sets the cpuset to host.cpu_pool.shared: remove vcpu.cpuset\nguests.g.vcpu.placement: `vcpupin: shared` needs static placement (numad would ignore the shared pool)"
        );
        assert_eq!(
            invalid("    cputune: { iothreadpin: auto }\n"),
            "guests.g.cputune.iothreadpin: `iothreadpin: auto` follows the guest's placement: it needs `vcpupin: auto` or `vcpupin: shared`"
        );
        // Without reserved CPUs (the test validation declares none) auto I/O threads have
        // nowhere to go, unless the emulator's isolated CPU takes them.
        assert_eq!(
            invalid("    cputune: { vcpupin: auto, iothreadpin: auto }\n"),
            "guests.g.cputune.iothreadpin: `iothreadpin: auto` runs the I/O threads on reserved CPUs: declare host.cpu_pool.reserved"
        );
        assert!(
            invalid("    cputune: { vcpupin: shared }\n    placement: { numa_node: 0 }\n")
                .starts_with("guests.g.placement: `placement` constrains dedicated CPUs")
        );
    }

    #[test]
    fn scheduler_parameters_validate_plan_converge_and_import() {
        use crate::domain::settings::testing::changes;
        let body = "    cputune: { shares: 2048, period: 100000, quota: -1, emulator_period: 50000, emulator_quota: 25000 }\n";
        let xml = domain("<vcpu>2</vcpu>\n  <cputune>\n    <shares>1024</shares>\n    <quota>-1</quota>\n    <vcpupin vcpu='0' cpuset='1'/>\n  </cputune>");
        let p = converges(body, &xml);
        assert_eq!(
            changes(&p),
            [
                (
                    "cputune.shares".into(),
                    Some("1024".into()),
                    Some("2048".into())
                ),
                ("cputune.period".into(), None, Some("100000".into())),
                ("cputune.emulator_period".into(), None, Some("50000".into())),
                ("cputune.emulator_quota".into(), None, Some("25000".into())),
            ]
        );
        // The pin it does not own is kept; every key is live.
        assert!(
            p.new_xml.contains("<vcpupin vcpu='0' cpuset='1'/>"),
            "{}",
            p.new_xml
        );
        for c in &p.changes {
            assert!(super::super::live_capable(&c.key), "{}", c.key);
        }
        let g = guest(body);
        let op = super::super::live_op(&g, &p.changes[0].key, None).unwrap();
        assert_eq!(
            op,
            LiveOp::Scheduler {
                param: SchedParam::Shares,
                value: 2048
            }
        );
        // Import reads back exactly what was declared.
        let raw = crate::domain::import::import_guest(&p.new_xml).unwrap();
        let ct = raw.cputune.unwrap();
        assert_eq!(
            SchedParam::ALL.map(|p| ct.sched(p)),
            [Some(2048), Some(100000), Some(-1), Some(50000), Some(25000)]
        );
        // Out of range values are located; importing them leaves them out.
        assert_eq!(
            invalid("    cputune: { shares: 0, period: 999, quota: -2, emulator_quota: 500 }\n"),
            "guests.g.cputune.shares: shares 0 is outside 1-262144\n\
             guests.g.cputune.period: period 999 is outside 1000-1000000 (µs)\n\
             guests.g.cputune.quota: quota -2 is outside -1 (unlimited) or 1000-17592186044415 (µs)\n\
             guests.g.cputune.emulator_quota: emulator_quota 500 is outside -1 (unlimited) or 1000-17592186044415 (µs)"
        );
        let odd = domain("<cputune><period>10</period><shares>x</shares></cputune>");
        assert!(crate::domain::import::import_guest(&odd)
            .unwrap()
            .cputune
            .is_none());
    }

    /// A shared guest's pin equal to its cpuset means no pin: no change; others are removed.
    #[test]
    fn a_shared_guests_pin_saying_its_cpuset_is_no_change() {
        let mut g = guest("    cputune: { vcpupin: shared }\n");
        g.vcpupin = Some(BTreeMap::new());
        g.vcpu_cpuset = Some("1-2".parse().unwrap());
        let xml = domain(
            "<vcpu cpuset='1-2'>2</vcpu>\n  <cputune>\n    <vcpupin vcpu='0' cpuset='2,1'/>\n    <vcpupin vcpu='1' cpuset='3'/>\n  </cputune>",
        );
        let p = crate::domain::plan_guest(&g, &xml, None).unwrap();
        let keys: Vec<String> = p.changes.iter().map(|c| c.key.to_string()).collect();
        assert_eq!(keys, ["cputune.vcpupin.1"]);
        assert!(crate::domain::plan_guest(&g, &p.new_xml, None)
            .unwrap()
            .changes
            .is_empty());
    }
}
