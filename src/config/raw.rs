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
    /// Host tuning: tuned, sysctls, transparent huge pages, huge page pools, KSM, NICs, modules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<RawHost>,
    /// Guests by libvirt domain name. Guests not listed are never touched.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub guests: BTreeMap<String, RawGuest>,
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
    /// vCPU index → host CPU set. Authoritative: pins not listed are removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpupin: Option<BTreeMap<u32, RawCpuSet>>,
    /// Host CPUs for the emulator threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulatorpin: Option<RawCpuSet>,
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
    /// Host NUMA nodes (`"0"`, `"0-1"`).
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
as_str_impl!(NetDriver { Vhost => "vhost", Qemu => "qemu" });
