//! `memory_backing`: guest memory in huge pages of the host's default size or of one size,
//! or not (`<memoryBacking><hugepages><page size= unit=/>`); locked in host RAM
//! (`<locked/>`) and kept out of KSM (`<nosharepages/>`).
//!
//! Invariant: pages compare by size in KiB whatever the unit; `true` (the default size)
//! matches a bare `<hugepages/>` or pages of the host's default size; a per-guest-node
//! `<page nodeset=>` never matches a single declared size. A flag is its element's presence.
//! Nothing changes live.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{GuestDesired, GuestKey, Validation};
use crate::config::raw::{RawGuest, RawHugepagesBacking, RawMemoryBacking, RawPageSize};
use crate::domain::edit::Editor;
use crate::domain::running::{check, Check, Running};
use crate::units::{to_kib, PageSize};
use crate::xmltree::{Document, NodeId};

pub struct Setting;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "MemoryBackingKey")]
pub enum Key {
    Hugepages,
    Locked,
    Nosharepages,
}

impl Key {
    /// The flag keys and their `<memoryBacking>` child elements.
    pub const FLAGS: [(Key, &'static str); 2] =
        [(Key::Locked, "locked"), (Key::Nosharepages, "nosharepages")];
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Hugepages => f.write_str("memory_backing.hugepages"),
            Key::Locked => f.write_str("memory_backing.locked"),
            Key::Nosharepages => f.write_str("memory_backing.nosharepages"),
        }
    }
}

impl From<Key> for GuestKey {
    fn from(k: Key) -> GuestKey {
        GuestKey::MemoryBacking(k)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HugepagesBacking {
    Off,
    DefaultSize,
    Size(PageSize),
}

/// The `<page>` entries of `<hugepages>`: (size in KiB, guest nodeset).
type Pages = Vec<(Option<u64>, Option<String>)>;

impl super::GuestSetting for Setting {
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        if let Some(mb) = &g.memory_backing {
            for (k, on) in [
                (Key::Locked, mb.locked),
                (Key::Nosharepages, mb.nosharepages),
            ] {
                if let Some(on) = on {
                    out.memory_flags.insert(k, on);
                }
            }
        }
        let Some(hp) = g.memory_backing.as_ref().and_then(|m| m.hugepages.as_ref()) else {
            return;
        };
        out.hugepages = match hp {
            RawHugepagesBacking::Enabled(false) => Some(HugepagesBacking::Off),
            RawHugepagesBacking::Enabled(true) => Some(HugepagesBacking::DefaultSize),
            RawHugepagesBacking::Sized(s) => match s.size.parse::<PageSize>() {
                Ok(ps) => Some(HugepagesBacking::Size(ps)),
                Err(e) => {
                    v.err(&["memory_backing", "hugepages", "size"], e.to_string());
                    None
                }
            },
        };
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        if let Some(hp) = d.hugepages {
            edit(ed, hp);
        }
        for (k, elem) in Key::FLAGS {
            let Some(want) = d.memory_flags.get(&k).copied() else {
                continue;
            };
            let el = ed.path_child(&["memoryBacking", elem]);
            let show = |b: bool| Some(b.to_string());
            if !ed.change(k, show(el.is_some()), show(want)) {
                continue;
            }
            match el {
                Some(e) => {
                    ed.doc.remove(e);
                    if let Some(mb) = ed.doc.child(ed.root(), "memoryBacking") {
                        ed.prune_if_empty(mb);
                    }
                }
                None => {
                    let mb = ed.domain_child("memoryBacking");
                    ed.doc.ensure_child(mb, elem);
                }
            }
        }
    }

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        out.memory_backing = import(doc);
    }

