//! The raw YAML model: exactly what users write, checked for shape and types only.
//!
//! Invariant: this module mirrors the file format one-to-one (serde + JSON Schema from the same
//! types) and makes no semantic decisions; `validate` turns it into [`crate::desired::Desired`].
//! Unknown keys are errors everywhere (`deny_unknown_fields`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A kvmtune configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schemars(title = "kvmtune configuration")]
pub struct RawConfig {
    /// Hostname globs (`hv-*`, `db-host-1`): the file applies only on matching hosts.
    /// Without it, on every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Named guest settings; a guest uses one with `profile: NAME`, and its own keys override
    /// the profile's (mappings merge key by key).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, RawGuest>,
    /// Host tuning: tuned, sysctls, transparent huge pages, huge page pools, KSM, NICs, modules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<RawHost>,
    /// Guests by libvirt domain name. Guests not listed are never touched.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub guests: BTreeMap<String, RawGuest>,
    /// libvirt virtual networks by name. Networks not listed are never touched; listed ones
    /// are defined or updated, never destroyed or undefined.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, RawNetwork>,
}

/// One libvirt network (`virsh net-dumpxml`): only the keys given are managed.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// The bridge device (`<bridge name=...>`): libvirt creates it for nat/route/open/isolated
    /// networks; with `forward: bridge` it is an existing host bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// `<forward mode=...>`; `isolated` is a network without `<forward>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<NetForward>,
    /// `<mtu size=...>` of the bridge libvirt creates (not with `forward: bridge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The host's IPv4 address on the network, `ADDRESS/PREFIX` (`192.168.100.1/24`): the
    /// first IPv4 `<ip>` element. libvirt requires one for nat, route and open networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Started when libvirtd starts (`virsh net-autostart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autostart: Option<bool>,
    /// With `forward: hostdev`: the SR-IOV physical function whose VFs the network hands out
    /// (`<forward mode='hostdev' managed='yes'><pf dev=...>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pf: Option<String>,
}

/// One `sriov` entry of a guest.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSriov {
    /// A `forward: hostdev` network (a VF pool).
    pub network: String,
    /// How many VFs (interfaces) from it; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// How a libvirt network reaches the outside (`<forward mode=...>`).
#[derive(
    Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum NetForward {
    Nat,
    Route,
    Bridge,
    Open,
    /// No `<forward>` element: guests reach each other and the host only.
    Isolated,
    /// An SR-IOV VF pool: libvirt assigns one VF of `pf` to each interface at guest start.
    Hostdev,
}

/// A scalar value as written in YAML (sysctl values).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Str(String),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// Any key under /proc/sys, dotted (`vm.swappiness`). Values compare as the kernel prints them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysctl: Option<BTreeMap<String, Scalar>>,
    /// /sys/kernel/mm/transparent_hugepage/{enabled,defrag}
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparent_hugepage: Option<RawThp>,
    /// Huge page pools: global (no `node`) or per NUMA node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugepages: Option<Vec<RawHugepages>>,
    /// Also write runtime values where the distribution applies them at boot
    /// (/etc/sysctl.d, /etc/tmpfiles.d, /etc/modules-load.d). Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist: Option<bool>,
    /// The tuned profile to activate (through `tuned-adm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuned: Option<RawTuned>,
    /// Kernel samepage merging: /sys/kernel/mm/ksm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ksm: Option<RawKsm>,
    /// Network interfaces by name: /sys/class/net/<name>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<BTreeMap<String, RawNic>>,
    /// Kernel modules that must be loaded (`vhost_net`); loaded with modprobe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<String>>,
    /// CPUs for automatic pinning (`cputune.vcpupin: auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pool: Option<RawCpuPool>,
}

