//! Typed host keys: each names one kernel value or one owned file, and is the only place
//! that knows where it lives below the root.
//!
//! Invariant: [`HostKey::file`] and [`OwnedFileKind::file`] are the only mappings from a
//! setting to a path; a path is always relative, below the root, and built from validated
//! names, so whatever a saved plan or record says, it cannot point anywhere else.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::names::{IfName, SysctlKey};
use crate::cpuset::CpuSet;
use crate::units::PageSize;

/// How a value file is compared after reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readback {
    /// Whitespace-separated tokens (sysctls: the kernel prints tabs between numbers).
    Tokens,
    /// The bracketed choice of a sysfs selector: `always [madvise] never`.
    Selected,
    /// A page count.
    Count,
    /// The kernel's hex CPU bitmap (`/proc/irq/default_smp_affinity`): compared as the CPU
    /// set it means (`00000001` = `1`), shown as the shortest hex form.
    HexMask,
    /// A CPU list (`smp_affinity_list`): compared as the CPU set it means (`0,1` = `0-1`).
    CpuList,
}

impl Readback {
    /// The canonical value of a file's content.
    pub fn canonical(self, content: &str) -> String {
        match self {
            Readback::Tokens | Readback::Count => {
                content.split_whitespace().collect::<Vec<_>>().join(" ")
            }
            Readback::Selected => {
                let t = content.trim();
                match (t.find('['), t.find(']')) {
                    (Some(a), Some(b)) if a < b => t[a + 1..b].to_string(),
                    _ => t.to_string(),
                }
            }
            Readback::HexMask => CpuSet::from_hex_mask(content)
                .map(|c| c.to_hex_mask())
                .unwrap_or_else(|| Readback::Tokens.canonical(content)),
            Readback::CpuList => content
                .trim()
                .parse::<CpuSet>()
                .map(|c| c.to_string())
                .unwrap_or_else(|_| Readback::Tokens.canonical(content)),
        }
    }
}

/// A transparent huge page control.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ThpKnob {
    Enabled,
    Defrag,
}

/// A KSM control under /sys/kernel/mm/ksm.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum KsmKnob {
    Run,
    SleepMillisecs,
    PagesToScan,
    MergeAcrossNodes,
}

impl KsmKnob {
    pub const ALL: [KsmKnob; 4] = [
        KsmKnob::Run,
        KsmKnob::SleepMillisecs,
        KsmKnob::PagesToScan,
        KsmKnob::MergeAcrossNodes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KsmKnob::Run => "run",
            KsmKnob::SleepMillisecs => "sleep_millisecs",
            KsmKnob::PagesToScan => "pages_to_scan",
            KsmKnob::MergeAcrossNodes => "merge_across_nodes",
        }
    }
}

impl ThpKnob {
    pub fn as_str(self) -> &'static str {
        match self {
            ThpKnob::Enabled => "enabled",
            ThpKnob::Defrag => "defrag",
        }
    }
}

/// A per-interface attribute.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NicAttr {
    Mtu,
    SriovNumvfs,
}

/// The highest IRQ number accepted (the kernel's sparse IRQ numbers stay far below it).
pub const MAX_IRQ: u32 = (1 << 20) - 1;

