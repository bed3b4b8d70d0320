//! `os_variant`: the libosinfo OS of the guest, written as libosinfo metadata
//! (`<metadata><libosinfo:libosinfo><libosinfo:os id=…/>`).
//!
//! Invariant: a short id is accepted only when kvmtune knows its family's id URL, and
//! [`osinfo_short`] inverts [`osinfo_id`] exactly (import writes only ids it can read back).
//! An existing libosinfo element keeps its namespace prefix. It changes live (metadata).

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

/// The libosinfo id URL of a short id, for the common families (`rhel9.0`,
/// `centos-stream9`, `fedora40`, `debian12`, `ubuntu24.04`, `almalinux9`, `rocky9`,
/// `sles15sp5`, `win11`, `win2k22`).
pub fn osinfo_id(short: &str) -> Option<String> {
    let split = short.find(|c: char| c.is_ascii_digit())?;
    let (family, version) = short.split_at(split);
    let ok_version = !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.')
        && version.starts_with(|c: char| c.is_ascii_digit());
    if !ok_version {
        return None;
    }
    let v = version.to_string();
    Some(match family {
        "rhel" => format!("http://redhat.com/rhel/{v}"),
        "centos" => format!("http://centos.org/centos/{v}"),
        "centos-stream" => format!("http://centos.org/centos-stream/{v}"),
        "fedora" => format!("http://fedoraproject.org/fedora/{v}"),
        "debian" => format!("http://debian.org/debian/{v}"),
        "ubuntu" => format!("http://ubuntu.com/ubuntu/{v}"),
        "almalinux" => format!("http://almalinux.org/almalinux/{v}"),
        "rocky" => format!("http://rockylinux.org/rocky/{v}"),
        "sles" => format!("http://suse.com/sles/{}", v.replace("sp", ".")),
        "win" => format!("http://microsoft.com/win/{v}"),
        _ => return None,
    })
}

/// The inverse of [`osinfo_id`].
pub fn osinfo_short(id: &str) -> Option<String> {
    const FAMILIES: &[(&str, &str)] = &[
        ("http://redhat.com/rhel/", "rhel"),
        ("http://centos.org/centos-stream/", "centos-stream"),
        ("http://centos.org/centos/", "centos"),
        ("http://fedoraproject.org/fedora/", "fedora"),
        ("http://debian.org/debian/", "debian"),
        ("http://ubuntu.com/ubuntu/", "ubuntu"),
        ("http://almalinux.org/almalinux/", "almalinux"),
        ("http://rockylinux.org/rocky/", "rocky"),
        ("http://suse.com/sles/", "sles"),
        ("http://microsoft.com/win/", "win"),
    ];
    let (prefix, family) = FAMILIES.iter().find(|(p, _)| id.starts_with(p))?;
    let version = &id[prefix.len()..];
    let version = if *family == "sles" {
        version.replacen('.', "sp", 1)
    } else {
        version.to_string()
    };
    let short = format!("{family}{version}");
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
                format!("`{}` is not a libosinfo short id kvmtune knows; expected e.g. rhel9.0, centos-stream9, fedora40, debian12, ubuntu24.04, almalinux9, rocky9, sles15sp5, win11, win2k22", os.escape_debug()),
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
    fn os_short_ids_invert_osinfo_ids() {
        for short in [
            "rhel9.0",
            "centos-stream9",
            "fedora40",
            "debian12",
            "ubuntu24.04",
            "sles15sp5",
            "win2k22",
            "almalinux9",
            "rocky9",
        ] {
            let id = osinfo_id(short).unwrap();
            assert_eq!(osinfo_short(&id).as_deref(), Some(short), "{id}");
        }
        assert_eq!(osinfo_short("http://example.com/os/1"), None);
    }
}
