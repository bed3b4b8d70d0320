//! Guest settings as units: one file per setting (grouped as the YAML groups them), each
//! implementing [`GuestSetting`] — validation, its part of the XML edit, import, live
//! operations, the host fit and the running-guest checks — and listed once in [`SETTINGS`].
//!
//! Invariant: [`SETTINGS`] is the only list of guest settings. Validation
//! ([`validate_guest`]), the XML edit ([`crate::domain::plan_guest`]), import
//! ([`crate::domain::import::import_guest`]), the host fit and `verify` iterate it in its order,
//! which is the order of a guest's changes in a plan; a unit may read what the units before it
//! produced (the vCPU count, automatic pinning). A change names its setting by a typed
//! [`GuestKey`]; its `Display` is the YAML key path shown in plans, and live operations are
//! found from the key ([`GuestKey::setting`]), never from a string parsed back.

pub mod blkiotune;
pub mod cpu;
pub mod cputune;
pub mod disks;
pub mod features;
pub mod hyperv;
pub mod interfaces;
pub mod iothreads;
pub mod memory_backing;
pub mod memtune;
pub mod numatune;
pub mod os_variant;
pub mod placement;
pub mod remove_devices;
pub mod sriov;
pub mod vcpu;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::edit::Editor;
use super::running::{Check, Running};
use super::{GuestIssue, LocatedIssue};
use crate::config::raw::{DeviceClass, Placement, RawCpuSet, RawGuest};
use crate::config::source::KeyPath;
use crate::cpuset::CpuSet;
use crate::libvirt::{LiveOp, NodeInfo};
use crate::model::MacAddr;
use crate::xmltree::Document;

/// One guest setting, end to end.
pub trait GuestSetting: Sync {
    /// Raw YAML → its part of `out`, every problem located through `v`.
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired);

    /// Its part of the XML edit: compares what `ed` has with `d` by meaning, records the
    /// changes (and the issues that make `d` unplannable here), and edits.
    fn edit(&self, ed: &mut Editor, d: &GuestDesired);

    /// Domain XML → its part of the raw model, only what the YAML expresses exactly and
    /// validation accepts (planning the result against `doc` plans none of its changes).
    fn import(&self, doc: &Document, out: &mut RawGuest);

    /// Whether libvirt can change `key` (one of this unit's) on a running guest.
    fn live_capable(&self, _key: &GuestKey) -> bool {
        false
    }

    /// Whether the running guest (its live XML) has what `key` changes live (an I/O thread
    /// pin needs that I/O thread); else the change waits for a restart.
    fn live_applies(&self, _key: &GuestKey, _live_xml: &str) -> bool {
        true
    }

    /// The live operation that makes `key` what `d` declares (`None`: none can).
    fn live(&self, _d: &GuestDesired, _key: &GuestKey, _node: Option<NodeInfo>) -> Option<LiveOp> {
        None
    }

    /// Whether live-only drift of its keys is corrected on a running guest (else it is
    /// reported as pending, not retried forever).
    fn fixes_live_drift(&self) -> bool {
        false
    }

    /// Whether its keys never read in the live XML as in the definition (libvirt expands
    /// them when the guest starts), so a difference there is not pending.
    fn live_normalized(&self, _d: &GuestDesired) -> bool {
        false
    }

    /// Declared CPUs and NUMA nodes this host does not have (libvirt accepts them at define
    /// time and fails only when the guest starts).
    fn host_fit(&self, _d: &GuestDesired, _node: NodeInfo, _out: &mut Vec<LocatedIssue>) {}

    /// Its checks on a running guest (`kvmtune verify`), if it has any.
    fn verify(&self, _d: &GuestDesired, _run: &Running, _out: &mut Vec<Check>) {}
}

/// Every guest setting, in the order of validation, edits, changes and checks.
pub static SETTINGS: &[&dyn GuestSetting] = &[
    &vcpu::Setting,
    &cputune::Setting,
    &placement::Setting,
    &numatune::Setting,
    &memory_backing::Setting,
    &cpu::Setting,
    &features::Setting,
    &hyperv::Setting,
    &iothreads::Setting,
    &blkiotune::Setting,
    &memtune::Setting,
    &disks::Setting,
    &interfaces::Setting,
    &remove_devices::Setting,
    &os_variant::Setting,
    &sriov::Setting,
];

