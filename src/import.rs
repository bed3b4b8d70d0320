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
    import_with_notes(root, hv, req).map(|(c, _)| c)
}

/// [`import`], with what was found but cannot be expressed (and so was left out), one line
/// each with its key.
pub fn import_with_notes(
    root: &Path,
    hv: Option<&Hypervisor>,
    req: &ImportRequest,
) -> Result<(RawConfig, Vec<String>), ImportError> {
    let mut cfg = RawConfig::default();
    let mut notes = Vec::new();
    if req.host {
        let (h, n) = import_host(root)?;
        cfg.host = Some(h);
        notes = n;
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
    Ok((cfg, notes))
}

/// The host part, with `persist: false` unless kvmtune's persisted files already agree.
/// Values the configuration cannot express (a profile name tuned allows but kvmtune does
/// not, a pool beyond the validated bounds) are left out, each with a note.
fn import_host(root: &Path) -> Result<(RawHost, Vec<String>), ImportError> {
    let host_err = |err| ImportError::Host {
        root: root.display().to_string(),
        err,
    };
    let mut raw = crate::host::import::import_host(root).map_err(host_err)?;
    let mut notes = Vec::new();
    let d = loop {
        let cfg = RawConfig {
            host: Some(raw.clone()),
            ..Default::default()
        };
        let errors = match crate::desired::load_str("import.yaml", &to_yaml(&cfg, None)) {
            Ok(d) => break d,
            Err(e) => e,
        };
        let before = notes.len();
        let mut value = serde_yaml::to_value(&raw).expect("raw host serializes");
        for e in &errors.0 {
            if let crate::config::source::ConfigError::Invalid { path, msg, .. } = e {
                let rel: Vec<&str> = path.split('.').skip(1).collect();
                if remove_path(&mut value, &rel) {
                    notes.push(format!("{path}: {msg}: not imported"));
                }
            }
        }
        if notes.len() == before || notes.len() > 64 {
            return Err(ImportError::Invalid(errors.to_string()));
        }
        raw = serde_yaml::from_value(value).map_err(|e| ImportError::Invalid(e.to_string()))?;
    };
    let obs = crate::host::observe(root, &d.host, Default::default()).map_err(host_err)?;
    let p = crate::host::plan_host(&d.host, &obs);
    if !p.changes.is_empty() {
        raw.persist = Some(false);
    }
    Ok((raw, notes))
}

/// Removes the value at `path` (mapping keys and sequence indexes); whether it was there.
/// A sequence entry or a mapping value left empty takes its parent key with it.
fn remove_path(v: &mut serde_yaml::Value, path: &[&str]) -> bool {
    use serde_yaml::Value;
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    match v {
        Value::Mapping(m) => {
            let key = Value::String(first.to_string());
            if rest.is_empty() {
                return m.remove(&key).is_some();
            }
            let Some(child) = m.get_mut(&key) else {
                return false;
            };
            // A sequence entry's field: drop the whole entry (a pool without its count is not a pool).
            if let (Value::Sequence(_), [_index]) = (&*child, rest) {
                return remove_path(child, rest);
            }
            if let (Value::Sequence(s), [index, ..]) = (&mut *child, rest) {
                if let Ok(i) = index.parse::<usize>() {
                    if i < s.len() {
                        s.remove(i);
                        if s.is_empty() {
                            m.remove(&key);
                        }
                        return true;
                    }
                }
                return false;
            }
            remove_path(child, rest)
        }
        Value::Sequence(s) => match first.parse::<usize>() {
            Ok(i) if i < s.len() => {
                s.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
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
