//! What a rule sees ([`Cx`], [`View`]) and where it reports ([`Out`]).
//!
//! Invariants: the guest views are built once per run, in guest-name order; guest XML is
//! parsed only when host facts are given (`check`), and then XML-free views are kept too, for
//! the rules that do not read XML. A rule's [`Cx`] hands it only the inputs its
//! [`LintDecl::reads`] lists: an undeclared topology or host facts read as absent (and debug
//! builds assert). Every [`Lint`] a rule pushes through [`Out`] carries that rule's id, a
//! severity no higher than its declared level and one of its declared sections; without
//! facts (the plan path) only errors are kept.

use std::collections::BTreeMap;

use crate::config::source::KeyPath;
use crate::cpuset::CpuSet;
use crate::desired::{Desired, DomainName, GuestDesired, HugepagesBacking};
use crate::observe::Observed;
use crate::topology::HostTopology;
use crate::units::PageSize;
use crate::xmltree::Document;

use super::{Facts, Input, Lint, LintDecl, Scope, Severity};

/// What a guest looks like for the lints: declared values, else what its XML has (XML only
/// with facts, i.e. in `check`, and only for rules that declare [`Input::GuestXml`]).
pub struct View<'a> {
    pub(crate) name: &'a DomainName,
    pub(crate) gd: &'a GuestDesired,
    pub(crate) vcpus: Option<u32>,
    pub(crate) pins: BTreeMap<u32, CpuSet>,
    pub(crate) emulator: Option<CpuSet>,
    /// `<memory>` of a huge-page-backed guest, from its XML.
    pub(crate) memory_kib: Option<u64>,
    pub(crate) xml: Option<XmlFacts>,
}

#[derive(Default)]
pub(crate) struct XmlFacts {
    pub(crate) cpu_mode: Option<String>,
    pub(crate) nic_models: Vec<String>,
    pub(crate) caches: Vec<String>,
    /// A disk on network storage (`type='network'`) or marked `<shareable/>`: what guests that
    /// live-migrate between hosts have.
    pub(crate) shared_storage: bool,
}

impl View<'_> {
    /// Backed by static huge pages (of the default or a given size).
    pub(crate) fn hugepage_backed(&self) -> bool {
        hugepage_backed(self.gd)
    }
}

pub(crate) fn hugepage_backed(g: &GuestDesired) -> bool {
    matches!(
        g.hugepages,
        Some(HugepagesBacking::DefaultSize | HugepagesBacking::Size(_))
    )
}

fn xml_facts(xml: &str) -> XmlFacts {
    let Ok(doc) = Document::parse(xml) else {
        return XmlFacts::default();
    };
    let root = doc.root();
    let mut f = XmlFacts {
        cpu_mode: doc
            .child(root, "cpu")
            .map(|c| doc.attr(c, "mode").unwrap_or_else(|| "custom".into())),
        ..Default::default()
    };
    if let Some(devs) = doc.child(root, "devices") {
        for nic in doc.children_named(devs, "interface") {
            if doc.attr(nic, "type").as_deref() == Some("hostdev") {
                continue;
            }
            f.nic_models.push(
                doc.child(nic, "model")
                    .and_then(|m| doc.attr(m, "type"))
                    .unwrap_or_else(|| "rtl8139".into()),
            );
        }
        for disk in doc.children_named(devs, "disk") {
            if let Some(c) = doc.child(disk, "driver").and_then(|d| doc.attr(d, "cache")) {
                f.caches.push(c);
            }
            f.shared_storage |= doc.attr(disk, "type").as_deref() == Some("network")
                || doc.child(disk, "shareable").is_some();
        }
    }
    f
}

fn memory_kib(xml: &str) -> Option<u64> {
    let doc = Document::parse(xml).ok()?;
    let m = doc.child(doc.root(), "memory")?;
    let v: u64 = doc.text(m).trim().parse().ok()?;
    let unit = doc.attr(m, "unit").unwrap_or_else(|| "KiB".into());
    crate::units::to_kib(v, &unit).ok()
}

fn view<'a>(name: &'a DomainName, gd: &'a GuestDesired, xml: Option<&str>) -> View<'a> {
    let xp = xml
        .map(crate::domain::pins::XmlPins::read)
        .unwrap_or_default();
    View {
        name,
        gd,
        vcpus: gd.vcpu_count.or(xp.vcpus),
        pins: gd.vcpupin.clone().unwrap_or(xp.vcpupin),
        emulator: gd.emulatorpin.clone().or(xp.emulatorpin),
        memory_kib: xml.filter(|_| hugepage_backed(gd)).and_then(memory_kib),
        xml: xml.map(xml_facts),
    }
}

