//! The kvmtune binary: argument parsing and output; all logic lives in the library.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser};

use kvmtune::cli::{Cli, Command, Files, Format, ImportFormat, Locking};
use kvmtune::desired::Desired;
use kvmtune::libvirt::Hypervisor;
use kvmtune::render::{self, Style};
use kvmtune::saved::{self, SavedPlan};
use kvmtune::{apply, config, observe, plan, state};

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

fn paths(cli: &Cli, files: &Files) -> Result<Vec<std::path::PathBuf>, config::ConfigErrors> {
    let mut p = files.files.clone();
    if let Some(dir) = &files.host_config {
        p.extend(config::host_config_paths(dir, &hostname(cli))?);
    }
    Ok(p)
}

/// Loads the configuration for this host, with the files as read.
fn load(cli: &Cli, files: &Files) -> Result<(Desired, Vec<config::source::SourceFile>), ExitCode> {
    paths(cli, files)
        .and_then(|p| config::read_for(&p, Some(&hostname(cli))))
        .map_err(|e| {
            eprintln!("{e}");
            ExitCode::from(1)
        })
}

fn connect(cli: &Cli, d: &Desired, read_only: bool) -> anyhow::Result<Option<Hypervisor>> {
    if d.guests.is_empty() {
        return Ok(None);
    }
    Ok(Some(Hypervisor::open(&cli.connect, read_only)?))
}

fn observe(cli: &Cli, d: &Desired, hv: Option<&Hypervisor>) -> anyhow::Result<plan::Observed> {
    observe_opts(cli, d, hv, false)
}

/// Observation with the pinning lock file; `topology` reads the host topology even when no
/// guest uses automatic pinning (for `check`).
fn observe_opts(
    cli: &Cli,
    d: &Desired,
    hv: Option<&Hypervisor>,
    topology: bool,
) -> anyhow::Result<plan::Observed> {
    let oo = observe::ObserveOptions {
        lock_file: cli.lock_file.clone(),
        topology,
    };
    observe::observe_with(d, &cli.root, hv, &oo).context("observing the current state")
}

/// Writes the automatic pins to the lock file (`--lock-file`), when there is one to write.
fn write_pin_lock(cli: &Cli, p: &plan::Plan) -> anyhow::Result<()> {
    if let (Some(path), Some(lock)) = (&cli.lock_file, &p.lock) {
        kvmtune::host::files::atomic_replace(path, &lock.render())
            .with_context(|| format!("writing the lock file {}", path.display()))?;
        kvmtune::faults::point("lock-file");
    }
    Ok(())
}

fn json(v: &impl serde::Serialize) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

/// Asks on the terminal; refuses when stdin is not one.
fn approve(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        eprintln!("error: refusing to apply without --auto-approve: stdin is not a terminal");
        return Ok(false);
    }
    print!("\n{question} Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        eprintln!("Apply cancelled; nothing was changed.");
        return Ok(false);
    }
    Ok(true)
}

fn lock(cli: &Cli, l: &Locking) -> anyhow::Result<state::Lock> {
    Ok(state::lock(
        &cli.root,
        Duration::from_secs(l.lock_timeout),
        |holder| eprintln!("waiting for the apply lock ({holder}) ..."),
    )?)
}