/// The host CPUs automatic pinning hands out.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCpuPool {
    /// Housekeeping CPUs never given to guest vCPUs (emulator threads of `emulatorpin: auto`
    /// run there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<RawCpuSet>,
    /// Let automatic pinning share host CPUs between vCPUs when the guests do not fit
    /// (default false: the guests that do not fit are plan errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_overcommit: Option<bool>,
    /// CPUs for guests that float (`vcpupin: shared`); never handed out as dedicated CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<RawCpuSet>,
    /// Keep the host off every CPU that is not reserved (all off by default; needs `reserved`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolate: Option<RawIsolate>,
}

/// What `cpu_pool.isolate` confines to the reserved CPUs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawIsolate {
    /// Kernel command line: `isolcpus=managed_irq,domain,<rest> nohz_full=<rest>
    /// rcu_nocbs=<rest> irqaffinity=<reserved>` (GRUB drop-in and BLS entries; `effect: reboot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<bool>,
    /// IRQ affinity now (/proc/irq/default_smp_affinity, /proc/irq/*/smp_affinity_list) and
    /// irqbalance's ban list (IRQBALANCE_BANNED_CPULIST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irqs: Option<bool>,
    /// `CPUAffinity=<reserved>` for PID 1 and services (a system.conf.d drop-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<bool>,
    /// Unbound workqueues: /sys/devices/virtual/workqueue/cpumask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workqueues: Option<bool>,
    /// Move movable host threads (not QEMU's, not per-CPU kernel threads) to the reserved
    /// CPUs now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_threads: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawTuned {
    /// A profile tuned knows (`tuned-adm list`), e.g. `virtual-host`.
    pub profile: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawKsm {
    /// /sys/kernel/mm/ksm/run: merging on (1) or off (0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_millisecs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages_to_scan: Option<u32>,
    /// Can only change while no pages are shared (pages_shared = 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_across_nodes: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawNic {
    /// /sys/class/net/<name>/mtu
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// /sys/class/net/<name>/device/sriov_numvfs
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sriov_numvfs: Option<u32>,
}

