//! `sriov`: VFs from SR-IOV pools (`forward: hostdev` networks), as `<interface
//! type='network'><source network=.../><alias name='ua-kvmtune-sriov-<pool>-<i>'/>` devices.
//!
//! Invariant: kvmtune owns exactly the interfaces whose user alias (`ua-`, which libvirt keeps
//! in the persistent definition) starts with [`ALIAS_PREFIX`]; with `sriov` declared, entry
//! `<pool>` owns the aliases `<pool>-0` … `<pool>-<count-1>`: missing ones are added, owned
//! ones beyond are removed, every other interface is left alone. Nothing changes live (the VF
//! is assigned when the guest starts), and nothing is imported.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{GuestDesired, GuestKey, Validation};
use crate::config::raw::RawGuest;
use crate::domain::edit::{devices, Editor};
use crate::model::NetworkName;
use crate::xmltree::{Document, NodeId};

pub struct Setting;

/// The user-alias prefix of the interfaces kvmtune added.
pub const ALIAS_PREFIX: &str = "ua-kvmtune-sriov-";

/// The `index`-th VF interface from `network`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SriovKey")]
pub struct Key {
    pub network: NetworkName,
    pub index: u32,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sriov.{}.{}", self.network, self.index)
    }
}

/// The most VFs one guest asks for from one pool (a PCI bus has 32 slots per bus; libvirt
/// adds buses, but hundreds of VFs in one guest are a typo).
const MAX_COUNT: u32 = 64;

fn alias(network: &NetworkName, index: u32) -> String {
    format!("{ALIAS_PREFIX}{network}-{index}")
}

/// The pool and index an owned alias names.
fn owned(alias: &str) -> Option<(String, u32)> {
    let rest = alias.strip_prefix(ALIAS_PREFIX)?;
    let (net, i) = rest.rsplit_once('-')?;
    Some((net.to_string(), i.parse().ok()?))
}

fn alias_of(doc: &Document, nic: NodeId) -> Option<String> {
    doc.child(nic, "alias").and_then(|a| doc.attr(a, "name"))
}

impl super::GuestSetting for Setting {
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        let Some(list) = &g.sriov else { return };
        let mut want = BTreeMap::new();
        for (i, e) in list.iter().enumerate() {
            let at = i.to_string();
            let count = e.count.unwrap_or(1);
            if count == 0 || count > MAX_COUNT {
                v.err(
                    &["sriov", &at, "count"],
                    format!("count must be between 1 and {MAX_COUNT}"),
                );
            }
            // libvirt's user aliases allow letters, digits, `-` and `_` only.
            let name = NetworkName::new(&e.network).and_then(|n| {
                if n.as_str().contains('.') {
                    Err(format!(
                        "`{n}`: a VF pool name for sriov has no `.` (it becomes a device alias)"
                    ))
                } else {
                    Ok(n)
                }
            });
            match name {
                Ok(n) if want.contains_key(&n) => v.err(
                    &["sriov", &at, "network"],
                    format!("pool {n} is listed twice (use count)"),
                ),
                Ok(n) => {
                    want.insert(n, count);
                }
                Err(e) => v.err(&["sriov", &at, "network"], e),
            }
        }
        out.sriov = Some(want);
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        let Some(want) = &d.sriov else { return };
        let nics = devices(&ed.doc, "interface");
        let mut have = Vec::new();
        for nic in &nics {
            if let Some((net, i)) = alias_of(&ed.doc, *nic).as_deref().and_then(owned) {
                let keep = want.iter().any(|(n, c)| n.as_str() == net && i < *c);
                if keep {
                    have.push((net, i));
                } else {
                    if let Ok(network) = NetworkName::new(&net) {
                        let key = GuestKey::Sriov(Key { network, index: i });
                        ed.push_change(key, Some(format!("VF from {net}")), None);
                    }
                    ed.doc.remove(*nic);
                }
            }
        }
        // New VFs go after the last interface that stays.
        let mut last = devices(&ed.doc, "interface").last().copied();
        for (net, count) in want {
            for i in 0..*count {
                if have.iter().any(|(n, j)| n == net.as_str() && *j == i) {
                    continue;
                }
                let key = GuestKey::Sriov(Key {
                    network: net.clone(),
                    index: i,
                });
                ed.push_change(key, None, Some(format!("VF from {net}")));
                let nic = match last {
                    Some(prev) => ed.doc.insert_element_after(prev, "interface"),
                    None => {
                        let devs = ed.domain_child("devices");
                        ed.doc.append_element(devs, "interface")
                    }
                };
                ed.doc.set_attr(nic, "type", "network");
                let src = ed.doc.append_element(nic, "source");
                ed.doc.set_attr(src, "network", net.as_str());
                let a = ed.doc.append_element(nic, "alias");
                ed.doc.set_attr(a, "name", &alias(net, i));
                last = Some(nic);
            }
        }
    }

    fn import(&self, _doc: &Document, _out: &mut RawGuest) {}
}

