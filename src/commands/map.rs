//! `kvmtune map`: the host's CPUs with the pools and the guests on them, as the plan would
//! leave them (`--current`: as they are now), as text, SVG or JSON.
//!
//! Invariant: never changes anything (read-only libvirt connection, plan only computed);
//! exit 0 without conflicts, 2 with conflicts, 1 on an error or a plan with errors (the map
//! is still drawn, its notes say what could not be planned).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;

use super::{load, observe, style, Exit};
use crate::cli::{Cli, Files, MapFormat};
use crate::libvirt::Hypervisor;
use crate::render::map::{self, MapInput, OtherGuest};

pub fn run(cli: &Cli, files: &Files, format: MapFormat, current: bool) -> anyhow::Result<Exit> {
    let (d, _) = match load(cli, files) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    // Always connected: the map shows every guest, declared or not.
    let hv = Hypervisor::open(&cli.connect, true)?;
    let mut obs = observe(cli, &d, Some(&hv), true)?;
    if obs.topology.is_none() {
        obs.topology = crate::topology::HostTopology::from_capabilities(&hv.capabilities()?);
    }
    let declared: BTreeSet<String> = d.guests.keys().map(|n| n.as_str().to_string()).collect();
    // `other_guest_xml` lists the persistent definition, then the running one when the
    // domain runs: the last is what is in effect.
    let others: BTreeMap<String, OtherGuest> = hv
        .other_guest_xml(&declared)
        .context("reading the guests not declared")?
        .into_iter()
        .filter_map(|(name, xmls)| {
            let running = xmls.len() > 1;
            let xml = xmls.into_iter().last()?;
            Some((name, OtherGuest { xml, running }))
        })
        .collect();
    let plan = (!current).then(|| crate::pipeline::plan(&d, &obs));
    let hostname = super::hostname(cli);
    let m = map::build(&MapInput {
        desired: &d,
        observed: &obs,
        plan: plan.as_ref(),
        others: &others,
        hostname: &hostname,
    })?;
    match format {
        MapFormat::Text => out!("{}", map::text::render(&m, style())),
        MapFormat::Svg => out!("{}", map::svg::render(&m)),
        MapFormat::Json => out!("{}", m.json()),
    }
    if let Some(p) = &plan {
        super::plan_errors_to_stderr(p);
        if p.has_errors() {
            return Ok(Exit::Failure);
        }
    }
    Ok(if m.has_conflicts() {
        Exit::Attention
    } else {
        Exit::Success
    })
}
