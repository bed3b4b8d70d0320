//! `kvmtune perf GUEST`: a running guest's VM exits by reason, with the guide's advice.
//!
//! Invariant: changes nothing (a read-only libvirt connection; perf only reads tracepoints
//! and writes to kvmtune's own temporary directory); every missing prerequisite is named
//! before perf runs (exit 1); exit 2 when the guide has advice or nothing was recorded.

use super::{json, Exit};
use crate::cli::{Cli, Format, PerfArgs};
use crate::libvirt::Hypervisor;
use crate::perf::preflight::{self, GuestFact};
use crate::perf::runner::GuestSymbols;
use crate::perf::Request;

fn request(args: &PerfArgs) -> Request {
    Request {
        guest: args.guest.clone(),
        secs: args.duration,
        symbols: match (&args.guest_kallsyms, &args.guest_modules) {
            (Some(k), Some(m)) => Some(GuestSymbols {
                kallsyms: k.clone(),
                modules: m.clone(),
            }),
            _ => None,
        },
    }
}

fn show_missing(guest: &str, missing: &[preflight::Missing], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Human => {
            for m in missing {
                say!("error: {m}");
            }
        }
        Format::Json => {
            let items: Vec<serde_json::Value> = missing
                .iter()
                .map(|m| {
                    let mut v = serde_json::to_value(m).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("message".into(), m.to_string().into());
                    }
                    v
                })
                .collect();
            out!(
                "{}",
                json(&serde_json::json!({
                    "format_version": 1,
                    "guest": guest,
                    "missing": items,
                }))?
            );
        }
    }
    Ok(())
}

pub fn run(cli: &Cli, args: &PerfArgs) -> anyhow::Result<Exit> {
    let req = request(args);
    let hv = Hypervisor::open(&cli.connect, true)?;
    let obs = crate::perf::observe(&cli.root, &hv, &req)?;
    let missing = preflight::missing(&obs.facts);
    let (Some(perf), GuestFact::Running { pid }, true) =
        (&obs.facts.perf, &obs.facts.guest, missing.is_empty())
    else {
        show_missing(req.guest.as_str(), &missing, args.format)?;
        return Ok(Exit::Failure);
    };
    if args.format == Format::Human {
        say!(
            "recording guest {} (QEMU pid {pid}) for {} s ...",
            req.guest,
            req.secs.get()
        );
    }
    let s = crate::perf::measure(perf, *pid, &req, &obs)?;
    match args.format {
        Format::Human => out!("{}", s.text()),
        Format::Json => out!("{}", json(&s)?),
    }
    Ok(if s.exits.total == 0 || !s.advice.is_empty() {
        Exit::Attention
    } else {
        Exit::Success
    })
}