    /// The mappings in `smaps` whose `KernelPageSize` is the declared page size must together
    /// be at least the guest's `<memory>`.
    fn verify(&self, d: &GuestDesired, run: &Running, out: &mut Vec<Check>) {
        let Some(hp) = d.hugepages else { return };
        let key = GuestKey::from(Key::Hugepages).to_string();
        let mappings = &run.live.mappings;
        let mem = run.memory_kib();
        let page = match hp {
            HugepagesBacking::Size(s) => Some(s),
            HugepagesBacking::DefaultSize => run.host_page,
            HugepagesBacking::Off => None,
        };
        let huge_kib = |page_kib: u64| -> u64 {
            mappings
                .iter()
                .filter(|m| m.kernel_page_kib == page_kib)
                .map(|m| m.size_kib)
                .sum()
        };
        let mem_text = mem
            .map(|m| format!("{m} KiB"))
            .unwrap_or_else(|| "the guest memory".into());
        match (hp, page) {
            (HugepagesBacking::Off, _) => {
                let huge: u64 = mappings
                    .iter()
                    .filter(|m| m.kernel_page_kib > 4)
                    .map(|m| m.size_kib)
                    .sum();
                let actual = if huge == 0 {
                    "no huge pages".to_string()
                } else {
                    format!("{huge} KiB in huge pages")
                };
                check(out, key, "no huge pages".into(), actual);
            }
            (_, Some(p)) => {
                let expected = format!("{mem_text} in {p} pages");
                let have = huge_kib(p.kib());
                let actual = match mem {
                    Some(m) if have >= m => expected.clone(),
                    _ if have == 0 => "no huge pages".to_string(),
                    _ => format!("{have} KiB in {p} pages"),
                };
                check(out, key, expected, actual);
            }
            (_, None) => check(
                out,
                key,
                format!("{mem_text} in huge pages of the host's default size"),
                "(the host's default huge page size is unknown)".into(),
            ),
        }
    }
}

/// Observed huge page backing: `None` when absent; otherwise the `<page>` entries (KiB, nodeset).
fn observed(ed: &Editor) -> Option<Pages> {
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

fn edit(ed: &mut Editor, want: HugepagesBacking) {
    let observed = observed(ed);
    let default_kib = ed.host_page.map(PageSize::kib);
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
        Key::Hugepages,
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

fn import(doc: &Document) -> Option<RawMemoryBacking> {
    let mb = doc.child(doc.root(), "memoryBacking")?;
    let flag = |name: &str| doc.child(mb, name).map(|_| true);
    let t = RawMemoryBacking {
        hugepages: import_hugepages(doc, mb),
        locked: flag("locked"),
        nosharepages: flag("nosharepages"),
    };
    (t != RawMemoryBacking::default()).then_some(t)
}

fn import_hugepages(doc: &Document, mb: NodeId) -> Option<RawHugepagesBacking> {
    let hp = doc.child(mb, "hugepages")?;
    let pages = doc.children_named(hp, "page");
    let backing = match pages.as_slice() {
        [] => RawHugepagesBacking::Enabled(true),
        [p] if doc.attr(*p, "nodeset").is_none() => {
            let size: u64 = doc.attr(*p, "size")?.trim().parse().ok()?;
            let unit = doc.attr(*p, "unit").unwrap_or_else(|| "KiB".into());
            let ps = PageSize::from_kib(to_kib(size, &unit).ok()?).ok()?;
            RawHugepagesBacking::Sized(RawPageSize {
                size: ps.to_string(),
            })
        }
        _ => return None,
    };
    Some(backing)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{changes, converges, domain};

    #[test]
    fn locked_and_nosharepages_are_flag_elements_kept_beside_hugepages() {
        let xml =
            domain("<memoryBacking>\n    <hugepages/>\n    <nosharepages/>\n  </memoryBacking>");
        let body = "    memory_backing: { locked: true, nosharepages: true }\n";
        let p = converges(body, &xml);
        assert_eq!(
            changes(&p),
            [(
                "memory_backing.locked".into(),
                Some("false".into()),
                Some("true".into())
            )]
        );
        assert!(p.new_xml.contains("<hugepages/>"), "{}", p.new_xml);
        assert!(!super::super::live_capable(&p.changes[0].key));
        let raw = crate::domain::import::import_guest(&p.new_xml).unwrap();
        let mb = raw.memory_backing.unwrap();
        assert_eq!((mb.locked, mb.nosharepages), (Some(true), Some(true)));
        // Off removes them; an emptied <memoryBacking> goes.
        let p = converges(
            "    memory_backing: { locked: false, nosharepages: false }\n",
            &domain("<memoryBacking><locked/><nosharepages/></memoryBacking>"),
        );
        assert_eq!(p.changes.len(), 2);
        assert!(!p.new_xml.contains("memoryBacking"), "{}", p.new_xml);
        // Created at libvirt's position when missing.
        let p = converges(body, &domain("<memory>1024</memory>\n  <vcpu>1</vcpu>"));
        let mb = p.new_xml.find("<memoryBacking>").unwrap();
        assert!(mb > p.new_xml.find("</memory>").unwrap());
        assert!(mb < p.new_xml.find("<vcpu>").unwrap(), "{}", p.new_xml);
    }
}
