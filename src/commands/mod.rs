//! The command layer: one file per `kvmtune` command, each returning a typed [`Exit`].
//!
//! Invariant: this is the only layer that prints, prompts or maps errors to exit codes;
//! everything it calls is library code below it. `main.rs` only parses arguments and calls
//! [`run`].

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::cli::{Cli, Command, Files, Format, Locking};
use crate::desired::Desired;
use crate::libvirt::Hypervisor;
use crate::render::Style;
use crate::{config, observe, saved, state};

/// Whether standard output was closed by its reader (EPIPE): later output is dropped quietly.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes command output to stdout. A reader that went away (`| head -1`, EPIPE) is not an
/// error: the command carries on quietly (an apply still finishes and writes its state
/// files) and later output is dropped. Any other failure (ENOSPC on `>/dev/full`) is.
pub fn emit(s: &str) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering;
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

/// Writes a message to stderr; a closed stderr is ignored (there is nowhere left to say it).
pub fn note(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{s}");
}

/// `print!` through [`emit`].
macro_rules! out {
    ($($t:tt)*) => { $crate::commands::emit(&format!($($t)*))? };
}
/// `eprintln!` through [`note`].
macro_rules! say {
    ($($t:tt)*) => { $crate::commands::note(&format!($($t)*)) };
}

mod apply;
mod check;
mod import;
mod info;
mod map;
mod perf;
mod plan;
mod render;
mod report;
mod rollback;
mod validate;
mod verify;

/// How a command ended (the README's exit-code table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; nothing wrong.
    Success,
    /// 1: bad input, an error, or a change that failed.
    Failure,
    /// 2: changes pending (`plan --detailed-exitcode`), a setting differs (`verify`),
    /// warnings (`check`).
    Attention,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Attention => 2,
        }
    }
}

/// Runs the parsed command.
pub fn run(cli: &Cli) -> anyhow::Result<Exit> {
    let needs_root = !matches!(
        cli.command,
        Command::Schema { .. }
            | Command::Completions { .. }
            | Command::Man
            | Command::Report { .. }
    );
    if needs_root && !cli.root.is_dir() {
        say!(
            "error: --root {}: not a directory (it must hold the host's /proc, /sys and /etc)",
            cli.root.display()
        );
        return Ok(Exit::Failure);
    }
    match &cli.command {
        Command::Schema { saved_plan } => info::schema(*saved_plan),
        Command::Completions { shell } => info::completions(*shell),
        Command::Man => info::man(),
        Command::Perf(args) => perf::run(cli, args),
        Command::Check { files, format } => check::run(cli, files, *format),
        Command::Render { guest, xml, files } => render::run(cli, guest, xml, files),
        Command::Verify {
            files,
            format,
            textfile,
        } => verify::run(cli, files, *format, textfile.as_deref()),
        Command::Report { plans, format } => report::run(plans, *format),
        Command::Validate { files, format } => validate::run(cli, files, *format),
        Command::Map {
            files,
            format,
            current,
        } => map::run(cli, files, *format, *current),
        Command::Plan {
            files,
            format,
            diff,
            detailed_exitcode,
            out,
            restart_guests,
            shutdown_timeout,
        } => plan::run(
            cli,
            files,
            plan::Args {
                format: *format,
                diff: *diff,
                detailed_exitcode: *detailed_exitcode,
                out: out.as_deref(),
                opts: options(*restart_guests, *shutdown_timeout),
            },
        ),
        Command::Apply {
            files,
            locking,
            auto_approve,
            format,
            restart_guests,
            shutdown_timeout,
        } => apply::run(
            cli,
            files,
            locking,
            apply::Args {
                auto_approve: *auto_approve,
                format: *format,
                opts: options(*restart_guests, *shutdown_timeout),
            },
        ),
        Command::Import {
            guests,
            host,
            format,
        } => import::run(cli, guests, *host, *format),
        Command::Rollback {
            to,
            list,
            auto_approve,
            locking,
            format,
        } => rollback::run(cli, to.as_deref(), *list, *auto_approve, locking, *format),
    }
}

