//! `kvmtune verify`: is the tuning in effect on the running guests?
//!
//! Invariant: read-only (read-only libvirt connection, a plan that is never applied); exit 2
//! when a checked setting differs. The one write is `--textfile PATH`, a path the operator
//! names outside `--root` (node_exporter's textfile directory): replaced atomically (temp
//! file beside it, created exclusively without following symlinks, renamed over it), mode
//! 0644, refused when PATH itself is a symlink or not a regular file.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;

use super::{connect, load, observe, style, Exit};
use crate::cli::{Cli, Files, VerifyFormat};
use crate::libvirt::Hypervisor;
use crate::metrics::{Inputs, NoFindings};

pub fn run(
    cli: &Cli,
    files: &Files,
    format: VerifyFormat,
    textfile: Option<&Path>,
) -> anyhow::Result<Exit> {
    if format == VerifyFormat::Prometheus || textfile.is_some() {
        if format == VerifyFormat::Json {
            say!("error: --textfile writes Prometheus metrics: use --format prometheus (or no --format)");
            return Ok(Exit::Failure);
        }
        return metrics(cli, files, textfile);
    }
    let (d, _) = match load(cli, files) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let hv = Hypervisor::open(&cli.connect, true)?;
    let report = crate::verify::verify(&d, &cli.root, &hv)?;
    match format {
        VerifyFormat::Json => out!("{}", crate::render::verify_json(&report)),
        _ => out!("{}", crate::render::verify_text(&report, style())),
    }
    Ok(if report.holds() {
        Exit::Success
    } else {
        Exit::Attention
    })
}

/// What verify and a read-only plan say, as metrics. A part that cannot be read is said on
/// stderr and left out (`kvmtune_verify_success 0`, exit 1); the rest is still written, so a
/// textfile never goes stale silently.
fn metrics(cli: &Cli, files: &Files, textfile: Option<&Path>) -> anyhow::Result<Exit> {
    let start = Instant::now();
    let mut ok = true;
    let mut failed = |what: &str, e: &dyn std::fmt::Display| {
        say!("error: {what}: {e:#}");
        ok = false;
    };
    let last = crate::state::last_apply(&cli.root)
        .map_err(|e| failed("reading the apply records", &e))
        .ok()
        .flatten();
    // A configuration that does not load is said by `load`.
    let d = load(cli, files).ok().map(|(d, _)| d);
    let mut plan = None;
    let mut report = None;
    if let Some(d) = &d {
        // Isolation checks look at every guest, declared or not: they need libvirt too.
        let hv = connect(cli, d, true).and_then(|hv| match hv {
            None if d.host.cpu_pool.isolate.any() => {
                Ok(Some(Hypervisor::open(&cli.connect, true)?))
            }
            hv => Ok(hv),
        });
        match hv {
            Err(e) => failed("connecting to the hypervisor", &e),
            Ok(hv) => {
                match observe(cli, d, hv.as_ref(), false) {
                    Ok(obs) => plan = Some(crate::pipeline::plan(d, &obs)),
                    Err(e) => failed("planning", &e),
                }
                let r = match &hv {
                    Some(hv) => crate::verify::verify(d, &cli.root, hv),
                    None => Ok(crate::verify::Report::new(Vec::new())),
                };
                match r {
                    Ok(r) => report = Some(r),
                    Err(e) => failed("verifying the running guests", &e),
                }
            }
        }
    }
    let ok = ok && d.is_some();
    let isolation: &dyn crate::metrics::IsolationFindings = match &report {
        Some(r) => r,
        None => &NoFindings,
    };
    let m = crate::metrics::collect(&Inputs {
        desired: d.as_ref(),
        plan: plan.as_ref(),
        verify: report.as_ref(),
        last_apply: last.as_ref(),
        isolation,
        success: ok,
        duration_secs: Some(start.elapsed().as_secs_f64()),
    });
    let text = m.render();
    match textfile {
        Some(p) => write_textfile(p, &text)?,
        None => out!("{text}"),
    }
    let drifts = m
        .families
        .get("kvmtune_settings_drifting")
        .is_some_and(|f| f.series.values().any(|v| *v > 0.0));
    Ok(if !ok {
        Exit::Failure
    } else if drifts {
        Exit::Attention
    } else {
        Exit::Success
    })
}

/// Replaces `path` atomically with `text` (mode 0644); refuses a symlink or a non-regular
/// file at `path`, a missing directory and a name node_exporter would not read.
fn write_textfile(path: &Path, text: &str) -> anyhow::Result<()> {
    let shown = path.display();
    if !path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".prom") && !n.starts_with('.'))
    {
        anyhow::bail!(
            "--textfile {shown}: node_exporter's textfile collector reads only files named *.prom"
        );
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        anyhow::bail!("--textfile {shown}: {} is not a directory", dir.display());
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            anyhow::bail!("--textfile {shown}: is a symlink: refusing to replace it")
        }
        Ok(m) if !m.file_type().is_file() => {
            anyhow::bail!("--textfile {shown}: not a regular file: refusing to replace it")
        }
        _ => {}
    }
    crate::host::files::atomic_replace(path, text, 0o644)
        .with_context(|| format!("writing --textfile {shown}"))
}