/// An IRQ number: the name of a `/proc/irq/<N>` directory (ASCII digits only, at most
/// [`MAX_IRQ`]), so a path built from it stays inside `/proc/irq`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(try_from = "u32", into = "u32")]
pub struct IrqNum(#[schemars(range(max = 1048575))] u32);

impl IrqNum {
    pub fn new(n: u32) -> Result<IrqNum, String> {
        if n > MAX_IRQ {
            return Err(format!("IRQ {n} is above {MAX_IRQ}"));
        }
        Ok(IrqNum(n))
    }

    /// A `/proc/irq` entry name: digits only (no sign, no spaces), at most 7 of them.
    pub fn parse_dir(name: &str) -> Option<IrqNum> {
        if name.is_empty() || name.len() > 7 || !name.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        IrqNum::new(name.parse().ok()?).ok()
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for IrqNum {
    type Error = String;
    fn try_from(n: u32) -> Result<Self, String> {
        IrqNum::new(n)
    }
}

impl From<IrqNum> for u32 {
    fn from(n: IrqNum) -> u32 {
        n.0
    }
}

impl std::fmt::Display for IrqNum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub const IRQ_DIR: &str = "proc/irq";
pub const IRQ_DEFAULT_AFFINITY: &str = "proc/irq/default_smp_affinity";
pub const WORKQUEUE_CPUMASK: &str = "sys/devices/virtual/workqueue/cpumask";

pub const THP_DIR: &str = "sys/kernel/mm/transparent_hugepage";
pub const RHEL6_THP_DIR: &str = "sys/kernel/mm/redhat_transparent_hugepage";
pub const KSM_DIR: &str = "sys/kernel/mm/ksm";

/// One kernel value kvmtune writes in place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HostKey {
    /// `/proc/sys/<key>`.
    Sysctl { key: SysctlKey },
    /// `/sys/kernel/mm/transparent_hugepage/<knob>` (RHEL 6: `redhat_transparent_hugepage`).
    Thp { knob: ThpKnob, rhel6: bool },
    /// A huge page pool, global or of one NUMA node.
    HugePagePool { size: PageSize, node: Option<u32> },
    /// `/sys/kernel/mm/ksm/<knob>`.
    Ksm { knob: KsmKnob },
    /// `/sys/class/net/<name>/mtu` or `.../device/sriov_numvfs`.
    Interface { name: IfName, attr: NicAttr },
    /// `/proc/irq/default_smp_affinity`: where new IRQs start (hex mask).
    IrqDefaultAffinity,
    /// `/proc/irq/<irq>/smp_affinity_list`.
    IrqAffinity { irq: IrqNum },
    /// `/sys/devices/virtual/workqueue/cpumask`: where unbound workqueues run (hex mask).
    WorkqueueCpumask,
}

impl HostKey {
    /// The file below the root that holds the value (no leading `/`).
    pub fn file(&self) -> String {
        match self {
            HostKey::Sysctl { key } => format!("proc/sys/{}", key.proc_path()),
            HostKey::Thp { knob, rhel6 } => {
                let dir = if *rhel6 { RHEL6_THP_DIR } else { THP_DIR };
                format!("{dir}/{}", knob.as_str())
            }
            HostKey::HugePagePool { size, node } => match node {
                None => format!("sys/kernel/mm/hugepages/{}/nr_hugepages", size.sysfs_dir()),
                Some(n) => format!(
                    "sys/devices/system/node/node{n}/hugepages/{}/nr_hugepages",
                    size.sysfs_dir()
                ),
            },
            HostKey::Ksm { knob } => format!("{KSM_DIR}/{}", knob.as_str()),
            HostKey::Interface { name, attr } => match attr {
                NicAttr::Mtu => format!("sys/class/net/{name}/mtu"),
                NicAttr::SriovNumvfs => format!("sys/class/net/{name}/device/sriov_numvfs"),
            },
            HostKey::IrqDefaultAffinity => IRQ_DEFAULT_AFFINITY.to_string(),
            HostKey::IrqAffinity { irq } => format!("{IRQ_DIR}/{irq}/smp_affinity_list"),
            HostKey::WorkqueueCpumask => WORKQUEUE_CPUMASK.to_string(),
        }
    }

    /// The plan path (YAML key names): `sysctl.vm.swappiness`, `hugepages.2M.node1`.
    pub fn path(&self) -> String {
        match self {
            HostKey::Sysctl { key } => format!("sysctl.{key}"),
            HostKey::Thp { knob, .. } => format!("transparent_hugepage.{}", knob.as_str()),
            HostKey::HugePagePool { size, node } => match node {
                None => format!("hugepages.{size}"),
                Some(n) => format!("hugepages.{size}.node{n}"),
            },
            HostKey::Ksm { knob } => format!("ksm.{}", knob.as_str()),
            HostKey::Interface { name, attr } => match attr {
                NicAttr::Mtu => format!("interfaces.{name}.mtu"),
                NicAttr::SriovNumvfs => format!("interfaces.{name}.sriov_numvfs"),
            },
            HostKey::IrqDefaultAffinity => "cpu_pool.isolate.irqs.default_smp_affinity".into(),
            HostKey::IrqAffinity { irq } => format!("cpu_pool.isolate.irqs.{irq}"),
            HostKey::WorkqueueCpumask => "cpu_pool.isolate.workqueues".into(),
        }
    }

    /// The key whose file is `file` (a path below the root, with or without a leading `/`),
    /// for reading kvmtune's own tmpfiles.d lines back; `None` for any other path. Accepts
    /// only what [`HostKey::file`] produces (checked by mapping the key back).
    pub fn from_file(file: &str) -> Option<HostKey> {
        let f = file.strip_prefix('/').unwrap_or(file);
        let pool = |rest: &str, node: Option<u32>| {
            let kib = rest
                .strip_prefix("hugepages-")?
                .strip_suffix("kB/nr_hugepages")?
                .parse::<u64>()
                .ok()?;
            let size = PageSize::from_kib(kib).ok()?;
            Some(HostKey::HugePagePool { size, node })
        };
        let key = if let Some(rest) = f.strip_prefix("sys/kernel/mm/hugepages/") {
            pool(rest, None)?
        } else if let Some(rest) = f.strip_prefix("sys/devices/system/node/node") {
            let (n, rest) = rest.split_once("/hugepages/")?;
            pool(rest, Some(n.parse().ok()?))?
        } else if f == IRQ_DEFAULT_AFFINITY {
            HostKey::IrqDefaultAffinity
        } else if f == WORKQUEUE_CPUMASK {
            HostKey::WorkqueueCpumask
        } else if let Some(k) = f.strip_prefix(&format!("{KSM_DIR}/")) {
            let knob = KsmKnob::ALL.into_iter().find(|x| x.as_str() == k)?;
            HostKey::Ksm { knob }
        } else {
            let (dir, k) = f.rsplit_once('/')?;
            let knob = [ThpKnob::Enabled, ThpKnob::Defrag]
                .into_iter()
                .find(|x| x.as_str() == k)?;
            match dir {
                THP_DIR => HostKey::Thp { knob, rhel6: false },
                RHEL6_THP_DIR => HostKey::Thp { knob, rhel6: true },
                _ => return None,
            }
        };
        (key.file() == f).then_some(key)
    }

    /// How the file's content compares.
    pub fn readback(&self) -> Readback {
        match self {
            HostKey::Thp { .. } => Readback::Selected,
            HostKey::HugePagePool { .. } => Readback::Count,
            HostKey::IrqDefaultAffinity | HostKey::WorkqueueCpumask => Readback::HexMask,
            HostKey::IrqAffinity { .. } => Readback::CpuList,
            _ => Readback::Tokens,
        }
    }
}

/// A file under /etc that kvmtune owns and rewrites whole.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OwnedFileKind {
    /// `/etc/modules-load.d/90-kvmtune.conf`.
    Modules,
    /// `/etc/sysctl.d/90-kvmtune.conf`.
    Sysctl,
    /// `/etc/tmpfiles.d/90-kvmtune.conf`.
    Tmpfiles,
    /// `/etc/default/grub.d/90-kvmtune.cfg`.
    Grub,
    /// `/etc/systemd/system.conf.d/90-kvmtune.conf`.
    Systemd,
    /// `/etc/tuned/kvmtune/tuned.conf`: kvmtune's child of the declared tuned profile.
    TunedProfile,
}

impl OwnedFileKind {
    /// In the order the planner writes them.
    pub const ALL: [OwnedFileKind; 6] = [
        OwnedFileKind::TunedProfile,
        OwnedFileKind::Modules,
        OwnedFileKind::Sysctl,
        OwnedFileKind::Tmpfiles,
        OwnedFileKind::Grub,
        OwnedFileKind::Systemd,
    ];

    /// The file below the root (no leading `/`).
    pub fn file(self) -> &'static str {
        match self {
            OwnedFileKind::Sysctl => "etc/sysctl.d/90-kvmtune.conf",
            OwnedFileKind::Tmpfiles => "etc/tmpfiles.d/90-kvmtune.conf",
            OwnedFileKind::Modules => "etc/modules-load.d/90-kvmtune.conf",
            OwnedFileKind::Grub => "etc/default/grub.d/90-kvmtune.cfg",
            OwnedFileKind::Systemd => "etc/systemd/system.conf.d/90-kvmtune.conf",
            OwnedFileKind::TunedProfile => TUNED_CHILD_CONF,
        }
    }

    pub fn from_file(file: &str) -> Option<OwnedFileKind> {
        OwnedFileKind::ALL.into_iter().find(|k| k.file() == file)
    }
}

