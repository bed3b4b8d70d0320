//! `interfaces`: NIC model, driver, queues and MTU per interface, by MAC address or `"*"`
//! (`<interface><model type=/><driver name= queues=/><mtu size=/></interface>`).
//!
//! Invariant: `"*"` applies to every interface but `hostdev` ones, those without a `<mac>`
//! too (libvirt generates the MAC when it defines the guest, and `"*"` covers it then as
//! well), and a named MAC overrides it field by field; driver and queues are set only on
//! virtio models and the MTU only on the interface types libvirt sets one on, and nothing on
//! a `hostdev` interface but its MTU check (else an issue, never a silent skip). Nothing
//! changes live.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DeviceKey, GuestDesired, GuestKey, Validation};
use crate::config::raw::{NetDriver, RawGuest, RawInterface};
use crate::domain::edit::{devices, list_or_none, merged, parse_u32, set_child_attr, Editor};
use crate::domain::GuestIssue;
use crate::model::live::{LiveOp, NodeInfo};
use crate::model::{MacAddr, NetworkName};
use crate::xmltree::{Document, NodeId};

pub struct Setting;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InterfaceDesired {
    pub model: Option<String>,
    pub driver: Option<NetDriver>,
    pub queues: Option<u32>,
    pub mtu: Option<u32>,
    /// The libvirt network it is connected to (by MAC only).
    pub network: Option<NetworkName>,
}

/// One setting of one interface, by MAC address (or, for an interface without one, by its
/// position).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "InterfaceKey")]
pub struct Key {
    /// `None`: the interface has no `<mac>` yet (libvirt generates one at define time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Without a MAC: the interface's position among the guest's interfaces, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    pub item: Item,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "InterfaceItem")]
pub enum Item {
    Model,
    Driver,
    Queues,
    Mtu,
    Network,
}

impl Item {
    fn as_str(self) -> &'static str {
        match self {
            Item::Model => "model",
            Item::Driver => "driver",
            Item::Queues => "queues",
            Item::Mtu => "mtu",
            Item::Network => "network",
        }
    }
}

/// `interfaces.<mac>.<item>`; an interface without a MAC is declared only by `"*"`.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mac {
            Some(mac) => write!(f, "interfaces.{mac}.{}", self.item.as_str()),
            None => write!(f, "interfaces.*.{}", self.item.as_str()),
        }
    }
}

/// Which interface: its MAC, or its position when it has none.
#[derive(Debug, Clone)]
struct Nic {
    mac: Option<MacAddr>,
    index: u32,
}

impl Nic {
    fn key(&self, item: Item) -> GuestKey {
        GuestKey::Interfaces(Key {
            mac: self.mac.clone(),
            index: self.mac.is_none().then_some(self.index),
            item,
        })
    }

    /// How issues name it.
    fn label(&self) -> String {
        match &self.mac {
            Some(m) => m.as_str().to_string(),
            None => format!("#{} (no MAC address yet)", self.index + 1),
        }
    }
}

impl From<Key> for GuestKey {
    fn from(k: Key) -> GuestKey {
        GuestKey::Interfaces(k)
    }
}

