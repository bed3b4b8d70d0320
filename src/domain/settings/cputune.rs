//! `cputune`: vCPU, emulator and I/O thread pinning (`<cputune><vcpupin/><emulatorpin/>
//! <iothreadpin/>`), or `vcpupin: auto` for automatic pinning.
//!
//! Invariant: a declared pin map is authoritative (pins not listed are removed, duplicates of
//! an index collapse into one element); every key changes live, and live-only drift of a pin
//! is corrected (libvirt always changes pins live).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{not_on_host, GuestDesired, GuestKey, Validation};
use crate::config::raw::{RawCpuSet, RawCputune, RawGuest, RawVcpupin, ThreadPolicy};
use crate::cpuset::CpuSet;
use crate::domain::edit::{canon_cpuset, parse_u32, Editor};
use crate::domain::import::{cpuset_attr, raw_set};
use crate::domain::running::{check, is_iothread, set_text, sets_of, vcpu_index, Check, Running};
use crate::domain::{GuestIssue, LocatedIssue};
use crate::libvirt::{LiveOp, NodeInfo};
use crate::xmltree::{Document, NodeId};

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
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Vcpupin(i) => write!(f, "cputune.vcpupin.{i}"),
            Key::Iothreadpin(i) => write!(f, "cputune.iothreadpin.{i}"),
            Key::Emulatorpin => f.write_str("cputune.emulatorpin"),
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

/// Automatic pinning of one guest (`cputune.vcpupin: auto`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoPin {
    pub emulator: Option<EmulatorAuto>,
    pub nodeset: bool,
    pub numa_node: Option<u32>,
    pub threads: ThreadPolicy,
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
        let Some(ct) = &g.cputune else { return };
        match &ct.vcpupin {
            Some(RawVcpupin::Map(pins)) => {
                let mut m = BTreeMap::new();
                for (idx, cs) in pins {
                    let at = ["cputune", "vcpupin", &idx.to_string()];
                    if let Some(c) = out.vcpu_count.filter(|c| idx >= c) {
                        v.err(
                            &at,
                            format!(
                                "vCPU index {idx} is out of range: the guest has {c} vCPUs (0-{})",
                                c - 1
                            ),
                        );
                        continue;
                    }
                    if let Some(c) = v.cpuset(&at, cs) {
                        m.insert(*idx, c);
                    }
                }
                out.vcpupin = Some(m);
            }
            Some(RawVcpupin::Auto(_)) => {
                out.auto_pin = Some(AutoPin::default());
            }
            None => {}
        }
        emulatorpin(v, ct, out);
        if let Some(pins) = &ct.iothreadpin {
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
            pin_map(ed, Pins::Vcpu, pins);
        }
        if let Some(pins) = &d.iothreadpin {
            pin_map(ed, Pins::Iothread, pins);
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
    }

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        let Some(ct) = doc.child(doc.root(), "cputune") else {
            return;
        };
        let count = super::vcpu::observed_count(doc);
        let iothreads = super::iothreads::observed(doc);
        let t = RawCputune {
            vcpupin: import_pins(doc, ct, Pins::Vcpu, |i| count.is_none_or(|c| i < c))
                .map(RawVcpupin::Map),
            emulatorpin: doc
                .child(ct, "emulatorpin")
                .and_then(|e| cpuset_attr(doc, e, "cpuset"))
                .map(|c| raw_set(&c)),
            iothreadpin: import_pins(doc, ct, Pins::Iothread, |i| {
                i > 0 && iothreads.is_none_or(|n| i <= n)
            }),
        };
        if t != RawCputune::default() {
            out.cputune = Some(t);
        }
    }

    fn live_capable(&self, key: &GuestKey) -> bool {
        matches!(key, GuestKey::Cputune(_))
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
    }
}

/// `emulatorpin`: a CPU set, or `auto` / `isolate` beside `vcpupin: auto`.
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
fn pin_map(ed: &mut Editor, pins_of: Pins, pins: &BTreeMap<u32, CpuSet>) {
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
    for idx in all {
        let els = observed.get(&idx).cloned().unwrap_or_default();
        let values: Vec<String> = els
            .iter()
            .map(|e| canon_cpuset(ed.doc.attr(*e, "cpuset")).unwrap_or_default())
            .collect();
        let before = (!values.is_empty()).then(|| values.join("; "));
        let after = pins.get(&idx).map(|c| c.to_string());
        if !ed.change(pins_of.key(idx), before, after.clone()) {
            continue;
        }
        // Duplicates go; the first element carries the value.
        for extra in els.iter().skip(1) {
            ed.doc.remove(*extra);
        }
        match (els.first(), after) {
            (Some(el), Some(a)) => ed.doc.set_attr(*el, "cpuset", &a),
            (Some(el), None) => ed.doc.remove(*el),
            (None, Some(a)) => {
                let ct = ed.domain_child("cputune");
                let prev = ed
                    .doc
                    .children_named(ct, elem)
                    .into_iter()
                    .rfind(|p| parse_u32(ed.doc.attr(*p, id_attr)).is_some_and(|v| v < idx));
                let el = match prev {
                    Some(p) => ed.doc.insert_element_after(p, elem),
                    None => ed.doc.append_element(ct, elem),
                };
                ed.doc.set_attr(el, id_attr, &idx.to_string());
                ed.doc.set_attr(el, "cpuset", &a);
            }
            (None, None) => {}
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
