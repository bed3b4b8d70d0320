//! `blkiotune`: the guest's block I/O weight and per host device weights and throttles
//! (`<blkiotune><weight/><device><path/>…</device></blkiotune>`).
//!
//! Invariant: devices not declared are kept; a device is found by its `<path>` (the first
//! with that path), an absent throttle counts as 0 (unlimited) and an absent device weight as
//! unset. Every key changes live.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{GuestDesired, GuestKey, Validation};
use crate::config::raw::{RawBlkioDevice, RawBlkiotune, RawGuest};
use crate::domain::edit::{number_child, Editor};
use crate::domain::import::number;
use crate::libvirt::{LiveOp, NodeInfo};
use crate::xmltree::{Document, NodeId};

pub struct Setting;

/// One value of a `<blkiotune><device>` (ordered as the element names sort).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BlkioField {
    ReadBytesSec,
    ReadIopsSec,
    Weight,
    WriteBytesSec,
    WriteIopsSec,
}

impl BlkioField {
    /// The libvirt element name.
    pub fn as_str(self) -> &'static str {
        match self {
            BlkioField::ReadBytesSec => "read_bytes_sec",
            BlkioField::ReadIopsSec => "read_iops_sec",
            BlkioField::Weight => "weight",
            BlkioField::WriteBytesSec => "write_bytes_sec",
            BlkioField::WriteIopsSec => "write_iops_sec",
        }
    }
}

/// Weight and throttles of one host block device in `<blkiotune>`.
pub type BlkioDevice = BTreeMap<BlkioField, u64>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[schemars(rename = "BlkiotuneKey")]
pub enum Key {
    Weight,
    /// One value of one host device (`/dev/sda`).
    Device {
        path: String,
        field: BlkioField,
    },
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Weight => f.write_str("blkiotune.weight"),
            Key::Device { path, field } => {
                write!(f, "blkiotune.devices.{path}.{}", field.as_str())
            }
        }
    }
}

impl From<Key> for GuestKey {
    fn from(k: Key) -> GuestKey {
        GuestKey::Blkiotune(k)
    }
}

fn weight_ok(w: u64) -> bool {
    (100..=1000).contains(&w)
}

fn device_path_ok(dev: &str) -> bool {
    dev.starts_with("/dev/") && !dev.contains(['<', '>', '&', ',']) && !dev.contains("/../")
}

impl super::GuestSetting for Setting {
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        let Some(bt) = &g.blkiotune else { return };
        if let Some(w) = bt.weight {
            if !weight_ok(w as u64) {
                v.err(
                    &["blkiotune", "weight"],
                    format!("weight {w} is outside 100-1000"),
                );
            }
            out.blkio_weight = Some(w);
        }
        for (dev, d) in bt.devices.iter().flatten() {
            let at = ["blkiotune", "devices", dev.as_str()];
            if !device_path_ok(dev) {
                v.err(
                    &at,
                    format!(
                        "`{}` is not a host block device path like /dev/sda",
                        dev.escape_debug()
                    ),
                );
                continue;
            }
            let mut m = BTreeMap::new();
            if let Some(w) = d.weight {
                if !weight_ok(w as u64) {
                    v.err(
                        &["blkiotune", "devices", dev, "weight"],
                        format!("weight {w} is outside 100-1000"),
                    );
                }
                m.insert(BlkioField::Weight, w as u64);
            }
            for (k, val) in [
                (BlkioField::ReadBytesSec, d.read_bytes_sec),
                (BlkioField::WriteBytesSec, d.write_bytes_sec),
                (BlkioField::ReadIopsSec, d.read_iops_sec),
                (BlkioField::WriteIopsSec, d.write_iops_sec),
            ] {
                if let Some(val) = val {
                    m.insert(k, val);
                }
            }
            if m.is_empty() {
                v.err(&at, "expected at least one of weight, read_bytes_sec, write_bytes_sec, read_iops_sec, write_iops_sec");
            }
            out.blkio_devices.insert(dev.clone(), m);
        }
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        let bt = ed.doc.child(ed.root(), "blkiotune");
        if let Some(w) = d.blkio_weight {
            number_child(
                ed,
                |ed| ed.domain_child("blkiotune"),
                bt,
                "weight",
                Key::Weight.into(),
                w as u64,
                None,
            );
        }
        for (path, settings) in &d.blkio_devices {
            for (k, v) in settings {
                let existing = device(ed, path);
                let p = path.clone();
                let ensure = move |ed: &mut Editor| match device(ed, &p) {
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
                let absent = (*k != BlkioField::Weight).then_some(0);
                let key = Key::Device {
                    path: path.clone(),
                    field: *k,
                };
                number_child(ed, ensure, existing, k.as_str(), key.into(), *v, absent);
            }
        }
    }

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        out.blkiotune = import(doc);
    }

    fn live_capable(&self, key: &GuestKey) -> bool {
        matches!(key, GuestKey::Blkiotune(_))
    }

    fn live(&self, d: &GuestDesired, key: &GuestKey, _node: Option<NodeInfo>) -> Option<LiveOp> {
        match key {
            GuestKey::Blkiotune(Key::Weight) => Some(LiveOp::Blkio {
                field: "weight".into(),
                value: d.blkio_weight?.to_string(),
            }),
            GuestKey::Blkiotune(Key::Device { path, field }) => {
                let value = d.blkio_devices.get(path)?.get(field)?;
                Some(LiveOp::Blkio {
                    field: format!("device_{}", field.as_str()),
                    value: format!("{path},{value}"),
                })
            }
            _ => None,
        }
    }
}

/// The `<blkiotune><device>` whose `<path>` is `path`.
fn device(ed: &Editor, path: &str) -> Option<NodeId> {
    let bt = ed.doc.child(ed.root(), "blkiotune")?;
    ed.doc
        .children_named(bt, "device")
        .into_iter()
        .find(|dv| ed.doc.child(*dv, "path").map(|p| ed.doc.text(p)).as_deref() == Some(path))
}

fn import(doc: &Document) -> Option<RawBlkiotune> {
    let bt = doc.child(doc.root(), "blkiotune")?;
    let weight = number(doc, bt, "weight")
        .filter(|w| weight_ok(*w))
        .map(|w| w as u32);
    let mut devices = BTreeMap::new();
    for d in doc.children_named(bt, "device") {
        let Some(path) = doc.child(d, "path").map(|p| doc.text(p)) else {
            continue;
        };
        if !device_path_ok(&path) {
            continue;
        }
        let dev = RawBlkioDevice {
            weight: number(doc, d, "weight")
                .filter(|w| weight_ok(*w))
                .map(|w| w as u32),
            read_bytes_sec: number(doc, d, "read_bytes_sec"),
            write_bytes_sec: number(doc, d, "write_bytes_sec"),
            read_iops_sec: number(doc, d, "read_iops_sec"),
            write_iops_sec: number(doc, d, "write_iops_sec"),
        };
        if dev != RawBlkioDevice::default() {
            // The editor acts on the first device with a path: import that one.
            devices.entry(path).or_insert(dev);
        }
    }
    let t = RawBlkiotune {
        weight,
        devices: (!devices.is_empty()).then_some(devices),
    };
    (t != RawBlkiotune::default()).then_some(t)
}
