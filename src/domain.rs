//! Domain XML: reading kvmtune's owned settings and editing them in place, one setting unit
//! at a time ([`settings`]).
//!
//! Invariant: [`plan_guest`] is a pure function of (desired, domain XML, host default page size).
//! Each unit compares values by meaning (CPU sets, sizes, libvirt defaults such as
//! `placement='static'`, `mode='strict'`, `dies='1'`) and edits only the elements and
//! attributes of declared settings; every other byte of the XML is preserved by
//! [`crate::xmltree`]. Applying its output XML and planning again yields no changes.

pub mod edit;
pub mod import;
pub mod pins;
pub mod running;
pub mod settings;

use crate::config::source::KeyPath;
use crate::units::PageSize;
use crate::xmltree::{Document, XmlError};

pub use settings::memtune::show_kib;
pub use settings::GuestKey;

/// One owned setting that differs. Values are canonical text; `None` means "not set".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    pub key: GuestKey,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A declared setting that cannot be planned against this domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestIssue {
    #[error("domain XML does not parse: {0}")]
    Xml(String),
    #[error("no disk with target dev `{0}` in this guest (it has: {1})")]
    NoDisk(String, String),
    #[error("no interface with MAC {0} in this guest (it has: {1})")]
    NoInterface(String, String),
    #[error("vCPU index {0} is out of range: the guest has {1} vCPUs")]
    VcpuOutOfRange(u32, u32),
    #[error("{0}")]
    NotOnHost(String),
    #[error("interface {0} is of type `{1}`: libvirt sets an MTU only on network, bridge, ethernet and vhostuser interfaces")]
    MtuUnsupported(String, String),
    #[error("vcpu count {0} does not match the guest's CPU topology ({1} vCPUs); declare cpu.topology too")]
    CountVsTopology(u32, u64),
    #[error("topology gives {0} vCPUs but the guest has {1}")]
    TopologyMismatch(u64, u32),
    #[error("vcpu.current {0} is above the guest's vCPU count {1}")]
    CurrentAboveCount(u32, u32),
    #[error("interface {0} is model {1}: driver and queues need model virtio (libvirt drops them on other models)")]
    NicNotVirtio(String, String),
    #[error("interface {0} is of type `hostdev` (a passed-through host device, which the guest drives itself): {1} cannot be set on it (libvirt refuses or drops them)")]
    NicHostdev(String, String),
    #[error("the guest's vcpu count {0} is above {max}, the most QEMU accepts", max = settings::vcpu::MAX_VCPUS)]
    TooManyVcpus(u32),
    #[error("iothreads: {0} removes I/O threads still in use: {1}")]
    IothreadInUse(u32, String),
    #[error("{0}")]
    Realtime(String),
}

/// A [`GuestIssue`] with the key path it is about (for locating it in the YAML).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedIssue {
    pub key: KeyPath,
    pub issue: GuestIssue,
}

/// What planning one guest produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPlan {
    pub changes: Vec<SettingChange>,
    /// The edited XML (equal to the input when there are no changes).
    pub new_xml: String,
}

/// Plans one guest: which declared settings differ from `xml`, and the edited XML.
pub fn plan_guest(
    d: &settings::GuestDesired,
    xml: &str,
    host_default_page: Option<PageSize>,
) -> Result<GuestPlan, Vec<LocatedIssue>> {
    let doc = Document::parse(xml).map_err(|e: XmlError| {
        vec![LocatedIssue {
            key: d.key_path.clone(),
            issue: GuestIssue::Xml(e.to_string()),
        }]
    })?;
    let vcpus = d.vcpu_count.or(settings::vcpu::observed_count(&doc));
    let mut ed = edit::Editor::new(doc, &d.key_path, vcpus, host_default_page);
    for s in settings::SETTINGS {
        s.edit(&mut ed, d);
    }
    if !ed.issues.is_empty() {
        return Err(ed.issues);
    }
    let new_xml = if ed.changes.is_empty() {
        xml.to_string()
    } else {
        ed.doc.to_xml()
    };
    Ok(GuestPlan {
        changes: ed.changes,
        new_xml,
    })
}

/// The `<name>` and `<uuid>` of a domain XML (UUID lowercase); `None` when it does not parse
/// or either is missing.
pub fn identity(xml: &str) -> Option<(String, String)> {
    let doc = Document::parse(xml).ok()?;
    let root = doc.root();
    if doc.name(root) != "domain" {
        return None;
    }
    let name = doc.text(doc.child(root, "name")?).trim().to_string();
    let uuid = doc
        .text(doc.child(root, "uuid")?)
        .trim()
        .to_ascii_lowercase();
    Some((name, uuid))
}
