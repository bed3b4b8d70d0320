//! Observation: reads the live state the desired state refers to, and nothing else.
//!
//! Invariant: observation never writes. Host files are read below the root prefix; guests
//! through the given (read-only for `plan`) libvirt connection, which is only needed when
//! guests are declared.

use std::collections::BTreeSet;
use std::path::Path;

use crate::desired::{Desired, HugepagesBacking};
use crate::host;
use crate::libvirt::{Hypervisor, LibvirtError};
use crate::plan::Observed;

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("reading host state under {root}: {err}")]
    Host { root: String, err: std::io::Error },
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
    #[error("guests are declared but no libvirt connection is open")]
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
    let needs = host::HostNeeds {
        meminfo: needs_page_size,
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
        if auto {
            for (name, xmls) in hv.other_guest_xml(&names)? {
                let pins = xmls
                    .iter()
                    .flat_map(|x| crate::pinning::XmlPins::read(x).vcpupin.into_values())
                    .collect();
                obs.other_pins.insert(name, pins);
            }
        }
        if auto || opts.topology {
            obs.topology = crate::topology::HostTopology::from_capabilities(&hv.capabilities()?);
        }
    }
    if (auto || opts.topology) && obs.topology.is_none() {
        obs.topology = crate::topology::HostTopology::from_sysfs(root).map_err(host_err)?;
    }
    if let Some(path) = &opts.lock_file {
        let lock_err = |msg: String| ObserveError::Lock {
            path: path.display().to_string(),
            msg,
        };
        if let Some(text) = host::files::read_opt(path).map_err(|e| lock_err(e.to_string()))? {
            obs.lock = Some(crate::pinning::Lock::parse(&text).map_err(lock_err)?);
        }
    }
    Ok(obs)
}
