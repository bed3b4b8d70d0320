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
