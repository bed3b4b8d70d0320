//! Observation: reads the live state the desired state refers to, and nothing else.
//!
//! Invariant: observation never writes. Host files are read below the root prefix; guests
//! through the given (read-only for `plan`) libvirt connection, which is only needed when
//! guests are declared.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::cpuset::CpuSet;
use crate::desired::{Desired, HugepagesBacking};
use crate::host;
use crate::libvirt::{Hypervisor, LibvirtError};

/// Everything observed that the plan depends on.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub host: crate::host::HostObserved,
    /// Declared guest name → its state, `None` when no such domain exists.
    pub guests: BTreeMap<String, Option<crate::libvirt::GuestObserved>>,
    /// Host CPU and NUMA node counts from libvirt (read when guests are declared).
    pub node: Option<crate::libvirt::NodeInfo>,
    /// Host CPU topology (read when automatic pinning is used, and by `check`).
    pub topology: Option<crate::topology::HostTopology>,
    /// Pins of the guests not declared (domain name → its vcpupin sets), read only when
    /// automatic pinning is used.
    pub other_pins: BTreeMap<String, Vec<CpuSet>>,
    /// The lock file's contents (`--lock-file`), when it exists.
    pub lock: Option<crate::model::lock::Lock>,
    /// The guests not declared, as they run (live XML when running, else the definition):
    /// each vCPU's CPUs (its pin, else `<vcpu cpuset>`; `None`: every host CPU). Read with
    /// `other_pins`, and by `check` when `host.cpu_pool` partitions the host.
    pub other_vcpus: BTreeMap<String, Vec<Option<CpuSet>>>,
    /// Free memory per NUMA node, read only when a guest's memory is placed with its vCPUs
    /// (`vcpupin: auto` with `numatune.memory` `nodeset: auto` in a binding mode).
    pub node_memory: Option<BTreeMap<u32, crate::topology::NodeMemory>>,
    /// Declared network name → its state, `None` when no such network is defined.
    pub networks: BTreeMap<String, Option<crate::libvirt::NetworkObserved>>,
    /// Network name → the running guests attached to it (read when networks are declared).
    pub network_users: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("reading host state under {root}: {err}")]
    Host { root: String, err: std::io::Error },
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
    #[error("guests or networks are declared but no libvirt connection is open")]
    NoConnection,
    #[error("lock file {path}: {msg}")]
    Lock { path: String, msg: String },
}

/// What observation reads beyond what the desired state needs for planning.
#[derive(Debug, Clone, Default)]
pub struct ObserveOptions {
    /// `--lock-file`: read when it exists.
    pub lock_file: Option<std::path::PathBuf>,
    /// Read the host topology even without automatic pinning (`check`).
    pub topology: bool,
}

pub fn observe(
    d: &Desired,
    root: &Path,
    hv: Option<&Hypervisor>,
) -> Result<Observed, ObserveError> {
    observe_with(d, root, hv, &ObserveOptions::default())
}

/// [`observe`], plus the lock file and the host topology when asked for. The XML of guests
/// not declared and the topology are read only when a guest uses `vcpupin: auto` (or
/// `opts.topology`), so plans without automatic pinning cost what they did before.
pub fn observe_with(
    d: &Desired,
    root: &Path,
    hv: Option<&Hypervisor>,
    opts: &ObserveOptions,
) -> Result<Observed, ObserveError> {
    let needs_page_size = d.guests.values().any(|g| {
        matches!(
            g.hugepages,
            Some(HugepagesBacking::DefaultSize | HugepagesBacking::Size(_))
        )
    });
    let memory_placed = d.guests.values().any(|g| g.memory_follows_vcpus());
    let needs = host::HostNeeds {
        meminfo: needs_page_size || memory_placed,
        hugetlbfs: needs_page_size,
    };
    let host = host::observe(root, &d.host, needs).map_err(|err| ObserveError::Host {
        root: root.display().to_string(),
        err,
    })?;
    let host_err = |err| ObserveError::Host {
        root: root.display().to_string(),
        err,
    };
    let auto = d.guests.values().any(|g| g.auto_pin.is_some());
    let mut obs = Observed {
        host,
        ..Default::default()
    };
    if !d.guests.is_empty() {
        let hv = hv.ok_or(ObserveError::NoConnection)?;
        let names: BTreeSet<String> = d.guests.keys().map(|n| n.as_str().to_string()).collect();
        obs.guests = hv.guests(&names)?;
        obs.node = Some(hv.node_info()?);
        let pool = &d.host.cpu_pool;
        let partitioned = pool.reserved.is_some() || pool.shared.is_some();
        if auto || (opts.topology && partitioned) {
            for (name, xmls) in hv.other_guest_xml(&names)? {
                let read: Vec<_> = xmls
                    .iter()
                    .map(|x| crate::domain::pins::XmlPins::read(x))
                    .collect();
                if let Some(now) = read.last() {
                    obs.other_vcpus.insert(name.clone(), now.vcpu_affinity());
                }
                let pins = read.into_iter().flat_map(|x| x.vcpupin.into_values());
                obs.other_pins.insert(name, pins.collect());
            }
        }
        if auto || opts.topology {
            obs.topology = crate::topology::HostTopology::from_capabilities(&hv.capabilities()?);
        }
    }
    if !d.networks.is_empty() {
        let hv = hv.ok_or(ObserveError::NoConnection)?;
        let names: BTreeSet<String> = d.networks.keys().map(|n| n.to_string()).collect();
        obs.networks = hv.networks(&names)?;
        let running = hv.other_running_xml(&BTreeSet::new())?;
        obs.network_users = crate::network::attached(&running);
    }
    if (auto || opts.topology) && obs.topology.is_none() {
        obs.topology = crate::topology::HostTopology::from_sysfs(root).map_err(host_err)?;
    }
    if memory_placed {
        obs.node_memory = Some(crate::topology::node_memory(root).map_err(host_err)?);
    }
    if let Some(path) = &opts.lock_file {
        let lock_err = |msg: String| ObserveError::Lock {
            path: path.display().to_string(),
            msg,
        };
        if let Some(text) = host::files::read_opt(path).map_err(|e| lock_err(e.to_string()))? {
            obs.lock = Some(parse_lock(path, &text).map_err(lock_err)?);
        }
    }
    Ok(obs)
}

/// Parses a lock file under the configuration's guards (size, alias expansion, one
/// document), then as a lock.
pub fn parse_lock(path: &Path, text: &str) -> Result<crate::model::lock::Lock, String> {
    use crate::config::source::{SourceFile, MAX_FILE_BYTES};
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {} MiB", MAX_FILE_BYTES >> 20));
    }
    SourceFile::from_text(path, text)
        .index()
        .map_err(|e| e.to_string())?;
    crate::model::lock::Lock::parse(text)
}
