//! `kvmtune apply FILES` and `kvmtune apply plan.json`.
//!
//! Invariant: plans under the lock (a plan made while another apply ran would be stale),
//! backs up before changing anything, and applies exactly the plan's actions; a saved plan
//! is applied only when it parses into the typed blueprint, every action is one its
//! configuration asks for, and nothing it was made from moved.

use std::path::Path;

use anyhow::Context;

use super::{approve, connect, execute, hostname, load, lock, nothing_to_do, observe, origin};
use super::{show, write_pin_lock, Exit};
use crate::cli::{Cli, Files, Format, Locking};
use crate::plan::PlanOptions;
use crate::saved::SavedPlan;

pub struct Args {
    pub auto_approve: bool,
    pub format: Format,
    pub opts: PlanOptions,
}

pub fn run(cli: &Cli, files: &Files, locking: &Locking, a: Args) -> anyhow::Result<Exit> {
    if let [one] = files.files.as_slice() {
        if files.host_config.is_none() && one.extension().is_some_and(|x| x == "json") {
            return saved(cli, one, locking, a.format);
        }
    }
    let (d, _) = match load(cli, files) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let _lock = lock(cli, locking)?;
    let hv = connect(cli, &d, false)?;
    let obs = observe(cli, &d, hv.as_ref(), false)?;
    let p = crate::pipeline::plan_with(&d, &obs, a.opts);
    show(&p, a.format)?;
    if p.has_errors() {
        if a.format == Format::Json {
            out!("{}", crate::render::plan_json(&p));
        }
        super::plan_errors_to_stderr(&p);
        say!("error: the plan has errors; nothing was applied");
        return Ok(Exit::Failure);
    }
    if p.actions.is_empty() {
        write_pin_lock(cli, &p)?;
        return nothing_to_do(a.format);
    }
    if !a.auto_approve && !approve("Apply these changes?")? {
        return Ok(Exit::Failure);
    }
    execute(cli, locking, "apply", &p, &d, hv.as_ref(), a.format)
}

/// `kvmtune apply plan.json`.
fn saved(cli: &Cli, file: &Path, l: &Locking, format: Format) -> anyhow::Result<Exit> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let refuse = |e: &dyn std::fmt::Display| {
        say!("error: {}: {e}", file.display());
        Ok(Exit::Failure)
    };
    let mut s = match SavedPlan::from_json(&text) {
        Ok(s) => s,
        Err(e) => return refuse(&e),
    };
    if let Err(e) = s.check_origin(&origin(cli)) {
        return refuse(&e);
    }
    let d = match s.prepare(&hostname(cli)) {
        Ok(d) => d,
        Err(e) => return refuse(&e),
    };
    let _lock = lock(cli, l)?;
    let hv = connect(cli, &d, false)?;
    let obs = observe(cli, &d, hv.as_ref(), false)?;
    if let Err(e) = s.check_current(&obs, &d) {
        return refuse(&e);
    }
    show(&s.plan, format)?;
    if s.plan.actions.is_empty() {
        write_pin_lock(cli, &s.plan)?;
        return nothing_to_do(format);
    }
    execute(cli, l, "apply", &s.plan, &d, hv.as_ref(), format)
}
