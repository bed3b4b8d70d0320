//! `kvmtune render`: one guest's tuned XML, without a hypervisor.
//!
//! Invariant: the output is what `apply` would define (same editor, same inputs); `auto`
//! pins are resolved against the root's topology and the lock file.

use std::path::Path;

use anyhow::Context;

use super::Exit;
use crate::cli::{Cli, Files};

pub fn run(cli: &Cli, guest: &str, xml: &Path, files: &Files) -> anyhow::Result<Exit> {
    let (d, _) = match super::load(cli, files) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let text =
        std::fs::read_to_string(xml).with_context(|| format!("reading {}", xml.display()))?;
    let page = crate::host::default_hugepage(&cli.root)
        .with_context(|| format!("reading proc/meminfo under {}", cli.root.display()))?;
    let uses_auto = d
        .guests
        .iter()
        .any(|(k, g)| k.as_str() == guest && g.auto_pin.is_some());
    let d = if uses_auto {
        let topology = crate::topology::HostTopology::from_sysfs(&cli.root)
            .with_context(|| format!("reading the CPU topology under {}", cli.root.display()))?;
        let lock = match &cli.lock_file {
            Some(p) => crate::host::files::read_opt(p)
                .with_context(|| format!("reading {}", p.display()))?
                .map(|t| crate::observe::parse_lock(p, &t))
                .transpose()
                .map_err(|e| anyhow::anyhow!("lock file {}: {e}", p.display()))?,
            None => None,
        };
        match crate::offline::resolve_auto(&d, guest, &text, topology, lock) {
            Ok(d) => d,
            Err(e) => {
                say!("error: {e}");
                return Ok(Exit::Failure);
            }
        }
    } else {
        d
    };
    match crate::offline::render_guest(&d, guest, &text, page) {
        Ok(out) => {
            out!("{out}");
            Ok(Exit::Success)
        }
        Err(e) => {
            say!("error: {e}");
            Ok(Exit::Failure)
        }
    }
}
