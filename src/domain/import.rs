//! Domain XML → the raw YAML model (`kvmtune import`): the reading direction of the owned
//! settings whose editing direction is in the parent module.
//!
//! Invariant (tested on libvirt's test-suite corpus and on real libvirtd): for any domain XML
//! `x`, validating [`import_guest`]`(x)` succeeds and [`super::plan_guest`] of it against `x`
//! plans zero changes. A setting is imported only when it can be expressed exactly in the
//! YAML format and passes validation; otherwise it is left out (unmanaged), never approximated.
//! Each reader below mirrors the comparison of the editor with the same name in the parent.

use std::collections::BTreeMap;

use crate::config::raw::*;
use crate::cpuset::CpuSet;
use crate::desired::MacAddr;
use crate::units::{to_kib, PageSize};
use crate::xmltree::{Document, NodeId};

use super::parse_u32;

fn cpuset(doc: &Document, n: NodeId, attr: &str) -> Option<CpuSet> {
    doc.attr(n, attr)?.parse().ok()
}

fn raw_set(c: &CpuSet) -> RawCpuSet {
    RawCpuSet::Set(c.to_string())
}

/// The owned settings of a domain, as YAML would declare them.
pub fn import_guest(xml: &str) -> Result<RawGuest, String> {
    let doc = Document::parse(xml).map_err(|e| e.to_string())?;
    let root = doc.root();
    let mut g = RawGuest::default();
    let vcpu_el = doc.child(root, "vcpu");
    let observed_count = vcpu_el.and_then(|e| parse_u32(Some(doc.text(e))));
    let iothreads = doc
        .child(root, "iothreads")
        .and_then(|e| parse_u32(Some(doc.text(e))));
    g.iothreads = iothreads;
    // cpu first: whether the topology is importable decides whether vcpu.count is.
    let (cpu, topology_ok) = import_cpu(&doc, observed_count);
    g.cpu = cpu;
    if let Some(e) = vcpu_el {
        let v = RawVcpu {
            count: observed_count.filter(|c| *c > 0 && topology_ok),
            current: parse_u32(doc.attr(e, "current"))
                .filter(|c| *c > 0 && observed_count.is_none_or(|n| c <= &n)),
            placement: match doc.attr(e, "placement").as_deref() {
                Some("static") => Some(Placement::Static),
                Some("auto") => Some(Placement::Auto),
                _ => None,
            },
            cpuset: cpuset(&doc, e, "cpuset").map(|c| raw_set(&c)),
        };
        if v != RawVcpu::default() {
            g.vcpu = Some(v);
        }
    }
    g.cputune = import_cputune(&doc, observed_count, iothreads);
    g.numatune = import_numatune(&doc);
    g.memory_backing = import_hugepages(&doc);
    g.blkiotune = import_blkiotune(&doc);
    g.memtune = import_memtune(&doc);
    g.disks = import_disks(&doc, iothreads);
    g.interfaces = import_interfaces(&doc);
    g.os_variant = import_os_variant(&doc);
    Ok(g)
}

/// An authoritative pin map (`vcpupin`, `iothreadpin`): all pins, or none when one of them
/// cannot be expressed (leaving one out would plan its removal).
fn pin_map(
    doc: &Document,
    cputune: NodeId,
    elem: &str,
    id_attr: &str,
    valid: impl Fn(u32) -> bool,
) -> Option<BTreeMap<u32, RawCpuSet>> {
    let mut m = BTreeMap::new();
    for p in doc.children_named(cputune, elem) {
        let id = parse_u32(doc.attr(p, id_attr)).filter(|i| valid(*i))?;
        let c = cpuset(doc, p, "cpuset")?;
        if m.insert(id, raw_set(&c)).is_some() {
            return None;
        }
    }
    (!m.is_empty()).then_some(m)
}

fn import_cputune(
    doc: &Document,
    count: Option<u32>,
    iothreads: Option<u32>,
) -> Option<RawCputune> {
    let ct = doc.child(doc.root(), "cputune")?;
    let t = RawCputune {
        vcpupin: pin_map(doc, ct, "vcpupin", "vcpu", |i| count.is_none_or(|c| i < c))
            .map(RawVcpupin::Map),
        emulatorpin: doc
            .child(ct, "emulatorpin")
            .and_then(|e| cpuset(doc, e, "cpuset"))
            .map(|c| raw_set(&c)),
        iothreadpin: pin_map(doc, ct, "iothreadpin", "iothread", |i| {
            i > 0 && iothreads.is_none_or(|n| i <= n)
        }),
    };
    (t != RawCputune::default()).then_some(t)
}