/// Where the distribution keeps irqbalance's environment.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IrqbalanceFile {
    /// `/etc/default/irqbalance`.
    Debian,
    /// `/etc/sysconfig/irqbalance`.
    Rhel,
}

impl IrqbalanceFile {
    pub fn file(self) -> &'static str {
        match self {
            IrqbalanceFile::Debian => "etc/default/irqbalance",
            IrqbalanceFile::Rhel => "etc/sysconfig/irqbalance",
        }
    }
}

/// The name of kvmtune's child tuned profile (`tuned-adm profile kvmtune`).
pub const TUNED_CHILD: &str = "kvmtune";
/// Its file below the root.
pub const TUNED_CHILD_CONF: &str = "etc/tuned/kvmtune/tuned.conf";

/// An option of tuned's `vm` plugin that kvmtune's child profile may set.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TunedVmOption {
    /// `transparent_hugepages` (THP `enabled`).
    TransparentHugepages,
    /// `transparent_hugepage`, tuned's alias of `transparent_hugepages`.
    TransparentHugepage,
    /// `transparent_hugepage.defrag`.
    TransparentHugepageDefrag,
}

impl TunedVmOption {
    pub const ALL: [TunedVmOption; 3] = [
        TunedVmOption::TransparentHugepages,
        TunedVmOption::TransparentHugepage,
        TunedVmOption::TransparentHugepageDefrag,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TunedVmOption::TransparentHugepages => "transparent_hugepages",
            TunedVmOption::TransparentHugepage => "transparent_hugepage",
            TunedVmOption::TransparentHugepageDefrag => "transparent_hugepage.defrag",
        }
    }

    /// The THP control it sets.
    pub fn knob(self) -> ThpKnob {
        match self {
            TunedVmOption::TransparentHugepageDefrag => ThpKnob::Defrag,
            _ => ThpKnob::Enabled,
        }
    }
}

