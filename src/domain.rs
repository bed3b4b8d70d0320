//! Domain XML: reading kvmtune's owned settings and editing them in place.
//!
//! Invariant: [`plan_guest`] is a pure function of (desired, domain XML, host default page size).
//! It compares values by meaning (CPU sets, sizes, libvirt defaults such as `placement='static'`,
//! `mode='strict'`, `dies='1'`) and edits only the elements and attributes of declared settings;
//! every other byte of the XML is preserved by [`crate::xmltree`]. Applying its output XML and
//! planning again yields no changes.

pub mod import;
pub mod pins;

use std::collections::BTreeMap;

use crate::config::raw::{CpuMode, Placement};
use crate::config::source::KeyPath;
use crate::cpuset::CpuSet;
use crate::desired::{
    DeviceKey, DiskDesired, GuestDesired, HugepagesBacking, InterfaceDesired, Topology,
};
use crate::units::{to_kib, PageSize};
use crate::xmltree::{Document, NodeId, XmlError};

/// One owned setting that differs. Values are canonical text; `None` means "not set".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A declared setting that cannot be planned against this domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestIssue {
    #[error("domain XML does not parse: {0}")]
    Xml(String),
    #[error("no disk with target dev `{0}` in this guest (it has: {1})")]
    NoDisk(String, String),
    #[error("no interface with MAC {0} in this guest (it has: {1})")]
    NoInterface(String, String),
    #[error("vCPU index {0} is out of range: the guest has {1} vCPUs")]
    VcpuOutOfRange(u32, u32),
    #[error("{0}")]
    NotOnHost(String),
    #[error("interface {0} is of type `{1}`: libvirt sets an MTU only on network, bridge, ethernet and vhostuser interfaces")]
    MtuUnsupported(String, String),
    #[error("vcpu count {0} does not match the guest's CPU topology ({1} vCPUs); declare cpu.topology too")]
    CountVsTopology(u32, u64),
    #[error("topology gives {0} vCPUs but the guest has {1}")]
    TopologyMismatch(u64, u32),
    #[error("vcpu.current {0} is above the guest's vCPU count {1}")]
    CurrentAboveCount(u32, u32),
    #[error("interface {0} is model {1}: driver and queues need model virtio (libvirt drops them on other models)")]
    NicNotVirtio(String, String),
}

/// A [`GuestIssue`] with the key path it is about (for locating it in the YAML).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedIssue {
    pub key: KeyPath,
    pub issue: GuestIssue,
}

/// What planning one guest produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPlan {
    pub changes: Vec<SettingChange>,
    /// The edited XML (equal to the input when there are no changes).
    pub new_xml: String,
}

/// The order libvirt writes `<domain>` children in; new elements are placed accordingly.
const DOMAIN_ORDER: &[&str] = &[
    "name",
    "uuid",
    "genid",
    "title",
    "description",
    "metadata",
    "maxMemory",
    "memory",
    "currentMemory",
    "blkiotune",
    "memtune",
    "memoryBacking",
    "vcpu",
    "vcpus",
    "iothreads",
    "iothreadids",
    "defaultiothread",
    "cputune",
    "numatune",
    "resource",
    "sysinfo",
    "bootloader",
    "bootloader_args",
    "os",
    "idmap",
    "features",
    "cpu",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_lockfailure",
    "pm",
    "perf",
    "devices",
];

struct Editor<'a> {
    doc: Document,
    changes: Vec<SettingChange>,
    issues: Vec<LocatedIssue>,
    key: &'a [String],
}