/// How a huge page pool is persisted.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HugepagePersist {
    /// Reserved at boot on the kernel command line (drop-in /etc/default/grub.d/90-kvmtune.cfg;
    /// kvmtune never runs update-grub). Takes effect at the next reboot.
    Boot,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ThpEnabled {
    Always,
    Madvise,
    Never,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ThpDefrag {
    #[serde(rename = "always")]
    Always,
    #[serde(rename = "defer")]
    Defer,
    #[serde(rename = "defer+madvise")]
    DeferMadvise,
    #[serde(rename = "madvise")]
    Madvise,
    #[serde(rename = "never")]
    Never,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawThp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<ThpEnabled>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defrag: Option<ThpDefrag>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHugepages {
    /// Page size: 2M or 1G (also 2048K / 1048576K).
    pub size: String,
    /// Number of pages in the pool.
    pub count: u64,
    /// NUMA node; without it, the global pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
    /// `boot`: reserve the pool on the kernel command line instead of at runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist: Option<HugepagePersist>,
}

/// A CPU set written as a string (`"0-3,^2"`) or a single integer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum RawCpuSet {
    One(u32),
    Set(String),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawGuest {
    /// A profile from `profiles:` whose settings this guest starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu: Option<RawVcpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cputune: Option<RawCputune>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numatune: Option<RawNumatune>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_backing: Option<RawMemoryBacking>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<RawCpu>,
    /// Disk settings by target dev (`vda`); `"*"` applies to every disk (device='disk').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<BTreeMap<String, RawDisk>>,
    /// Interface settings by MAC address; `"*"` applies to every interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<BTreeMap<String, RawInterface>>,
    /// Block I/O weights and throttles of the whole guest (`<blkiotune>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkiotune: Option<RawBlkiotune>,
    /// Memory limits (`<memtune>`): sizes such as 8G, 512M, or a number of KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memtune: Option<RawMemtune>,
    /// Number of I/O threads (`<iothreads>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iothreads: Option<u32>,
    /// Device classes to remove (the guide's "remove unused devices").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_devices: Option<Vec<DeviceClass>>,
    /// SR-IOV VFs from `forward: hostdev` networks: kvmtune adds (and owns) `count`
    /// `<interface type='network'>` devices per entry; `[]` removes those it added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sriov: Option<Vec<RawSriov>>,
    /// libosinfo short id (`rhel9.0`, `debian12`, `win2k22`), written as libosinfo metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_variant: Option<String>,
    /// Constraints for automatic pinning (`cputune.vcpupin: auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<RawAutoPlacement>,
    /// Hypervisor features (`<features>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<RawFeatures>,
    /// Real-time vCPUs the way Nova's `hw:cpu_realtime_mask` sets them: `vcpusched` fifo
    /// priority 1 on the vCPUs not in `mask`, `memory_backing.locked`, `features.pmu: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime: Option<RawRealtime>,
    /// Hyper-V enlightenments for Windows guests: `recommended` (what virt-install sets) or
    /// a map of individual features. At restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyperv: Option<RawHyperv>,
}

/// `hyperv: recommended | { relaxed: true, spinlocks: 8191, ... }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum RawHyperv {
    Preset(HypervPreset),
    Map(BTreeMap<String, RawHvValue>),
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HypervPreset {
    /// relaxed, vapic, spinlocks (8191 retries), vpindex, runtime, synic, stimer,
    /// frequencies, tlbflush, ipi, and the hypervclock timer.
    Recommended,
}

/// A feature on/off, or `spinlocks`' retry count (on).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged)]
pub enum RawHvValue {
    On(bool),
    Retries(u32),
}

/// `features`: hypervisor features of the guest (`<features>`); all at restart.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawFeatures {
    /// The virtual performance monitoring unit (`<pmu state='on|off'/>`); `false` for
    /// latency-sensitive guests (no PMU interrupts, no perf counter save/restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pmu: Option<bool>,
}

/// How automatic pinning treats SMT siblings.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ThreadPolicy {
    /// Whole cores first (sibling threads together), then single CPUs.
    #[default]
    Prefer,
    /// Only whole cores: the guest's CPUs are a union of complete host cores.
    Require,
    /// One vCPU per physical core; the core's other threads stay idle.
    Isolate,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAutoPlacement {
    /// Host NUMA node the guest must be placed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<u32>,
    /// SMT siblings: `prefer` (default), `require` or `isolate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<ThreadPolicy>,
}

/// `vcpupin`: a map of vCPU index → host CPU set, `auto` or `shared`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum RawVcpupin {
    Auto(AutoKeyword),
    /// Float over `host.cpu_pool.shared` (`<vcpu cpuset=…>`, no 1:1 pins).
    Shared(SharedKeyword),
    Map(BTreeMap<u32, RawCpuSet>),
}

/// `iothreadpin`: a map of I/O thread id → host CPU set, or `auto`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum RawIothreadpin {
    Auto(AutoKeyword),
    Map(BTreeMap<u32, RawCpuSet>),
}

/// The word `shared`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename = "shared")]
pub enum SharedKeyword {
    #[serde(rename = "shared")]
    Shared,
}

/// The word `auto`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename = "auto")]
pub enum AutoKeyword {
    #[serde(rename = "auto")]
    Auto,
}

