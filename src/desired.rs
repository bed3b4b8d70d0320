//! The validated desired state: what the YAML asks for, in typed, canonical form.
//!
//! Invariant: every value here has passed all checks that need no hypervisor (CPU sets parse,
//! page sizes are real, vcpupin indexes fit the declared count, ...). `None` / absent means
//! "not managed": kvmtune never touches what is not declared. A guest's part is defined by
//! its setting units ([`crate::domain::settings`]) and re-exported here.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::raw::{ThpDefrag, ThpEnabled};
use crate::config::source::SourceMap;
use crate::cpuset::CpuSet;
use crate::units::PageSize;

pub use crate::domain::settings::blkiotune::{BlkioDevice, BlkioField};
pub use crate::domain::settings::cpu::{CpuDesired, Topology};
pub use crate::domain::settings::cputune::{AutoPin, EmulatorAuto};
pub use crate::domain::settings::disks::{DiskDesired, IotuneField};
pub use crate::domain::settings::interfaces::InterfaceDesired;
pub use crate::domain::settings::memory_backing::HugepagesBacking;
pub use crate::domain::settings::memtune::MemtuneField;
pub use crate::domain::settings::numatune::NumaMemory;
pub use crate::domain::settings::os_variant::{osinfo_id, OsVariant};
pub use crate::domain::settings::{DeviceKey, GuestDesired};
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
    /// Declared libvirt networks (`networks:`).
    pub networks: BTreeMap<crate::model::NetworkName, crate::network::NetworkDesired>,
    /// Where each key was written, for errors found later (plan time).
    pub sources: SourceMap,
}

impl Desired {
    pub fn is_empty(&self) -> bool {
        self.host.is_empty() && self.guests.is_empty() && self.networks.is_empty()
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
    /// Kernel values a rollback puts back as they were (no YAML key sets these: per-IRQ
    /// affinities, the default IRQ affinity, the workqueue cpumask).
    pub restore: BTreeMap<crate::model::HostKey, String>,
    /// irqbalance's ban list a rollback puts back (`None` in it: the key is removed).
    pub restore_irqbalance: Option<(
        crate::model::keys::IrqbalanceFile,
        Option<crate::cpuset::CpuSet>,
    )>,
}

/// `host.cpu_pool`: no host writes; it constrains automatic pinning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuPool {
    /// Housekeeping CPUs never given to vCPUs.
    pub reserved: Option<CpuSet>,
    pub allow_overcommit: bool,
    /// CPUs for floating guests (`vcpupin: shared`); disjoint from `reserved`.
    pub shared: Option<CpuSet>,
    /// What is confined to `reserved` (set only when `reserved` is).
    pub isolate: Isolate,
}

impl CpuPool {
    /// The dedicated CPUs of `online`: neither reserved nor shared.
    pub fn dedicated(&self, online: &CpuSet) -> Option<CpuSet> {
        let mut out = Some(online.clone());
        for s in [&self.reserved, &self.shared].into_iter().flatten() {
            out = out.and_then(|o| o.without(s));
        }
        out
    }
}

/// `host.cpu_pool.isolate`: each part confines one kind of host work to the reserved CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Isolate {
    pub kernel: bool,
    pub irqs: bool,
    pub systemd: bool,
    pub workqueues: bool,
    pub host_threads: bool,
}

impl Isolate {
    pub fn any(&self) -> bool {
        self.kernel || self.irqs || self.systemd || self.workqueues || self.host_threads
    }
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
            && !self.cpu_pool.isolate.any()
            && self.restore.is_empty()
            && self.restore_irqbalance.is_none()
    }
}