/// A `[variables]` entry kvmtune's child profile may set.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TunedVariable {
    /// `isolated_cores` (cpu-partitioning, realtime and their children).
    IsolatedCores,
}

impl TunedVariable {
    pub fn as_str(self) -> &'static str {
        match self {
            TunedVariable::IsolatedCores => "isolated_cores",
        }
    }
}

/// A value kvmtune writes to a kernel file or an owned file: printable (tabs allowed, as the
/// kernel prints them), one line, bounded.
pub fn check_value(v: &str) -> Result<(), String> {
    if v.len() > 4096 {
        return Err("value is longer than 4096 bytes".into());
    }
    if v.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "value `{}` contains a control character",
            v.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_below_the_root() {
        let k = HostKey::HugePagePool {
            size: PageSize::TWO_MIB,
            node: Some(1),
        };
        assert_eq!(
            k.file(),
            "sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages"
        );
        assert_eq!(k.path(), "hugepages.2M.node1");
        let bad = r#"{"kind":"sysctl","key":"../../etc/passwd"}"#;
        assert!(serde_json::from_str::<HostKey>(bad).is_err());
        let bad = r#"{"kind":"interface","name":"../x","attr":"mtu"}"#;
        assert!(serde_json::from_str::<HostKey>(bad).is_err());
        assert!(check_value("1\nw /etc/shadow").is_err());
        for k in [
            k.clone(),
            HostKey::HugePagePool {
                size: PageSize::ONE_GIB,
                node: None,
            },
            HostKey::Ksm {
                knob: KsmKnob::PagesToScan,
            },
            HostKey::Thp {
                knob: ThpKnob::Defrag,
                rhel6: true,
            },
            HostKey::IrqDefaultAffinity,
            HostKey::WorkqueueCpumask,
        ] {
            assert_eq!(HostKey::from_file(&format!("/{}", k.file())), Some(k));
        }
        for bad in [
            "/etc/shadow",
            "/sys/kernel/mm/hugepages/hugepages-4kB/nr_hugepages",
            "/sys/devices/system/node/node0/../../../../etc/x/hugepages/hugepages-2048kB/nr_hugepages",
            "/sys/kernel/mm/ksm/../ksm/run",
            "/proc/irq/5/smp_affinity_list",
        ] {
            assert_eq!(HostKey::from_file(bad), None, "{bad}");
        }
    }

    #[test]
    fn irq_numbers_are_digits_only_and_bounded() {
        assert_eq!(IrqNum::parse_dir("36").map(IrqNum::get), Some(36));
        for bad in [
            "",
            "+1",
            "-1",
            " 1",
            "1a",
            "..",
            "default_smp_affinity",
            "99999999",
        ] {
            assert_eq!(IrqNum::parse_dir(bad), None, "{bad}");
        }
        assert!(serde_json::from_str::<IrqNum>("2000000").is_err());
        let k = HostKey::IrqAffinity {
            irq: IrqNum::new(36).unwrap(),
        };
        assert_eq!(k.file(), "proc/irq/36/smp_affinity_list");
        let j = serde_json::to_string(&k).unwrap();
        assert_eq!(j, r#"{"kind":"irq_affinity","irq":36}"#);
        assert_eq!(serde_json::from_str::<HostKey>(&j).unwrap(), k);
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(
            Readback::Selected.canonical("always [madvise] never\n"),
            "madvise"
        );
        assert_eq!(Readback::Selected.canonical("never\n"), "never");
        assert_eq!(Readback::HexMask.canonical("00000000,00000003\n"), "3");
        assert_eq!(Readback::CpuList.canonical("0,1\n"), "0-1");
        assert_eq!(Readback::CpuList.canonical("junk\n"), "junk");
        assert_eq!(
            Readback::Tokens.canonical("4096\t16384\t4194304\n"),
            "4096 16384 4194304"
        );
    }
}