/// CPU → the (guest, vCPU, pinned automatically) whose only CPU it is.
pub(crate) type Dedicated<'a> = BTreeMap<u32, Vec<(&'a DomainName, u32, bool)>>;

/// What one run shares between its rules.
pub(crate) struct Base<'a> {
    d: &'a Desired,
    obs: &'a Observed,
    facts: Option<&'a Facts>,
    pin_errors: &'a [(DomainName, String)],
    /// With what the guests' XML says (in `check`).
    views: Vec<View<'a>>,
    /// From the configuration alone, for the rules that do not read XML (in `check`; without
    /// facts `views` already are).
    plain: Vec<View<'a>>,
    dedicated: Dedicated<'a>,
}

impl<'a> Base<'a> {
    pub(crate) fn new(
        d: &'a Desired,
        obs: &'a Observed,
        facts: Option<&'a Facts>,
        pin_errors: &'a [(DomainName, String)],
    ) -> Self {
        let xml = |n: &DomainName| {
            obs.guests
                .get(n.as_str())
                .and_then(|g| g.as_ref())
                .map(|g| g.xml.as_str())
                .filter(|_| facts.is_some())
        };
        let views: Vec<View> = d
            .guests
            .iter()
            .map(|(name, gd)| view(name, gd, xml(name)))
            .collect();
        let mut dedicated: Dedicated = BTreeMap::new();
        for v in &views {
            for (i, s) in &v.pins {
                if s.len() == 1 {
                    dedicated.entry(s.highest()).or_default().push((
                        v.name,
                        *i,
                        v.gd.auto_pin.is_some(),
                    ));
                }
            }
        }
        let plain = match facts {
            Some(_) => d.guests.iter().map(|(n, gd)| view(n, gd, None)).collect(),
            None => Vec::new(),
        };
        Base {
            d,
            obs,
            facts,
            pin_errors,
            views,
            plain,
            dedicated,
        }
    }

    pub(crate) fn guest_count(&self) -> usize {
        self.views.len()
    }

    /// The context of one rule: only what it declares.
    pub(crate) fn cx(&'a self, decl: &'static LintDecl) -> Cx<'a> {
        Cx { base: self, decl }
    }
}

/// One rule's view of a run: the desired state, the guests, and the observed inputs the rule
/// declares.
pub struct Cx<'a> {
    base: &'a Base<'a>,
    decl: &'static LintDecl,
}

impl<'a> Cx<'a> {
    fn reads(&self, i: Input) -> bool {
        let declared = self.decl.reads.contains(&i);
        debug_assert!(
            declared,
            "lint {} reads {i:?} but does not declare it",
            self.decl.id
        );
        declared
    }

