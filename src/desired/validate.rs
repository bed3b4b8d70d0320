//! Raw model → [`Desired`]: every semantic check that needs no hypervisor.
//!
//! Invariant: all errors are collected (not just the first), each located at the key it is
//! about; a returned `Desired` satisfies every documented constraint.

use std::collections::BTreeMap;

use crate::config::raw::*;
use crate::config::source::{dotted, ConfigError, KeyPath, Loc, SourceMap};
use crate::config::ConfigErrors;
use crate::cpuset::CpuSet;
use crate::desired::*;
use crate::units::PageSize;

struct Ctx {
    map: SourceMap,
    errors: Vec<ConfigError>,
}

impl Ctx {
    fn err(&mut self, path: &[String], msg: impl Into<String>) {
        let loc = self.map.find(path).cloned().unwrap_or(Loc {
            file: "<config>".into(),
            line: 0,
            col: 0,
        });
        self.errors.push(ConfigError::Invalid {
            loc,
            path: dotted(path),
            msg: msg.into(),
        });
    }

    fn cpuset(&mut self, path: &[String], raw: &RawCpuSet) -> Option<CpuSet> {
        let parsed = match raw {
            RawCpuSet::One(n) => n.to_string().parse::<CpuSet>(),
            RawCpuSet::Set(s) => s.parse::<CpuSet>(),
        };
        match parsed {
            Ok(c) => Some(c),
            Err(e) => {
                self.err(path, format!("invalid CPU set: {e}"));
                None
            }
        }
    }
}

fn p(base: &[String], more: &[&str]) -> KeyPath {
    let mut v = base.to_vec();
    v.extend(more.iter().map(|s| s.to_string()));
    v
}

pub(super) fn validate(raw: &RawConfig, map: SourceMap) -> Result<Desired, ConfigErrors> {
    let mut cx = Ctx {
        map,
        errors: Vec::new(),
    };
    let mut desired = Desired::default();
    if let Some(h) = &raw.host {
        desired.host = host(&mut cx, h);
    }
    for (name, g) in &raw.guests {
        let path = p(&[], &["guests", name]);
        match DomainName::new(name) {
            Ok(n) => {
                let gd = guest(&mut cx, &path, g, desired.host.cpu_pool.reserved.as_ref());
                desired.guests.insert(n, gd);
            }
            Err(e) => cx.err(&path, e),
        }
    }
    if !cx.errors.is_empty() {
        return Err(ConfigErrors(cx.errors));
    }
    desired.sources = cx.map;
    Ok(desired)
}