impl Editor<'_> {
    fn root(&self) -> NodeId {
        self.doc.root()
    }

    fn path_child(&self, names: &[&str]) -> Option<NodeId> {
        names
            .iter()
            .try_fold(self.root(), |n, name| self.doc.child(n, name))
    }

    /// The `<domain>` child `name`, created at its canonical position when missing.
    fn domain_child(&mut self, name: &str) -> NodeId {
        let root = self.root();
        if let Some(n) = self.doc.child(root, name) {
            return n;
        }
        let rank = DOMAIN_ORDER.iter().position(|n| *n == name);
        let before = self.doc.elements(root).into_iter().rfind(|e| {
            let r = DOMAIN_ORDER.iter().position(|n| *n == self.doc.name(*e));
            matches!((r, rank), (Some(r), Some(k)) if r < k)
        });
        match before {
            Some(sib) => self.doc.insert_element_after(sib, name),
            None => self.doc.append_element(root, name),
        }
    }

    fn change(&mut self, path: String, before: Option<String>, after: Option<String>) -> bool {
        if before == after {
            return false;
        }
        self.changes.push(SettingChange {
            path,
            before,
            after,
        });
        true
    }

    fn issue(&mut self, more: &[&str], issue: GuestIssue) {
        let mut key = self.key.to_vec();
        key.extend(more.iter().map(|s| s.to_string()));
        self.issues.push(LocatedIssue { key, issue });
    }

    /// Removes `el` if it has no element children and no attributes left.
    fn prune_if_empty(&mut self, el: NodeId) {
        if self.doc.elements(el).is_empty() && self.doc.attrs(el).is_empty() {
            self.doc.remove(el);
        }
    }
}

fn parse_u32(s: Option<String>) -> Option<u32> {
    s.and_then(|v| v.trim().parse().ok())
}

/// Canonical form of a cpuset attribute: parsed and re-printed, or the raw text if it does not
/// parse (then it never equals a desired value, and the plan shows what is there).
fn canon_cpuset(raw: Option<String>) -> Option<String> {
    raw.map(|r| match r.parse::<CpuSet>() {
        Ok(c) => c.to_string(),
        Err(_) => r,
    })
}

/// Plans one guest: which declared settings differ from `xml`, and the edited XML.
pub fn plan_guest(
    d: &GuestDesired,
    xml: &str,
    host_default_page: Option<PageSize>,
) -> Result<GuestPlan, Vec<LocatedIssue>> {
    let doc = Document::parse(xml).map_err(|e: XmlError| {
        vec![LocatedIssue {
            key: d.key_path.clone(),
            issue: GuestIssue::Xml(e.to_string()),
        }]
    })?;
    let mut ed = Editor {
        doc,
        changes: Vec::new(),
        issues: Vec::new(),
        key: &d.key_path,
    };
    let count = vcpu(&mut ed, d);
    cputune(&mut ed, d, count);
    numatune(&mut ed, d);
    if let Some(hp) = d.hugepages {
        hugepages(&mut ed, hp, host_default_page);
    }
    cpu(&mut ed, d, count);
    if let Some(n) = d.iothreads {
        iothreads(&mut ed, n);
    }
    blkiotune(&mut ed, d);
    memtune(&mut ed, &d.memtune);
    disks(&mut ed, &d.disks);
    interfaces(&mut ed, &d.interfaces);
    remove_devices(&mut ed, &d.remove_devices);
    if let Some(os) = &d.os_variant {
        os_variant(&mut ed, os);
    }
    if !ed.issues.is_empty() {
        return Err(ed.issues);
    }
    let new_xml = if ed.changes.is_empty() {
        xml.to_string()
    } else {
        ed.doc.to_xml()
    };
    Ok(GuestPlan {
        changes: ed.changes,
        new_xml,
    })
}