/// Backs up, applies, prints the report; the exit code.
fn execute(
    cli: &Cli,
    l: &Locking,
    command: &str,
    p: &plan::Plan,
    d: &Desired,
    hv: Option<&Hypervisor>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let record = state::backup(
        &cli.root,
        p,
        &hostname(cli),
        &cli.connect,
        command,
        l.keep_backups,
    )
    .context("storing the previous state before changing it")?;
    kvmtune::faults::point("backup");
    if let (Some(r), Format::Human) = (&record, format) {
        eprintln!(
            "previous state saved as {} (kvmtune rollback --to {})",
            r.id, r.id
        );
    }
    let tty = std::io::stderr().is_terminal();
    let guests = p
        .actions
        .iter()
        .filter(|a| matches!(a, plan::Action::Guest { .. }))
        .count();
    let mut progress = |done: usize, total: usize, target: &str| {
        if tty && guests >= 5 {
            eprint!("\r\x1b[2K[{}/{total}] {target}", done + 1);
            if done + 1 == total {
                eprintln!();
            }
        }
    };
    let report = apply::apply_with(p, d, &cli.root, hv, apply::HostIo::REAL, &mut progress);
    match format {
        Format::Human => print!("\n{}", render::report_text(&report, style())),
        Format::Json => print!("{}", json(&report)?),
    }
    if report.ok() {
        write_pin_lock(cli, p)?;
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn show(p: &plan::Plan, format: Format) {
    if format == Format::Human {
        print!("{}", render::plan_text(p, style(), false));
    }
}

/// `kvmtune apply plan.json`.
fn apply_saved(cli: &Cli, file: &Path, l: &Locking, format: Format) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let refuse = |e: &dyn std::fmt::Display| {
        eprintln!("error: {}: {e}", file.display());
        Ok(ExitCode::from(1))
    };
    let s = match SavedPlan::from_json(&text) {
        Ok(s) => s,
        Err(e) => return refuse(&e),
    };
    if let Err(e) = s.check_origin(&origin(cli)) {
        return refuse(&e);
    }
    let _lock = lock(cli, l)?;
    let d = match s.desired(&hostname(cli)) {
        Ok(d) => d,
        Err(e) => return refuse(&e),
    };
    let hv = connect(cli, &d, false)?;
    let obs = observe(cli, &d, hv.as_ref())?;
    if let Err(e) = s.check_current(&obs, &d) {
        return refuse(&e);
    }
    show(&s.plan, format);
    if s.plan.actions.is_empty() {
        if format == Format::Json {
            print!("{}", json(&apply::ApplyReport::default())?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    execute(cli, l, "apply", &s.plan, &d, hv.as_ref(), format)
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Schema { saved_plan } => {
            if *saved_plan {
                print!("{}", saved::schema_json());
            } else {
                print!("{}", kvmtune::schema::config_schema_json());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { files, format } => {
            let (d, _) = match load(cli, files) {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            let hv = connect(cli, &d, true)?;
            let obs = observe_opts(cli, &d, hv.as_ref(), true)?;
            let facts = kvmtune::lint::read_facts(&cli.root).context("reading host facts")?;
            let lints = kvmtune::lint::check(&d, &obs, &facts);
            match format {
                Format::Json => print!("{}", kvmtune::lint::render_json(&lints)),
                Format::Human => print!("{}", kvmtune::lint::render_text(&lints)),
            }
            Ok(ExitCode::from(kvmtune::lint::exit_code(&lints)))
        }
        Command::Render { guest, xml, files } => {
            let (d, _) = match load(cli, files) {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            let text = std::fs::read_to_string(xml)
                .with_context(|| format!("reading {}", xml.display()))?;
            let page = kvmtune::host::default_hugepage(&cli.root)
                .with_context(|| format!("reading proc/meminfo under {}", cli.root.display()))?;
            match kvmtune::offline::render_guest(&d, guest, &text, page) {
                Ok(out) => {
                    print!("{out}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Verify { files, format } => {
            let (d, _) = match load(cli, files) {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            let hv = Hypervisor::open(&cli.connect, true)?;
            let report = kvmtune::verify::verify(&d, &cli.root, &hv)?;
            match format {
                Format::Json => print!("{}", render::verify_json(&report)),
                Format::Human => print!("{}", render::verify_text(&report, style())),
            }
            Ok(if report.holds() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "kvmtune",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { files, format } => {
            let d = match load(cli, files) {
                Ok((d, _)) => d,
                Err(code) => return Ok(code),
            };
            // Checks that need the host's static files (tuned profiles under --root).
            if let Some(msg) = kvmtune::host::tuned::profile_issue(&cli.root, &d.host)
                .context("reading tuned profiles")?
            {
                let key = ["host", "tuned", "profile"].map(String::from).to_vec();
                match d.sources.find(&key) {
                    Some(loc) => eprintln!("{loc}: host.tuned.profile: {msg}"),
                    None => eprintln!("host.tuned.profile: {msg}"),
                }
                return Ok(ExitCode::from(1));
            }
            let settings = kvmtune::host::setting_count(&d.host);
            match format {
                Format::Human => println!(
                    "Valid: {settings} host setting(s), {} guest(s).",
                    d.guests.len()
                ),
                Format::Json => print!(
                    "{}",
                    json(&serde_json::json!({
                        "valid": true,
                        "host_settings": settings,
                        "guests": d.guests.keys().map(|g| g.as_str()).collect::<Vec<_>>(),
                    }))?
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            files,
            format,
            diff,
            detailed_exitcode,
            out,
            restart_guests,
            shutdown_timeout,
        } => {
            let (d, sources) = match load(cli, files) {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            let opts = plan::PlanOptions {
                restart_guests: *restart_guests,
                shutdown_timeout_secs: *shutdown_timeout,
            };
            let hv = connect(cli, &d, true)?;
            let obs = observe(cli, &d, hv.as_ref())?;
            let p = plan::plan_with(&d, &obs, opts);
            match format {
                Format::Json => print!("{}", render::plan_json(&p)),
                Format::Human => print!("{}", render::plan_text(&p, style(), *diff)),
            }
            if let Some(out) = out {
                if p.has_errors() {
                    eprintln!("error: the plan has errors; not saved to {}", out.display());
                    return Ok(ExitCode::from(1));
                }
                let s = SavedPlan::new(&p, &obs, &d, &sources, origin(cli), opts);
                std::fs::write(out, s.to_json())
                    .with_context(|| format!("writing {}", out.display()))?;
                if *format == Format::Human {
                    eprintln!(
                        "Saved the plan to {}; apply exactly it with: kvmtune apply {}",
                        out.display(),
                        out.display()
                    );
                }
            }
            Ok(if p.has_errors() {
                ExitCode::from(1)
            } else if *detailed_exitcode && !p.is_empty() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Apply {
            files,
            locking,
            auto_approve,
            format,
            restart_guests,
            shutdown_timeout,
        } => {
            if let [one] = files.files.as_slice() {
                if files.host_config.is_none() && one.extension().is_some_and(|x| x == "json") {
                    return apply_saved(cli, one, locking, *format);
                }
            }
            let (d, _) = match load(cli, files) {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            let opts = plan::PlanOptions {
                restart_guests: *restart_guests,
                shutdown_timeout_secs: *shutdown_timeout,
            };
            // Plan under the lock: a plan made while another apply ran would be stale.
            let _lock = lock(cli, locking)?;
            let hv = connect(cli, &d, false)?;
            let obs = observe(cli, &d, hv.as_ref())?;
            let p = plan::plan_with(&d, &obs, opts);
            show(&p, *format);
            if p.has_errors() {
                if *format == Format::Json {
                    print!("{}", render::plan_json(&p));
                }
                eprintln!("error: the plan has errors; nothing was applied");
                return Ok(ExitCode::from(1));
            }
            if p.actions.is_empty() {
                write_pin_lock(cli, &p)?;
                if *format == Format::Json {
                    print!("{}", json(&apply::ApplyReport::default())?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !auto_approve && !approve("Apply these changes?")? {
                return Ok(ExitCode::from(1));
            }
            execute(cli, locking, "apply", &p, &d, hv.as_ref(), *format)
        }
        Command::Import {
            guests,
            host,
            format,
        } => {
            let req = kvmtune::import::ImportRequest {
                all_guests: guests.is_empty() && !host,
                host: *host || guests.is_empty(),
                guests: guests.clone(),
            };
            let needs_hv = req.all_guests || !req.guests.is_empty();
            let hv = if needs_hv {
                Some(Hypervisor::open(&cli.connect, true)?)
            } else {
                None
            };
            let cfg = kvmtune::import::import(&cli.root, hv.as_ref(), &req)?;
            match format {
                ImportFormat::Yaml => {
                    let origin = format!(
                        "from {} ({}) at {}",
                        hostname(cli),
                        cli.connect,
                        saved::utc(saved::now_secs()).0
                    );
                    print!("{}", kvmtune::import::to_yaml(&cfg, Some(&origin)));
                }
                ImportFormat::Json => print!("{}", json(&cfg)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback {
            to,
            list,
            auto_approve,
            locking,
            format,
        } => {
            if *list {
                let ids = state::records(&cli.root)?;
                match format {
                    Format::Human => ids.iter().for_each(|i| println!("{i}")),
                    Format::Json => print!("{}", json(&ids)?),
                }
                return Ok(ExitCode::SUCCESS);
            }
            let _lock = lock(cli, locking)?;
            let rec = match state::load(&cli.root, to.as_deref()) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(1));
                }
            };
            let hv = if rec.manifest.guests.is_empty() {
                None
            } else {
                Some(Hypervisor::open(&cli.connect, false)?)
            };
            let rb = kvmtune::rollback::plan_rollback(&rec, &cli.root, hv.as_ref())?;
            if *format == Format::Human {
                println!(
                    "Rolling back to the state before apply {}:\n",
                    rec.manifest.id
                );
            }
            show(&rb.plan, *format);
            if rb.plan.has_errors() {
                if *format == Format::Json {
                    print!("{}", render::plan_json(&rb.plan));
                }
                eprintln!("error: the rollback plan has errors; nothing was changed");
                return Ok(ExitCode::from(1));
            }
            if rb.plan.actions.is_empty() {
                if *format == Format::Json {
                    print!("{}", json(&apply::ApplyReport::default())?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !auto_approve && !approve("Roll back these changes?")? {
                return Ok(ExitCode::from(1));
            }
            execute(
                cli,
                locking,
                "rollback",
                &rb.plan,
                &rb.desired,
                hv.as_ref(),
                *format,
            )
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
