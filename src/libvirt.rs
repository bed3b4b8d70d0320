//! The libvirt connection: the only module that talks to the hypervisor.
//!
//! Invariant: a read-only [`Hypervisor`] can never change anything (libvirt enforces it);
//! reading N guests costs one `virConnectListAllDomains` plus one `virDomainGetXMLDesc` per
//! declared guest that exists. Domains are never undefined, destroyed or started here.
//!
//! Writing N guests costs one `virDomainDefineXMLFlags` plus one `virDomainGetXMLDesc` (the
//! read-back every define returns, for the caller to verify) per guest. [`DefineMode`] says
//! whether libvirtd also checks each XML against its RelaxNG schema (the default; most of a
//! define's cost), and a [`DefinePool`] keeps several defines in flight on a few connections.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub use crate::model::live::{LiveOp, NodeInfo};
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
    #[error("network {name}: {step}: {msg}")]
    Network {
        name: String,
        step: &'static str,
        msg: String,
    },
}

/// What kvmtune needs to know about one libvirt network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkObserved {
    /// The persistent (`VIR_NETWORK_XML_INACTIVE`) definition.
    pub xml: String,
    pub active: bool,
    pub autostart: bool,
}

/// What kvmtune needs to know about one guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestObserved {
    pub uuid: String,
    pub active: bool,
    /// The persistent (`--inactive`) definition.
    pub xml: String,
    /// The running definition, for active guests.
    pub live_xml: Option<String>,
}

/// Why a live change was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct LiveError {
    /// libvirt cannot make this change on a running guest (it waits for a restart).
    pub unsupported: bool,
    pub msg: String,
}

fn check(r: std::os::raw::c_int) -> Result<(), virt::error::Error> {
    if r < 0 {
        Err(virt::error::Error::last_error())
    } else {
        Ok(())
    }
}

/// Builds a libvirt typed-parameter list from (name, type, value-as-text), calls `f` with it,
/// and frees it.
fn with_params(
    fields: &[(&str, u32, String)],
    f: impl FnOnce(sys::virTypedParameterPtr, std::os::raw::c_int) -> std::os::raw::c_int,
) -> Result<(), virt::error::Error> {
    let mut params: sys::virTypedParameterPtr = std::ptr::null_mut();
    let mut n: std::os::raw::c_int = 0;
    let mut max: std::os::raw::c_int = 0;
    for (name, kind, value) in fields {
        let (Ok(name), Ok(value)) = (
            std::ffi::CString::new(*name),
            std::ffi::CString::new(value.as_str()),
        ) else {
            continue;
        };
        // SAFETY: libvirt grows `params` and copies the strings.
        let r = unsafe {
            sys::virTypedParamsAddFromString(
                &mut params,
                &mut n,
                &mut max,
                name.as_ptr(),
                *kind as i32,
                value.as_ptr(),
            )
        };
        if r < 0 {
            // SAFETY: params/n are what libvirt built so far.
            unsafe { sys::virTypedParamsFree(params, n) };
            return Err(virt::error::Error::last_error());
        }
    }
    let r = f(params, n);
    let out = check(r);
    // SAFETY: params/n are what libvirt built.
    unsafe { sys::virTypedParamsFree(params, n) };
    out
}

/// A libvirt cpumap: one bit per host CPU.
fn cpumap(cpuset: &str) -> Result<Vec<u8>, LiveError> {
    let set: crate::cpuset::CpuSet =
        cpuset
            .parse()
            .map_err(|e: crate::cpuset::CpuSetError| LiveError {
                unsupported: false,
                msg: e.to_string(),
            })?;
    let mut map = vec![0u8; set.highest() as usize / 8 + 1];
    for cpu in set.iter() {
        map[cpu as usize / 8] |= 1 << (cpu % 8);
    }
    Ok(map)
}

