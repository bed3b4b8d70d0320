//! `os_variant`: the libosinfo OS of the guest, written as libosinfo metadata
//! (`<metadata><libosinfo:libosinfo><libosinfo:os id=…/>`).
//!
//! Invariant: osinfo-db is the authority on ids: a short id in `data/osinfo-ids.tsv`
//! (osinfo-db's short ids, see `scripts/gen-osinfo-ids.sh`) means the id it lists there; a
//! short id of a known family that is newer than every one of its family in the table
//! (`ubuntu24.04`, `fedora40`) falls back to the family's URL pattern; anything else is
//! refused. [`osinfo_short`] inverts [`osinfo_id`] (import writes only short ids that map
//! back to the same id). An existing libosinfo element keeps its namespace prefix. It
//! changes live (metadata).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::OnceLock;

use super::{GuestDesired, GuestKey, Validation};
use crate::config::raw::RawGuest;
use crate::domain::edit::Editor;
use crate::libvirt::{LiveOp, NodeInfo};
use crate::xmltree::{Document, NodeId};

pub struct Setting;

/// A libosinfo OS: short id (`rhel9.0`) and the id URL written to metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsVariant {
    pub short_id: String,
    pub id: String,
}

const LIBOSINFO_NS: &str = "http://libosinfo.org/xmlns/libvirt/domain/1.0";

/// osinfo-db's short ids: `short<TAB>id` lines, `#` comments.
const TABLE: &str = include_str!("../../../data/osinfo-ids.tsv");

/// The families whose id URLs follow a pattern, for short ids newer than the table.
const FAMILIES: &[(&str, &str)] = &[
    ("rhel", "http://redhat.com/rhel/"),
    ("centos-stream", "http://centos.org/centos-stream/"),
    ("centos", "http://centos.org/centos/"),
    ("fedora", "http://fedoraproject.org/fedora/"),
    ("debian", "http://debian.org/debian/"),
    ("ubuntu", "http://ubuntu.com/ubuntu/"),
    ("almalinux", "http://almalinux.org/almalinux/"),
    ("rocky", "http://rockylinux.org/rocky/"),
    ("sles", "http://suse.com/sles/"),
    ("win", "http://microsoft.com/win/"),
];

/// The table, parsed once.
struct Osinfo {
    by_short: HashMap<&'static str, &'static str>,
    /// id → the short id import writes for it.
    by_id: HashMap<&'static str, &'static str>,
    /// family → the versions of its short ids in the table.
    versions: HashMap<&'static str, Vec<Version>>,
}

fn osinfo() -> &'static Osinfo {
    static DB: OnceLock<Osinfo> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = Osinfo {
            by_short: HashMap::new(),
            by_id: HashMap::new(),
            versions: HashMap::new(),
        };
        let rows = TABLE
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t'));
        for (short, id) in rows {
            db.by_short.insert(short, id);
            if let Some((family, version)) = split(short) {
                db.versions
                    .entry(family)
                    .or_default()
                    .push(Version::of(version));
            }
            // An id with several short ids (debian6, debian6.0, debiansqueeze): the one its
            // family's pattern gives (osinfo-db lists it first), else the shortest, smallest.
            let rank = |s: &'static str| (family_short(id).as_deref() != Some(s), s.len(), s);
            let best = match db.by_id.get(id) {
                Some(old) if rank(old) <= rank(short) => *old,
                _ => short,
            };
            db.by_id.insert(id, best);
        }
        db
    })
}

/// `(family, version)` of a short id of a known family (`rhel`, `9.0`), when the version is
/// one the family pattern writes (digits first, then letters, digits and dots).
fn split(short: &str) -> Option<(&'static str, &str)> {
    let at = short.find(|c: char| c.is_ascii_digit())?;
    let (family, version) = short.split_at(at);
    let (f, _) = FAMILIES.iter().find(|(f, _)| *f == family)?;
    let ok = version
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.');
    ok.then_some((*f, version))
}

/// A version as runs of digits (compared as numbers) and of other characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Version(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Num(u64),
    Text(String),
}

