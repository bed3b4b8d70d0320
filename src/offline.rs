//! `render`: tune a domain XML file without a hypervisor.
//!
//! Invariant: the output is exactly what `apply` would define for that guest: the same editing
//! code ([`crate::domain::plan_guest`]) with the same inputs (desired guest, XML, the host's
//! default huge page size). Everything outside the owned elements is preserved byte for byte,
//! and rendering the output again yields the same bytes. Nothing is read but the given inputs.

use crate::config::source::dotted;
use crate::desired::{Desired, DomainName};
use crate::domain::plan_guest;
use crate::units::PageSize;

/// Why a guest could not be rendered. Issues carry their YAML location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("no guest `{name}` in the configuration (it declares: {declared})")]
    UnknownGuest { name: String, declared: String },
    #[error("{}", .0.join("\n"))]
    Issues(Vec<String>),
}

/// `d` with guest `name`'s automatic pins resolved offline: against the host topology, the
/// lock file's pins, and this XML (other guests' pins are not known without a hypervisor,
/// except through the lock file). `d` itself when the guest does not use `auto`.
pub fn resolve_auto(
    d: &Desired,
    name: &str,
    xml: &str,
    topology: Option<crate::topology::HostTopology>,
    lock: Option<crate::model::lock::Lock>,
) -> Result<Desired, RenderError> {
    let Some((key, g)) = d.guests.iter().find(|(k, _)| k.as_str() == name) else {
        return Ok(d.clone());
    };
    if g.auto_pin.is_none() {
        return Ok(d.clone());
    }
    let mut only = d.clone();
    only.guests.retain(|k, _| k == key);
    let mut obs = crate::observe::Observed {
        topology,
        lock,
        ..Default::default()
    };
    obs.guests.insert(
        name.to_string(),
        Some(crate::libvirt::GuestObserved {
            uuid: String::new(),
            active: false,
            xml: xml.to_string(),
            live_xml: None,
        }),
    );
    let res = crate::pinning::resolve(&only, &obs);
    if let Some(e) = res.errors.get(key) {
        let mut k = g.key_path.clone();
        k.extend(["cputune", "vcpupin"].map(String::from));
        let loc = d
            .sources
            .find(&k)
            .map(|l| format!("{l}: "))
            .unwrap_or_default();
        return Err(RenderError::Issues(vec![format!(
            "{loc}{}: guest {name}: automatic pinning: {e}",
            dotted(&k)
        )]));
    }
    Ok(res.view(d))
}

/// The tuned XML of guest `name` (its declared settings applied to `xml`).
pub fn render_guest(
    d: &Desired,
    name: &str,
    xml: &str,
    host_default_page: Option<PageSize>,
) -> Result<String, RenderError> {
    let unknown = || RenderError::UnknownGuest {
        name: name.to_string(),
        declared: if d.guests.is_empty() {
            "no guests".into()
        } else {
            d.guests
                .keys()
                .map(DomainName::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        },
    };
    let key = DomainName::new(name).map_err(|_| unknown())?;
    let g = d.guests.get(&key).ok_or_else(unknown)?;
    plan_guest(g, xml, host_default_page)
        .map(|p| p.new_xml)
        .map_err(|issues| {
            RenderError::Issues(
                issues
                    .into_iter()
                    .map(|i| {
                        let loc = d
                            .sources
                            .find(&i.key)
                            .map(|l| format!("{l}: "))
                            .unwrap_or_default();
                        format!("{loc}{}: guest {name}: {}", dotted(&i.key), i.issue)
                    })
                    .collect(),
            )
        })
}