/// vcpu count/current/placement/cpuset. Returns the guest's vCPU count after the change.
fn vcpu(ed: &mut Editor, d: &GuestDesired) -> Option<u32> {
    let el = ed.doc.child(ed.root(), "vcpu");
    let observed = el.and_then(|e| parse_u32(Some(ed.doc.text(e))));
    let before_text = el.map(|e| ed.doc.text(e));
    if let Some(c) = d.vcpu_count {
        if observed != Some(c) && ed.change("vcpu.count".into(), before_text, Some(c.to_string())) {
            let e = ed.domain_child("vcpu");
            ed.doc.set_text(e, &c.to_string());
        }
    }
    let count = d.vcpu_count.or(observed);
    // libvirt rejects `current` above the count: lowering the count lowers `current` with it.
    if let (None, Some(c), Some(e)) = (d.vcpu_current, d.vcpu_count, el) {
        if let Some(cur) = parse_u32(ed.doc.attr(e, "current")).filter(|cur| *cur > c) {
            ed.change(
                "vcpu.current".into(),
                Some(cur.to_string()),
                Some(c.to_string()),
            );
            ed.doc.remove_attr(e, "current");
        }
    }
    if let Some(cur) = d.vcpu_current {
        if let Some(c) = count.filter(|c| cur > *c) {
            ed.issue(&["vcpu", "current"], GuestIssue::CurrentAboveCount(cur, c));
        }
        let attr = parse_u32(el.and_then(|e| ed.doc.attr(e, "current")));
        // What is in effect now, and what would be once vcpu.count is written.
        let now = attr.or(observed);
        let untouched = attr.or(count);
        if now != Some(cur) || untouched != Some(cur) {
            ed.changes.push(SettingChange {
                path: "vcpu.current".into(),
                before: now.map(|n| n.to_string()),
                after: Some(cur.to_string()),
            });
            let e = ed.domain_child("vcpu");
            if Some(cur) == count {
                ed.doc.remove_attr(e, "current");
            } else {
                ed.doc.set_attr(e, "current", &cur.to_string());
            }
        }
    }
    if let Some(p) = d.vcpu_placement {
        let before = el.map(|e| {
            ed.doc
                .attr(e, "placement")
                .unwrap_or_else(|| "static".into())
        });
        if ed.change("vcpu.placement".into(), before, Some(p.as_str().into())) {
            let e = ed.domain_child("vcpu");
            ed.doc.set_attr(e, "placement", p.as_str());
        }
    }
    if let Some(cs) = &d.vcpu_cpuset {
        let before = canon_cpuset(el.and_then(|e| ed.doc.attr(e, "cpuset")));
        if ed.change("vcpu.cpuset".into(), before, Some(cs.to_string())) {
            let e = ed.domain_child("vcpu");
            ed.doc.set_attr(e, "cpuset", &cs.to_string());
        }
    }
    count
}

fn cputune(ed: &mut Editor, d: &GuestDesired, count: Option<u32>) {
    if let Some(pins) = &d.vcpupin {
        for idx in pins.keys() {
            if let Some(c) = count.filter(|c| idx >= c) {
                ed.issue(
                    &["cputune", "vcpupin", &idx.to_string()],
                    GuestIssue::VcpuOutOfRange(*idx, c),
                );
            }
        }
        pin_map(ed, "vcpupin", "vcpu", pins);
    }
    if let Some(pins) = &d.iothreadpin {
        pin_map(ed, "iothreadpin", "iothread", pins);
    }
    if let Some(cs) = &d.emulatorpin {
        let el = ed.path_child(&["cputune", "emulatorpin"]);
        let before = canon_cpuset(el.and_then(|e| ed.doc.attr(e, "cpuset")));
        if ed.change("cputune.emulatorpin".into(), before, Some(cs.to_string())) {
            let ct = ed.domain_child("cputune");
            let e = ed.doc.ensure_child(ct, "emulatorpin");
            ed.doc.set_attr(e, "cpuset", &cs.to_string());
        }
    }
}

