//! The kvmtune binary: argument parsing and output; all logic lives in the library.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use kvmtune::cli::{Cli, Command, Files, Format};
use kvmtune::libvirt::Hypervisor;
use kvmtune::render::{self, Style};
use kvmtune::{apply, config, observe, plan};

fn style() -> Style {
    Style {
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

fn load(files: &Files) -> Result<kvmtune::desired::Desired, ExitCode> {
    config::load(&files.files).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })
}

fn connect(
    cli: &Cli,
    d: &kvmtune::desired::Desired,
    read_only: bool,
) -> anyhow::Result<Option<Hypervisor>> {
    if d.guests.is_empty() {
        return Ok(None);
    }
    let hv = Hypervisor::open(&cli.connect, read_only)?;
    Ok(Some(hv))
}

fn make_plan(
    cli: &Cli,
    d: &kvmtune::desired::Desired,
    read_only: bool,
    opts: plan::PlanOptions,
) -> anyhow::Result<(plan::Plan, Option<Hypervisor>)> {
    let hv = connect(cli, d, read_only)?;
    let oo = observe::ObserveOptions {
        lock_file: cli.lock_file.clone(),
        topology: false,
    };
    let obs = observe::observe_with(d, &cli.root, hv.as_ref(), &oo)
        .context("observing the current state")?;
    Ok((plan::plan_with(d, &obs, opts), hv))
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Schema => {
            print!("{}", kvmtune::schema::config_schema_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { files, format } => {
            let d = match load(files) {
                Ok(d) => d,
                Err(code) => return Ok(code),
            };
            let hv = connect(cli, &d, true)?;
            let oo = observe::ObserveOptions {
                lock_file: cli.lock_file.clone(),
                topology: true,
            };
            let obs = observe::observe_with(&d, &cli.root, hv.as_ref(), &oo)
                .context("observing the current state")?;
            let facts = kvmtune::lint::read_facts(&cli.root).context("reading host facts")?;
            let lints = kvmtune::lint::check(&d, &obs, &facts);
            match format {
                Format::Json => print!("{}", kvmtune::lint::render_json(&lints)),
                Format::Human => print!("{}", kvmtune::lint::render_text(&lints)),
            }
            Ok(ExitCode::from(kvmtune::lint::exit_code(&lints)))
        }
        Command::Render { guest, xml, files } => {
            let d = match load(files) {
                Ok(d) => d,
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
            let d = match load(files) {
                Ok(d) => d,
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
        Command::Validate { files } => {
            let d = match load(files) {
                Ok(d) => d,
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
            println!(
                "Valid: {} host setting(s), {} guest(s).",
                kvmtune::host::setting_count(&d.host),
                d.guests.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            files,
            format,
            diff,
            detailed_exitcode,
        } => {
            let d = match load(files) {
                Ok(d) => d,
                Err(code) => return Ok(code),
            };
            let (plan, _) = make_plan(cli, &d, true, plan::PlanOptions::default())?;
            match format {
                Format::Json => print!("{}", render::plan_json(&plan)),
                Format::Human => print!("{}", render::plan_text(&plan, style(), *diff)),
            }
            Ok(if plan.has_errors() {
                ExitCode::from(1)
            } else if *detailed_exitcode && !plan.is_empty() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Apply {
            files,
            auto_approve,
            format,
            restart_guests,
            shutdown_timeout,
        } => {
            let d = match load(files) {
                Ok(d) => d,
                Err(code) => return Ok(code),
            };
            let opts = plan::PlanOptions {
                restart_guests: *restart_guests,
                shutdown_timeout_secs: *shutdown_timeout,
            };
            let (plan, hv) = make_plan(cli, &d, false, opts)?;
            let human = *format == Format::Human;
            if human {
                print!("{}", render::plan_text(&plan, style(), false));
            }
            if plan.has_errors() {
                if !human {
                    print!("{}", render::plan_json(&plan));
                }
                eprintln!("error: the plan has errors; nothing was applied");
                return Ok(ExitCode::from(1));
            }
            if plan.actions.is_empty() {
                if let (Some(path), Some(lock)) = (&cli.lock_file, &plan.lock) {
                    kvmtune::host::files::atomic_replace(path, &lock.render())
                        .with_context(|| format!("writing the lock file {}", path.display()))?;
                }
                if !human {
                    let report = apply::ApplyReport::default();
                    println!("{}", serde_json::to_string_pretty(&report)?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !auto_approve {
                if !std::io::stdin().is_terminal() {
                    eprintln!(
                        "error: refusing to apply without --auto-approve: stdin is not a terminal"
                    );
                    return Ok(ExitCode::from(1));
                }
                print!("\nApply these changes? Only 'yes' is accepted: ");
                std::io::stdout().flush()?;
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if answer.trim() != "yes" {
                    eprintln!("Apply cancelled; nothing was changed.");
                    return Ok(ExitCode::from(1));
                }
            }
            let report = apply::apply(&plan, &d, &cli.root, hv.as_ref());
            if let (Some(path), Some(lock), true) = (&cli.lock_file, &plan.lock, report.ok()) {
                kvmtune::host::files::atomic_replace(path, &lock.render())
                    .with_context(|| format!("writing the lock file {}", path.display()))?;
            }
            match format {
                Format::Human => print!("\n{}", render::report_text(&report, style())),
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
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
