//! `disks`: cache mode, AIO mode, I/O thread and throttles per disk, by target dev or `"*"`
//! (`<disk><driver cache= io= iothread=/><iotune>…</iotune></disk>`).
//!
//! Invariant: `"*"` applies to every disk of `device='disk'` and a named dev overrides it
//! field by field; a named dev the guest does not have is an issue, never ignored. Absent
//! throttles count as 0 (unlimited). A declared rate replaces the throttles libvirt refuses
//! beside it (a total rate the read and write ones of its kind, and the other way round,
//! bursts included), each removal a change to absent. Only the declarable throttles change
//! live.

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

/// One `<iotune>` throttle: the six a YAML declares (ordered as their element names sort),
/// then the burst variants (`*_max`, `*_max_length`) a plan may only remove.
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
    TotalBytesSecMax,
    TotalBytesSecMaxLength,
    ReadBytesSecMax,
    ReadBytesSecMaxLength,
    WriteBytesSecMax,
    WriteBytesSecMaxLength,
    TotalIopsSecMax,
    TotalIopsSecMaxLength,
    ReadIopsSecMax,
    ReadIopsSecMaxLength,
    WriteIopsSecMax,
    WriteIopsSecMaxLength,
}

/// What a throttle limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bytes,
    Iops,
}

/// Which I/O a throttle limits: libvirt refuses a `total_*` beside a `read_*` or `write_*`
/// of the same kind ("total and read/write ... cannot be set at the same time"), and QEMU a
/// burst (`*_max`) without its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Total,
    Read,
    Write,
}

impl IotuneField {
    /// The libvirt element name (and `virDomainSetBlockIoTune` field).
    pub fn as_str(self) -> &'static str {
        use IotuneField as F;
        match self {
            F::ReadBytesSec => "read_bytes_sec",
            F::ReadIopsSec => "read_iops_sec",
            F::TotalBytesSec => "total_bytes_sec",
            F::TotalIopsSec => "total_iops_sec",
            F::WriteBytesSec => "write_bytes_sec",
            F::WriteIopsSec => "write_iops_sec",
            F::TotalBytesSecMax => "total_bytes_sec_max",
            F::TotalBytesSecMaxLength => "total_bytes_sec_max_length",
            F::ReadBytesSecMax => "read_bytes_sec_max",
            F::ReadBytesSecMaxLength => "read_bytes_sec_max_length",
            F::WriteBytesSecMax => "write_bytes_sec_max",
            F::WriteBytesSecMaxLength => "write_bytes_sec_max_length",
            F::TotalIopsSecMax => "total_iops_sec_max",
            F::TotalIopsSecMaxLength => "total_iops_sec_max_length",
            F::ReadIopsSecMax => "read_iops_sec_max",
            F::ReadIopsSecMaxLength => "read_iops_sec_max_length",
            F::WriteIopsSecMax => "write_iops_sec_max",
            F::WriteIopsSecMaxLength => "write_iops_sec_max_length",
        }
    }

    /// Whether a YAML declares it (else a plan can only remove it).
    pub fn declarable(self) -> bool {
        self.family_index() == 0
    }

    /// The rate, burst and burst length of one kind and side, in that order.
    fn family(kind: Kind, side: Side) -> [IotuneField; 3] {
        use IotuneField as F;
        match (kind, side) {
            (Kind::Bytes, Side::Total) => [
                F::TotalBytesSec,
                F::TotalBytesSecMax,
                F::TotalBytesSecMaxLength,
            ],
            (Kind::Bytes, Side::Read) => [
                F::ReadBytesSec,
                F::ReadBytesSecMax,
                F::ReadBytesSecMaxLength,
            ],
            (Kind::Bytes, Side::Write) => [
                F::WriteBytesSec,
                F::WriteBytesSecMax,
                F::WriteBytesSecMaxLength,
            ],
            (Kind::Iops, Side::Total) => [
                F::TotalIopsSec,
                F::TotalIopsSecMax,
                F::TotalIopsSecMaxLength,
            ],
            (Kind::Iops, Side::Read) => {
                [F::ReadIopsSec, F::ReadIopsSecMax, F::ReadIopsSecMaxLength]
            }
            (Kind::Iops, Side::Write) => [
                F::WriteIopsSec,
                F::WriteIopsSecMax,
                F::WriteIopsSecMaxLength,
            ],
        }
    }

    /// The position in its family: 0 the rate, 1 the burst, 2 the burst length.
    fn family_index(self) -> usize {
        let (kind, side) = self.kind_side();
        IotuneField::family(kind, side)
            .iter()
            .position(|f| *f == self)
            .expect("a field is in its own family")
    }

    fn kind_side(self) -> (Kind, Side) {
        let name = self.as_str();
        let kind = if name.contains("bytes") {
            Kind::Bytes
        } else {
            Kind::Iops
        };
        let side = if name.starts_with("total") {
            Side::Total
        } else if name.starts_with("read") {
            Side::Read
        } else {
            Side::Write
        };
        (kind, side)
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

/// The sides of one kind whose throttles must go where `iotune` limits that kind: a nonzero
/// total rate displaces read and write, a nonzero read or write rate displaces the total.
fn displaced(iotune: &BTreeMap<IotuneField, u64>, kind: Kind) -> &'static [Side] {
    let nz = |side| {
        iotune
            .get(&IotuneField::family(kind, side)[0])
            .is_some_and(|v| *v > 0)
    };
    if nz(Side::Total) {
        &[Side::Read, Side::Write]
    } else if nz(Side::Read) || nz(Side::Write) {
        &[Side::Total]
    } else {
        &[]
    }
}

