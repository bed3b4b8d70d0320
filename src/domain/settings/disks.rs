//! `disks`: cache mode, AIO mode, I/O thread and throttles per disk, by target dev or `"*"`
//! (`<disk><driver cache= io= iothread=/><iotune>…</iotune></disk>`).
//!
//! Invariant: `"*"` applies to every disk of `device='disk'` and a named dev overrides it
//! field by field; a named dev the guest does not have is an issue, never ignored. Absent
//! throttles count as 0 (unlimited). Only the throttles change live.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DeviceKey, GuestDesired, GuestKey, Validation};
use crate::config::raw::{CacheMode, IoMode, RawDisk, RawGuest, RawIotune};
use crate::domain::edit::{
    devices, list_or_none, merged, number_child, parse_u32, set_child_attr, Editor,
};
use crate::domain::import::number;
use crate::domain::running::{check, Check, Running};
use crate::domain::GuestIssue;
use crate::libvirt::{LiveOp, NodeInfo};
use crate::xmltree::{Document, NodeId};

pub struct Setting;

/// One `<iotune>` throttle (ordered as the element names sort).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IotuneField {
    ReadBytesSec,
    ReadIopsSec,
    TotalBytesSec,
    TotalIopsSec,
    WriteBytesSec,
    WriteIopsSec,
}

impl IotuneField {
    /// The libvirt element name (and `virDomainSetBlockIoTune` field).
    pub fn as_str(self) -> &'static str {
        match self {
            IotuneField::ReadBytesSec => "read_bytes_sec",
            IotuneField::ReadIopsSec => "read_iops_sec",
            IotuneField::TotalBytesSec => "total_bytes_sec",
            IotuneField::TotalIopsSec => "total_iops_sec",
            IotuneField::WriteBytesSec => "write_bytes_sec",
            IotuneField::WriteIopsSec => "write_iops_sec",
        }
    }

    /// Every declared throttle of `t`.
    fn of(t: &RawIotune) -> Vec<(IotuneField, u64)> {
        use IotuneField as F;
        [
            (F::TotalBytesSec, t.total_bytes_sec),
            (F::ReadBytesSec, t.read_bytes_sec),
            (F::WriteBytesSec, t.write_bytes_sec),
            (F::TotalIopsSec, t.total_iops_sec),
            (F::ReadIopsSec, t.read_iops_sec),
            (F::WriteIopsSec, t.write_iops_sec),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskDesired {
    pub cache: Option<CacheMode>,
    pub io: Option<IoMode>,
    pub iothread: Option<u32>,
    /// Throttle → value (0 = unlimited).
    pub iotune: BTreeMap<IotuneField, u64>,
}

/// One setting of one disk, by target dev.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DiskKey")]
pub struct Key {
    pub dev: String,
    pub item: Item,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "DiskItem")]
pub enum Item {
    Cache,
    Io,
    Iothread,
    Iotune(IotuneField),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dev = &self.dev;
        match self.item {
            Item::Cache => write!(f, "disks.{dev}.cache"),
            Item::Io => write!(f, "disks.{dev}.io"),
            Item::Iothread => write!(f, "disks.{dev}.iothread"),
            Item::Iotune(t) => write!(f, "disks.{dev}.iotune.{}", t.as_str()),
        }
    }
}

impl From<Key> for GuestKey {
    fn from(k: Key) -> GuestKey {
        GuestKey::Disks(k)
    }
}

fn key(dev: &str, item: Item) -> GuestKey {
    GuestKey::Disks(Key {
        dev: dev.to_string(),
        item,
    })
}

fn dev_ok(dev: &str) -> bool {
    !dev.is_empty() && dev.len() <= 32 && dev.chars().all(|c| c.is_ascii_alphanumeric())
}

impl super::GuestSetting for Setting {
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        for (k, d) in g.disks.iter().flatten() {
            let dk = if k == "*" {
                DeviceKey::All
            } else if dev_ok(k) {
                DeviceKey::One(k.clone())
            } else {
                v.err(
                    &["disks", k],
                    format!(
                        "`{}` is not a disk target dev (like vda, sdb) or \"*\"",
                        k.escape_debug()
                    ),
                );
                continue;
            };
            let dd = validate_disk(v, g, k, d);
            out.disks.insert(dk, dd);
        }
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        let want = &d.disks;
        if want.is_empty() {
            return;
        }
        let mut names = Vec::new();
        for disk in devices(&ed.doc, "disk") {
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
            edit_disk(ed, disk, &dev, &dd);
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

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        out.disks = import(doc, super::iothreads::observed(doc));
    }