fn import_numatune(doc: &Document) -> Option<RawNumatune> {
    let m = doc.child(doc.child(doc.root(), "numatune")?, "memory")?;
    let mode = match doc.attr(m, "mode").as_deref() {
        Some("strict") => Some(NumaMode::Strict),
        Some("interleave") => Some(NumaMode::Interleave),
        Some("preferred") => Some(NumaMode::Preferred),
        Some("restrictive") => Some(NumaMode::Restrictive),
        _ => None,
    };
    let placement = match doc.attr(m, "placement").as_deref() {
        Some("static") => Some(Placement::Static),
        Some("auto") => Some(Placement::Auto),
        _ => None,
    };
    let nodeset = cpuset(doc, m, "nodeset").filter(|_| placement != Some(Placement::Auto));
    if doc.attr(m, "nodeset").is_some() && nodeset.is_none() {
        // A nodeset kvmtune cannot express: declaring placement would plan its removal.
        return None;
    }
    let mem = RawNumaMemory {
        mode,
        nodeset: nodeset.map(|c| raw_set(&c)),
        placement,
    };
    (mem != RawNumaMemory::default()).then_some(RawNumatune { memory: Some(mem) })
}

fn import_hugepages(doc: &Document) -> Option<RawMemoryBacking> {
    let hp = doc.child(doc.child(doc.root(), "memoryBacking")?, "hugepages")?;
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
    Some(RawMemoryBacking {
        hugepages: Some(backing),
    })
}

/// `<cpu>`; the bool says whether a `vcpu.count` may be declared beside it (the topology, if
/// any, multiplies to the count, or is imported too).
fn import_cpu(doc: &Document, count: Option<u32>) -> (Option<RawCpu>, bool) {
    let Some(el) = doc.child(doc.root(), "cpu") else {
        return (None, true);
    };
    let topo_el = doc.child(el, "topology");
    let product: u64 = topo_el
        .map(|t| {
            ["sockets", "dies", "cores", "threads"]
                .iter()
                .map(|a| parse_u32(doc.attr(t, a)).unwrap_or(1) as u64)
                .product()
        })
        .unwrap_or(0);
    let topology = topo_el.and_then(|t| {
        let get = |a| parse_u32(doc.attr(t, a)).filter(|v| *v > 0);
        let dies = match doc.attr(t, "dies") {
            Some(_) => Some(get("dies")?),
            None => None,
        };
        let topo = RawTopology {
            sockets: get("sockets")?,
            dies,
            cores: get("cores")?,
            threads: get("threads")?,
        };
        (count.is_none_or(|c| c as u64 == product)).then_some(topo)
    });
    let count_ok =
        topo_el.is_none() || topology.is_some() || count.map(|c| c as u64) == Some(product);
    let model = doc
        .child(el, "model")
        .map(|m| doc.text(m))
        .filter(|m| !m.trim().is_empty() && !m.contains(['<', '>', '&', '\'', '"']));
    let (mode, model) = match doc.attr(el, "mode").as_deref() {
        Some("host-passthrough") => (Some(CpuMode::HostPassthrough), None),
        Some("host-model") => (Some(CpuMode::HostModel), None),
        Some("maximum") => (Some(CpuMode::Maximum), None),
        Some("custom") | None => match model {
            Some(m) => (Some(CpuMode::Custom), Some(m)),
            None => (None, None),
        },
        Some(_) => (None, None),
    };
    let mut require = Vec::new();
    let mut disable = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for f in doc.children_named(el, "feature") {
        let Some(name) = doc.attr(f, "name") else {
            continue;
        };
        if !seen.insert(name.clone()) {
            continue;
        }
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        match doc.attr(f, "policy").as_deref() {
            Some("require") | None if ok => require.push(name),
            Some("disable") if ok => disable.push(name),
            _ => {}
        }
    }
    let features =
        (!require.is_empty() || !disable.is_empty()).then_some(RawCpuFeatures { require, disable });
    let cpu = RawCpu {
        mode,
        model,
        topology,
        features,
    };
    ((cpu != RawCpu::default()).then_some(cpu), count_ok)
}