fn options(restart_guests: bool, shutdown_timeout: u64) -> crate::plan::PlanOptions {
    crate::plan::PlanOptions {
        restart_guests,
        shutdown_timeout_secs: shutdown_timeout,
    }
}

fn style() -> Style {
    Style {
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

fn hostname(cli: &Cli) -> String {
    cli.hostname.clone().unwrap_or_else(saved::hostname)
}

fn origin(cli: &Cli) -> saved::Origin {
    saved::Origin {
        hostname: hostname(cli),
        uri: cli.connect.clone(),
        root: cli.root.display().to_string(),
    }
}

/// The files to read for this host, and the fleet directory's selection when there is one.
fn paths(
    cli: &Cli,
    files: &Files,
) -> Result<(Vec<PathBuf>, Option<config::select::Layout>), config::ConfigErrors> {
    let mut p = files.files.clone();
    let layout = match &files.host_config {
        Some(dir) => Some(config::select::layout(dir, &hostname(cli), &files.groups)?),
        None => None,
    };
    if let Some(l) = &layout {
        p.extend(l.paths.iter().cloned());
    }
    Ok((p, layout))
}

type Loaded = (
    Desired,
    Vec<config::source::SourceFile>,
    Option<config::select::Unselected>,
);

/// Loads the configuration for this host, with the files as read, and whether no file
/// selects this host; prints why it cannot.
fn load_quiet(cli: &Cli, files: &Files) -> Result<Loaded, Exit> {
    let fail = |e: &dyn std::fmt::Display| {
        say!("{e}");
        Exit::Failure
    };
    let (p, layout) = paths(cli, files).map_err(|e| fail(&e))?;
    let here = hostname(cli);
    let (d, sources) = if p.is_empty() && layout.is_some() {
        // A fleet directory with nothing for this host: nothing is managed (and said so).
        (Desired::default(), Vec::new())
    } else {
        crate::desired::read_for(&p, Some(&here)).map_err(|e| fail(&e))?
    };
    let unselected = config::select::unselected(&sources, layout.as_ref(), &here);
    Ok((d, sources, unselected))
}

/// [`load_quiet`], saying when no file selects this host (an error with `--strict`).
fn load(cli: &Cli, files: &Files) -> Result<(Desired, Vec<config::source::SourceFile>), Exit> {
    let (d, sources, unselected) = load_quiet(cli, files)?;
    if let Some(u) = unselected {
        if files.strict {
            say!("error: {u} (--strict)");
            return Err(Exit::Failure);
        }
        say!("warning: {u}");
    }
    Ok((d, sources))
}

fn connect(cli: &Cli, d: &Desired, read_only: bool) -> anyhow::Result<Option<Hypervisor>> {
    if d.guests.is_empty() {
        return Ok(None);
    }
    Ok(Some(Hypervisor::open(&cli.connect, read_only)?))
}

/// Observation with the pinning lock file; `topology` reads the host topology even when no
/// guest uses automatic pinning (for `check`).
fn observe(
    cli: &Cli,
    d: &Desired,
    hv: Option<&Hypervisor>,
    topology: bool,
) -> anyhow::Result<observe::Observed> {
    let oo = observe::ObserveOptions {
        lock_file: cli.lock_file.clone(),
        topology,
    };
    observe::observe_with(d, &cli.root, hv, &oo).context("observing the current state")
}

/// Writes the automatic pins to the lock file (`--lock-file`), when there is one to write.
fn write_pin_lock(cli: &Cli, p: &crate::plan::Plan) -> anyhow::Result<()> {
    if let (Some(path), Some(lock)) = (&cli.lock_file, &p.lock) {
        crate::host::files::atomic_replace(path, &lock.render(), 0o644)
            .with_context(|| format!("writing the lock file {}", path.display()))?;
        crate::faults::point("lock-file");
    }
    Ok(())
}

fn json(v: &impl serde::Serialize) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

/// Asks on the terminal; refuses when stdin is not one.
fn approve(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        say!("error: refusing to apply without --auto-approve: stdin is not a terminal");
        return Ok(false);
    }
    out!("\n{question} Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        say!("Apply cancelled; nothing was changed.");
        return Ok(false);
    }
    Ok(true)
}

fn lock(cli: &Cli, l: &Locking) -> anyhow::Result<state::Lock> {
    Ok(state::lock(
        &cli.root,
        Duration::from_secs(l.lock_timeout),
        |holder| say!("waiting for the apply lock ({holder}) ..."),
    )?)
}

fn show(p: &crate::plan::Plan, format: Format) -> anyhow::Result<()> {
    if format == Format::Human {
        out!("{}", crate::render::plan_text(p, style(), false));
    }
    Ok(())
}

/// Says each plan error on stderr too (stdout carries the plan, which shows them in place).
fn plan_errors_to_stderr(p: &crate::plan::Plan) {
    for e in &p.errors {
        say!("error: {}: {e}", e.target);
    }
}

/// Prints an empty apply report (nothing to do) in JSON mode.
fn nothing_to_do(format: Format) -> anyhow::Result<Exit> {
    if format == Format::Json {
        out!("{}", json(&crate::apply::ApplyReport::default())?);
    }
    Ok(Exit::Success)
}

/// Backs up, applies, writes the lock file, prints the report; the exit.
fn execute(
    cli: &Cli,
    l: &Locking,
    command: &str,
    p: &crate::plan::Plan,
    d: &Desired,
    hv: Option<&Hypervisor>,
    format: Format,
) -> anyhow::Result<Exit> {
    let record = state::backup(
        &cli.root,
        p,
        &hostname(cli),
        &cli.connect,
        command,
        l.keep_backups,
    )
    .context("storing the previous state before changing it")?;
    crate::faults::point("backup");
    if let (Some(r), Format::Human) = (&record, format) {
        say!(
            "previous state saved as {} (kvmtune rollback --to {})",
            r.id,
            r.id
        );
    }
    let tty = std::io::stderr().is_terminal();
    let guests = p
        .actions
        .iter()
        .filter(|a| matches!(a, crate::plan::Action::Guest { .. }))
        .count();
    let mut progress = |done: usize, total: usize, target: &str| {
        if tty && guests >= 5 {
            eprint!("\r\x1b[2K[{}/{total}] {target}", done + 1);
            if done + 1 == total {
                note("");
            }
        }
    };
    let t = crate::apply::Target {
        root: &cli.root,
        hv,
        io: crate::apply::HostIo::REAL,
    };
    let opts = crate::apply::ApplyOptions {
        validate: l.validate,
    };
    let report = crate::apply::apply_with_options(p, d, t, opts, &mut progress);
    if let Some(r) = &record {
        record_result(cli, &r.id, &report);
    }
    if report.ok() {
        write_pin_lock(cli, p)?;
    }
    match format {
        Format::Human => out!("\n{}", crate::render::report_text(&report, style())),
        Format::Json => out!("{}", json(&report)?),
    }
    Ok(if report.ok() {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// Writes how the apply ended into its record (for `verify --format prometheus`); a failure
/// to write it is said, not fatal: the apply itself is over.
fn record_result(cli: &Cli, id: &str, report: &crate::apply::ApplyReport) {
    let result = state::ApplyResult {
        format: state::RECORD_FORMAT,
        finished_unix: saved::now_secs(),
        ok: report.ok(),
        failed: report
            .results
            .iter()
            .filter(|r| r.outcome != crate::apply::Outcome::Applied)
            .map(|r| r.target.clone())
            .collect(),
    };
    if let Err(e) = state::record_result(&cli.root, id, &result) {
        say!("warning: recording the result of apply {id}: {e}");
    }
}