    fn live_capable(&self, key: &GuestKey) -> bool {
        matches!(
            key,
            GuestKey::Disks(Key {
                item: Item::Iotune(_),
                ..
            })
        )
    }

    fn live(&self, d: &GuestDesired, key: &GuestKey, _node: Option<NodeInfo>) -> Option<LiveOp> {
        let GuestKey::Disks(Key {
            dev,
            item: Item::Iotune(field),
        }) = key
        else {
            return None;
        };
        let value = d
            .disks
            .get(&DeviceKey::One(dev.clone()))
            .and_then(|d| d.iotune.get(field))
            .or_else(|| {
                d.disks
                    .get(&DeviceKey::All)
                    .and_then(|d| d.iotune.get(field))
            })?;
        Some(LiveOp::BlockIotune {
            disk: dev.clone(),
            field: field.as_str().to_string(),
            value: *value,
        })
    }

    /// `disks.DEV.cache` / `.io`: the live XML (`virDomainGetXMLDesc` with flags 0).
    fn verify(&self, d: &GuestDesired, run: &Running, out: &mut Vec<Check>) {
        if d.disks.is_empty() {
            return;
        }
        let Some(doc) = run.doc else {
            check(
                out,
                "disks".into(),
                "a live XML".into(),
                "(does not parse)".into(),
            );
            return;
        };
        let mut seen = Vec::new();
        for disk in devices(doc, "disk") {
            let Some(dev) = doc.child(disk, "target").and_then(|t| doc.attr(t, "dev")) else {
                continue;
            };
            let is_disk = doc.attr(disk, "device").is_none_or(|k| k == "disk");
            let all = d.disks.get(&DeviceKey::All).filter(|_| is_disk);
            let one = d.disks.get(&DeviceKey::One(dev.clone()));
            if one.is_some() {
                seen.push(dev.clone());
            }
            let cache = one.and_then(|o| o.cache).or(all.and_then(|a| a.cache));
            let io = one.and_then(|o| o.io).or(all.and_then(|a| a.io));
            let driver = doc.child(disk, "driver");
            let attr = |name: &str| {
                driver
                    .and_then(|drv| doc.attr(drv, name))
                    .unwrap_or_else(|| "(unset)".into())
            };
            if let Some(c) = cache {
                let k = key(&dev, Item::Cache).to_string();
                check(out, k, c.as_str().into(), attr("cache"));
            }
            if let Some(i) = io {
                let k = key(&dev, Item::Io).to_string();
                check(out, k, i.as_str().into(), attr("io"));
            }
        }
        for k in d.disks.keys() {
            if let DeviceKey::One(dev) = k {
                if !seen.contains(dev) {
                    check(
                        out,
                        format!("disks.{dev}"),
                        "a disk".into(),
                        "(no such disk in the live XML)".into(),
                    );
                }
            }
        }
    }
}

/// One entry of `disks:` (`k` is its key, a dev or `"*"`).
fn validate_disk(v: &mut Validation, g: &RawGuest, k: &str, d: &RawDisk) -> DiskDesired {
    if d.io == Some(IoMode::Native)
        && !matches!(
            d.cache,
            None | Some(CacheMode::None) | Some(CacheMode::Directsync)
        )
    {
        v.err(
            &["disks", k, "io"],
            "io: native needs cache: none or directsync (QEMU requires O_DIRECT for native AIO)",
        );
    }
    if d.cache.is_none() && d.io.is_none() && d.iothread.is_none() && d.iotune.is_none() {
        v.err(
            &["disks", k],
            "expected at least one of cache, io, iothread, iotune",
        );
    }
    if let Some(t) = d.iothread {
        if t == 0 || g.iothreads.is_some_and(|n| t > n) {
            v.err(
                &["disks", k, "iothread"],
                format!("I/O thread {t} does not exist: ids run from 1 to the iothreads count"),
            );
        }
    }
    let iotune: BTreeMap<IotuneField, u64> = d
        .iotune
        .as_ref()
        .map(|t| IotuneField::of(t).into_iter().collect())
        .unwrap_or_default();
    if d.iotune.is_some() && iotune.is_empty() {
        v.err(
            &["disks", k, "iotune"],
            "expected at least one throttle (total_bytes_sec, read_iops_sec, ...)",
        );
    }
    use IotuneField as F;
    for (a, b) in [
        (F::TotalBytesSec, [F::ReadBytesSec, F::WriteBytesSec]),
        (F::TotalIopsSec, [F::ReadIopsSec, F::WriteIopsSec]),
    ] {
        if iotune.get(&a).is_some_and(|v| *v > 0)
            && b.iter().any(|k| iotune.get(k).is_some_and(|v| *v > 0))
        {
            v.err(
                &["disks", k, "iotune"],
                format!(
                    "{} cannot be combined with {} or {} (QEMU rejects it)",
                    a.as_str(),
                    b[0].as_str(),
                    b[1].as_str()
                ),
            );
        }
    }
    DiskDesired {
        cache: d.cache,
        io: d.io,
        iothread: d.iothread,
        iotune,
    }
}