    /// The desired state (automatic pins resolved).
    pub(crate) fn desired(&self) -> &'a Desired {
        self.base.d
    }

    /// The guests in name order: with their XML when the rule reads [`Input::GuestXml`] and
    /// the run has facts, else from the configuration alone.
    pub(crate) fn views(&self) -> &'a [View<'a>] {
        if self.decl.reads.contains(&Input::GuestXml) || self.base.facts.is_none() {
            &self.base.views
        } else {
            &self.base.plain
        }
    }

    /// The guest named `n`.
    pub(crate) fn view(&self, n: &DomainName) -> Option<&'a View<'a>> {
        let v = self.views();
        v.binary_search_by(|x| x.name.cmp(n)).ok().map(|i| &v[i])
    }

    /// CPUs that are the only CPU of a vCPU (from the views with XML).
    pub(crate) fn dedicated(&self) -> &'a Dedicated<'a> {
        debug_assert!(
            self.decl.reads.contains(&Input::GuestXml),
            "lint {} reads pins from guest XML but does not declare it",
            self.decl.id
        );
        &self.base.dedicated
    }

    /// Host facts (`check` only).
    pub(crate) fn facts(&self) -> Option<&'a Facts> {
        self.base.facts.filter(|_| self.reads(Input::HostFacts))
    }

    /// The host files observation read (tuned's profiles among them; `check` only).
    pub(crate) fn host_observed(&self) -> Option<&'a crate::host::HostObserved> {
        self.base
            .facts
            .filter(|_| self.reads(Input::HostFacts))
            .map(|_| &self.base.obs.host)
    }

    /// The kernel's default huge page size (a host fact).
    pub(crate) fn default_hugepage(&self) -> Option<PageSize> {
        self.base
            .obs
            .host
            .default_hugepage
            .filter(|_| self.reads(Input::HostFacts))
    }

    /// The host CPU topology, when it was read.
    pub(crate) fn topology(&self) -> Option<&'a HostTopology> {
        self.base
            .obs
            .topology
            .as_ref()
            .filter(|_| self.reads(Input::Topology))
    }

    /// Host CPUs: from the topology, else libvirt's node info.
    pub(crate) fn host_cpus(&self) -> Option<u64> {
        if !self.reads(Input::Topology) {
            return None;
        }
        let obs = self.base.obs;
        obs.topology
            .as_ref()
            .map(|t| t.cpus.len() as u64)
            .or(obs.node.map(|n| n.cpus as u64))
    }

    /// The undeclared guests' vCPUs: each one's CPUs (`None`: every host CPU).
    pub(crate) fn other_vcpus(
        &self,
    ) -> &'a std::collections::BTreeMap<String, Vec<Option<CpuSet>>> {
        static NONE: std::collections::BTreeMap<String, Vec<Option<CpuSet>>> =
            std::collections::BTreeMap::new();
        if self.reads(Input::OtherGuests) {
            &self.base.obs.other_vcpus
        } else {
            &NONE
        }
    }

    /// Guests automatic pinning found no CPUs for, and why (`check` only).
    pub(crate) fn pin_errors(&self) -> &'a [(DomainName, String)] {
        if self.reads(Input::Topology) {
            self.base.pin_errors
        } else {
            &[]
        }
    }
}

/// Where rules report. Each push is stamped with the running rule's declaration.
pub struct Out {
    lints: Vec<Lint>,
    decl: Option<&'static LintDecl>,
    errors_only: bool,
}

impl Out {
    pub(crate) fn new(errors_only: bool) -> Self {
        Out {
            lints: Vec::new(),
            decl: None,
            errors_only,
        }
    }

    /// Makes `decl` the rule that the next pushes come from.
    pub(crate) fn start(&mut self, decl: &'static LintDecl) {
        self.decl = Some(decl);
    }

    pub(crate) fn into_lints(self) -> Vec<Lint> {
        self.lints
    }

    /// Whether a lint of severity `s` is kept: a rule formats a costly message only then.
    pub(crate) fn wants(&self, s: Severity) -> bool {
        !self.errors_only || s == Severity::Error
    }

    /// A host-wide lint at the declared level, in the first declared section; `key` is a
    /// path under the configuration's root.
    pub(crate) fn host(&mut self, key: Option<&[&str]>, message: String) {
        let d = self.decl();
        debug_assert_eq!(d.scope, Scope::Host, "{}", d.id);
        let key = key.map(|k| k.iter().map(|s| s.to_string()).collect());
        self.push(d.level, d.sections[0], "host".into(), key, message);
    }

    /// A lint about guest `v` at the declared level, in the first declared section; `key` is
    /// a path under the guest's key.
    pub(crate) fn guest(&mut self, v: &View, key: &[&str], message: String) {
        let d = self.decl();
        self.guest_as(d.level, d.sections[0], v, key, message);
    }

    /// A lint about guest `v` at a given severity (at most the declared level) and section
    /// (one of the declared ones).
    pub(crate) fn guest_as(
        &mut self,
        severity: Severity,
        section: &'static str,
        v: &View,
        key: &[&str],
        message: String,
    ) {
        debug_assert_ne!(self.decl().scope, Scope::Host, "{}", self.decl().id);
        let mut k: KeyPath = v.gd.key_path.clone();
        k.extend(key.iter().map(|s| s.to_string()));
        self.push(
            severity,
            section,
            crate::model::guest_target(v.name),
            Some(k),
            message,
        );
    }

    fn decl(&self) -> &'static LintDecl {
        self.decl.expect("a rule is running")
    }

    fn push(
        &mut self,
        severity: Severity,
        section: &'static str,
        target: String,
        key: Option<KeyPath>,
        message: String,
    ) {
        let d = self.decl();
        debug_assert!(severity <= d.level, "{} above its level", d.id);
        debug_assert!(d.sections.contains(&section), "{} section {section}", d.id);
        if !self.wants(severity) {
            return;
        }
        self.lints.push(Lint {
            id: d.id,
            severity,
            target,
            section,
            message,
            key,
            location: None,
        });
    }
}