/// One owned setting of a guest: the unit it belongs to and the item within it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuestKey {
    Vcpu(vcpu::Key),
    Cputune(cputune::Key),
    Numatune(numatune::Key),
    MemoryBacking(memory_backing::Key),
    Cpu(cpu::Key),
    Features(features::Key),
    Hyperv(hyperv::Key),
    Iothreads,
    Blkiotune(blkiotune::Key),
    Memtune(memtune::MemtuneField),
    Disks(disks::Key),
    Interfaces(interfaces::Key),
    RemoveDevices(DeviceClass),
    OsVariant,
    Sriov(sriov::Key),
}

impl GuestKey {
    /// The unit this key belongs to.
    pub fn setting(&self) -> &'static dyn GuestSetting {
        match self {
            GuestKey::Vcpu(_) => &vcpu::Setting,
            GuestKey::Cputune(_) => &cputune::Setting,
            GuestKey::Numatune(_) => &numatune::Setting,
            GuestKey::MemoryBacking(_) => &memory_backing::Setting,
            GuestKey::Cpu(_) => &cpu::Setting,
            GuestKey::Features(_) => &features::Setting,
            GuestKey::Hyperv(_) => &hyperv::Setting,
            GuestKey::Iothreads => &iothreads::Setting,
            GuestKey::Blkiotune(_) => &blkiotune::Setting,
            GuestKey::Memtune(_) => &memtune::Setting,
            GuestKey::Disks(_) => &disks::Setting,
            GuestKey::Interfaces(_) => &interfaces::Setting,
            GuestKey::RemoveDevices(_) => &remove_devices::Setting,
            GuestKey::OsVariant => &os_variant::Setting,
            GuestKey::Sriov(_) => &sriov::Setting,
        }
    }
}

/// The YAML key path: `cputune.vcpupin.3`, `disks.vda.iotune.total_bytes_sec`.
impl fmt::Display for GuestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestKey::Vcpu(k) => k.fmt(f),
            GuestKey::Cputune(k) => k.fmt(f),
            GuestKey::Numatune(k) => k.fmt(f),
            GuestKey::MemoryBacking(k) => k.fmt(f),
            GuestKey::Cpu(k) => k.fmt(f),
            GuestKey::Features(k) => k.fmt(f),
            GuestKey::Hyperv(k) => k.fmt(f),
            GuestKey::Iothreads => f.write_str("iothreads"),
            GuestKey::Blkiotune(k) => k.fmt(f),
            GuestKey::Memtune(k) => write!(f, "memtune.{}", k.as_str()),
            GuestKey::Disks(k) => k.fmt(f),
            GuestKey::Interfaces(k) => k.fmt(f),
            GuestKey::RemoveDevices(c) => write!(f, "remove_devices.{}", c.as_str()),
            GuestKey::OsVariant => f.write_str("os_variant"),
            GuestKey::Sriov(k) => k.fmt(f),
        }
    }
}

impl GuestDesired {
    /// Whether automatic pinning places the guest's memory with its vCPUs: `vcpupin: auto`
    /// with `numatune.memory` `nodeset: auto` in a mode that binds it there (strict, the
    /// default, or restrictive; an undeclared mode the XML may still say otherwise).
    pub fn memory_follows_vcpus(&self) -> bool {
        use crate::config::raw::NumaMode;
        self.auto_pin
            .as_ref()
            .is_some_and(|a| a.nodeset && !a.shared)
            && self.numa_memory.as_ref().is_some_and(|m| {
                matches!(
                    m.mode,
                    None | Some(NumaMode::Strict) | Some(NumaMode::Restrictive)
                )
            })
    }
}

/// Which devices a disk/interface entry applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeviceKey<T> {
    All,
    One(T),
}

/// One guest's validated desired state; each unit owns its fields.
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
    pub auto_pin: Option<cputune::AutoPin>,
    pub emulatorpin: Option<CpuSet>,
    /// `cputune.vcpusched`: authoritative when present.
    pub vcpusched: Option<Vec<cputune::sched::Vcpusched>>,
    /// `realtime.mask`: the vCPUs that are not real-time (the edit derives `vcpusched`).
    pub realtime_exclude: Option<CpuSet>,
    /// `cputune.shares / period / quota / emulator_period / emulator_quota`.
    pub sched: BTreeMap<crate::model::live::SchedParam, i64>,
    pub numa_memory: Option<numatune::NumaMemory>,
    pub hugepages: Option<memory_backing::HugepagesBacking>,
    /// `memory_backing.locked` / `memory_backing.nosharepages`: the flag elements.
    pub memory_flags: BTreeMap<memory_backing::Key, bool>,
    pub cpu: Option<cpu::CpuDesired>,
    /// `features.pmu`.
    pub pmu: Option<bool>,
    /// `hyperv`: feature → state (a preset expanded).
    pub hyperv: BTreeMap<hyperv::Key, hyperv::HvState>,
    /// `All` first, then per target dev overrides.
    pub disks: BTreeMap<DeviceKey<String>, disks::DiskDesired>,
    pub interfaces: BTreeMap<DeviceKey<MacAddr>, interfaces::InterfaceDesired>,
    /// Authoritative when present, like `vcpupin`.
    pub iothreadpin: Option<BTreeMap<u32, CpuSet>>,
    pub iothreads: Option<u32>,
    pub blkio_weight: Option<u32>,
    /// Host device path (`/dev/sda`) → its settings; devices not listed are kept.
    pub blkio_devices: BTreeMap<String, blkiotune::BlkioDevice>,
    /// `<memtune>` element → KiB.
    pub memtune: BTreeMap<memtune::MemtuneField, u64>,
    pub remove_devices: BTreeSet<DeviceClass>,
    pub os_variant: Option<os_variant::OsVariant>,
    /// VF pool → VF count; authoritative over the interfaces kvmtune added when present.
    pub sriov: Option<BTreeMap<crate::model::NetworkName, u32>>,
    /// The YAML key path of this guest (`guests.<name>`), for locating errors.
    pub key_path: KeyPath,
}