fn model_ok(m: &str) -> bool {
    !m.is_empty()
        && m.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Interface types libvirt sets an MTU on.
const MTU_TYPES: [&str; 4] = ["network", "bridge", "ethernet", "vhostuser"];

impl super::GuestSetting for Setting {
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        for (k, i) in g.interfaces.iter().flatten() {
            let ik = if k == "*" {
                DeviceKey::All
            } else {
                match MacAddr::new(k) {
                    Ok(m) => DeviceKey::One(m),
                    Err(e) => {
                        v.err(&["interfaces", k], e);
                        continue;
                    }
                }
            };
            validate_one(v, k, i);
            let network = i.network.as_deref().and_then(|n| {
                NetworkName::new(n)
                    .map_err(|e| v.err(&["interfaces", k, "network"], e))
                    .ok()
            });
            if k == "*" && i.network.is_some() {
                v.err(
                    &["interfaces", k, "network"],
                    "a network is declared per interface (by MAC), not for \"*\"",
                );
            }
            out.interfaces.insert(
                ik,
                InterfaceDesired {
                    model: i.model.clone(),
                    driver: i.driver,
                    queues: i.queues,
                    mtu: i.mtu,
                    network,
                },
            );
        }
    }

    fn live_capable(&self, key: &GuestKey) -> bool {
        matches!(
            key,
            GuestKey::Interfaces(Key {
                mac: Some(_),
                item: Item::Network,
                ..
            })
        )
    }

    fn live(&self, d: &GuestDesired, key: &GuestKey, _node: Option<NodeInfo>) -> Option<LiveOp> {
        let GuestKey::Interfaces(Key {
            mac: Some(mac),
            item: Item::Network,
            ..
        }) = key
        else {
            return None;
        };
        let network = d
            .interfaces
            .get(&DeviceKey::One(mac.clone()))?
            .network
            .clone()?;
        Some(LiveOp::InterfaceNetwork {
            mac: mac.clone(),
            network,
        })
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        let want = &d.interfaces;
        if want.is_empty() {
            return;
        }
        let mut macs = Vec::new();
        for (index, nic) in devices(&ed.doc, "interface").into_iter().enumerate() {
            let mac = ed
                .doc
                .child(nic, "mac")
                .and_then(|m| ed.doc.attr(m, "address"));
            let mac = match mac {
                Some(a) => match MacAddr::new(&a) {
                    Ok(m) => Some(m),
                    // An address libvirt would refuse: not kvmtune's to key or skip silently.
                    Err(_) => continue,
                },
                None => None,
            };
            if let Some(m) = &mac {
                macs.push(m.as_str().to_string());
            }
            let applies = ed.doc.attr(nic, "type").as_deref() != Some("hostdev");
            let merge = |a: &InterfaceDesired, o: &InterfaceDesired| InterfaceDesired {
                model: o.model.clone().or(a.model.clone()),
                driver: o.driver.or(a.driver),
                queues: o.queues.or(a.queues),
                mtu: o.mtu.or(a.mtu),
                network: o.network.clone().or(a.network.clone()),
            };
            let id = match &mac {
                Some(m) => merged(want, m, applies, merge),
                None => want.get(&DeviceKey::All).filter(|_| applies).cloned(),
            };
            let Some(id) = id else { continue };
            // Where the YAML declared it: the MAC's own entry, else `"*"`.
            let at = match &mac {
                Some(m) if want.contains_key(&DeviceKey::One(m.clone())) => m.as_str().to_string(),
                _ => "*".to_string(),
            };
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            edit_nic(ed, nic, &Nic { mac, index }, &at, &id);
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

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        out.interfaces = import(doc);
    }
}

/// One entry of `interfaces:` (`k` is its key, a MAC or `"*"`).
fn validate_one(v: &mut Validation, k: &str, i: &RawInterface) {
    if let Some(m) = &i.model {
        if !model_ok(m) {
            v.err(
                &["interfaces", k, "model"],
                format!("`{}` is not a NIC model name", m.escape_debug()),
            );
        }
    }
    let virtio = i.model.as_deref().map(|m| m.starts_with("virtio"));
    if virtio == Some(false) && (i.driver == Some(NetDriver::Vhost) || i.queues.is_some()) {
        v.err(
            &["interfaces", k],
            "driver: vhost and queues need model: virtio",
        );
    }
    if i.queues == Some(0) || i.queues.is_some_and(|q| q > 256) {
        v.err(
            &["interfaces", k, "queues"],
            "queues must be between 1 and 256",
        );
    }
    if let Some(m) = i.mtu {
        if !(68..=65535).contains(&m) {
            v.err(
                &["interfaces", k, "mtu"],
                format!("MTU {m} is outside 68-65535"),
            );
        }
    }
    if i.model.is_none()
        && i.driver.is_none()
        && i.queues.is_none()
        && i.mtu.is_none()
        && i.network.is_none()
    {
        v.err(
            &["interfaces", k],
            "expected at least one of model, driver, queues, mtu, network",
        );
    }
}

/// The effective settings `id` of the interface `nic`, declared at `interfaces.<at>`.
fn edit_nic(ed: &mut Editor, nic: NodeId, which: &Nic, at: &str, id: &InterfaceDesired) {
    let kind = ed.doc.attr(nic, "type").unwrap_or_default();
    if kind == "hostdev" {
        // A passed-through device: the guest sees the host's NIC itself. libvirt refuses
        // driver names other than the hostdev backends, drops queues and ignores the model.
        let declared: Vec<&str> = [
            ("model", id.model.is_some()),
            ("driver", id.driver.is_some()),
            ("queues", id.queues.is_some()),
            ("network", id.network.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, set)| set.then_some(n))
        .collect();
        if !declared.is_empty() {
            ed.issue(
                &["interfaces", at],
                GuestIssue::NicHostdev(which.label(), declared.join(", ")),
            );
            return;
        }
    }
    if let Some(net) = &id.network {
        set_network(ed, nic, which, net);
    }
    let kind = ed.doc.attr(nic, "type").unwrap_or_default();
    let model = id.model.clone().or_else(|| {
        ed.doc
            .child(nic, "model")
            .and_then(|e| ed.doc.attr(e, "type"))
    });
    let model = model.unwrap_or_else(|| "(default)".into());
    if (id.driver.is_some() || id.queues.is_some()) && !model.starts_with("virtio") {
        ed.issue(
            &["interfaces", at],
            GuestIssue::NicNotVirtio(which.label(), model),
        );
        return;
    }
    let model = id.model.as_deref();
    set_child_attr(ed, nic, "model", "type", which.key(Item::Model), model);
    let drv = id.driver.map(|d| d.as_str());
    set_child_attr(ed, nic, "driver", "name", which.key(Item::Driver), drv);
    let q = id.queues.map(|q| q.to_string());
    let q = q.as_deref();
    set_child_attr(ed, nic, "driver", "queues", which.key(Item::Queues), q);
    if id.mtu.is_some() && !MTU_TYPES.contains(&kind.as_str()) {
        ed.issue(
            &["interfaces", at, "mtu"],
            GuestIssue::MtuUnsupported(which.label(), kind),
        );
        return;
    }
    let mtu = id.mtu.map(|m| m.to_string());
    set_child_attr(ed, nic, "mtu", "size", which.key(Item::Mtu), mtu.as_deref());
}

/// Connects the interface to `net`: type `network`, its `<source>` naming only the network
/// (the previous source's attributes belong to the previous backend).
fn set_network(ed: &mut Editor, nic: NodeId, which: &Nic, net: &NetworkName) {
    let kind = ed.doc.attr(nic, "type").unwrap_or_default();
    let src = ed.doc.child(nic, "source");
    let now = src.and_then(|s| ed.doc.attr(s, "network"));
    let before = if kind == "network" {
        now.clone()
    } else {
        Some(format!("(type {kind})"))
    };
    if kind == "network" && now.as_deref() == Some(net.as_str()) {
        return;
    }
    ed.push_change(which.key(Item::Network), before, Some(net.to_string()));
    ed.doc.set_attr(nic, "type", "network");
    let src = src.unwrap_or_else(|| ed.doc.ensure_child(nic, "source"));
    for (a, _) in ed.doc.attrs(src) {
        ed.doc.remove_attr(src, &a);
    }
    ed.doc.set_attr(src, "network", net.as_str());
}

fn import(doc: &Document) -> Option<BTreeMap<String, RawInterface>> {
    let mut out = BTreeMap::new();
    let mut dup = std::collections::BTreeSet::new();
    for nic in devices(doc, "interface") {
        // Nothing of a passed-through device is the YAML's (see `edit_nic`).
        if doc.attr(nic, "type").as_deref() == Some("hostdev") {
            continue;
        }
        let Some(mac) = doc
            .child(nic, "mac")
            .and_then(|m| doc.attr(m, "address"))
            .and_then(|a| MacAddr::new(&a).ok())
        else {
            continue;
        };
        let model = doc
            .child(nic, "model")
            .and_then(|m| doc.attr(m, "type"))
            .filter(|m| model_ok(m));
        let virtio = model.as_deref().is_some_and(|m| m.starts_with("virtio"));
        let drv = doc.child(nic, "driver");
        let driver = drv
            .and_then(|d| doc.attr(d, "name"))
            .and_then(|n| match n.as_str() {
                "vhost" => Some(NetDriver::Vhost),
                "qemu" => Some(NetDriver::Qemu),
                _ => None,
            })
            .filter(|_| virtio);
        let queues = parse_u32(drv.and_then(|d| doc.attr(d, "queues")))
            .filter(|q| virtio && (1..=256).contains(q));
        let kind = doc.attr(nic, "type").unwrap_or_default();
        let mtu = doc
            .child(nic, "mtu")
            .and_then(|m| parse_u32(doc.attr(m, "size")))
            .filter(|m| (68..=65535).contains(m) && MTU_TYPES.contains(&kind.as_str()));
        let i = RawInterface {
            model,
            driver,
            queues,
            mtu,
            network: None,
        };
        if i == RawInterface::default() {
            continue;
        }
        let key = mac.as_str().to_string();
        if out.insert(key.clone(), i).is_some() {
            dup.insert(key);
        }
    }
    for d in dup {
        out.remove(&d);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{changes, converges, domain, invalid, issues, plan};
    use super::*;

    #[test]
    fn network_re_points_a_nic_by_mac_and_keeps_the_rest() {
        let xml = nics(
            "<interface type='bridge'>\n      <mac address='52:54:00:12:34:56'/>\n      \
             <source bridge='br0'/>\n      <model type='virtio'/>\n    </interface>\n    \
             <interface type='user'>\n      <mac address='52:54:00:12:34:57'/>\n    </interface>",
        );
        let body = "    interfaces: { \"52:54:00:12:34:56\": { network: backup0 }, \"52:54:00:12:34:57\": { network: mgmt } }\n";
        let p = converges(body, &xml);
        assert_eq!(
            changes(&p),
            [
                (
                    "interfaces.52:54:00:12:34:56.network".to_string(),
                    Some("(type bridge)".to_string()),
                    Some("backup0".to_string())
                ),
                (
                    "interfaces.52:54:00:12:34:57.network".to_string(),
                    Some("(type user)".to_string()),
                    Some("mgmt".to_string())
                ),
            ]
        );
        assert!(
            p.new_xml.contains("<interface type='network'>\n      <mac address='52:54:00:12:34:56'/>\n      <source network='backup0'/>\n      <model type='virtio'/>"),
            "{}",
            p.new_xml
        );
        assert!(
            p.new_xml.contains("<source network='mgmt'/>"),
            "{}",
            p.new_xml
        );
        assert!(!p.new_xml.contains("br0"), "{}", p.new_xml);
        // Live: re-pointing is one update-device call, derived from the key alone.
        let gd = super::super::testing::guest(body);
        let k = &p.changes[0].key;
        assert!(super::super::live_capable(k));
        assert_eq!(
            super::super::live_op(&gd, k, None),
            Some(LiveOp::InterfaceNetwork {
                mac: MacAddr::new("52:54:00:12:34:56").unwrap(),
                network: NetworkName::new("backup0").unwrap(),
            })
        );
        // Another network's source (and its portgroup) is replaced; libvirt's live-only
        // attributes (portid, bridge) do not count as a difference.
        let other = xml.replace("<interface type='bridge'>", "<interface type='network'>");
        let other = other.replace(
            "<source bridge='br0'/>",
            "<source network='default' portgroup='p1'/>",
        );
        let p = plan(body, &other).unwrap();
        assert!(
            p.new_xml.contains("<source network='backup0'/>"),
            "{}",
            p.new_xml
        );
        let running = p.new_xml.replace(
            "<source network='backup0'/>",
            "<source network='backup0' portid='2b3c' bridge='virbr-bk'/>",
        );
        let left = plan(body, &running).unwrap();
        assert!(left.changes.is_empty(), "{:?}", left.changes);
    }

    #[test]
    fn network_is_per_mac_and_never_on_a_hostdev_interface() {
        let e = invalid("    interfaces: { \"*\": { network: backup0 } }\n");
        assert!(e.contains("guests.g.interfaces.*.network"), "{e}");
        let e = invalid("    interfaces: { \"52:54:00:00:00:01\": { network: \"a/b\" } }\n");
        assert!(e.contains("not a libvirt network name"), "{e}");
        let xml = nics(
            "<interface type='hostdev' managed='yes'>\n      <mac address='52:54:00:00:00:09'/>\n    </interface>",
        );
        let e = plan(
            "    interfaces: { \"52:54:00:00:00:09\": { network: backup0 } }\n",
            &xml,
        )
        .unwrap_err();
        assert!(
            issues(&e)[0].contains("network cannot be set"),
            "{:?}",
            issues(&e)
        );
    }

    fn nics(inner: &str) -> String {
        domain(&format!("<devices>\n    {inner}\n  </devices>"))
    }

    #[test]
    fn star_covers_an_interface_without_a_mac_and_converges_once_libvirt_adds_one() {
        let xml = nics(
            "<interface type='network'>\n      <source network='default'/>\n    </interface>\n    \
             <interface type='user'>\n      <mac address='52:54:00:00:00:01'/>\n    </interface>",
        );
        let body = "    interfaces: { \"*\": { model: virtio, queues: 2 } }\n";
        let p = converges(body, &xml);
        let paths: Vec<String> = changes(&p).into_iter().map(|c| c.0).collect();
        assert_eq!(
            paths,
            [
                "interfaces.*.model",
                "interfaces.*.queues",
                "interfaces.52:54:00:00:00:01.model",
                "interfaces.52:54:00:00:00:01.queues",
            ]
        );
        assert_eq!(
            p.new_xml.matches("<model type='virtio'/>").count(),
            2,
            "{}",
            p.new_xml
        );
        // What libvirt holds after the define: a generated MAC, the settings kept.
        let defined = p.new_xml.replace(
            "<source network='default'/>",
            "<mac address='52:54:00:9a:bc:de'/>\n      <source network='default'/>",
        );
        assert!(plan(body, &defined).unwrap().changes.is_empty());
        // Keys stay distinct and round-trip: the position stands in for the missing MAC.
        let k = &p.changes[0].key;
        let json = serde_json::to_string(k).unwrap();
        assert_eq!(json, r#"{"interfaces":{"index":0,"item":"model"}}"#);
        assert_eq!(&serde_json::from_str::<GuestKey>(&json).unwrap(), k);
    }

    #[test]
    fn a_mac_key_on_a_hostdev_interface_is_a_located_error_for_model_driver_and_queues() {
        let xml = nics(
            "<interface type='hostdev' managed='yes'>\n      <mac address='52:54:00:00:00:09'/>\n      \
             <source><address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/></source>\n    \
             </interface>",
        );
        for (decl, named) in [
            ("{ model: virtio, queues: 4 }", "model, queues"),
            ("{ driver: vhost }", "driver"),
        ] {
            let body = format!("    interfaces: {{ \"52:54:00:00:00:09\": {decl} }}\n");
            let e = plan(&body, &xml).unwrap_err();
            assert_eq!(
                issues(&e),
                [format!(
                    "guests.g.interfaces.52:54:00:00:00:09: interface 52:54:00:00:00:09 is of type `hostdev` (a passed-through host device, which the guest drives itself): {named} cannot be set on it (libvirt refuses or drops them)"
                )]
            );
        }
        // "*" leaves it alone, and import leaves it out.
        let p = plan(
            "    interfaces: { \"*\": { model: virtio, queues: 4 } }\n",
            &xml,
        )
        .unwrap();
        assert!(p.changes.is_empty());
        let doc =
            Document::parse(&xml.replace("</source>", "</source>\n      <model type='virtio'/>"))
                .unwrap();
        assert_eq!(import(&doc), None);
    }
}
