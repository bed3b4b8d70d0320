//! The XML editor the guest setting units write through, and the comparisons they share.
//!
//! Invariant: an [`Editor`] records a [`SettingChange`] only when the canonical values differ,
//! edits only the elements and attributes a unit names, and places a new `<domain>` child at
//! libvirt's canonical position ([`DOMAIN_ORDER`]); every other byte of the document is
//! preserved by [`crate::xmltree`].

use std::collections::BTreeMap;

use super::settings::{DeviceKey, GuestKey};
use super::{GuestIssue, LocatedIssue, SettingChange};
use crate::cpuset::CpuSet;
use crate::units::PageSize;
use crate::xmltree::{Document, NodeId};

/// The order libvirt writes `<domain>` children in; new elements are placed accordingly.
pub const DOMAIN_ORDER: &[&str] = &[
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

/// One guest's domain XML being planned: the document, the changes and issues so far, and
/// what the units share.
pub struct Editor<'a> {
    pub(crate) doc: Document,
    pub(crate) changes: Vec<SettingChange>,
    pub(crate) issues: Vec<LocatedIssue>,
    key: &'a [String],
    /// The guest's vCPU count once the plan is applied (declared, else what the XML has).
    pub(crate) vcpus: Option<u32>,
    /// The host's default huge page size, when known.
    pub(crate) host_page: Option<PageSize>,
}

impl<'a> Editor<'a> {
    /// An editor of `doc` for the guest declared at `key` (`guests.<name>`).
    pub(crate) fn new(
        doc: Document,
        key: &'a [String],
        vcpus: Option<u32>,
        host_page: Option<PageSize>,
    ) -> Editor<'a> {
        Editor {
            doc,
            changes: Vec::new(),
            issues: Vec::new(),
            key,
            vcpus,
            host_page,
        }
    }

    pub(crate) fn root(&self) -> NodeId {
        self.doc.root()
    }

    pub(crate) fn path_child(&self, names: &[&str]) -> Option<NodeId> {
        names
            .iter()
            .try_fold(self.root(), |n, name| self.doc.child(n, name))
    }

    /// The `<domain>` child `name`, created at its canonical position when missing.
    pub(crate) fn domain_child(&mut self, name: &str) -> NodeId {
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

    /// Records a change when `before` and `after` differ; says whether it did.
    pub(crate) fn change(
        &mut self,
        key: impl Into<GuestKey>,
        before: Option<String>,
        after: Option<String>,
    ) -> bool {
        if before == after {
            return false;
        }
        self.push_change(key, before, after);
        true
    }

    /// Records a change whatever the values (the unit compared them itself).
    pub(crate) fn push_change(
        &mut self,
        key: impl Into<GuestKey>,
        before: Option<String>,
        after: Option<String>,
    ) {
        self.changes.push(SettingChange {
            key: key.into(),
            before,
            after,
        });
    }

    /// Records an issue at the guest's key path followed by `more`.
    pub(crate) fn issue(&mut self, more: &[&str], issue: GuestIssue) {
        let mut key = self.key.to_vec();
        key.extend(more.iter().map(|s| s.to_string()));
        self.issues.push(LocatedIssue { key, issue });
    }

    /// Removes `el` if it has no element children and no attributes left.
    pub(crate) fn prune_if_empty(&mut self, el: NodeId) {
        if self.doc.elements(el).is_empty() && self.doc.attrs(el).is_empty() {
            self.doc.remove(el);
        }
    }
}

pub(crate) fn parse_u32(s: Option<String>) -> Option<u32> {
    s.and_then(|v| v.trim().parse().ok())
}

/// Canonical form of a cpuset attribute: parsed and re-printed, or the raw text if it does not
/// parse (then it never equals a desired value, and the plan shows what is there).
pub(crate) fn canon_cpuset(raw: Option<String>) -> Option<String> {
    raw.map(|r| match r.parse::<CpuSet>() {
        Ok(c) => c.to_string(),
        Err(_) => r,
    })
}

/// Sets the text of `parent`'s child `name` to `want` (a number); absent counts as `absent`.
pub(crate) fn number_child(
    ed: &mut Editor,
    parent: impl Fn(&mut Editor) -> NodeId,
    existing: Option<NodeId>,
    name: &str,
    key: GuestKey,
    want: u64,
    absent: Option<u64>,
) {
    let el = existing.and_then(|p| ed.doc.child(p, name));
    let now = el.and_then(|e| ed.doc.text(e).trim().parse::<u64>().ok());
    let before = el.map(|e| ed.doc.text(e)).or(absent.map(|a| a.to_string()));
    if now.or(absent) == Some(want) {
        return;
    }
    ed.change(key, before, Some(want.to_string()));
    let p = parent(ed);
    let e = ed.doc.ensure_child(p, name);
    ed.doc.set_text(e, &want.to_string());
}

/// Sets attribute `attr` of `dev`'s child `child` to `want` (when declared).
pub(crate) fn set_child_attr(
    ed: &mut Editor,
    dev: NodeId,
    child: &str,
    attr: &str,
    key: GuestKey,
    want: Option<&str>,
) {
    let Some(want) = want else { return };
    let el = ed.doc.child(dev, child);
    let before = el.and_then(|e| ed.doc.attr(e, attr));
    if ed.change(key, before, Some(want.to_string())) {
        let e = ed.doc.ensure_child(dev, child);
        ed.doc.set_attr(e, attr, want);
    }
}

/// The effective settings for one device: the `"*"` entry overridden field by field.
pub(crate) fn merged<T: Clone, K: Ord + Clone>(
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

/// The `<devices>` children named `name`.
pub(crate) fn devices(doc: &Document, name: &str) -> Vec<NodeId> {
    doc.child(doc.root(), "devices")
        .map(|d| doc.children_named(d, name))
        .unwrap_or_default()
}

pub(crate) fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