/// The running interface with MAC `mac` of the live XML `xml`, its type `network` and its
/// `<source>` naming only `network` (for `virDomainUpdateDeviceFlags`: libvirt matches the
/// device by MAC and refuses changes to anything else, so everything else stays as it runs).
fn repointed_interface(xml: &str, mac: &str, network: &str) -> Result<String, LiveError> {
    let err = |m: String| LiveError {
        unsupported: false,
        msg: m,
    };
    let mut doc = crate::xmltree::Document::parse(xml).map_err(|e| err(e.to_string()))?;
    let devices = doc
        .child(doc.root(), "devices")
        .ok_or_else(|| err("the running guest has no <devices>".into()))?;
    let nic = doc
        .children_named(devices, "interface")
        .into_iter()
        .find(|&i| {
            doc.child(i, "mac")
                .and_then(|m| doc.attr(m, "address"))
                .is_some_and(|a| a.eq_ignore_ascii_case(mac))
        })
        .ok_or_else(|| err(format!("the running guest has no interface {mac}")))?;
    doc.set_attr(nic, "type", "network");
    let src = doc.ensure_child(nic, "source");
    for (a, _) in doc.attrs(src) {
        doc.remove_attr(src, &a);
    }
    doc.set_attr(src, "network", network);
    Ok(doc.element_xml(nic))
}

/// Declared guests from which on their XML is fetched by [`FETCHERS`] threads.
const PARALLEL_THRESHOLD: usize = 64;
const FETCHERS: usize = 2;

