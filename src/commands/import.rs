//! `kvmtune import`: the current state as configuration.
//!
//! Invariant: read-only (read-only libvirt connection).

use super::{hostname, json, Exit};
use crate::cli::{Cli, ImportFormat};
use crate::libvirt::Hypervisor;

pub fn run(cli: &Cli, guests: &[String], host: bool, format: ImportFormat) -> anyhow::Result<Exit> {
    let req = crate::import::ImportRequest {
        all_guests: guests.is_empty() && !host,
        host: host || guests.is_empty(),
        guests: guests.to_vec(),
    };
    let needs_hv = req.all_guests || !req.guests.is_empty();
    let hv = if needs_hv {
        Some(Hypervisor::open(&cli.connect, true)?)
    } else {
        None
    };
    let (cfg, notes) = crate::import::import_with_notes(&cli.root, hv.as_ref(), &req)?;
    for n in &notes {
        say!("note: {n}");
    }
    match format {
        ImportFormat::Yaml => {
            let origin = format!(
                "from {} ({}) at {}",
                hostname(cli),
                cli.connect,
                crate::saved::utc(crate::saved::now_secs()).0
            );
            out!("{}", crate::import::to_yaml(&cfg, Some(&origin)));
        }
        ImportFormat::Json => out!("{}", json(&cfg)?),
    }
    Ok(Exit::Success)
}
