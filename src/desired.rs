//! The validated desired state: what the YAML asks for, in typed, canonical form.
//!
//! Invariant: every value here has passed all checks that need no hypervisor (CPU sets parse,
//! page sizes are real, vcpupin indexes fit the declared count, ...). `None` / absent means
//! "not managed": kvmtune never touches what is not declared.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::raw::{
    CacheMode, CpuMode, DeviceClass, IoMode, NetDriver, NumaMode, Placement, ThpDefrag, ThpEnabled,
};
use crate::config::source::{KeyPath, SourceMap};
use crate::cpuset::CpuSet;
use crate::units::PageSize;

pub use crate::model::{DomainName, IfName, MacAddr, ModuleName, ProfileName, SysctlKey};

mod validate;

use std::path::PathBuf;

use crate::config::source::SourceFile;
use crate::config::ConfigErrors;

/// Loads, merges and validates configuration files (directories expand to their *.yaml).
pub fn load(paths: &[PathBuf]) -> Result<Desired, ConfigErrors> {
    load_for(paths, None)
}

/// [`load`] on the host named `hostname`: files whose `hosts:` globs do not match it are left
/// out (with `None`, every file applies).
pub fn load_for(paths: &[PathBuf], hostname: Option<&str>) -> Result<Desired, ConfigErrors> {
    Ok(read_for(paths, hostname)?.0)
}

/// [`load_for`], also returning the files as read (for saved plans).
pub fn read_for(
    paths: &[PathBuf],
    hostname: Option<&str>,
) -> Result<(Desired, Vec<SourceFile>), ConfigErrors> {
    let sources = crate::config::read_sources(paths)?;
    let d = load_sources_for(&sources, hostname)?;
    Ok((d, sources))
}

/// Like [`load`], for files already in memory.
pub fn load_sources(files: &[SourceFile]) -> Result<Desired, ConfigErrors> {
    load_sources_for(files, None)
}

/// [`load_for`], for files already in memory.
pub fn load_sources_for(
    files: &[SourceFile],
    hostname: Option<&str>,
) -> Result<Desired, ConfigErrors> {
    let (raw, map) = crate::config::parse_sources_for(files, hostname)?;
    validate::validate(&raw, map)
}

/// Parses one file's text (for tests and `render`).
pub fn load_str(name: &str, text: &str) -> Result<Desired, ConfigErrors> {
    load_sources(&[SourceFile::from_text(name, text)])
}

/// The whole desired state after validation.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub host: HostDesired,
    pub guests: BTreeMap<DomainName, GuestDesired>,
    /// Where each key was written, for errors found later (plan time).
    pub sources: SourceMap,
}

impl Desired {
    pub fn is_empty(&self) -> bool {
        self.host.is_empty() && self.guests.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostDesired {
    /// Key → value as the kernel prints it (booleans as 1/0).
    pub sysctl: BTreeMap<SysctlKey, String>,
    pub thp_enabled: Option<ThpEnabled>,
    pub thp_defrag: Option<ThpDefrag>,
    /// (page size, NUMA node or global) → page count.
    pub hugepages: BTreeMap<(PageSize, Option<u32>), u64>,
    /// Position of each pool in the `host.hugepages` list, for locating errors.
    pub hugepage_index: BTreeMap<(PageSize, Option<u32>), usize>,
    /// Pools reserved on the kernel command line (`persist: boot`) instead of at runtime.
    pub hugepages_boot: BTreeSet<(PageSize, Option<u32>)>,
    /// `persist: false`: runtime values only, no files under /etc.
    pub runtime_only: bool,
    pub tuned_profile: Option<ProfileName>,
    pub ksm: KsmDesired,
    pub interfaces: BTreeMap<IfName, NicDesired>,
    /// Module names as /sys/module spells them (`-` → `_`), with their list position.
    pub modules: BTreeMap<ModuleName, usize>,
    /// What automatic pinning may hand out (`host.cpu_pool`).
    pub cpu_pool: CpuPool,
}

/// `host.cpu_pool`: no host writes; it constrains automatic pinning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuPool {
    /// Housekeeping CPUs never given to vCPUs.
    pub reserved: Option<CpuSet>,
    pub allow_overcommit: bool,
}

/// `emulatorpin: auto | isolate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmulatorAuto {
    /// The reserved CPUs of the guest's NUMA node(s).
    Reserved,
    /// One dedicated CPU of the guest's NUMA node.
    Isolate,
}

/// Automatic pinning of one guest (`cputune.vcpupin: auto`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoPin {
    pub emulator: Option<EmulatorAuto>,
    pub nodeset: bool,
    pub numa_node: Option<u32>,
    pub threads: crate::config::raw::ThreadPolicy,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KsmDesired {
    pub run: Option<bool>,
    pub sleep_millisecs: Option<u32>,
    pub pages_to_scan: Option<u32>,
    pub merge_across_nodes: Option<bool>,
}

