//! `interfaces`: NIC model, driver, queues and MTU per interface, by MAC address or `"*"`
//! (`<interface><model type=/><driver name= queues=/><mtu size=/></interface>`).
//!
//! Invariant: `"*"` applies to every interface but `hostdev` ones and a named MAC overrides it
//! field by field; driver and queues are set only on virtio models and the MTU only on the
//! interface types libvirt sets one on (else an issue, never a silent skip). Nothing changes
//! live.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DeviceKey, GuestDesired, GuestKey, Validation};
use crate::config::raw::{NetDriver, RawGuest, RawInterface};
use crate::domain::edit::{devices, list_or_none, merged, parse_u32, set_child_attr, Editor};
use crate::domain::GuestIssue;
use crate::model::MacAddr;
use crate::xmltree::{Document, NodeId};

pub struct Setting;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InterfaceDesired {
    pub model: Option<String>,
    pub driver: Option<NetDriver>,
    pub queues: Option<u32>,
    pub mtu: Option<u32>,
}

/// One setting of one interface, by MAC address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "InterfaceKey")]
pub struct Key {
    pub mac: MacAddr,
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
}

impl Item {
    fn as_str(self) -> &'static str {
        match self {
            Item::Model => "model",
            Item::Driver => "driver",
            Item::Queues => "queues",
            Item::Mtu => "mtu",
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interfaces.{}.{}", self.mac, self.item.as_str())
    }
}

impl From<Key> for GuestKey {
    fn from(k: Key) -> GuestKey {
        GuestKey::Interfaces(k)
    }
}

fn key(mac: &MacAddr, item: Item) -> GuestKey {
    GuestKey::Interfaces(Key {
        mac: mac.clone(),
        item,
    })
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
            out.interfaces.insert(
                ik,
                InterfaceDesired {
                    model: i.model.clone(),
                    driver: i.driver,
                    queues: i.queues,
                    mtu: i.mtu,
                },
            );
        }
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        let want = &d.interfaces;
        if want.is_empty() {
            return;
        }
        let mut macs = Vec::new();
        for nic in devices(&ed.doc, "interface") {
            let Some(mac) = ed
                .doc
                .child(nic, "mac")
                .and_then(|m| ed.doc.attr(m, "address"))
                .and_then(|a| MacAddr::new(&a).ok())
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
            // Where the YAML declared it: the MAC's own entry, else `"*"`.
            let at = if want.contains_key(&DeviceKey::One(mac.clone())) {
                mac.as_str().to_string()
            } else {
                "*".to_string()
            };
            edit_nic(ed, nic, &mac, &at, &id);
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
    if i.model.is_none() && i.driver.is_none() && i.queues.is_none() && i.mtu.is_none() {
        v.err(
            &["interfaces", k],
            "expected at least one of model, driver, queues, mtu",
        );
    }
}

/// The effective settings `id` of the interface `nic`, declared at `interfaces.<at>`.
fn edit_nic(ed: &mut Editor, nic: NodeId, mac: &MacAddr, at: &str, id: &InterfaceDesired) {
    let m = mac.as_str();
    let model = id.model.clone().or_else(|| {
        ed.doc
            .child(nic, "model")
            .and_then(|e| ed.doc.attr(e, "type"))
    });
    let model = model.unwrap_or_else(|| "(default)".into());
    if (id.driver.is_some() || id.queues.is_some()) && !model.starts_with("virtio") {
        ed.issue(
            &["interfaces", at],
            GuestIssue::NicNotVirtio(m.to_string(), model),
        );
        return;
    }
    let model = id.model.as_deref();
    set_child_attr(ed, nic, "model", "type", key(mac, Item::Model), model);
    let drv = id.driver.map(|d| d.as_str());
    set_child_attr(ed, nic, "driver", "name", key(mac, Item::Driver), drv);
    let q = id.queues.map(|q| q.to_string());
    let q = q.as_deref();
    set_child_attr(ed, nic, "driver", "queues", key(mac, Item::Queues), q);
    let kind = ed.doc.attr(nic, "type").unwrap_or_default();
    if id.mtu.is_some() && !MTU_TYPES.contains(&kind.as_str()) {
        ed.issue(
            &["interfaces", at, "mtu"],
            GuestIssue::MtuUnsupported(m.to_string(), kind),
        );
        return;
    }
    let mtu = id.mtu.map(|m| m.to_string());
    set_child_attr(ed, nic, "mtu", "size", key(mac, Item::Mtu), mtu.as_deref());
}

fn import(doc: &Document) -> Option<BTreeMap<String, RawInterface>> {
    let mut out = BTreeMap::new();
    let mut dup = std::collections::BTreeSet::new();
    for nic in devices(doc, "interface") {
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