fn host(cx: &mut Ctx, h: &RawHost) -> HostDesired {
    let mut out = HostDesired::default();
    for (k, v) in h.sysctl.iter().flatten() {
        let path = p(&[], &["host", "sysctl", k]);
        let key = match SysctlKey::new(k) {
            Ok(k) => k,
            Err(e) => {
                cx.err(&path, e);
                continue;
            }
        };
        let value = match v {
            Scalar::Bool(b) => (*b as u8).to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => {
                let norm = s.split_whitespace().collect::<Vec<_>>().join(" ");
                if norm.is_empty() {
                    cx.err(&path, "empty sysctl value");
                    continue;
                }
                norm
            }
        };
        out.sysctl.insert(key, value);
    }
    if let Some(t) = &h.transparent_hugepage {
        out.thp_enabled = t.enabled;
        out.thp_defrag = t.defrag;
    }
    let mut seen: BTreeMap<(PageSize, Option<u32>), usize> = BTreeMap::new();
    for (i, hp) in h.hugepages.iter().flatten().enumerate() {
        let path = p(&[], &["host", "hugepages", &i.to_string()]);
        let size = match hp.size.parse::<PageSize>() {
            Ok(s) => s,
            Err(e) => {
                cx.err(&p(&path, &["size"]), e.to_string());
                continue;
            }
        };
        if let Some(n) = hp.node {
            if n > 1023 {
                cx.err(&p(&path, &["node"]), format!("NUMA node {n} is above 1023"));
                continue;
            }
        }
        if hp.count > (1 << 40) / size.kib() {
            cx.err(
                &p(&path, &["count"]),
                format!(
                    "{} pages of {size} is more memory than any host has",
                    hp.count
                ),
            );
            continue;
        }
        if let Some(first) = seen.insert((size, hp.node), i) {
            let where_ = match hp.node {
                Some(n) => format!("node {n}"),
                None => "the global pool".into(),
            };
            let first_loc = cx
                .map
                .find(&p(&[], &["host", "hugepages", &first.to_string()]))
                .map(|l| l.to_string())
                .unwrap_or_default();
            cx.err(
                &path,
                format!("{size} pages for {where_} are already set at {first_loc}"),
            );
            continue;
        }
        out.hugepages.insert((size, hp.node), hp.count);
        out.hugepage_index.insert((size, hp.node), i);
        if hp.persist == Some(HugepagePersist::Boot) {
            if h.persist == Some(false) {
                cx.err(
                    &p(&path, &["persist"]),
                    "`persist: boot` writes a boot drop-in, but `host.persist` is false",
                );
            }
            out.hugepages_boot.insert((size, hp.node));
        }
    }
    // The kernel command line takes either a global count or per-node counts for a size.
    for (size, node) in &out.hugepages_boot {
        if node.is_none()
            && out
                .hugepages_boot
                .iter()
                .any(|(s, n)| s == size && n.is_some())
        {
            let i = out.hugepage_index[&(*size, None)];
            cx.err(
                &p(&[], &["host", "hugepages", &i.to_string(), "persist"]),
                format!("the kernel command line takes either a global {size} count or per-node counts, not both: use `persist: boot` on one of them"),
            );
        }
    }
    out.runtime_only = h.persist == Some(false);
    if let Some(cp) = &h.cpu_pool {
        if let Some(r) = &cp.reserved {
            out.cpu_pool.reserved = cx.cpuset(&p(&[], &["host", "cpu_pool", "reserved"]), r);
        }
        out.cpu_pool.allow_overcommit = cp.allow_overcommit.unwrap_or(false);
    }
    if let Some(t) = &h.tuned {
        let ok = crate::model::ProfileName::new(&t.profile).ok();
        if let Some(name) = ok {
            out.tuned_profile = Some(name);
        } else {
            cx.err(
                &p(&[], &["host", "tuned", "profile"]),
                format!("`{}` is not a tuned profile name", t.profile.escape_debug()),
            );
        }
    }
    if let Some(k) = &h.ksm {
        out.ksm = KsmDesired {
            run: k.run,
            sleep_millisecs: k.sleep_millisecs,
            pages_to_scan: k.pages_to_scan,
            merge_across_nodes: k.merge_across_nodes,
        };
        if out.ksm.is_empty() {
            cx.err(
                &p(&[], &["host", "ksm"]),
                "expected at least one of run, sleep_millisecs, pages_to_scan, merge_across_nodes",
            );
        }
    }
    for (name, nic) in h.interfaces.iter().flatten() {
        let path = p(&[], &["host", "interfaces", name]);
        let Ok(ifname) = crate::model::IfName::new(name) else {
            cx.err(
                &path,
                format!(
                    "`{}` is not a network interface name (1-15 characters, no `/`)",
                    name.escape_debug()
                ),
            );
            continue;
        };
        if let Some(m) = nic.mtu {
            if !(68..=65536).contains(&m) {
                cx.err(&p(&path, &["mtu"]), format!("MTU {m} is outside 68-65536"));
                continue;
            }
        }
        if nic.mtu.is_none() && nic.sriov_numvfs.is_none() {
            cx.err(&path, "expected at least one of mtu, sriov_numvfs");
            continue;
        }
        out.interfaces.insert(
            ifname,
            NicDesired {
                mtu: nic.mtu,
                sriov_numvfs: nic.sriov_numvfs,
            },
        );
    }
    for (i, m) in h.modules.iter().flatten().enumerate() {
        let path = p(&[], &["host", "modules", &i.to_string()]);
        let Ok(norm) = crate::model::ModuleName::new(m) else {
            cx.err(
                &path,
                format!("`{}` is not a kernel module name", m.escape_debug()),
            );
            continue;
        };
        if out.modules.insert(norm.clone(), i).is_some() {
            cx.err(&path, format!("module {norm} is listed twice"));
        }
    }
    if out
        .sysctl
        .contains_key(&SysctlKey::new("vm.nr_hugepages").expect("valid key"))
        && out.hugepages.keys().any(|(_, node)| node.is_none())
    {
        cx.err(
            &p(&[], &["host", "sysctl", "vm.nr_hugepages"]),
            "set the global huge page pool either here or in host.hugepages, not both",
        );
    }
    // Per-node counts cannot exceed the global pool of the same size.
    for ((size, node), count) in &out.hugepages {
        if node.is_none() {
            let nodes: u64 = out
                .hugepages
                .iter()
                .filter(|((s, n), _)| s == size && n.is_some())
                .map(|(_, c)| *c)
                .sum();
            if nodes > *count {
                cx.err(
                    &p(&[], &["host", "hugepages"]),
                    format!("per-node {size} counts add up to {nodes}, above the global pool of {count}"),
                );
            }
        }
    }
    out
}