/// Where validation errors go: the desired layer's context, which locates each one in the
/// YAML it came from.
pub trait Errors {
    fn err(&mut self, path: &[String], msg: String);

    /// A CPU set, or an error at `path`.
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

/// Validating one guest: its key path and what the host part of the configuration says.
pub struct Validation<'a> {
    errors: &'a mut dyn Errors,
    key: &'a [String],
    /// `host.cpu_pool.reserved`.
    pub reserved: Option<&'a CpuSet>,
    /// `host.cpu_pool.shared`.
    pub shared: Option<&'a CpuSet>,
}

impl Validation<'_> {
    /// The guest's key path followed by `more`.
    pub fn path(&self, more: &[&str]) -> KeyPath {
        let mut v = self.key.to_vec();
        v.extend(more.iter().map(|s| s.to_string()));
        v
    }

    /// An error at the guest's key path followed by `more`.
    pub fn err(&mut self, more: &[&str], msg: impl Into<String>) {
        let path = self.path(more);
        self.errors.err(&path, msg.into());
    }

    /// A CPU set at the guest's key path followed by `more`, or an error there.
    pub fn cpuset(&mut self, more: &[&str], raw: &RawCpuSet) -> Option<CpuSet> {
        let path = self.path(more);
        self.errors.cpuset(&path, raw)
    }
}

/// Validates the guest declared at `key` (`guests.<name>`): every unit in order.
pub fn validate_guest(
    errors: &mut dyn Errors,
    key: &[String],
    g: &RawGuest,
    reserved: Option<&CpuSet>,
    shared: Option<&CpuSet>,
) -> GuestDesired {
    let mut out = GuestDesired {
        key_path: key.to_vec(),
        ..Default::default()
    };
    let mut v = Validation {
        errors,
        key,
        reserved,
        shared,
    };
    for s in SETTINGS {
        s.validate(&mut v, g, &mut out);
    }
    out
}

/// Whether libvirt can change `key` on a running guest.
pub fn live_capable(key: &GuestKey) -> bool {
    key.setting().live_capable(key)
}

/// Whether the running guest whose live XML is `live_xml` has what `key` changes live.
pub fn live_applies(key: &GuestKey, live_xml: &str) -> bool {
    key.setting().live_applies(key, live_xml)
}

/// The live operation that makes `key` what `d` declares.
pub fn live_op(d: &GuestDesired, key: &GuestKey, node: Option<NodeInfo>) -> Option<LiveOp> {
    key.setting().live(d, key, node)
}

/// Declared CPUs and NUMA nodes that the host `node` does not have, unit by unit.
pub fn host_fit(d: &GuestDesired, node: NodeInfo) -> Vec<LocatedIssue> {
    let mut out = Vec::new();
    for s in SETTINGS {
        s.host_fit(d, node, &mut out);
    }
    out
}

/// The issue of a CPU (or NUMA node) set at `key` reaching above `limit`, if it does.
fn not_on_host(
    d: &GuestDesired,
    key: &[&str],
    set: &CpuSet,
    limit: u32,
    what: &str,
    out: &mut Vec<LocatedIssue>,
) {
    if set.highest() >= limit {
        let mut k = d.key_path.clone();
        k.extend(key.iter().map(|s| s.to_string()));
        out.push(LocatedIssue {
            key: k,
            issue: GuestIssue::NotOnHost(format!(
                "{what} {} is not on this host (it has {limit} {what}s: 0-{})",
                set.highest(),
                limit.saturating_sub(1)
            )),
        });
    }
}