impl Version {
    fn of(v: &str) -> Version {
        let mut parts = Vec::new();
        let mut rest = v;
        while let Some(c) = rest.chars().next() {
            let digits = c.is_ascii_digit();
            let end = rest
                .find(|x: char| x.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            parts.push(match digits {
                true => Part::Num(run.parse().unwrap_or(u64::MAX)),
                false => Part::Text(run.to_string()),
            });
            rest = tail;
        }
        Version(parts)
    }

    fn major(&self) -> Option<&Part> {
        self.0.first()
    }
}

/// Whether `version` of `family` is newer than the table: above every version of its
/// major line there, or, for a new major, above every version of the family.
fn newer_than_table(family: &str, version: &str) -> bool {
    let v = Version::of(version);
    let known = osinfo()
        .versions
        .get(family)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let same_major: Vec<&Version> = known.iter().filter(|k| k.major() == v.major()).collect();
    let newest = if same_major.is_empty() {
        known.iter().max()
    } else {
        same_major.into_iter().max()
    };
    newest.is_none_or(|n| v.cmp(n) == Ordering::Greater)
}

/// The id URL the family pattern gives a short id (`sles15sp5` → `…/sles/15.5`).
fn family_id(short: &str) -> Option<String> {
    let (family, version) = split(short)?;
    let (_, prefix) = FAMILIES.iter().find(|(f, _)| *f == family)?;
    let v = match family {
        "sles" => version.replace("sp", "."),
        _ => version.to_string(),
    };
    Some(format!("{prefix}{v}"))
}

/// The short id the family pattern gives an id URL (the inverse of [`family_id`]).
fn family_short(id: &str) -> Option<String> {
    // Longest prefix first: centos-stream before centos.
    let (family, prefix) = FAMILIES
        .iter()
        .filter(|(_, p)| id.starts_with(p))
        .max_by_key(|(_, p)| p.len())?;
    let version = &id[prefix.len()..];
    let version = match *family {
        "sles" => version.replacen('.', "sp", 1),
        _ => version.to_string(),
    };
    let short = format!("{family}{version}");
    (family_id(&short).as_deref() == Some(id)).then_some(short)
}

/// The libosinfo id URL of a short id: osinfo-db's (the table), else the family pattern's
/// for a short id newer than the table.
pub fn osinfo_id(short: &str) -> Option<String> {
    if let Some(id) = osinfo().by_short.get(short) {
        return Some(id.to_string());
    }
    let (family, version) = split(short)?;
    if !version.starts_with(|c: char| c.is_ascii_digit()) || !newer_than_table(family, version) {
        return None;
    }
    family_id(short)
}

/// The short id import writes for an id URL: [`osinfo_id`] maps it back to `id`.
pub fn osinfo_short(id: &str) -> Option<String> {
    let short = match osinfo().by_id.get(id) {
        Some(s) => s.to_string(),
        None => family_short(id)?,
    };
    (osinfo_id(&short).as_deref() == Some(id)).then_some(short)
}

/// The `<libosinfo:libosinfo>` element (any prefix) of `<metadata>`, and its `<os>`.
fn find(doc: &Document) -> (Option<NodeId>, Option<NodeId>) {
    let local = |e: NodeId, name: &str| doc.name(e).rsplit(':').next() == Some(name);
    let meta = doc.child(doc.root(), "metadata");
    let info = meta.and_then(|m| doc.elements(m).into_iter().find(|e| local(*e, "libosinfo")));
    let os = info.and_then(|i| doc.elements(i).into_iter().find(|e| local(*e, "os")));
    (info, os)
}

impl super::GuestSetting for Setting {
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        let Some(os) = &g.os_variant else { return };
        match osinfo_id(os) {
            Some(id) => out.os_variant = Some(OsVariant { short_id: os.clone(), id }),
            None => v.err(
                &["os_variant"],
                format!("`{}` is not a libosinfo short id (osinfo-db's, or a newer one of the rhel, centos, centos-stream, fedora, debian, ubuntu, almalinux, rocky, sles or win families); expected e.g. rhel9.0, centos-stream9, centos7.0, fedora40, debian12, ubuntu24.04, almalinux9, rocky9, sles15sp5, win11, win2k22", os.escape_debug()),
            ),
        }
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        let Some(want) = &d.os_variant else { return };
        let (info, os) = find(&ed.doc);
        let before = os.and_then(|o| ed.doc.attr(o, "id"));
        if !ed.change(GuestKey::OsVariant, before, Some(want.id.clone())) {
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

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        // The short id whose id URL is in the metadata, when kvmtune knows the family.
        let (_, os) = find(doc);
        out.os_variant = os
            .and_then(|o| doc.attr(o, "id"))
            .and_then(|id| osinfo_short(&id));
    }