/// The effective settings `dd` of the disk `disk` (target dev `dev`).
fn edit_disk(ed: &mut Editor, disk: NodeId, dev: &str, dd: &DiskDesired) {
    let cache = dd.cache.map(|c| c.as_str());
    set_child_attr(ed, disk, "driver", "cache", key(dev, Item::Cache), cache);
    let io = dd.io.map(|c| c.as_str());
    set_child_attr(ed, disk, "driver", "io", key(dev, Item::Io), io);
    let t = dd.iothread.map(|t| t.to_string());
    set_child_attr(
        ed,
        disk,
        "driver",
        "iothread",
        key(dev, Item::Iothread),
        t.as_deref(),
    );
    for (k, v) in &dd.iotune {
        let existing = ed.doc.child(disk, "iotune");
        number_child(
            ed,
            |ed| ed.doc.ensure_child(disk, "iotune"),
            existing,
            k.as_str(),
            key(dev, Item::Iotune(*k)),
            *v,
            Some(0),
        );
    }
}

fn cache_mode(s: &str) -> Option<CacheMode> {
    Some(match s {
        "none" => CacheMode::None,
        "writethrough" => CacheMode::Writethrough,
        "writeback" => CacheMode::Writeback,
        "directsync" => CacheMode::Directsync,
        "unsafe" => CacheMode::Unsafe,
        _ => return None,
    })
}

fn io_mode(s: &str) -> Option<IoMode> {
    Some(match s {
        "native" => IoMode::Native,
        "threads" => IoMode::Threads,
        "io_uring" => IoMode::IoUring,
        _ => return None,
    })
}

fn import_iotune(doc: &Document, disk: NodeId) -> Option<RawIotune> {
    let t = doc.child(disk, "iotune")?;
    let v = RawIotune {
        total_bytes_sec: number(doc, t, "total_bytes_sec"),
        read_bytes_sec: number(doc, t, "read_bytes_sec"),
        write_bytes_sec: number(doc, t, "write_bytes_sec"),
        total_iops_sec: number(doc, t, "total_iops_sec"),
        read_iops_sec: number(doc, t, "read_iops_sec"),
        write_iops_sec: number(doc, t, "write_iops_sec"),
    };
    let nz = |x: Option<u64>| x.is_some_and(|v| v > 0);
    let clash = (nz(v.total_bytes_sec) && (nz(v.read_bytes_sec) || nz(v.write_bytes_sec)))
        || (nz(v.total_iops_sec) && (nz(v.read_iops_sec) || nz(v.write_iops_sec)));
    (!clash && !IotuneField::of(&v).is_empty()).then_some(v)
}

fn import(doc: &Document, iothreads: Option<u32>) -> Option<BTreeMap<String, RawDisk>> {
    let mut out = BTreeMap::new();
    let mut dup = std::collections::BTreeSet::new();
    for disk in devices(doc, "disk") {
        let Some(dev) = doc.child(disk, "target").and_then(|t| doc.attr(t, "dev")) else {
            continue;
        };
        if !dev_ok(&dev) {
            continue;
        }
        let drv = doc.child(disk, "driver");
        let attr = |a: &str| drv.and_then(|d| doc.attr(d, a));
        let cache = attr("cache").as_deref().and_then(cache_mode);
        let io = attr("io").as_deref().and_then(io_mode).filter(|io| {
            *io != IoMode::Native
                || matches!(cache, None | Some(CacheMode::None | CacheMode::Directsync))
        });
        let iothread =
            parse_u32(attr("iothread")).filter(|t| *t > 0 && iothreads.is_none_or(|n| *t <= n));
        let d = RawDisk {
            cache,
            io,
            iothread,
            iotune: import_iotune(doc, disk),
        };
        if d == RawDisk::default() {
            continue;
        }
        // The editor applies a dev key to every disk with that dev: import unique devs only.
        if out.insert(dev.clone(), d).is_some() {
            dup.insert(dev);
        }
    }
    for d in dup {
        out.remove(&d);
    }
    (!out.is_empty()).then_some(out)
}