fn number(doc: &Document, parent: NodeId, name: &str) -> Option<u64> {
    doc.child(parent, name)
        .and_then(|e| doc.text(e).trim().parse().ok())
}

fn import_blkiotune(doc: &Document) -> Option<RawBlkiotune> {
    let bt = doc.child(doc.root(), "blkiotune")?;
    let weight = number(doc, bt, "weight")
        .filter(|w| (100..=1000).contains(w))
        .map(|w| w as u32);
    let mut devices = BTreeMap::new();
    for d in doc.children_named(bt, "device") {
        let Some(path) = doc.child(d, "path").map(|p| doc.text(p)) else {
            continue;
        };
        if !path.starts_with("/dev/")
            || path.contains(['<', '>', '&', ','])
            || path.contains("/../")
        {
            continue;
        }
        let dev = RawBlkioDevice {
            weight: number(doc, d, "weight")
                .filter(|w| (100..=1000).contains(w))
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

fn import_memtune(doc: &Document) -> Option<RawMemtune> {
    let mt = doc.child(doc.root(), "memtune")?;
    let kib = |name: &str| {
        let e = doc.child(mt, name)?;
        let n: u64 = doc.text(e).trim().parse().ok()?;
        to_kib(n, &doc.attr(e, "unit").unwrap_or_else(|| "KiB".into())).ok()
    };
    let hard = kib("hard_limit");
    let soft = kib("soft_limit").filter(|s| hard.is_none_or(|h| *s <= h));
    let swap = kib("swap_hard_limit").filter(|s| hard.is_none_or(|h| *s >= h));
    let t = RawMemtune {
        hard_limit: hard.map(RawSize::Kib),
        soft_limit: soft.map(RawSize::Kib),
        swap_hard_limit: swap.map(RawSize::Kib),
        min_guarantee: kib("min_guarantee").map(RawSize::Kib),
    };
    (t != RawMemtune::default()).then_some(t)
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

fn devices(doc: &Document, name: &str) -> Vec<NodeId> {
    doc.child(doc.root(), "devices")
        .map(|d| doc.children_named(d, name))
        .unwrap_or_default()
}

fn import_disks(doc: &Document, iothreads: Option<u32>) -> Option<BTreeMap<String, RawDisk>> {
    let mut out = BTreeMap::new();
    let mut dup = std::collections::BTreeSet::new();
    for disk in devices(doc, "disk") {
        let Some(dev) = doc.child(disk, "target").and_then(|t| doc.attr(t, "dev")) else {
            continue;
        };
        if dev.is_empty() || dev.len() > 32 || !dev.chars().all(|c| c.is_ascii_alphanumeric()) {
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
        let iotune = doc.child(disk, "iotune").and_then(|t| {
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
            (!clash && !v.fields().is_empty()).then_some(v)
        });
        let d = RawDisk {
            cache,
            io,
            iothread,
            iotune,
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

fn import_interfaces(doc: &Document) -> Option<BTreeMap<String, RawInterface>> {
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
            .filter(|m| {
                !m.is_empty()
                    && m.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            });
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
            .filter(|m| {
                (68..=65535).contains(m)
                    && ["network", "bridge", "ethernet", "vhostuser"].contains(&kind.as_str())
            });
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

/// The libosinfo short id whose id URL is in the metadata, when kvmtune knows the family.
fn import_os_variant(doc: &Document) -> Option<String> {
    let meta = doc.child(doc.root(), "metadata")?;
    let info = doc
        .elements(meta)
        .into_iter()
        .find(|e| doc.name(*e).rsplit(':').next() == Some("libosinfo"))?;
    let os = doc
        .elements(info)
        .into_iter()
        .find(|e| doc.name(*e).rsplit(':').next() == Some("os"))?;
    osinfo_short(&doc.attr(os, "id")?)
}

/// The inverse of [`crate::desired::osinfo_id`].
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
    (crate::desired::osinfo_id(&short).as_deref() == Some(id)).then_some(short)
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
            let id = crate::desired::osinfo_id(short).unwrap();
            assert_eq!(osinfo_short(&id).as_deref(), Some(short), "{id}");
        }
        assert_eq!(osinfo_short("http://example.com/os/1"), None);
    }
}