    fn live_capable(&self, key: &GuestKey) -> bool {
        *key == GuestKey::OsVariant
    }

    fn live(&self, d: &GuestDesired, key: &GuestKey, _node: Option<NodeInfo>) -> Option<LiveOp> {
        match key {
            GuestKey::OsVariant => Some(LiveOp::OsMetadata {
                id: d.os_variant.as_ref()?.id.clone(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osinfo_db_is_the_authority_on_ids() {
        for (short, id) in [
            ("centos7", "http://centos.org/centos/7.0"),
            ("centos7.0", "http://centos.org/centos/7.0"),
            ("debian6.0", "http://debian.org/debian/6"),
            ("debian6", "http://debian.org/debian/6"),
            ("debiansqueeze", "http://debian.org/debian/6"),
            ("debian3.0", "http://debian.org/debian/3"),
            ("rhel9.0", "http://redhat.com/rhel/9.0"),
            ("win2k22", "http://microsoft.com/win/2k22"),
            ("sle15sp4", "http://suse.com/sle/15.4"),
            ("archlinux", "http://archlinux.org/archlinux/rolling"),
            // Newer than the table: the family's pattern.
            ("ubuntu24.04", "http://ubuntu.com/ubuntu/24.04"),
            ("fedora40", "http://fedoraproject.org/fedora/40"),
            ("rhel8.10", "http://redhat.com/rhel/8.10"),
            ("rhel10.0", "http://redhat.com/rhel/10.0"),
            ("sles15sp5", "http://suse.com/sles/15.5"),
            ("win2k25", "http://microsoft.com/win/2k25"),
            ("centos-stream10", "http://centos.org/centos-stream/10"),
        ] {
            assert_eq!(osinfo_id(short).as_deref(), Some(id), "{short}");
        }
        // Not in osinfo-db and not newer than it: refused, never guessed.
        for short in [
            "rhel9",
            "rhel7.5.1",
            "debian2",
            "ubuntu20.05",
            "win12",
            "fedora-40",
            "ubuntu",
            "foo12",
        ] {
            assert_eq!(osinfo_id(short), None, "{short}");
        }
    }

    #[test]
    fn import_maps_ids_back_to_a_short_id_that_means_them() {
        for (id, short) in [
            ("http://centos.org/centos/7.0", "centos7.0"),
            ("http://debian.org/debian/6", "debian6"),
            ("http://ubuntu.com/ubuntu/22.04", "ubuntu22.04"),
            ("http://redhat.com/rhel/9.0", "rhel9.0"),
            ("http://microsoft.com/win/2k22", "win2k22"),
            ("http://ubuntu.com/ubuntu/24.04", "ubuntu24.04"),
            ("http://suse.com/sles/15.5", "sles15sp5"),
        ] {
            assert_eq!(osinfo_short(id).as_deref(), Some(short), "{id}");
        }
        // What no short id means (the old pattern's centos/7) is not imported.
        assert_eq!(osinfo_short("http://centos.org/centos/7"), None);
        assert_eq!(osinfo_short("http://example.com/os/1"), None);
        // Every id of the table round-trips.
        for (short, id) in TABLE
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t'))
        {
            assert_eq!(osinfo_id(short).as_deref(), Some(id), "{short}");
            let back = osinfo_short(id).unwrap_or_else(|| panic!("{id}"));
            assert_eq!(osinfo_id(&back).as_deref(), Some(id), "{id} via {back}");
        }
    }
}