impl KsmDesired {
    pub fn is_empty(&self) -> bool {
        *self == KsmDesired::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicDesired {
    pub mtu: Option<u32>,
    pub sriov_numvfs: Option<u32>,
}

impl HostDesired {
    pub fn is_empty(&self) -> bool {
        self.sysctl.is_empty()
            && self.thp_enabled.is_none()
            && self.thp_defrag.is_none()
            && self.hugepages.is_empty()
            && self.tuned_profile.is_none()
            && self.ksm.is_empty()
            && self.interfaces.is_empty()
            && self.modules.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NumaMemory {
    pub mode: Option<NumaMode>,
    pub nodeset: Option<CpuSet>,
    pub placement: Option<Placement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HugepagesBacking {
    Off,
    DefaultSize,
    Size(PageSize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    pub sockets: u32,
    pub dies: u32,
    pub cores: u32,
    pub threads: u32,
}

impl Topology {
    pub fn vcpus(&self) -> u64 {
        self.sockets as u64 * self.dies as u64 * self.cores as u64 * self.threads as u64
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CpuDesired {
    pub mode: Option<CpuMode>,
    pub model: Option<String>,
    pub topology: Option<Topology>,
    /// Feature name → policy (`require` / `disable`); unlisted features are left alone.
    pub features: BTreeMap<String, &'static str>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskDesired {
    pub cache: Option<CacheMode>,
    pub io: Option<IoMode>,
    pub iothread: Option<u32>,
    /// libvirt `<iotune>` element name → value (0 = unlimited).
    pub iotune: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InterfaceDesired {
    pub model: Option<String>,
    pub driver: Option<NetDriver>,
    pub queues: Option<u32>,
    pub mtu: Option<u32>,
}

/// Weight and throttles of one host block device in `<blkiotune>`; element name → value.
pub type BlkioDevice = BTreeMap<&'static str, u64>;

/// A libosinfo OS: short id (`rhel9.0`) and the id URL written to metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsVariant {
    pub short_id: String,
    pub id: String,
}

/// Which devices a disk/interface entry applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeviceKey<T> {
    All,
    One(T),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestDesired {
    pub vcpu_count: Option<u32>,
    pub vcpu_current: Option<u32>,
    pub vcpu_placement: Option<Placement>,
    pub vcpu_cpuset: Option<CpuSet>,
    /// Authoritative when present: pins not listed are removed.
    pub vcpupin: Option<BTreeMap<u32, CpuSet>>,
    /// `vcpupin: auto`: the planner fills `vcpupin` (and `emulatorpin` / the memory nodeset
    /// when they are `auto`) before planning the guest.
    pub auto_pin: Option<AutoPin>,
    pub emulatorpin: Option<CpuSet>,
    pub numa_memory: Option<NumaMemory>,
    pub hugepages: Option<HugepagesBacking>,
    pub cpu: Option<CpuDesired>,
    /// `All` first, then per target dev overrides.
    pub disks: BTreeMap<DeviceKey<String>, DiskDesired>,
    pub interfaces: BTreeMap<DeviceKey<MacAddr>, InterfaceDesired>,
    /// Authoritative when present, like `vcpupin`.
    pub iothreadpin: Option<BTreeMap<u32, CpuSet>>,
    pub iothreads: Option<u32>,
    pub blkio_weight: Option<u32>,
    /// Host device path (`/dev/sda`) → its settings; devices not listed are kept.
    pub blkio_devices: BTreeMap<String, BlkioDevice>,
    /// `<memtune>` element name → KiB.
    pub memtune: BTreeMap<&'static str, u64>,
    pub remove_devices: std::collections::BTreeSet<DeviceClass>,
    pub os_variant: Option<OsVariant>,
    /// The YAML key path of this guest (`guests.<name>`), for locating errors.
    pub key_path: KeyPath,
}

/// The libosinfo id URL of a short id, for the common families (`rhel9.0`,
/// `centos-stream9`, `fedora40`, `debian12`, `ubuntu24.04`, `almalinux9`, `rocky9`,
/// `sles15sp5`, `win11`, `win2k22`).
pub fn osinfo_id(short: &str) -> Option<String> {
    let split = short.find(|c: char| c.is_ascii_digit())?;
    let (family, version) = short.split_at(split);
    let ok_version = !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.')
        && version.starts_with(|c: char| c.is_ascii_digit());
    if !ok_version {
        return None;
    }
    let v = version.to_string();
    Some(match family {
        "rhel" => format!("http://redhat.com/rhel/{v}"),
        "centos" => format!("http://centos.org/centos/{v}"),
        "centos-stream" => format!("http://centos.org/centos-stream/{v}"),
        "fedora" => format!("http://fedoraproject.org/fedora/{v}"),
        "debian" => format!("http://debian.org/debian/{v}"),
        "ubuntu" => format!("http://ubuntu.com/ubuntu/{v}"),
        "almalinux" => format!("http://almalinux.org/almalinux/{v}"),
        "rocky" => format!("http://rockylinux.org/rocky/{v}"),
        "sles" => format!("http://suse.com/sles/{}", v.replace("sp", ".")),
        "win" => format!("http://microsoft.com/win/{v}"),
        _ => return None,
    })
}