/// VF pool → the VFs the declared guests ask for from it.
pub fn demand<'a>(guests: impl Iterator<Item = &'a GuestDesired>) -> BTreeMap<NetworkName, u64> {
    let mut out: BTreeMap<NetworkName, u64> = BTreeMap::new();
    for g in guests {
        for (n, c) in g.sriov.iter().flatten() {
            *out.entry(n.clone()).or_default() += u64::from(*c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::{changes, converges, domain, invalid, plan};

    fn nics(inner: &str) -> String {
        domain(&format!("<devices>\n    {inner}\n  </devices>"))
    }

    const USER_NIC: &str =
        "<interface type='user'>\n      <mac address='52:54:00:00:00:01'/>\n    </interface>";

    #[test]
    fn vfs_are_added_once_with_their_alias_and_other_interfaces_stay() {
        let xml = nics(USER_NIC);
        let body = "    sriov: [ { network: vfpool0, count: 2 } ]\n";
        let p = converges(body, &xml);
        let paths: Vec<String> = changes(&p).into_iter().map(|c| c.0).collect();
        assert_eq!(paths, ["sriov.vfpool0.0", "sriov.vfpool0.1"]);
        assert!(p.new_xml.contains(USER_NIC), "{}", p.new_xml);
        assert_eq!(p.new_xml.matches("<source network='vfpool0'/>").count(), 2);
        assert!(p
            .new_xml
            .contains("<alias name='ua-kvmtune-sriov-vfpool0-1'/>"));
        // What libvirt stores (a MAC and a PCI address added): still nothing to do.
        let stored = p.new_xml.replace(
            "<interface type='network'>",
            "<interface type='network'>\n      <mac address='52:54:00:aa:00:01'/>",
        );
        assert!(plan(body, &stored).unwrap().changes.is_empty());
        // A lower count removes the owned VFs beyond it, and `[]` all of them.
        let p = plan("    sriov: [ { network: vfpool0 } ]\n", &stored).unwrap();
        assert_eq!(
            changes(&p),
            [(
                "sriov.vfpool0.1".to_string(),
                Some("VF from vfpool0".to_string()),
                None
            )]
        );
        let p = plan("    sriov: []\n", &stored).unwrap();
        assert_eq!(p.changes.len(), 2);
        assert!(p.new_xml.contains(USER_NIC));
        assert!(!p.new_xml.contains("vfpool0"), "{}", p.new_xml);
        // Without `sriov`, the owned interfaces are not managed.
        assert!(plan("    iothreads: 1\n", &stored)
            .unwrap()
            .changes
            .iter()
            .all(|c| !c.key.to_string().starts_with("sriov")));
    }

    #[test]
    fn bad_entries_are_located() {
        let e = invalid("    sriov: [ { network: vfpool0, count: 0 }, { network: vfpool0 }, { network: a.b } ]\n");
        assert!(e.contains("guests.g.sriov.0.count"), "{e}");
        assert!(e.contains("guests.g.sriov.1.network"), "{e}");
        assert!(e.contains("guests.g.sriov.2.network"), "{e}");
    }
}