impl<'de> Deserialize<'de> for RawVcpupin {
    // By hand rather than `untagged`, so that errors inside the map keep their location and
    // key path exactly as before `auto` existed.
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawVcpupin;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of vCPU index to host CPU set, `auto` or `shared`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawVcpupin, E> {
                match v {
                    "auto" => Ok(RawVcpupin::Auto(AutoKeyword::Auto)),
                    "shared" => Ok(RawVcpupin::Shared(SharedKeyword::Shared)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<RawVcpupin, A::Error> {
                index_map(serde::de::value::MapAccessDeserializer::new(m)).map(RawVcpupin::Map)
            }
        }
        de.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RawIothreadpin {
    // By hand like [`RawVcpupin`], so that errors inside the map keep their location.
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawIothreadpin;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of I/O thread id to host CPU set, or `auto`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawIothreadpin, E> {
                if v == "auto" {
                    Ok(RawIothreadpin::Auto(AutoKeyword::Auto))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<RawIothreadpin, A::Error> {
                index_map(serde::de::value::MapAccessDeserializer::new(m)).map(RawIothreadpin::Map)
            }
        }
        de.deserialize_any(V)
    }
}

/// An index key as YAML writes it (`0:`) or JSON must (`"0":`): kvmtune reads its own JSON.
struct IndexKey(u32);

impl<'de> Deserialize<'de> for IndexKey {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IndexKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an index (a number from 0)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IndexKey, E> {
                u32::try_from(v)
                    .map(IndexKey)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IndexKey, E> {
                u32::try_from(v)
                    .map(IndexKey)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IndexKey, E> {
                v.trim()
                    .parse::<u32>()
                    .map(IndexKey)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        de.deserialize_any(V)
    }
}

fn index_map<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<BTreeMap<u32, RawCpuSet>, D::Error> {
    let m: BTreeMap<IndexKeyOrd, RawCpuSet> = BTreeMap::deserialize(de)?;
    Ok(m.into_iter().map(|(k, v)| (k.0, v)).collect())
}

/// [`IndexKey`] as a map key (ordered; a key given twice, as `0` and `"0"`, is refused).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct IndexKeyOrd(u32);

impl<'de> Deserialize<'de> for IndexKeyOrd {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        IndexKey::deserialize(de).map(|k| IndexKeyOrd(k.0))
    }
}

impl JsonSchema for RawVcpupin {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RawVcpupin".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let map = g.subschema_for::<BTreeMap<u32, RawCpuSet>>();
        schemars::json_schema!({
            "description": "vCPU index → host CPU set (authoritative: pins not listed are removed), or `auto`: 1:1 vCPU → dedicated host CPU, chosen NUMA-aware from host.cpu_pool, or `shared`: the vCPUs float over host.cpu_pool.shared (`<vcpu cpuset>`; existing vcpupins are removed).",
            "anyOf": [ { "const": "auto" }, { "const": "shared" }, map ]
        })
    }
}

impl JsonSchema for RawIothreadpin {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RawIothreadpin".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let map = g.subschema_for::<BTreeMap<u32, RawCpuSet>>();
        schemars::json_schema!({
            "description": "I/O thread id (from 1) → host CPU set (authoritative like vcpupin), or `auto` (with `vcpupin: auto | shared`): every I/O thread on the CPUs `emulatorpin: auto | isolate` gives the emulator (the reserved CPUs of the guest's NUMA nodes, or its isolated emulator CPU).",
            "anyOf": [ { "const": "auto" }, map ]
        })
    }
}

/// A size: a number of KiB, or a number with a unit (`8G`, `512M`, `1048576K`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum RawSize {
    Kib(u64),
    Text(String),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawBlkiotune {
    /// Relative I/O weight, 100-1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Per host block device (`/dev/sda`): weight and throttles. Devices not listed are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<BTreeMap<String, RawBlkioDevice>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawBlkioDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bytes_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_bytes_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_iops_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_iops_sec: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawMemtune {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_limit: Option<RawSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_limit: Option<RawSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_hard_limit: Option<RawSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_guarantee: Option<RawSize>,
}

/// Per-disk I/O throttling (`<iotune>`, blkdeviotune). 0 means unlimited.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawIotune {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bytes_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_bytes_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_iops_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_iops_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_iops_sec: Option<u64>,
}

/// Device classes `remove_devices` understands, matched by device type.
#[derive(
    Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceClass {
    /// `<sound>`
    Sound,
    /// `<input type='tablet'>`
    Tablet,
    /// `<redirdev bus='usb'>`
    UsbRedirect,
    /// `<smartcard>`
    Smartcard,
    /// `<parallel>`
    Parallel,
    /// `<watchdog>`
    Watchdog,
    /// `<channel type='spicevmc'>`
    SpiceChannel,
    /// `<memballoon>`: set to `model='none'` (libvirt would add a default one back).
    Memballoon,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    Static,
    Auto,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawVcpu {
    /// The guest's vCPU count (`<vcpu>`, its maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// vCPUs online at boot, for guests that hot-plug (`<vcpu current=...>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Host CPUs the vCPUs may run on by default (`<vcpu cpuset=...>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<RawCpuSet>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCputune {
    /// vCPU index → host CPU set. Authoritative: pins not listed are removed. Or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpupin: Option<RawVcpupin>,
    /// Host CPUs for the emulator threads; with `vcpupin: auto` also `auto` (the reserved
    /// CPUs of the guest's NUMA node) or `isolate` (one dedicated CPU of that node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulatorpin: Option<RawCpuSet>,
    /// I/O thread id (from 1) → host CPU set. Authoritative like vcpupin. Or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iothreadpin: Option<RawIothreadpin>,
    /// Relative CPU weight against other guests (`<shares>`, cgroup cpu.shares/cpu.weight;
    /// 1-262144, cgroup v2 hosts take at most 10000). Changes live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<i64>,
    /// CFS period of each vCPU in µs (1000-1000000). Changes live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<i64>,
    /// CFS quota of each vCPU per period in µs (-1: unlimited, or 1000-17592186044415).
    /// Changes live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    /// CFS period of the emulator threads in µs (1000-1000000). Changes live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulator_period: Option<i64>,
    /// CFS quota of the emulator threads in µs (-1 or 1000-17592186044415). Changes live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulator_quota: Option<i64>,
    /// Host scheduler policies of vCPUs (`<vcpusched>`). Authoritative like vcpupin: entries
    /// not listed are removed. At restart (libvirt has no live API for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpusched: Option<Vec<RawVcpusched>>,
}

/// One `<vcpusched vcpus= scheduler= priority=/>`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawVcpusched {
    /// vCPU indices (`"1-3"`).
    pub vcpus: RawCpuSet,
    pub scheduler: SchedPolicy,
    /// Real-time priority 1-99 (with `fifo` and `rr` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

/// A host scheduler policy for vCPU threads.
#[derive(
    Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum SchedPolicy {
    Fifo,
    Rr,
    Batch,
    Idle,
}

impl SchedPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SchedPolicy::Fifo => "fifo",
            SchedPolicy::Rr => "rr",
            SchedPolicy::Batch => "batch",
            SchedPolicy::Idle => "idle",
        }
    }

    /// Whether it is a real-time policy (which takes a priority).
    pub fn realtime(self) -> bool {
        matches!(self, SchedPolicy::Fifo | SchedPolicy::Rr)
    }
}

