//! `kvmtune import`: the current state of the owned settings as a kvmtune configuration.
//!
//! Invariant: planning the imported configuration against the state it was imported from
//! plans zero changes (guests: [`crate::domain::import`]; host: [`crate::host::import`]; host
//! persistence is declared `persist: false` unless kvmtune's files under /etc already match).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::config::raw::{RawConfig, RawHost};
use crate::libvirt::{Hypervisor, LibvirtError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
    #[error("no guest named `{0}` is defined on this hypervisor")]
    NoGuest(String),
    #[error("guest {name}: {msg}")]
    Guest { name: String, msg: String },
    #[error("reading host state under {root}: {err}")]
    Host { root: String, err: std::io::Error },
    #[error("imported configuration does not validate (a kvmtune bug): {0}")]
    Invalid(String),
}

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    /// These guests; empty with `all_guests` = every defined guest.
    pub guests: Vec<String>,
    pub all_guests: bool,
    pub host: bool,
}

/// Reads the requested state and returns it as the raw model.
pub fn import(
    root: &Path,
    hv: Option<&Hypervisor>,
    req: &ImportRequest,
) -> Result<RawConfig, ImportError> {
    let mut cfg = RawConfig::default();
    if req.host {
        cfg.host = Some(import_host(root)?);
    }
    let names: BTreeSet<String> = if req.all_guests {
        match hv {
            Some(hv) => hv.domain_names()?.into_iter().collect(),
            None => BTreeSet::new(),
        }
    } else {
        req.guests.iter().cloned().collect()
    };
    if !names.is_empty() {
        let hv = hv.ok_or_else(|| {
            ImportError::NoGuest(names.iter().next().cloned().unwrap_or_default())
        })?;
        let found = hv.guests(&names)?;
        let mut guests = BTreeMap::new();
        for (name, g) in found {
            let g = g.ok_or_else(|| ImportError::NoGuest(name.clone()))?;
            let raw =
                crate::domain::import::import_guest(&g.xml).map_err(|msg| ImportError::Guest {
                    name: name.clone(),
                    msg,
                })?;
            guests.insert(name, raw);
        }
        cfg.guests = guests;
    }
    Ok(cfg)
}

/// The host part, with `persist: false` unless kvmtune's persisted files already agree.
fn import_host(root: &Path) -> Result<RawHost, ImportError> {
    let host_err = |err| ImportError::Host {
        root: root.display().to_string(),
        err,
    };
    let mut raw = crate::host::import::import_host(root).map_err(host_err)?;
    let cfg = RawConfig {
        host: Some(raw.clone()),
        ..Default::default()
    };
    let d = crate::desired::load_str("import.yaml", &to_yaml(&cfg, None))
        .map_err(|e| ImportError::Invalid(e.to_string()))?;
    let obs = crate::host::observe(root, &d.host, Default::default()).map_err(host_err)?;
    let p = crate::host::plan_host(&d.host, &obs);
    if !p.changes.is_empty() {
        raw.persist = Some(false);
    }
    Ok(raw)
}

/// The configuration as YAML, with a comment saying where it came from.
pub fn to_yaml(cfg: &RawConfig, origin: Option<&str>) -> String {
    let body = serde_yaml::to_string(cfg).expect("raw config serializes");
    let body = if body.trim() == "{}" {
        String::new()
    } else {
        body
    };
    match origin {
        Some(o) => format!(
            "# Imported by kvmtune {} {o}\n{body}",
            env!("CARGO_PKG_VERSION")
        ),
        None => body,
    }
}