/// Planning one guest from YAML in the units' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{validate_guest, Errors, GuestDesired};
    use crate::config::source::SourceFile;
    use crate::domain::{plan_guest, GuestPlan, LocatedIssue};

    struct Collect(Vec<String>);

    impl Errors for Collect {
        fn err(&mut self, path: &[String], msg: String) {
            self.0.push(format!("{}: {msg}", path.join(".")));
        }
    }

    /// The guest `g` that `body` (its YAML, indented by four spaces) declares, validated by
    /// the units, and the validation errors (`key.path: message` each).
    fn validated(body: &str) -> (GuestDesired, Vec<String>) {
        let yaml = format!("guests:\n  g:\n{body}");
        let (raw, _) =
            crate::config::parse_sources_for(&[SourceFile::from_text("t.yaml", &yaml)], None)
                .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let g = raw.guests.get("g").expect("guest g");
        let key = vec!["guests".to_string(), "g".to_string()];
        let mut errors = Collect(Vec::new());
        let shared: crate::cpuset::CpuSet = "1".parse().expect("a CPU set");
        let d = validate_guest(&mut errors, &key, g, None, Some(&shared));
        (d, errors.0)
    }

    /// The guest `g` that `body` declares; it must validate.
    pub(crate) fn guest(body: &str) -> GuestDesired {
        let (d, errors) = validated(body);
        assert!(errors.is_empty(), "{errors:?}\n{body}");
        d
    }

    /// The validation errors of `body`, one line each; there must be some.
    pub(crate) fn invalid(body: &str) -> String {
        let (_, errors) = validated(body);
        assert!(!errors.is_empty(), "validates:\n{body}");
        errors.join("\n")
    }

    /// A `<domain>` with `inner` as its children after `<name>`.
    pub(crate) fn domain(inner: &str) -> String {
        format!("<domain type='kvm'>\n  <name>g</name>\n  {inner}\n</domain>\n")
    }

    pub(crate) fn plan(body: &str, xml: &str) -> Result<GuestPlan, Vec<LocatedIssue>> {
        plan_guest(&guest(body), xml, None)
    }

    /// Plans `body` against `xml`, checks that planning the result again changes nothing,
    /// and returns the first plan.
    pub(crate) fn converges(body: &str, xml: &str) -> GuestPlan {
        let g = guest(body);
        let p = plan_guest(&g, xml, None).unwrap_or_else(|e| panic!("{e:?}"));
        let again = plan_guest(&g, &p.new_xml, None).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(
            again.changes.is_empty(),
            "{:?}\n{}",
            again.changes,
            p.new_xml
        );
        p
    }

    /// `(key path, before, after)` of each change.
    pub(crate) fn changes(p: &GuestPlan) -> Vec<(String, Option<String>, Option<String>)> {
        p.changes
            .iter()
            .map(|c| (c.key.to_string(), c.before.clone(), c.after.clone()))
            .collect()
    }

    /// The located issues as `key.path: message`.
    pub(crate) fn issues(e: &[LocatedIssue]) -> Vec<String> {
        e.iter()
            .map(|i| format!("{}: {}", i.key.join("."), i.issue))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_keys() -> Vec<(GuestKey, &'static str)> {
        use crate::config::raw::DeviceClass as C;
        let mac = MacAddr::new("52:54:00:00:00:01").unwrap();
        let disk = |item| {
            GuestKey::Disks(disks::Key {
                dev: "vda".into(),
                item,
            })
        };
        let nic = |item| {
            GuestKey::Interfaces(interfaces::Key {
                mac: Some(mac.clone()),
                index: None,
                item,
            })
        };
        vec![
            (GuestKey::Vcpu(vcpu::Key::Count), "vcpu.count"),
            (GuestKey::Vcpu(vcpu::Key::Current), "vcpu.current"),
            (GuestKey::Vcpu(vcpu::Key::Placement), "vcpu.placement"),
            (GuestKey::Vcpu(vcpu::Key::Cpuset), "vcpu.cpuset"),
            (
                GuestKey::Cputune(cputune::Key::Vcpupin(3)),
                "cputune.vcpupin.3",
            ),
            (
                GuestKey::Cputune(cputune::Key::Iothreadpin(1)),
                "cputune.iothreadpin.1",
            ),
            (
                GuestKey::Cputune(cputune::Key::Emulatorpin),
                "cputune.emulatorpin",
            ),
            (
                GuestKey::Cputune(cputune::Key::Vcpusched),
                "cputune.vcpusched",
            ),
            (
                GuestKey::Cputune(cputune::Key::Sched(crate::model::live::SchedParam::Shares)),
                "cputune.shares",
            ),
            (
                GuestKey::Cputune(cputune::Key::Sched(
                    crate::model::live::SchedParam::EmulatorQuota,
                )),
                "cputune.emulator_quota",
            ),
            (
                GuestKey::Numatune(numatune::Key::Mode),
                "numatune.memory.mode",
            ),
            (
                GuestKey::Numatune(numatune::Key::Nodeset),
                "numatune.memory.nodeset",
            ),
            (
                GuestKey::Numatune(numatune::Key::Placement),
                "numatune.memory.placement",
            ),
            (
                GuestKey::MemoryBacking(memory_backing::Key::Hugepages),
                "memory_backing.hugepages",
            ),
            (
                GuestKey::MemoryBacking(memory_backing::Key::Locked),
                "memory_backing.locked",
            ),
            (
                GuestKey::MemoryBacking(memory_backing::Key::Nosharepages),
                "memory_backing.nosharepages",
            ),
            (GuestKey::Cpu(cpu::Key::Mode), "cpu.mode"),
            (GuestKey::Cpu(cpu::Key::Model), "cpu.model"),
            (
                GuestKey::Cpu(cpu::Key::Topology(cpu::TopologyAttr::Dies)),
                "cpu.topology.dies",
            ),
            (
                GuestKey::Cpu(cpu::Key::Feature("x2apic".into())),
                "cpu.features.x2apic",
            ),
            (GuestKey::Features(features::Key::Pmu), "features.pmu"),
            (GuestKey::Hyperv(hyperv::Key::Spinlocks), "hyperv.spinlocks"),
            (
                GuestKey::Hyperv(hyperv::Key::Hypervclock),
                "hyperv.hypervclock",
            ),
            (GuestKey::Iothreads, "iothreads"),
            (
                GuestKey::Blkiotune(blkiotune::Key::Weight),
                "blkiotune.weight",
            ),
            (
                GuestKey::Blkiotune(blkiotune::Key::Device {
                    path: "/dev/sda".into(),
                    field: blkiotune::BlkioField::ReadIopsSec,
                }),
                "blkiotune.devices./dev/sda.read_iops_sec",
            ),
            (
                GuestKey::Memtune(memtune::MemtuneField::SwapHardLimit),
                "memtune.swap_hard_limit",
            ),
            (disk(disks::Item::Cache), "disks.vda.cache"),
            (disk(disks::Item::Io), "disks.vda.io"),
            (disk(disks::Item::Iothread), "disks.vda.iothread"),
            (
                disk(disks::Item::Iotune(disks::IotuneField::TotalBytesSec)),
                "disks.vda.iotune.total_bytes_sec",
            ),
            (
                nic(interfaces::Item::Model),
                "interfaces.52:54:00:00:00:01.model",
            ),
            (
                nic(interfaces::Item::Driver),
                "interfaces.52:54:00:00:00:01.driver",
            ),
            (
                nic(interfaces::Item::Queues),
                "interfaces.52:54:00:00:00:01.queues",
            ),
            (
                nic(interfaces::Item::Mtu),
                "interfaces.52:54:00:00:00:01.mtu",
            ),
            (
                GuestKey::RemoveDevices(C::UsbRedirect),
                "remove_devices.usb-redirect",
            ),
            (GuestKey::OsVariant, "os_variant"),
        ]
    }

    #[test]
    fn keys_print_as_yaml_key_paths_and_round_trip_through_json() {
        for (k, path) in all_keys() {
            assert_eq!(k.to_string(), path);
            let json = serde_json::to_string(&k).unwrap();
            let back: GuestKey = serde_json::from_str(&json).unwrap();
            assert_eq!(back, k, "{json}");
        }
        let bad = r#"{"interfaces":{"mac":"not-a-mac","item":"mtu"}}"#;
        assert!(serde_json::from_str::<GuestKey>(bad).is_err());
    }

    #[test]
    fn only_declared_live_keys_are_live_capable() {
        let live: Vec<String> = all_keys()
            .into_iter()
            .filter(|(k, _)| live_capable(k))
            .map(|(_, p)| p.to_string())
            .collect();
        assert_eq!(
            live,
            [
                "vcpu.current",
                "cputune.vcpupin.3",
                "cputune.iothreadpin.1",
                "cputune.emulatorpin",
                "cputune.shares",
                "cputune.emulator_quota",
                "numatune.memory.nodeset",
                "blkiotune.weight",
                "blkiotune.devices./dev/sda.read_iops_sec",
                "memtune.swap_hard_limit",
                "disks.vda.iotune.total_bytes_sec",
                "os_variant",
            ]
        );
    }
}