/// `realtime`: Nova's `hw:cpu_realtime_mask` shorthand.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRealtime {
    /// The vCPUs that are *not* real-time, as exclusions (`"^0"`, `"^0-1"`, `"^0,^4"`); every
    /// other vCPU gets `vcpusched` fifo priority 1.
    pub mask: String,
}

impl RawCputune {
    /// The declared CFS scheduler parameter `p`.
    pub fn sched(&self, p: crate::model::live::SchedParam) -> Option<i64> {
        use crate::model::live::SchedParam as P;
        match p {
            P::Shares => self.shares,
            P::Period => self.period,
            P::Quota => self.quota,
            P::EmulatorPeriod => self.emulator_period,
            P::EmulatorQuota => self.emulator_quota,
        }
    }

    /// Sets the CFS scheduler parameter `p`.
    pub fn set_sched(&mut self, p: crate::model::live::SchedParam, v: Option<i64>) {
        use crate::model::live::SchedParam as P;
        let slot = match p {
            P::Shares => &mut self.shares,
            P::Period => &mut self.period,
            P::Quota => &mut self.quota,
            P::EmulatorPeriod => &mut self.emulator_period,
            P::EmulatorQuota => &mut self.emulator_quota,
        };
        *slot = v;
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NumaMode {
    Strict,
    Interleave,
    Preferred,
    Restrictive,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawNumatune {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<RawNumaMemory>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawNumaMemory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<NumaMode>,
    /// Host NUMA nodes (`"0"`, `"0-1"`); with `vcpupin: auto` also `auto` (the nodes the
    /// vCPUs landed on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodeset: Option<RawCpuSet>,
    /// `auto` asks numad for the placement (no nodeset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

/// `hugepages: true` (default size), `false` (none), or `{ size: 2M }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum RawHugepagesBacking {
    Enabled(bool),
    Sized(RawPageSize),
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPageSize {
    pub size: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawMemoryBacking {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugepages: Option<RawHugepagesBacking>,
    /// Lock the guest's memory in host RAM (`<locked/>`; never swapped). At restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    /// Keep the guest's memory out of KSM merging (`<nosharepages/>`). At restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nosharepages: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CpuMode {
    HostPassthrough,
    HostModel,
    Custom,
    Maximum,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCpu {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<CpuMode>,
    /// CPU model name, with `mode: custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<RawTopology>,
    /// CPU features to require or disable. Features not listed are left as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<RawCpuFeatures>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCpuFeatures {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disable: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawTopology {
    pub sockets: u32,
    /// Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dies: Option<u32>,
    pub cores: u32,
    pub threads: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    None,
    Writethrough,
    Writeback,
    Directsync,
    Unsafe,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum IoMode {
    #[serde(rename = "native")]
    Native,
    #[serde(rename = "threads")]
    Threads,
    #[serde(rename = "io_uring")]
    IoUring,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawDisk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io: Option<IoMode>,
    /// The I/O thread (id from 1) serving this disk (`<driver iothread=...>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iothread: Option<u32>,
    /// Throttling (blkdeviotune).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iotune: Option<RawIotune>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetDriver {
    Vhost,
    Qemu,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawInterface {
    /// Device model (`virtio`, `e1000e`, `rtl8139`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Backend driver: `vhost` (in-kernel vhost_net) or `qemu` (userspace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<NetDriver>,
    /// virtio-net multiqueue queue count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u32>,
    /// MTU of the guest's link (`<mtu size=...>`), e.g. 9000 for jumbo frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Re-points this interface (by MAC only) to a libvirt network:
    /// `<interface type='network'><source network=...>`. Live on a running guest where libvirt
    /// can (`virDomainUpdateDeviceFlags`: a bridged interface to another bridged network),
    /// else at its next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

macro_rules! as_str_impl {
    ($t:ty { $($v:ident => $s:expr),* $(,)? }) => {
        impl $t {
            /// The spelling used in YAML and in libvirt XML.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
    };
}

as_str_impl!(ThpEnabled { Always => "always", Madvise => "madvise", Never => "never" });
as_str_impl!(ThpDefrag { Always => "always", Defer => "defer", DeferMadvise => "defer+madvise", Madvise => "madvise", Never => "never" });
as_str_impl!(Placement { Static => "static", Auto => "auto" });
as_str_impl!(NumaMode { Strict => "strict", Interleave => "interleave", Preferred => "preferred", Restrictive => "restrictive" });
as_str_impl!(CpuMode { HostPassthrough => "host-passthrough", HostModel => "host-model", Custom => "custom", Maximum => "maximum" });
as_str_impl!(CacheMode { None => "none", Writethrough => "writethrough", Writeback => "writeback", Directsync => "directsync", Unsafe => "unsafe" });
as_str_impl!(IoMode { Native => "native", Threads => "threads", IoUring => "io_uring" });
as_str_impl!(NetForward { Nat => "nat", Route => "route", Bridge => "bridge", Open => "open", Isolated => "isolated", Hostdev => "hostdev" });
as_str_impl!(NetDriver { Vhost => "vhost", Qemu => "qemu" });
as_str_impl!(ThreadPolicy { Prefer => "prefer", Require => "require", Isolate => "isolate" });

as_str_impl!(DeviceClass { Sound => "sound", Tablet => "tablet", UsbRedirect => "usb-redirect", Smartcard => "smartcard", Parallel => "parallel", Watchdog => "watchdog", SpiceChannel => "spice-channel", Memballoon => "memballoon" });