/// `"*"`'s throttles overridden by a dev's: a dev's rate also displaces `"*"`'s conflicting
/// side (a dev's `read_iops_sec` drops `"*"`'s `total_iops_sec`).
fn merge_iotune(
    all: &BTreeMap<IotuneField, u64>,
    one: &BTreeMap<IotuneField, u64>,
) -> BTreeMap<IotuneField, u64> {
    let mut out = all.clone();
    for kind in [Kind::Bytes, Kind::Iops] {
        for side in displaced(one, kind) {
            for f in IotuneField::family(kind, *side) {
                out.remove(&f);
            }
        }
    }
    out.extend(one.iter().map(|(k, v)| (*k, *v)));
    out
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
                iotune: merge_iotune(&a.iotune, &o.iotune),
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

    /// The declarable throttles (`virDomainSetBlockIoTune`); a removed burst takes effect at
    /// the next start.
    fn live_capable(&self, key: &GuestKey) -> bool {
        matches!(
            key,
            GuestKey::Disks(Key {
                item: Item::Iotune(f),
                ..
            }) if f.declarable()
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
        let all = d.disks.get(&DeviceKey::All).map(|a| &a.iotune);
        let one = d.disks.get(&DeviceKey::One(dev.clone())).map(|o| &o.iotune);
        let effective = match (all, one) {
            (Some(a), Some(o)) => merge_iotune(a, o),
            (a, o) => a.or(o)?.clone(),
        };
        Some(LiveOp::BlockIotune {
            disk: dev.clone(),
            field: field.as_str().to_string(),
            value: *effective.get(field)?,
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
    // The throttles libvirt (or QEMU at start) refuses beside the declared ones go, each a
    // change to absent: a declared total rate replaces read and write (rates, bursts and
    // burst lengths), a declared read or write rate replaces the total.
    let Some(tune) = ed.doc.child(disk, "iotune") else {
        return;
    };
    for kind in [Kind::Bytes, Kind::Iops] {
        for side in displaced(&dd.iotune, kind) {
            for f in IotuneField::family(kind, *side) {
                if dd.iotune.contains_key(&f) {
                    continue;
                }
                for el in ed.doc.children_named(tune, f.as_str()) {
                    let text = ed.doc.text(el);
                    // Zero is libvirt's "unset": it drops the element itself.
                    if text.trim().parse::<u64>() == Ok(0) {
                        continue;
                    }
                    ed.push_change(key(dev, Item::Iotune(f)), Some(text), None);
                    ed.doc.remove(el);
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::super::testing::{changes, converges, domain, guest};
    use super::*;

    fn disk(iotune: &str) -> String {
        domain(&format!(
            "<devices>\n    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source file='/x.img'/>\n      <target dev='vda' bus='virtio'/>\n      <iotune>{iotune}</iotune>\n    </disk>\n  </devices>"
        ))
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn a_declared_total_replaces_read_and_write_with_their_bursts_shown_as_removed() {
        let xml = disk(
            "<read_iops_sec>100</read_iops_sec><read_iops_sec_max>200</read_iops_sec_max>\
             <read_iops_sec_max_length>5</read_iops_sec_max_length><write_iops_sec>0</write_iops_sec>\
             <read_bytes_sec>7</read_bytes_sec>",
        );
        let p = converges(
            "    disks: { vda: { iotune: { total_iops_sec: 500 } } }\n",
            &xml,
        );
        assert_eq!(
            changes(&p),
            [
                (
                    "disks.vda.iotune.total_iops_sec".into(),
                    Some("0".into()),
                    some("500")
                ),
                ("disks.vda.iotune.read_iops_sec".into(), some("100"), None),
                (
                    "disks.vda.iotune.read_iops_sec_max".into(),
                    some("200"),
                    None
                ),
                (
                    "disks.vda.iotune.read_iops_sec_max_length".into(),
                    some("5"),
                    None
                ),
            ]
        );
        // The other kind (bytes) is left alone; a zero (libvirt's unset) is no change.
        assert!(
            p.new_xml.contains("<read_bytes_sec>7</read_bytes_sec>"),
            "{}",
            p.new_xml
        );
        assert!(!p.new_xml.contains("<read_iops_sec"), "{}", p.new_xml);
    }

    #[test]
    fn a_declared_read_or_write_rate_replaces_the_total() {
        let xml = disk(
            "<total_bytes_sec>1000</total_bytes_sec><total_bytes_sec_max>2000</total_bytes_sec_max>\
             <total_bytes_sec_max_length>9</total_bytes_sec_max_length><total_iops_sec>50</total_iops_sec>",
        );
        let p = converges(
            "    disks: { \"*\": { iotune: { write_bytes_sec: 300 } } }\n",
            &xml,
        );
        let paths: Vec<String> = changes(&p).into_iter().map(|c| c.0).collect();
        assert_eq!(
            paths,
            [
                "disks.vda.iotune.write_bytes_sec",
                "disks.vda.iotune.total_bytes_sec",
                "disks.vda.iotune.total_bytes_sec_max",
                "disks.vda.iotune.total_bytes_sec_max_length",
            ]
        );
        assert!(p.new_xml.contains("<total_iops_sec>50</total_iops_sec>"));
    }

    #[test]
    fn a_dev_rate_displaces_the_conflicting_rate_of_star() {
        let body = "    disks: { \"*\": { iotune: { total_iops_sec: 900, read_bytes_sec: 5 } }, vda: { iotune: { read_iops_sec: 100 } } }\n";
        let p = converges(body, &disk(""));
        assert!(p.new_xml.contains("<read_iops_sec>100</read_iops_sec>"));
        assert!(p.new_xml.contains("<read_bytes_sec>5</read_bytes_sec>"));
        assert!(!p.new_xml.contains("total_iops_sec"), "{}", p.new_xml);
        // Live, the dev's effective throttles too: nothing sets the displaced total.
        let g = guest(body);
        let k = |f| {
            GuestKey::Disks(Key {
                dev: "vda".into(),
                item: Item::Iotune(f),
            })
        };
        use super::super::GuestSetting;
        assert_eq!(Setting.live(&g, &k(IotuneField::TotalIopsSec), None), None);
        assert!(Setting
            .live(&g, &k(IotuneField::ReadBytesSec), None)
            .is_some());
        // Bursts a plan removes are not live operations.
        assert!(!Setting.live_capable(&k(IotuneField::ReadIopsSecMax)));
        assert!(Setting.live_capable(&k(IotuneField::ReadIopsSec)));
    }
}