fn fetch(name: &str, dom: &virt::domain::Domain) -> Result<(String, GuestObserved), LibvirtError> {
    let read_err = |e| LibvirtError::Read {
        name: name.to_string(),
        msg: msg(e),
    };
    let xml = dom
        .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
        .map_err(read_err)?;
    let uuid = dom.uuid_string().map_err(read_err)?;
    let active = dom.id().is_some();
    let live_xml = if active {
        // A guest that stopped in between has no live XML: treat it as stopped.
        dom.xml_desc(0).ok()
    } else {
        None
    };
    Ok((
        name.to_string(),
        GuestObserved {
            uuid,
            active: live_xml.is_some(),
            xml,
            live_xml,
        },
    ))
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

    /// Every defined domain (one `virConnectListAllDomains`).
    fn list(&self) -> Result<Vec<virt::domain::Domain>, LibvirtError> {
        self.conn
            .list_all_domains(0)
            .map_err(|e| LibvirtError::List {
                uri: self.uri.clone(),
                msg: msg(e),
            })
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
        let domains = self.list()?;
        // name, id and UUID are cached in the handle: no round trip.
        let wanted: Vec<(String, virt::domain::Domain)> = domains
            .into_iter()
            .filter_map(|d| d.name().ok().filter(|n| names.contains(n)).map(|n| (n, d)))
            .collect();
        // libvirt's remote driver keeps several calls in flight on one connection, and libvirtd
        // serves them from its worker pool: two fetchers halve the wall time of large reads.
        let workers = if wanted.len() >= PARALLEL_THRESHOLD {
            FETCHERS
        } else {
            1
        };
        let chunk = wanted.len().div_ceil(workers).max(1);
        let fetched: Vec<Result<(String, GuestObserved), LibvirtError>> = std::thread::scope(|s| {
            let handles: Vec<_> = wanted
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || part.iter().map(|(n, d)| fetch(n, d)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("fetch thread panicked"))
                .collect()
        });
        for r in fetched {
            let (name, g) = r?;
            out.insert(name, Some(g));
        }
        Ok(out)
    }

    /// Names of every defined domain (running or not), sorted.
    pub fn domain_names(&self) -> Result<Vec<String>, LibvirtError> {
        let mut names: Vec<String> = self.list()?.iter().filter_map(|d| d.name().ok()).collect();
        names.sort();
        Ok(names)
    }

    /// The host's CPU and NUMA node counts.
    pub fn node_info(&self) -> Result<NodeInfo, LibvirtError> {
        let i = self.conn.node_info().map_err(|e| LibvirtError::List {
            uri: self.uri.clone(),
            msg: msg(e),
        })?;
        Ok(NodeInfo {
            cpus: i.cpus,
            nodes: i.nodes,
        })
    }

    /// libvirt's host capabilities XML (NUMA cells, CPUs, siblings).
    pub fn capabilities(&self) -> Result<String, LibvirtError> {
        self.conn.capabilities().map_err(|e| LibvirtError::List {
            uri: self.uri.clone(),
            msg: msg(e),
        })
    }

    /// The persistent and (for running guests) live XML of every domain not in `except`.
    /// Only automatic pinning needs this (CPUs pinned by guests kvmtune does not manage).
    pub fn other_guest_xml(
        &self,
        except: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Vec<String>>, LibvirtError> {
        let mut out = BTreeMap::new();
        for d in self.list()? {
            let Ok(name) = d.name() else { continue };
            if except.contains(&name) {
                continue;
            }
            let mut xmls = Vec::new();
            // A domain that vanished in between has no XML: skip it.
            if let Ok(x) = d.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE) {
                xmls.push(x);
            }
            if d.id().is_some() {
                if let Ok(x) = d.xml_desc(0) {
                    xmls.push(x);
                }
            }
            out.insert(name, xmls);
        }
        Ok(out)
    }

    /// The live XML of every running domain not in `except` (for `verify`: guests kvmtune does
    /// not manage that may run on dedicated CPUs).
    pub fn other_running_xml(
        &self,
        except: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, String>, LibvirtError> {
        let mut out = BTreeMap::new();
        for d in self.list()? {
            let Ok(name) = d.name() else { continue };
            if except.contains(&name) || d.id().is_none() {
                continue;
            }
            if let Ok(x) = d.xml_desc(0) {
                out.insert(name, x);
            }
        }
        Ok(out)
    }

    fn domain(&self, name: &str) -> Result<virt::domain::Domain, LiveError> {
        self.conn
            .lookup_domain_by_name(name)
            .map_err(|e| LiveError {
                unsupported: false,
                msg: msg(e),
            })
    }

    /// Makes one change on the running guest only.
    pub fn live(&self, name: &str, op: &LiveOp) -> Result<(), LiveError> {
        let dom = self.domain(name)?;
        // VIR_DOMAIN_AFFECT_CURRENT: the running guest (the only kind planned live ops target).
        // Some drivers (the test driver) reject an explicit AFFECT_LIVE flag on some calls.
        let live = sys::VIR_DOMAIN_AFFECT_CURRENT;
        let r = match op {
            LiveOp::PinVcpu { vcpu, cpuset } => dom.pin_vcpu_flags(*vcpu, &cpumap(cpuset)?, live),
            LiveOp::PinEmulator { cpuset } => dom.pin_emulator(&cpumap(cpuset)?, live),
            LiveOp::NumaNodeset { nodeset } => dom.set_numa_parameters(
                virt::domain::NUMAParameters {
                    node_set: Some(nodeset.clone()),
                    mode: None,
                },
                live,
            ),
            LiveOp::SetVcpus { count } => dom.set_vcpus_flags(*count, sys::VIR_DOMAIN_VCPU_CURRENT),
            LiveOp::PinIothread { iothread, cpuset } => {
                let map = cpumap(cpuset)?;
                // SAFETY: the domain pointer is valid while `dom` lives; map outlives the call.
                let r = unsafe {
                    sys::virDomainPinIOThread(
                        dom.as_ptr(),
                        *iothread,
                        map.as_ptr() as *mut u8,
                        map.len() as i32,
                        live,
                    )
                };
                check(r)
            }
            LiveOp::Memtune { field, kib } => {
                let mut p = virt::domain::MemoryParameters::default();
                match field.as_str() {
                    "hard_limit" => p.hard_limit = Some(*kib),
                    "soft_limit" => p.soft_limit = Some(*kib),
                    "swap_hard_limit" => p.swap_hard_limit = Some(*kib),
                    _ => p.min_guarantee = Some(*kib),
                }
                dom.set_memory_parameters(p, live)
            }
            LiveOp::Blkio { field, value } => {
                let kind = if field == "weight" {
                    sys::VIR_TYPED_PARAM_UINT
                } else {
                    sys::VIR_TYPED_PARAM_STRING
                };
                with_params(
                    &[(field.as_str(), kind, value.clone())],
                    |params, n| unsafe {
                        // SAFETY: params/n come from virTypedParamsAdd*; the domain pointer is valid.
                        sys::virDomainSetBlkioParameters(dom.as_ptr(), params, n, live)
                    },
                )
            }
            LiveOp::BlockIotune { disk, field, value } => {
                let disk_c = std::ffi::CString::new(disk.as_str()).map_err(|e| LiveError {
                    unsupported: false,
                    msg: e.to_string(),
                })?;
                with_params(
                    &[(
                        field.as_str(),
                        sys::VIR_TYPED_PARAM_ULLONG,
                        value.to_string(),
                    )],
                    |params, n| unsafe {
                        // SAFETY: as above; disk_c outlives the call.
                        sys::virDomainSetBlockIoTune(dom.as_ptr(), disk_c.as_ptr(), params, n, live)
                    },
                )
            }
            LiveOp::Scheduler { param, value } => {
                let kind = if param.signed() {
                    sys::VIR_TYPED_PARAM_LLONG
                } else {
                    sys::VIR_TYPED_PARAM_ULLONG
                };
                with_params(
                    &[(param.libvirt_name(), kind, value.to_string())],
                    |params, n| unsafe {
                        // SAFETY: as above.
                        sys::virDomainSetSchedulerParametersFlags(dom.as_ptr(), params, n, live)
                    },
                )
            }
            LiveOp::OsMetadata { id } => dom.set_metadata(
                sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                Some(&format!("<libosinfo><os id=\"{id}\"/></libosinfo>")),
                Some("libosinfo"),
                Some("http://libosinfo.org/xmlns/libvirt/domain/1.0"),
                live,
            ),
            LiveOp::InterfaceNetwork { mac, network } => {
                let xml = dom.xml_desc(0).map_err(|e| LiveError {
                    unsupported: false,
                    msg: msg(e),
                })?;
                let dev = repointed_interface(&xml, mac.as_str(), network.as_str())?;
                dom.update_device_flags(&dev, sys::VIR_DOMAIN_AFFECT_LIVE)
            }
        };
        r.map_err(|e| {
            use virt::error::ErrorNumber::*;
            let unsupported = e.code().is_known_and(|c| {
                matches!(
                    c,
                    OperationUnsupported
                        | ConfigUnsupported
                        | ArgumentUnsupported
                        | OperationInvalid
                        | OperationFailed
                )
            });
            LiveError {
                unsupported,
                msg: msg(e),
            }
        })
    }

    /// Asks the guest to shut down (ACPI) and waits up to `timeout` for it to stop; then starts
    /// it again. A guest that does not stop in time is left running: never destroyed.
    pub fn restart(&self, name: &str, timeout: std::time::Duration) -> Result<(), LiveError> {
        let dom = self.domain(name)?;
        let err = |e: virt::error::Error| LiveError {
            unsupported: false,
            msg: msg(e),
        };
        dom.shutdown().map_err(err)?;
        let deadline = std::time::Instant::now() + timeout;
        while dom.is_active().map_err(err)? {
            if std::time::Instant::now() >= deadline {
                return Err(LiveError {
                    unsupported: false,
                    msg: format!(
                        "did not shut down within {} s; left running (pending changes still wait)",
                        timeout.as_secs()
                    ),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        dom.create().map_err(err)
    }

    /// Defines `xml` with schema validation ([`DefineMode::Schema`]) and returns the
    /// persistent XML libvirt stored.
    pub fn define(&self, name: &str, xml: &str) -> Result<String, LibvirtError> {
        self.define_with(name, xml, DefineMode::Schema)
    }

    /// Defines `xml`, checked as `mode` says, and returns the persistent XML libvirt stored
    /// (`virDomainGetXMLDesc(INACTIVE)` of the defined domain): the caller must check that
    /// every value it wrote is in it (with [`DefineMode::Parse`], that check is the only one
    /// that catches an element libvirt did not keep).
    pub fn define_with(
        &self,
        name: &str,
        xml: &str,
        mode: DefineMode,
    ) -> Result<String, LibvirtError> {
        let dom = self
            .conn
            .define_domain_xml_flags(xml, mode.flags())
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

    /// The named domain; `None` when no such domain exists.
    fn lookup(&self, name: &str) -> Result<Option<virt::domain::Domain>, LibvirtError> {
        match self.conn.lookup_domain_by_name(name) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.code().is(virt::error::ErrorNumber::NoDomain) => Ok(None),
            Err(e) => Err(LibvirtError::Read {
                name: name.to_string(),
                msg: msg(e),
            }),
        }
    }

    /// A pool of `connections` (at least 1) for [`DefinePool::run`] and
    /// [`DefinePool::define_all`]: this connection and `connections - 1` more read-write ones
    /// to the same URI, opened now (~1 ms each).
    pub fn define_pool(&self, connections: usize) -> Result<DefinePool<'_>, LibvirtError> {
        let extra = (1..connections.max(1))
            .map(|_| Hypervisor::open(&self.uri, false))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DefinePool {
            primary: self,
            extra,
        })
    }

    /// The named guest's live XML (`virDomainGetXMLDesc` with flags 0: the running
    /// definition when it runs) and whether it runs; `None` when no such domain exists.
    pub fn live_guest(&self, name: &str) -> Result<Option<LiveDomain>, LibvirtError> {
        let Some(dom) = self.lookup(name)? else {
            return Ok(None);
        };
        let read_err = |e| LibvirtError::Read {
            name: name.to_string(),
            msg: msg(e),
        };
        let active = dom.is_active().map_err(read_err)?;
        let xml = dom.xml_desc(0).map_err(read_err)?;
        Ok(Some(LiveDomain { active, xml }))
    }

    /// The named domain's UUID and persistent XML now; `None` when no such domain exists.
    pub fn current(&self, name: &str) -> Result<Option<(String, String)>, LibvirtError> {
        let Some(dom) = self.lookup(name)? else {
            return Ok(None);
        };
        let read_err = |e| LibvirtError::Read {
            name: name.to_string(),
            msg: msg(e),
        };
        let uuid = dom.uuid_string().map_err(read_err)?;
        let xml = dom
            .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
            .map_err(read_err)?;
        Ok(Some((uuid, xml)))
    }
}

/// libvirt networks: read (one lookup and one `virNetworkGetXMLDesc(INACTIVE)` per declared
/// network), define (`virNetworkDefineXML`: the persistent definition only; a running
/// network keeps its running configuration until it is restarted) and autostart. Networks are
/// never created, destroyed or undefined here.
impl Hypervisor {
    fn lookup_network(&self, name: &str) -> Result<Option<virt::network::Network>, LibvirtError> {
        match self.conn.lookup_network_by_name(name) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.code().is(virt::error::ErrorNumber::NoNetwork) => Ok(None),
            Err(e) => Err(net_err(name, "looking it up", e)),
        }
    }

    /// The named network's state; `None` when no such network is defined.
    pub fn network(&self, name: &str) -> Result<Option<NetworkObserved>, LibvirtError> {
        let Some(n) = self.lookup_network(name)? else {
            return Ok(None);
        };
        let read = |e| net_err(name, "reading it", e);
        let active = n.is_active().map_err(read)?;
        Ok(Some(NetworkObserved {
            xml: persistent_xml(&n, active).map_err(read)?,
            active,
            autostart: n.autostart().map_err(read)?,
        }))
    }

    /// The named networks' state; a name with no network maps to `None`.
    pub fn networks(
        &self,
        names: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Option<NetworkObserved>>, LibvirtError> {
        names
            .iter()
            .map(|n| Ok((n.clone(), self.network(n)?)))
            .collect()
    }

    /// Defines `xml` (a new network, or the new persistent definition of an existing one) and
    /// returns the definition libvirt stored, for the caller to verify.
    pub fn define_network(&self, name: &str, xml: &str) -> Result<String, LibvirtError> {
        let n = self
            .conn
            .define_network_xml(xml)
            .map_err(|e| net_err(name, "defining it", e))?;
        let active = n
            .is_active()
            .map_err(|e| net_err(name, "reading it back", e))?;
        persistent_xml(&n, active).map_err(|e| net_err(name, "reading it back", e))
    }

    /// Sets the network's autostart flag and returns the flag libvirt reports afterwards.
    pub fn set_network_autostart(&self, name: &str, on: bool) -> Result<bool, LibvirtError> {
        let n = self
            .lookup_network(name)?
            .ok_or_else(|| LibvirtError::Network {
                name: name.to_string(),
                step: "setting autostart",
                msg: "no such network".into(),
            })?;
        n.set_autostart(on)
            .map_err(|e| net_err(name, "setting autostart", e))?;
        n.autostart()
            .map_err(|e| net_err(name, "reading autostart back", e))
    }
}

/// The network's persistent definition: `VIR_NETWORK_XML_INACTIVE`; a driver without that
/// flag (libvirt's test driver) gives the current one, which is the persistent one only
/// while the network is not running.
fn persistent_xml(n: &virt::network::Network, active: bool) -> Result<String, virt::error::Error> {
    match n.xml_desc(sys::VIR_NETWORK_XML_INACTIVE) {
        Err(e) if !active && e.code().is(virt::error::ErrorNumber::InvalidArg) => n.xml_desc(0),
        r => r,
    }
}

fn net_err(name: &str, step: &'static str, e: virt::error::Error) -> LibvirtError {
    LibvirtError::Network {
        name: name.to_string(),
        step,
        msg: msg(e),
    }
}

/// A guest as it is now (for `verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveDomain {
    pub active: bool,
    /// The live XML (flags 0).
    pub xml: String,
}

/// How libvirt checks a guest definition before storing it ([`Hypervisor::define_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefineMode {
    /// `VIR_DOMAIN_DEFINE_VALIDATE`: libvirtd also validates the XML against its RelaxNG
    /// domain schema, and rejects it, defining nothing, when it does not conform. libvirt
    /// (9.0) loads and compiles the schema again on every call: ~9 ms of daemon CPU per
    /// define, about 8× the define itself (docs/benchmarks.md).
    #[default]
    Schema,
    /// Flags 0: libvirt's domain parser only. It still rejects XML that is not well-formed
    /// and bad values of every element it implements, but it drops elements and attributes it
    /// does not know without an error. Safe only for XML whose unowned parts are libvirt's own
    /// formatting (`virDomainGetXMLDesc(INACTIVE)`), when the caller checks the returned
    /// stored XML for every value it wrote (kvmtune's executor re-plans the guest against it).
    Parse,
}

impl DefineMode {
    fn flags(self) -> sys::virDomainDefineFlags {
        match self {
            DefineMode::Schema => sys::VIR_DOMAIN_DEFINE_VALIDATE,
            DefineMode::Parse => 0,
        }
    }
}

/// A few read-write connections to one URI that define independent guests concurrently
/// (from [`Hypervisor::define_pool`]).
///
/// One thread per connection; each takes the next guest and does its work on its own
/// connection (check it is as planned, define, read back, verify). libvirtd serves the
/// connections from its worker threads, so up to [`DefinePool::connections`] defines are in
/// flight: that overlaps the daemon's per-define work with the round trips and with the
/// caller's checks, and spreads the daemon's CPU over its cores. Every define is still one
/// atomic libvirt call: a guest is wholly redefined or untouched, whatever happens to the
/// others.
pub struct DefinePool<'a> {
    primary: &'a Hypervisor,
    extra: Vec<Hypervisor>,
}

