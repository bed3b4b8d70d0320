//! Command-line definitions (clap). Kept in the library so completions and man pages can be
//! generated from the same definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Declarative KVM hypervisor tuning: plan and apply host and libvirt guest tuning from YAML.
#[derive(Debug, Parser)]
#[command(name = "kvmtune", version, about, long_about = None)]
pub struct Cli {
    /// libvirt URI (like virsh: $LIBVIRT_DEFAULT_URI, else qemu:///system).
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "LIBVIRT_DEFAULT_URI",
        default_value = "qemu:///system"
    )]
    pub connect: String,
    /// Directory where /proc, /sys and /etc are read and written.
    #[arg(long, global = true, default_value = "/")]
    pub root: PathBuf,
    /// Lock file of automatic pinning (`kvmtune.lock.yaml`): read when it exists, so the
    /// pins it holds are kept; written by `apply`.
    #[arg(long, global = true, value_name = "PATH")]
    pub lock_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct Files {
    /// Configuration files, or directories of *.yaml files; they merge.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check configuration files (schema and semantics); needs no hypervisor.
    Validate {
        #[command(flatten)]
        files: Files,
    },
    /// Show what would change. Never changes anything (read-only libvirt connection).
    Plan {
        #[command(flatten)]
        files: Files,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Also print the unified diff of each guest's domain XML.
        #[arg(long)]
        diff: bool,
        /// Exit 0 with no changes, 2 with changes, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Make it so: plan, confirm, apply, verify.
    Apply {
        #[command(flatten)]
        files: Files,
        /// Apply without asking (required when stdin is not a terminal).
        #[arg(long)]
        auto_approve: bool,
        /// Restart running guests whose changes wait for a restart: graceful shutdown, then
        /// start. A guest that does not shut down in time is left running (never destroyed).
        #[arg(long)]
        restart_guests: bool,
        /// Seconds a guest may take to shut down with --restart-guests.
        #[arg(long, default_value_t = 120, value_name = "SECS")]
        shutdown_timeout: u64,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Print one guest's domain XML file with its declared tuning applied (no hypervisor).
    Render {
        /// The guest (a key under `guests:`) whose settings to apply.
        #[arg(long)]
        guest: String,
        /// The domain XML file to tune (e.g. from `virsh dumpxml --inactive`).
        #[arg(long)]
        xml: PathBuf,
        #[command(flatten)]
        files: Files,
    },
    /// Compare what is in effect on running guests with the configuration.
    /// Exit 0 when everything holds, 2 when anything differs, 1 on error.
    Verify {
        #[command(flatten)]
        files: Files,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Lint the configuration and the host against the tuning guide's rules. Exit 0 clean,
    /// 2 warnings, 1 errors.
    Check {
        #[command(flatten)]
        files: Files,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Print the JSON Schema of the configuration format.
    Schema,
}