/// An authoritative map of `<cputune><{elem} {id_attr}='N' cpuset='...'/>` entries.
fn pin_map(ed: &mut Editor, elem: &str, id_attr: &str, pins: &BTreeMap<u32, CpuSet>) {
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
    let all: std::collections::BTreeSet<u32> =
        pins.keys().chain(observed.keys()).copied().collect();
    for idx in all {
        let els = observed.get(&idx).cloned().unwrap_or_default();
        let values: Vec<String> = els
            .iter()
            .map(|e| canon_cpuset(ed.doc.attr(*e, "cpuset")).unwrap_or_default())
            .collect();
        let before = (!values.is_empty()).then(|| values.join("; "));
        let after = pins.get(&idx).map(|c| c.to_string());
        if !ed.change(format!("cputune.{elem}.{idx}"), before, after.clone()) {
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

/// Sets the text of `parent`'s child `name` to `want` (a number); absent counts as `absent`.
fn number_child(
    ed: &mut Editor,
    parent: impl Fn(&mut Editor) -> NodeId,
    existing: Option<NodeId>,
    name: &str,
    path: String,
    want: u64,
    absent: Option<u64>,
) {
    let el = existing.and_then(|p| ed.doc.child(p, name));
    let now = el.and_then(|e| ed.doc.text(e).trim().parse::<u64>().ok());
    let before = el.map(|e| ed.doc.text(e)).or(absent.map(|a| a.to_string()));
    if now.or(absent) == Some(want) {
        return;
    }
    ed.change(path, before, Some(want.to_string()));
    let p = parent(ed);
    let e = ed.doc.ensure_child(p, name);
    ed.doc.set_text(e, &want.to_string());
}

fn iothreads(ed: &mut Editor, want: u32) {
    let el = ed.doc.child(ed.root(), "iothreads");
    let now = el.and_then(|e| parse_u32(Some(ed.doc.text(e))));
    if now.unwrap_or(0) == want {
        return;
    }
    ed.change(
        "iothreads".into(),
        el.map(|e| ed.doc.text(e)),
        Some(want.to_string()),
    );
    let e = ed.domain_child("iothreads");
    ed.doc.set_text(e, &want.to_string());
}

fn blkiotune(ed: &mut Editor, d: &GuestDesired) {
    let bt = ed.doc.child(ed.root(), "blkiotune");
    if let Some(w) = d.blkio_weight {
        number_child(
            ed,
            |ed| ed.domain_child("blkiotune"),
            bt,
            "weight",
            "blkiotune.weight".into(),
            w as u64,
            None,
        );
    }
    for (path, settings) in &d.blkio_devices {
        for (k, v) in settings {
            let existing = blkio_device(ed, path);
            let p = path.clone();
            let ensure = move |ed: &mut Editor| match blkio_device(ed, &p) {
                Some(d) => d,
                None => {
                    let bt = ed.domain_child("blkiotune");
                    let d = ed.doc.append_element(bt, "device");
                    let pe = ed.doc.append_element(d, "path");
                    ed.doc.set_text(pe, &p);
                    d
                }
            };
            // Throttles default to 0 (unlimited); a device weight has no default.
            let absent = (*k != "weight").then_some(0);
            number_child(
                ed,
                ensure,
                existing,
                k,
                format!("blkiotune.devices.{path}.{k}"),
                *v,
                absent,
            );
        }
    }
}

/// The `<blkiotune><device>` whose `<path>` is `path`.
fn blkio_device(ed: &Editor, path: &str) -> Option<NodeId> {
    let bt = ed.doc.child(ed.root(), "blkiotune")?;
    ed.doc
        .children_named(bt, "device")
        .into_iter()
        .find(|dv| ed.doc.child(*dv, "path").map(|p| ed.doc.text(p)).as_deref() == Some(path))
}

/// Memory sizes as people write them: `8G`, `512M`, else KiB.
pub fn show_kib(kib: u64) -> String {
    if kib > 0 && kib.is_multiple_of(1024 * 1024) {
        format!("{}G", kib / (1024 * 1024))
    } else if kib > 0 && kib.is_multiple_of(1024) {
        format!("{}M", kib / 1024)
    } else {
        format!("{kib}K")
    }
}

fn memtune(ed: &mut Editor, want: &BTreeMap<&'static str, u64>) {
    for (k, v) in want {
        let el = ed.path_child(&["memtune", k]);
        let now = el.and_then(|e| {
            let n: u64 = ed.doc.text(e).trim().parse().ok()?;
            to_kib(n, &ed.doc.attr(e, "unit").unwrap_or_else(|| "KiB".into())).ok()
        });
        if now == Some(*v) {
            continue;
        }
        let before = el.map(|e| now.map(show_kib).unwrap_or_else(|| ed.doc.text(e)));
        ed.change(format!("memtune.{k}"), before, Some(show_kib(*v)));
        let mt = ed.domain_child("memtune");
        let e = ed.doc.ensure_child(mt, k);
        ed.doc.set_attr(e, "unit", "KiB");
        ed.doc.set_text(e, &v.to_string());
    }
}

fn remove_devices(
    ed: &mut Editor,
    classes: &std::collections::BTreeSet<crate::config::raw::DeviceClass>,
) {
    use crate::config::raw::DeviceClass as C;
    let Some(devs) = ed.doc.child(ed.root(), "devices") else {
        return;
    };
    for class in classes {
        if *class == C::Memballoon {
            let mb = ed.doc.child(devs, "memballoon");
            let model = mb.and_then(|m| ed.doc.attr(m, "model"));
            if model.as_deref() == Some("none") {
                continue;
            }
            ed.change(
                "remove_devices.memballoon".into(),
                model.or(Some("(default)".into())),
                Some("none".into()),
            );
            let m = ed.doc.ensure_child(devs, "memballoon");
            ed.doc.set_attr(m, "model", "none");
            for c in ed.doc.elements(m) {
                ed.doc.remove(c);
            }
            continue;
        }
        let matches: Vec<NodeId> = ed
            .doc
            .elements(devs)
            .into_iter()
            .filter(|e| {
                let name = ed.doc.name(*e);
                let attr = |a: &str| ed.doc.attr(*e, a);
                match class {
                    C::Sound => name == "sound",
                    C::Tablet => name == "input" && attr("type").as_deref() == Some("tablet"),
                    C::UsbRedirect => {
                        name == "redirdev" && attr("bus").as_deref().unwrap_or("usb") == "usb"
                    }
                    C::Smartcard => name == "smartcard",
                    C::Parallel => name == "parallel",
                    C::Watchdog => name == "watchdog",
                    C::SpiceChannel => {
                        name == "channel" && attr("type").as_deref() == Some("spicevmc")
                    }
                    C::Memballoon => false,
                }
            })
            .collect();
        if matches.is_empty() {
            continue;
        }
        ed.change(
            format!("remove_devices.{}", class.as_str()),
            Some(format!("{} present", matches.len())),
            None,
        );
        for m in matches {
            ed.doc.remove(m);
        }
    }
}

const LIBOSINFO_NS: &str = "http://libosinfo.org/xmlns/libvirt/domain/1.0";

fn os_variant(ed: &mut Editor, want: &crate::desired::OsVariant) {
    let meta = ed.doc.child(ed.root(), "metadata");
    let info = meta.and_then(|m| {
        ed.doc
            .elements(m)
            .into_iter()
            .find(|e| ed.doc.name(*e).rsplit(':').next() == Some("libosinfo"))
    });
    let os = info.and_then(|i| {
        ed.doc
            .elements(i)
            .into_iter()
            .find(|e| ed.doc.name(*e).rsplit(':').next() == Some("os"))
    });
    let before = os.and_then(|o| ed.doc.attr(o, "id"));
    if !ed.change("os_variant".into(), before, Some(want.id.clone())) {
        return;
    }
    match os {
        Some(o) => ed.doc.set_attr(o, "id", &want.id),
        None => {
            let m = ed.domain_child("metadata");
            let i = match info {
                Some(i) => i,
                None => {
                    let i = ed.doc.append_element(m, "libosinfo:libosinfo");
                    ed.doc.set_attr(i, "xmlns:libosinfo", LIBOSINFO_NS);
                    i
                }
            };
            let prefix = ed
                .doc
                .name(i)
                .split_once(':')
                .map(|(p, _)| format!("{p}:"))
                .unwrap_or_default();
            let o = ed.doc.append_element(i, &format!("{prefix}os"));
            ed.doc.set_attr(o, "id", &want.id);
        }
    }
}

fn numatune(ed: &mut Editor, d: &GuestDesired) {
    let Some(nm) = &d.numa_memory else { return };
    let el = ed.path_child(&["numatune", "memory"]);
    let ensure = |ed: &mut Editor| {
        let nt = ed.domain_child("numatune");
        ed.doc.ensure_child(nt, "memory")
    };
    if let Some(m) = nm.mode {
        let before = el.map(|e| ed.doc.attr(e, "mode").unwrap_or_else(|| "strict".into()));
        if ed.change(
            "numatune.memory.mode".into(),
            before,
            Some(m.as_str().into()),
        ) {
            let e = ensure(ed);
            ed.doc.set_attr(e, "mode", m.as_str());
        }
    }
    let nodeset_attr = el.and_then(|e| ed.doc.attr(e, "nodeset"));
    if let Some(ns) = &nm.nodeset {
        if ed.change(
            "numatune.memory.nodeset".into(),
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
            && ed.change(
                "numatune.memory.placement".into(),
                before,
                Some(p.as_str().into()),
            )
        {
            let e = ensure(ed);
            ed.doc.set_attr(e, "placement", p.as_str());
            if p == Placement::Auto && nodeset_attr.is_some() {
                ed.change(
                    "numatune.memory.nodeset".into(),
                    canon_cpuset(nodeset_attr),
                    None,
                );
                ed.doc.remove_attr(e, "nodeset");
            }
        }
    }
}

/// Observed huge page backing: `None` when absent; otherwise the `<page>` entries (KiB, nodeset).
fn observed_hugepages(ed: &Editor) -> Option<Vec<(Option<u64>, Option<String>)>> {
    let hp = ed.path_child(&["memoryBacking", "hugepages"])?;
    Some(
        ed.doc
            .children_named(hp, "page")
            .into_iter()
            .map(|p| {
                let size = ed
                    .doc
                    .attr(p, "size")
                    .and_then(|s| s.trim().parse::<u64>().ok());
                let unit = ed.doc.attr(p, "unit").unwrap_or_else(|| "KiB".into());
                (
                    size.and_then(|s| to_kib(s, &unit).ok()),
                    ed.doc.attr(p, "nodeset"),
                )
            })
            .collect(),
    )
}

fn describe_pages(pages: &[(Option<u64>, Option<String>)]) -> String {
    if pages.is_empty() {
        return "default".into();
    }
    pages
        .iter()
        .map(|(kib, nodes)| {
            let size = match kib.map(PageSize::from_kib) {
                Some(Ok(ps)) => ps.to_string(),
                _ => kib.map(|k| format!("{k}K")).unwrap_or_else(|| "?".into()),
            };
            match nodes {
                Some(n) => format!("{size} (guest nodes {n})"),
                None => size,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn hugepages(ed: &mut Editor, want: HugepagesBacking, host_default: Option<PageSize>) {
    let observed = observed_hugepages(ed);
    let default_kib = host_default.map(PageSize::kib);
    let matches = match (&observed, want) {
        (None, HugepagesBacking::Off) => true,
        (Some(_), HugepagesBacking::Off) | (None, _) => false,
        (Some(pages), HugepagesBacking::DefaultSize) => {
            pages.is_empty()
                || pages
                    .iter()
                    .all(|(k, n)| n.is_none() && k.is_some() && *k == default_kib)
        }
        (Some(pages), HugepagesBacking::Size(s)) => match pages.as_slice() {
            [] => default_kib == Some(s.kib()),
            [(Some(k), None)] => *k == s.kib(),
            _ => false,
        },
    };
    if matches {
        return;
    }
    let after = match want {
        HugepagesBacking::Off => None,
        HugepagesBacking::DefaultSize => Some("default".to_string()),
        HugepagesBacking::Size(s) => Some(s.to_string()),
    };
    ed.change(
        "memory_backing.hugepages".into(),
        observed.as_deref().map(describe_pages),
        after,
    );
    match want {
        HugepagesBacking::Off => {
            if let Some(hp) = ed.path_child(&["memoryBacking", "hugepages"]) {
                ed.doc.remove(hp);
            }
            if let Some(mb) = ed.doc.child(ed.root(), "memoryBacking") {
                ed.prune_if_empty(mb);
            }
        }
        HugepagesBacking::DefaultSize | HugepagesBacking::Size(_) => {
            let mb = ed.domain_child("memoryBacking");
            let hp = ed.doc.ensure_child(mb, "hugepages");
            for p in ed.doc.children_named(hp, "page") {
                ed.doc.remove(p);
            }
            if let HugepagesBacking::Size(s) = want {
                let p = ed.doc.append_element(hp, "page");
                ed.doc.set_attr(p, "size", &s.kib().to_string());
                ed.doc.set_attr(p, "unit", "KiB");
            }
        }
    }
}

fn cpu(ed: &mut Editor, d: &GuestDesired, count: Option<u32>) {
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
        let before = el.map(|e| ed.doc.attr(e, "mode").unwrap_or_else(|| "custom".into()));
        if ed.change("cpu.mode".into(), before, Some(mode.as_str().into())) {
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
    }
    if let Some(model) = &c.model {
        let before = el
            .and_then(|e| ed.doc.child(e, "model"))
            .map(|m| ed.doc.text(m));
        if ed.change("cpu.model".into(), before, Some(model.clone())) {
            let e = ed.domain_child("cpu");
            let m = ed.doc.ensure_child(e, "model");
            ed.doc.set_text(m, model);
        }
    }
    if let Some(t) = c.topology {
        topology(ed, t, count);
    }
    for (name, policy) in &c.features {
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
            format!("cpu.features.{name}"),
            before,
            Some(policy.to_string()),
        ) {
            continue;
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
}

fn topology(ed: &mut Editor, t: Topology, count: Option<u32>) {
    if let Some(c) = count.filter(|c| t.vcpus() != *c as u64) {
        ed.issue(
            &["cpu", "topology"],
            GuestIssue::TopologyMismatch(t.vcpus(), c),
        );
    }
    let el = ed.path_child(&["cpu", "topology"]);
    for (attr, want, default) in [
        ("sockets", t.sockets, None),
        ("dies", t.dies, Some(1)),
        ("cores", t.cores, None),
        ("threads", t.threads, None),
    ] {
        let raw = el.and_then(|e| ed.doc.attr(e, attr));
        // An absent `dies` is libvirt's default of 1, with or without a <topology>.
        let before = match (&raw, default) {
            (None, Some(d)) => Some(u32::to_string(&d)),
            _ => raw.clone(),
        };
        if parse_u32(before.clone()) == Some(want) {
            continue;
        }
        ed.change(
            format!("cpu.topology.{attr}"),
            before,
            Some(want.to_string()),
        );
        let cpu = ed.domain_child("cpu");
        let topo = ed.doc.ensure_child(cpu, "topology");
        if raw.is_some() || default != Some(want) {
            ed.doc.set_attr(topo, attr, &want.to_string());
        }
    }
}

/// The effective settings for one device: the `"*"` entry overridden field by field.
fn merged<T: Clone, K: Ord + Clone>(
    map: &BTreeMap<DeviceKey<K>, T>,
    key: &K,
    applies_to_all: bool,
    merge: impl Fn(&T, &T) -> T,
) -> Option<T> {
    let all = map.get(&DeviceKey::All).filter(|_| applies_to_all);
    let one = map.get(&DeviceKey::One(key.clone()));
    match (all, one) {
        (Some(a), Some(o)) => Some(merge(a, o)),
        (Some(a), None) => Some(a.clone()),
        (None, Some(o)) => Some(o.clone()),
        (None, None) => None,
    }
}

fn set_child_attr(
    ed: &mut Editor,
    dev: NodeId,
    child: &str,
    attr: &str,
    path: String,
    want: Option<&str>,
) {
    let Some(want) = want else { return };
    let el = ed.doc.child(dev, child);
    let before = el.and_then(|e| ed.doc.attr(e, attr));
    if ed.change(path, before, Some(want.to_string())) {
        let e = ed.doc.ensure_child(dev, child);
        ed.doc.set_attr(e, attr, want);
    }
}

fn disks(ed: &mut Editor, want: &BTreeMap<DeviceKey<String>, DiskDesired>) {
    if want.is_empty() {
        return;
    }
    let devs: Vec<NodeId> = ed
        .doc
        .child(ed.root(), "devices")
        .map(|d| ed.doc.children_named(d, "disk"))
        .unwrap_or_default();
    let mut names = Vec::new();
    for disk in devs {
        let Some(dev) = ed
            .doc
            .child(disk, "target")
            .and_then(|t| ed.doc.attr(t, "dev"))
        else {
            continue;
        };
        names.push(dev.clone());
        let is_disk = ed.doc.attr(disk, "device").is_none_or(|d| d == "disk");
        let Some(dd) = merged(want, &dev, is_disk, |a, o| DiskDesired {
            cache: o.cache.or(a.cache),
            io: o.io.or(a.io),
            iothread: o.iothread.or(a.iothread),
            iotune: a
                .iotune
                .iter()
                .chain(&o.iotune)
                .map(|(k, v)| (*k, *v))
                .collect(),
        }) else {
            continue;
        };
        let cache = dd.cache.map(|c| c.as_str());
        set_child_attr(
            ed,
            disk,
            "driver",
            "cache",
            format!("disks.{dev}.cache"),
            cache,
        );
        let io = dd.io.map(|c| c.as_str());
        set_child_attr(ed, disk, "driver", "io", format!("disks.{dev}.io"), io);
        let t = dd.iothread.map(|t| t.to_string());
        set_child_attr(
            ed,
            disk,
            "driver",
            "iothread",
            format!("disks.{dev}.iothread"),
            t.as_deref(),
        );
        for (k, v) in &dd.iotune {
            let existing = ed.doc.child(disk, "iotune");
            number_child(
                ed,
                |ed| ed.doc.ensure_child(disk, "iotune"),
                existing,
                k,
                format!("disks.{dev}.iotune.{k}"),
                *v,
                Some(0),
            );
        }
    }
    for k in want.keys() {
        if let DeviceKey::One(dev) = k {
            if !names.contains(dev) {
                ed.issue(
                    &["disks", dev],
                    GuestIssue::NoDisk(dev.clone(), list_or_none(&names)),
                );
            }
        }
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn interfaces(
    ed: &mut Editor,
    want: &BTreeMap<DeviceKey<crate::desired::MacAddr>, InterfaceDesired>,
) {
    if want.is_empty() {
        return;
    }
    let devs: Vec<NodeId> = ed
        .doc
        .child(ed.root(), "devices")
        .map(|d| ed.doc.children_named(d, "interface"))
        .unwrap_or_default();
    let mut macs = Vec::new();
    for nic in devs {
        let Some(mac) = ed
            .doc
            .child(nic, "mac")
            .and_then(|m| ed.doc.attr(m, "address"))
            .and_then(|a| crate::desired::MacAddr::new(&a).ok())
        else {
            continue;
        };
        macs.push(mac.as_str().to_string());
        let applies = ed.doc.attr(nic, "type").as_deref() != Some("hostdev");
        let Some(id) = merged(want, &mac, applies, |a, o| InterfaceDesired {
            model: o.model.clone().or(a.model.clone()),
            driver: o.driver.or(a.driver),
            queues: o.queues.or(a.queues),
            mtu: o.mtu.or(a.mtu),
        }) else {
            continue;
        };
        let m = mac.as_str();
        let model = id.model.clone().or_else(|| {
            ed.doc
                .child(nic, "model")
                .and_then(|e| ed.doc.attr(e, "type"))
        });
        let model = model.unwrap_or_else(|| "(default)".into());
        if (id.driver.is_some() || id.queues.is_some()) && !model.starts_with("virtio") {
            let key = if want.contains_key(&DeviceKey::One(mac.clone())) {
                m.to_string()
            } else {
                "*".to_string()
            };
            ed.issue(
                &["interfaces", &key],
                GuestIssue::NicNotVirtio(m.to_string(), model),
            );
            continue;
        }
        set_child_attr(
            ed,
            nic,
            "model",
            "type",
            format!("interfaces.{m}.model"),
            id.model.as_deref(),
        );
        let drv = id.driver.map(|d| d.as_str());
        set_child_attr(
            ed,
            nic,
            "driver",
            "name",
            format!("interfaces.{m}.driver"),
            drv,
        );
        let q = id.queues.map(|q| q.to_string());
        set_child_attr(
            ed,
            nic,
            "driver",
            "queues",
            format!("interfaces.{m}.queues"),
            q.as_deref(),
        );
        let kind = ed.doc.attr(nic, "type").unwrap_or_default();
        if id.mtu.is_some()
            && !["network", "bridge", "ethernet", "vhostuser"].contains(&kind.as_str())
        {
            let key = if want.contains_key(&DeviceKey::One(mac.clone())) {
                m.to_string()
            } else {
                "*".to_string()
            };
            ed.issue(
                &["interfaces", &key, "mtu"],
                GuestIssue::MtuUnsupported(m.to_string(), kind),
            );
            continue;
        }
        let mtu = id.mtu.map(|m| m.to_string());
        set_child_attr(
            ed,
            nic,
            "mtu",
            "size",
            format!("interfaces.{m}.mtu"),
            mtu.as_deref(),
        );
    }
    for k in want.keys() {
        if let DeviceKey::One(mac) = k {
            if !macs.iter().any(|m| m == mac.as_str()) {
                ed.issue(
                    &["interfaces", mac.as_str()],
                    GuestIssue::NoInterface(mac.as_str().into(), list_or_none(&macs)),
                );
            }
        }
    }
}

/// The `<name>` and `<uuid>` of a domain XML (UUID lowercase); `None` when it does not parse
/// or either is missing.
pub fn identity(xml: &str) -> Option<(String, String)> {
    let doc = Document::parse(xml).ok()?;
    let root = doc.root();
    if doc.name(root) != "domain" {
        return None;
    }
    let name = doc.text(doc.child(root, "name")?).trim().to_string();
    let uuid = doc
        .text(doc.child(root, "uuid")?)
        .trim()
        .to_ascii_lowercase();
    Some((name, uuid))
}