impl DefinePool<'_> {
    /// How many defines can be in flight.
    pub fn connections(&self) -> usize {
        1 + self.extra.len()
    }

    /// Defines every `(name, xml)` of `jobs` as `mode` says: [`DefinePool::run`] with
    /// [`Hypervisor::define_with`] as the work, so `done(i, result)` gets the stored XML (or
    /// the error) of job `i`, for the caller to verify.
    pub fn define_all(
        &self,
        jobs: &[(&str, &str)],
        mode: DefineMode,
        done: impl FnMut(usize, Result<String, LibvirtError>) -> ControlFlow<()>,
    ) -> usize {
        self.run(
            jobs.len(),
            |i, hv| hv.define_with(jobs[i].0, jobs[i].1, mode),
            done,
        )
    }

    /// Runs `work(i, hv)` for every job `i` in `0..count`, on the pool's connections, and
    /// `done(i, result)` on the calling thread for each as it finishes (in completion order,
    /// not job order). `work` runs on a worker thread with that worker's connection: there it
    /// checks that the guest is still as planned ([`Hypervisor::current`]), defines it
    /// ([`Hypervisor::define_with`]) and may verify the stored XML (pure code); `done` reports
    /// the result and may make further calls on the primary connection (live changes).
    ///
    /// Each connection runs at most one job ahead of `done`: when `done` is called for a job,
    /// at most one more per connection has been started. When `done` returns
    /// [`ControlFlow::Break`], no further job is taken; those under way (at most one per
    /// connection) finish and are still reported. Returns how many jobs were reported
    /// (`count` unless stopped). With one connection the jobs run in order on the calling
    /// thread, one at a time.
    pub fn run<T: Send>(
        &self,
        count: usize,
        work: impl Fn(usize, &Hypervisor) -> T + Sync,
        mut done: impl FnMut(usize, T) -> ControlFlow<()>,
    ) -> usize {
        if self.extra.is_empty() || count < 2 {
            let mut reported = 0;
            for i in 0..count {
                reported += 1;
                if done(i, work(i, self.primary)).is_break() {
                    break;
                }
            }
            return reported;
        }
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        // A rendezvous channel: a worker hands over its result before it takes the next job,
        // so the work runs at most one job per connection ahead of `done`.
        let (tx, rx) = std::sync::mpsc::sync_channel(0);
        std::thread::scope(|s| {
            let conns = std::iter::once(self.primary).chain(self.extra.iter());
            for hv in conns.take(count) {
                let (tx, next, stop, work) = (tx.clone(), &next, &stop, &work);
                s.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break;
                        }
                        if tx.send((i, work(i, hv))).is_err() {
                            break;
                        }
                    }
                });
            }
            // The workers hold the only senders left: the loop ends when they have all exited.
            drop(tx);
            let mut reported = 0;
            for (i, r) in rx {
                reported += 1;
                if done(i, r).is_break() {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            reported
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libvirt's in-process test driver: every connection to `test:///default` in this
    /// process shares one hypervisor with one running domain, `test`.
    fn test_hv() -> Hypervisor {
        Hypervisor::open("test:///default", false).expect("test:///default")
    }

    /// A copy of the driver's `test` domain named `name`, with a UUID made from `id` (so that
    /// re-defining it updates the same domain).
    fn guest_xml(hv: &Hypervisor, name: &str, id: u64) -> String {
        let base = hv.conn.lookup_domain_by_name("test").unwrap();
        let xml = base.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE).unwrap();
        let start = xml.find("<uuid>").unwrap();
        let end = xml.find("</uuid>").unwrap() + "</uuid>".len();
        format!(
            "{}<uuid>6465666e-706f-4f6c-8000-{id:012x}</uuid>{}",
            &xml[..start],
            &xml[end..]
        )
        .replace("<name>test</name>", &format!("<name>{name}</name>"))
    }

    /// `n` guests `<prefix>-<i>` with distinct UUIDs from `id` on: (name, XML).
    fn guests(hv: &Hypervisor, prefix: &str, id: u64, n: u64) -> Vec<(String, String)> {
        (0..n)
            .map(|i| {
                let name = format!("{prefix}-{i}");
                let xml = guest_xml(hv, &name, id + i);
                (name, xml)
            })
            .collect()
    }

    #[test]
    fn pool_defines_every_job_once_and_reads_it_back() {
        let hv = test_hv();
        const ID: u64 = 0x100;
        let guests = guests(&hv, "definepool-all", ID, 25);
        let jobs: Vec<(&str, &str)> = guests
            .iter()
            .map(|(n, x)| (n.as_str(), x.as_str()))
            .collect();
        for connections in [1, 3] {
            let pool = hv.define_pool(connections).unwrap();
            assert_eq!(pool.connections(), connections);
            let mut seen = vec![0; jobs.len()];
            let reported = pool.define_all(&jobs, DefineMode::Parse, |i, r| {
                let stored = r.unwrap();
                assert!(stored.contains(&format!("<name>{}</name>", jobs[i].0)));
                seen[i] += 1;
                ControlFlow::Continue(())
            });
            assert_eq!(reported, jobs.len());
            assert!(seen.iter().all(|&k| k == 1), "{seen:?}");
        }
    }

    #[test]
    fn pool_stops_taking_jobs_on_break() {
        let hv = test_hv();
        const ID: u64 = 0x200;
        let guests = guests(&hv, "definepool-stop", ID, 40);
        let jobs: Vec<(&str, &str)> = guests
            .iter()
            .map(|(n, x)| (n.as_str(), x.as_str()))
            .collect();
        for connections in [1, 2, 4] {
            let pool = hv.define_pool(connections).unwrap();
            let mut calls = 0;
            let reported = pool.define_all(&jobs, DefineMode::Parse, |_, r| {
                r.unwrap();
                calls += 1;
                ControlFlow::Break(())
            });
            assert_eq!(reported, calls);
            // The break stops new jobs; at most one per connection was already under way.
            assert!(reported <= 1 + connections, "{reported} with {connections}");
        }
    }

    #[test]
    fn run_checks_on_the_workers_connection_before_defining() {
        let hv = test_hv();
        const ID: u64 = 0x400;
        let names: Vec<String> = (0..12).map(|i| format!("definepool-run-{i}")).collect();
        let xmls: Vec<String> = (names.iter().enumerate())
            .map(|(i, n)| guest_xml(&hv, n, ID + i as u64))
            .collect();
        let pool = hv.define_pool(3).unwrap();
        let mut results = vec![None; names.len()];
        let reported = pool.run(
            names.len(),
            |i, hv| -> Result<String, String> {
                // Odd jobs are refused before their define, as a stale-plan check would.
                if i % 2 == 1 {
                    return Err("refused".into());
                }
                hv.define_with(&names[i], &xmls[i], DefineMode::Parse)
                    .map_err(|e| e.to_string())
            },
            |i, r| {
                results[i] = Some(r);
                ControlFlow::Continue(())
            },
        );
        assert_eq!(reported, names.len());
        for (i, r) in results.into_iter().enumerate() {
            let r = r.expect("every job reported");
            assert_eq!(r.is_ok(), i % 2 == 0, "{i}: {r:?}");
            assert_eq!(hv.current(&names[i]).unwrap().is_some(), i % 2 == 0);
        }
    }

    #[test]
    fn only_schema_mode_rejects_an_element_libvirt_does_not_know() {
        let hv = test_hv();
        let xml = guest_xml(&hv, "definepool-unknown", 0x300)
            .replace("</domain>", "<bogus-element/></domain>");
        let err = hv
            .define_with("definepool-unknown", &xml, DefineMode::Schema)
            .unwrap_err();
        assert!(matches!(err, LibvirtError::Define { .. }), "{err}");
        assert!(
            hv.current("definepool-unknown").unwrap().is_none(),
            "nothing defined"
        );
        // Without the schema, libvirt defines it and drops what it does not know: the caller's
        // read-back check is what must catch such a loss.
        let stored = hv
            .define_with("definepool-unknown", &xml, DefineMode::Parse)
            .unwrap();
        assert!(!stored.contains("bogus-element"));
    }
}
