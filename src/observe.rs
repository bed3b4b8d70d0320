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
    #[error("reading host state under {root}: {source}")]
    Host {
        root: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
    #[error("guests are declared but no libvirt connection is open")]
    NoConnection,
}

pub fn observe(
    d: &Desired,
    root: &Path,
    hv: Option<&Hypervisor>,
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
    let host = host::observe(root, &d.host, needs).map_err(|source| ObserveError::Host {
        root: root.display().to_string(),
        source,
    })?;
    let (guests, node) = if d.guests.is_empty() {
        Default::default()
    } else {
        let hv = hv.ok_or(ObserveError::NoConnection)?;
        let names: BTreeSet<String> = d.guests.keys().map(|n| n.as_str().to_string()).collect();
        (hv.guests(&names)?, Some(hv.node_info()?))
    };
    Ok(Observed { host, guests, node })
}
