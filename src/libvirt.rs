//! The libvirt connection: the only module that talks to the hypervisor.
//!
//! Invariant: a read-only [`Hypervisor`] can never change anything (libvirt enforces it);
//! reading N guests costs one `virConnectListAllDomains` plus one `virDomainGetXMLDesc` per
//! declared guest that exists. Domains are never undefined, destroyed or started here.

use std::collections::{BTreeMap, BTreeSet};

use virt::connect::Connect;
use virt::sys;

/// A libvirt failure, naming the step and the object.
#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    #[error("connecting to {uri}: {msg}")]
    Connect { uri: String, msg: String },
    #[error("listing domains on {uri}: {msg}")]
    List { uri: String, msg: String },
    #[error("guest {name}: reading its XML: {msg}")]
    Read { name: String, msg: String },
    #[error("guest {name}: defining the new XML: {msg}")]
    Define { name: String, msg: String },
}

/// What kvmtune needs to know about one guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestObserved {
    pub uuid: String,
    pub active: bool,
    /// The persistent (`--inactive`) definition.
    pub xml: String,
}

pub struct Hypervisor {
    conn: Connect,
    uri: String,
}

fn msg(e: virt::error::Error) -> String {
    e.message().to_string()
}

impl Hypervisor {
    /// Opens `uri`; `read_only` uses a read-only connection (what `plan` uses).
    pub fn open(uri: &str, read_only: bool) -> Result<Hypervisor, LibvirtError> {
        // libvirt prints every error to stderr by default; we report them ourselves.
        virt::error::clear_error_callback();
        let conn = if read_only {
            Connect::open_read_only(Some(uri))
        } else {
            Connect::open(Some(uri))
        }
        .map_err(|e| LibvirtError::Connect {
            uri: uri.to_string(),
            msg: msg(e),
        })?;
        Ok(Hypervisor {
            conn,
            uri: uri.to_string(),
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The named guests' state; a name with no domain maps to `None`.
    pub fn guests(
        &self,
        names: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Option<GuestObserved>>, LibvirtError> {
        let mut out: BTreeMap<String, Option<GuestObserved>> =
            names.iter().map(|n| (n.clone(), None)).collect();
        if names.is_empty() {
            return Ok(out);
        }
        let domains = self
            .conn
            .list_all_domains(0)
            .map_err(|e| LibvirtError::List {
                uri: self.uri.clone(),
                msg: msg(e),
            })?;
        for dom in domains {
            // name, id and UUID are cached in the handle: no round trip.
            let Ok(name) = dom.name() else { continue };
            let Some(slot) = out.get_mut(&name) else {
                continue;
            };
            let read_err = |e| LibvirtError::Read {
                name: name.clone(),
                msg: msg(e),
            };
            let xml = dom
                .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
                .map_err(read_err)?;
            let uuid = dom.uuid_string().map_err(|e| LibvirtError::Read {
                name: name.clone(),
                msg: msg(e),
            })?;
            *slot = Some(GuestObserved {
                uuid,
                active: dom.id().is_some(),
                xml,
            });
        }
        Ok(out)
    }

    /// Defines `xml` with schema validation and returns the persistent XML libvirt stored.
    pub fn define(&self, name: &str, xml: &str) -> Result<String, LibvirtError> {
        let dom = self
            .conn
            .define_domain_xml_flags(xml, sys::VIR_DOMAIN_DEFINE_VALIDATE)
            .map_err(|e| LibvirtError::Define {
                name: name.to_string(),
                msg: msg(e),
            })?;
        dom.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
            .map_err(|e| LibvirtError::Read {
                name: name.to_string(),
                msg: msg(e),
            })
    }

    /// The named guest's live XML (`virDomainGetXMLDesc` with flags 0: the running
    /// definition when it runs) and whether it runs; `None` when no such domain exists.
    pub fn live_guest(&self, name: &str) -> Result<Option<LiveDomain>, LibvirtError> {
        let dom = match self.conn.lookup_domain_by_name(name) {
            Ok(d) => d,
            Err(e) if e.code().is(virt::error::ErrorNumber::NoDomain) => return Ok(None),
            Err(e) => {
                return Err(LibvirtError::Read {
                    name: name.to_string(),
                    msg: msg(e),
                })
            }
        };
        let read_err = |e| LibvirtError::Read {
            name: name.to_string(),
            msg: msg(e),
        };
        let active = dom.is_active().map_err(read_err)?;
        let xml = dom.xml_desc(0).map_err(read_err)?;
        Ok(Some(LiveDomain { active, xml }))
    }
}

/// A guest as it is now (for `verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveDomain {
    pub active: bool,
    /// The live XML (flags 0).
    pub xml: String,
}