fn guest(cx: &mut Ctx, gp: &[String], g: &RawGuest, reserved: Option<&CpuSet>) -> GuestDesired {
    let mut out = GuestDesired {
        key_path: gp.to_vec(),
        ..Default::default()
    };
    if let Some(v) = &g.vcpu {
        if v.count == Some(0) {
            cx.err(&p(gp, &["vcpu", "count"]), "vcpu count must be at least 1");
        }
        out.vcpu_count = v.count.filter(|c| *c > 0);
        if let Some(cur) = v.current {
            if cur == 0 {
                cx.err(
                    &p(gp, &["vcpu", "current"]),
                    "vcpu current must be at least 1",
                );
            } else if let Some(c) = v.count.filter(|c| cur > *c) {
                cx.err(
                    &p(gp, &["vcpu", "current"]),
                    format!("current {cur} is above the vcpu count {c}"),
                );
            }
            out.vcpu_current = Some(cur);
        }
        out.vcpu_placement = v.placement;
        if let Some(cs) = &v.cpuset {
            out.vcpu_cpuset = cx.cpuset(&p(gp, &["vcpu", "cpuset"]), cs);
        }
    }
    if let Some(ct) = &g.cputune {
        match &ct.vcpupin {
            Some(RawVcpupin::Map(pins)) => {
                let mut m = BTreeMap::new();
                for (idx, cs) in pins {
                    let path = p(gp, &["cputune", "vcpupin", &idx.to_string()]);
                    if let Some(c) = out.vcpu_count.filter(|c| idx >= c) {
                        cx.err(
                            &path,
                            format!(
                                "vCPU index {idx} is out of range: the guest has {c} vCPUs (0-{})",
                                c - 1
                            ),
                        );
                        continue;
                    }
                    if let Some(c) = cx.cpuset(&path, cs) {
                        m.insert(*idx, c);
                    }
                }
                out.vcpupin = Some(m);
            }
            Some(RawVcpupin::Auto(_)) => {
                out.auto_pin = Some(AutoPin::default());
            }
            None => {}
        }
        let ep = p(gp, &["cputune", "emulatorpin"]);
        match &ct.emulatorpin {
            Some(RawCpuSet::Set(s)) if s == "auto" || s == "isolate" => {
                let mode = if s == "auto" {
                    EmulatorAuto::Reserved
                } else {
                    EmulatorAuto::Isolate
                };
                match out.auto_pin.as_mut() {
                    Some(a) => a.emulator = Some(mode),
                    None => cx.err(&ep, format!("`emulatorpin: {s}` needs `vcpupin: auto`")),
                }
                if mode == EmulatorAuto::Reserved && reserved.is_none() {
                    cx.err(
                        &ep,
                        "`emulatorpin: auto` runs the emulator on reserved CPUs: declare host.cpu_pool.reserved",
                    );
                }
            }
            Some(e) => out.emulatorpin = cx.cpuset(&ep, e),
            None => {}
        }
        if let Some(pins) = &ct.iothreadpin {
            let mut m = BTreeMap::new();
            for (id, cs) in pins {
                let path = p(gp, &["cputune", "iothreadpin", &id.to_string()]);
                if *id == 0 || g.iothreads.is_some_and(|n| id > &n) {
                    cx.err(&path, format!("I/O thread {id} does not exist: ids run from 1 to the iothreads count{}", g.iothreads.map(|n| format!(" ({n})")).unwrap_or_default()));
                    continue;
                }
                if let Some(c) = cx.cpuset(&path, cs) {
                    m.insert(*id, c);
                }
            }
            out.iothreadpin = Some(m);
        }
    }
    out.iothreads = g.iothreads;
    if let Some(pl) = &g.placement {
        match out.auto_pin.as_mut() {
            Some(a) => {
                a.numa_node = pl.numa_node;
                a.threads = pl.threads.unwrap_or_default();
            }
            None => cx.err(
                &p(gp, &["placement"]),
                "`placement` constrains automatic pinning: it needs `cputune.vcpupin: auto`",
            ),
        }
    }
    if let Some(bt) = &g.blkiotune {
        let path = p(gp, &["blkiotune"]);
        if let Some(w) = bt.weight {
            if !(100..=1000).contains(&w) {
                cx.err(
                    &p(&path, &["weight"]),
                    format!("weight {w} is outside 100-1000"),
                );
            }
            out.blkio_weight = Some(w);
        }
        for (dev, d) in bt.devices.iter().flatten() {
            let dp = p(&path, &["devices", dev]);
            if !dev.starts_with("/dev/")
                || dev.contains(['<', '>', '&', ','])
                || dev.contains("/../")
            {
                cx.err(
                    &dp,
                    format!(
                        "`{}` is not a host block device path like /dev/sda",
                        dev.escape_debug()
                    ),
                );
                continue;
            }
            let mut m = BTreeMap::new();
            if let Some(w) = d.weight {
                if !(100..=1000).contains(&w) {
                    cx.err(
                        &p(&dp, &["weight"]),
                        format!("weight {w} is outside 100-1000"),
                    );
                }
                m.insert("weight", w as u64);
            }
            for (k, v) in [
                ("read_bytes_sec", d.read_bytes_sec),
                ("write_bytes_sec", d.write_bytes_sec),
                ("read_iops_sec", d.read_iops_sec),
                ("write_iops_sec", d.write_iops_sec),
            ] {
                if let Some(v) = v {
                    m.insert(k, v);
                }
            }
            if m.is_empty() {
                cx.err(&dp, "expected at least one of weight, read_bytes_sec, write_bytes_sec, read_iops_sec, write_iops_sec");
            }
            out.blkio_devices.insert(dev.clone(), m);
        }
    }
    if let Some(mt) = &g.memtune {
        let path = p(gp, &["memtune"]);
        for (k, v) in [
            ("hard_limit", &mt.hard_limit),
            ("soft_limit", &mt.soft_limit),
            ("swap_hard_limit", &mt.swap_hard_limit),
            ("min_guarantee", &mt.min_guarantee),
        ] {
            let Some(v) = v else { continue };
            let kib = match v {
                RawSize::Kib(k) => Ok(*k),
                RawSize::Text(t) => crate::units::parse_kib(t),
            };
            match kib {
                Ok(kib) => {
                    out.memtune.insert(k, kib);
                }
                Err(e) => cx.err(&p(&path, &[k]), e.to_string()),
            }
        }
        if let (Some(h), Some(sw)) = (
            out.memtune.get("hard_limit"),
            out.memtune.get("swap_hard_limit"),
        ) {
            if sw < h {
                cx.err(
                    &p(&path, &["swap_hard_limit"]),
                    "swap_hard_limit must not be below hard_limit",
                );
            }
        }
        if let (Some(h), Some(so)) = (out.memtune.get("hard_limit"), out.memtune.get("soft_limit"))
        {
            if so > h {
                cx.err(
                    &p(&path, &["soft_limit"]),
                    "soft_limit must not be above hard_limit",
                );
            }
        }
    }
    if let Some(rd) = &g.remove_devices {
        out.remove_devices = rd.iter().copied().collect();
    }
    if let Some(os) = &g.os_variant {
        match osinfo_id(os) {
            Some(id) => out.os_variant = Some(OsVariant { short_id: os.clone(), id }),
            None => cx.err(
                &p(gp, &["os_variant"]),
                format!("`{}` is not a libosinfo short id kvmtune knows; expected e.g. rhel9.0, centos-stream9, fedora40, debian12, ubuntu24.04, almalinux9, rocky9, sles15sp5, win11, win2k22", os.escape_debug()),
            ),
        }
    }
    if let Some(nm) = g.numatune.as_ref().and_then(|n| n.memory.as_ref()) {
        let path = p(gp, &["numatune", "memory"]);
        let nodeset = match &nm.nodeset {
            Some(RawCpuSet::Set(s)) if s == "auto" => {
                match out.auto_pin.as_mut() {
                    Some(a) => a.nodeset = true,
                    None => cx.err(
                        &p(&path, &["nodeset"]),
                        "`nodeset: auto` follows the vCPUs: it needs `cputune.vcpupin: auto`",
                    ),
                }
                None
            }
            n => n
                .as_ref()
                .and_then(|n| cx.cpuset(&p(&path, &["nodeset"]), n)),
        };
        if nm.placement == Some(Placement::Auto) && nm.nodeset.is_some() {
            cx.err(
                &path,
                "`placement: auto` lets numad choose the nodes: remove `nodeset`",
            );
        }
        if nm.mode.is_none() && nm.nodeset.is_none() && nm.placement.is_none() {
            cx.err(&path, "expected at least one of mode, nodeset, placement");
        }
        out.numa_memory = Some(NumaMemory {
            mode: nm.mode,
            nodeset,
            placement: nm.placement,
        });
    }
    if let Some(hp) = g.memory_backing.as_ref().and_then(|m| m.hugepages.as_ref()) {
        out.hugepages = match hp {
            RawHugepagesBacking::Enabled(false) => Some(HugepagesBacking::Off),
            RawHugepagesBacking::Enabled(true) => Some(HugepagesBacking::DefaultSize),
            RawHugepagesBacking::Sized(s) => match s.size.parse::<PageSize>() {
                Ok(ps) => Some(HugepagesBacking::Size(ps)),
                Err(e) => {
                    cx.err(
                        &p(gp, &["memory_backing", "hugepages", "size"]),
                        e.to_string(),
                    );
                    None
                }
            },
        };
    }
    if let Some(c) = &g.cpu {
        let path = p(gp, &["cpu"]);
        if let Some(m) = &c.model {
            if m.trim().is_empty() || m.contains(['<', '>', '&', '\'', '"']) {
                cx.err(
                    &p(&path, &["model"]),
                    format!("`{}` is not a CPU model name", m.escape_debug()),
                );
            }
            match c.mode {
                Some(CpuMode::Custom) => {}
                Some(other) => cx.err(
                    &p(&path, &["model"]),
                    format!(
                        "a CPU model goes with `mode: custom`, not `{}`",
                        other.as_str()
                    ),
                ),
                None => cx.err(
                    &p(&path, &["model"]),
                    "a CPU model needs `mode: custom` beside it",
                ),
            }
        } else if c.mode == Some(CpuMode::Custom) {
            cx.err(
                &p(&path, &["mode"]),
                "`mode: custom` needs a `model` (e.g. Skylake-Server)",
            );
        }
        let topology = c.topology.as_ref().and_then(|t| {
            let tp = p(&path, &["topology"]);
            let topo = Topology {
                sockets: t.sockets,
                dies: t.dies.unwrap_or(1),
                cores: t.cores,
                threads: t.threads,
            };
            if [topo.sockets, topo.dies, topo.cores, topo.threads].contains(&0) {
                cx.err(&tp, "sockets, dies, cores and threads must each be at least 1");
                return None;
            }
            if let Some(count) = out.vcpu_count {
                if topo.vcpus() != count as u64 {
                    cx.err(
                        &tp,
                        format!(
                            "topology gives {} vCPUs (sockets × dies × cores × threads) but vcpu.count is {count}",
                            topo.vcpus()
                        ),
                    );
                    return None;
                }
            }
            Some(topo)
        });
        let mut features = BTreeMap::new();
        if let Some(f) = &c.features {
            for (policy, names) in [("require", &f.require), ("disable", &f.disable)] {
                for n in names {
                    let fp = p(&path, &["features", policy]);
                    if n.is_empty()
                        || !n
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                    {
                        cx.err(
                            &fp,
                            format!("`{}` is not a CPU feature name", n.escape_debug()),
                        );
                    } else if features.insert(n.clone(), policy).is_some() {
                        cx.err(&fp, format!("feature `{n}` is listed twice"));
                    }
                }
            }
        }
        out.cpu = Some(CpuDesired {
            mode: c.mode,
            model: c.model.clone(),
            topology,
            features,
        });
    }
    for (key, d) in g.disks.iter().flatten() {
        let path = p(gp, &["disks", key]);
        let dk = if key == "*" {
            DeviceKey::All
        } else if !key.is_empty()
            && key.len() <= 32
            && key.chars().all(|c| c.is_ascii_alphanumeric())
        {
            DeviceKey::One(key.clone())
        } else {
            cx.err(
                &path,
                format!(
                    "`{}` is not a disk target dev (like vda, sdb) or \"*\"",
                    key.escape_debug()
                ),
            );
            continue;
        };
        if d.io == Some(IoMode::Native)
            && !matches!(
                d.cache,
                None | Some(CacheMode::None) | Some(CacheMode::Directsync)
            )
        {
            cx.err(&p(&path, &["io"]), "io: native needs cache: none or directsync (QEMU requires O_DIRECT for native AIO)");
        }
        if d.cache.is_none() && d.io.is_none() && d.iothread.is_none() && d.iotune.is_none() {
            cx.err(
                &path,
                "expected at least one of cache, io, iothread, iotune",
            );
        }
        if let Some(t) = d.iothread {
            if t == 0 || g.iothreads.is_some_and(|n| t > n) {
                cx.err(
                    &p(&path, &["iothread"]),
                    format!("I/O thread {t} does not exist: ids run from 1 to the iothreads count"),
                );
            }
        }
        let iotune: BTreeMap<&'static str, u64> = d
            .iotune
            .as_ref()
            .map(|t| t.fields().into_iter().collect())
            .unwrap_or_default();
        if d.iotune.is_some() && iotune.is_empty() {
            cx.err(
                &p(&path, &["iotune"]),
                "expected at least one throttle (total_bytes_sec, read_iops_sec, ...)",
            );
        }
        for (a, b) in [
            ("total_bytes_sec", ["read_bytes_sec", "write_bytes_sec"]),
            ("total_iops_sec", ["read_iops_sec", "write_iops_sec"]),
        ] {
            if iotune.get(a).is_some_and(|v| *v > 0)
                && b.iter().any(|k| iotune.get(k).is_some_and(|v| *v > 0))
            {
                cx.err(
                    &p(&path, &["iotune"]),
                    format!(
                        "{a} cannot be combined with {} or {} (QEMU rejects it)",
                        b[0], b[1]
                    ),
                );
            }
        }
        out.disks.insert(
            dk,
            DiskDesired {
                cache: d.cache,
                io: d.io,
                iothread: d.iothread,
                iotune,
            },
        );
    }
    for (key, i) in g.interfaces.iter().flatten() {
        let path = p(gp, &["interfaces", key]);
        let ik = if key == "*" {
            DeviceKey::All
        } else {
            match MacAddr::new(key) {
                Ok(m) => DeviceKey::One(m),
                Err(e) => {
                    cx.err(&path, e);
                    continue;
                }
            }
        };
        if let Some(m) = &i.model {
            if m.is_empty()
                || !m
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                cx.err(
                    &p(&path, &["model"]),
                    format!("`{}` is not a NIC model name", m.escape_debug()),
                );
            }
        }
        let virtio = i.model.as_deref().map(|m| m.starts_with("virtio"));
        if virtio == Some(false) && (i.driver == Some(NetDriver::Vhost) || i.queues.is_some()) {
            cx.err(&path, "driver: vhost and queues need model: virtio");
        }
        if i.queues == Some(0) || i.queues.is_some_and(|q| q > 256) {
            cx.err(&p(&path, &["queues"]), "queues must be between 1 and 256");
        }
        if let Some(m) = i.mtu {
            if !(68..=65535).contains(&m) {
                cx.err(&p(&path, &["mtu"]), format!("MTU {m} is outside 68-65535"));
            }
        }
        if i.model.is_none() && i.driver.is_none() && i.queues.is_none() && i.mtu.is_none() {
            cx.err(&path, "expected at least one of model, driver, queues, mtu");
        }
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
    out
}
