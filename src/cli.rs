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
    /// This machine's name for `hosts:` globs, --host-config and saved plans (default: the
    /// kernel's hostname).
    #[arg(long, global = true, value_name = "NAME")]
    pub hostname: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// How `kvmtune map` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MapFormat {
    /// A grid for terminals (colour on a TTY unless NO_COLOR is set).
    #[value(alias = "human")]
    Text,
    /// A self-contained SVG image.
    Svg,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    Human,
    Json,
    /// Prometheus text exposition format (drift as metrics).
    Prometheus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Markdown,
    /// One self-contained page (no external resources) with a sortable table.
    Html,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct Files {
    /// Configuration files, or directories of *.yaml files; they merge.
    #[arg(required_unless_present = "host_config")]
    pub files: Vec<PathBuf>,
    /// A fleet directory: its *.yaml files are shared by every host, and
    /// `hosts/<hostname>.yaml` adds this host's own settings.
    #[arg(long, value_name = "DIR")]
    pub host_config: Option<PathBuf>,
    /// A group this host is in (repeatable): with --host-config, `groups/<group>.yaml`
    /// adds its settings (merged after the shared files, before the host's own).
    #[arg(long = "group", value_name = "GROUP", requires = "host_config")]
    pub groups: Vec<String>,
    /// Fail when the configuration selects files per host and none selects this one (no
    /// hosts/<hostname>.yaml or groups file, no `hosts:` naming it); without it, a warning.
    #[arg(long)]
    pub strict: bool,
}

/// Options of the commands that change things.
#[derive(Debug, Args)]
pub struct Locking {
    /// Seconds to wait for another apply's lock before giving up.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub lock_timeout: u64,
    /// Also have libvirtd check every guest definition kvmtune built against its RelaxNG
    /// schema (about 9 ms of daemon CPU a guest). Without it libvirt still parses and checks
    /// every value, and kvmtune verifies what libvirt stored either way.
    #[arg(long)]
    pub validate: bool,
    /// Apply records (backups) kept in /var/lib/kvmtune; older ones are removed.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub keep_backups: usize,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check configuration files (schema and semantics); needs no hypervisor.
    Validate {
        #[command(flatten)]
        files: Files,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Show what would change. Never changes anything (read-only libvirt connection).
    Plan {
        #[command(flatten)]
        files: Files,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Also print the unified diff of each guest's domain XML (with --format json: a
        /// `diff` object, each change in the words of the human plan and each guest's XML).
        #[arg(long)]
        diff: bool,
        /// Exit 0 with no changes, 2 with changes, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Save the plan (with a fingerprint of the state it was made from) for
        /// `kvmtune apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Plan restarts of running guests with pending changes (for a saved plan).
        #[arg(long)]
        restart_guests: bool,
        /// Seconds a guest may take to shut down with --restart-guests.
        #[arg(long, default_value_t = 120, value_name = "SECS")]
        shutdown_timeout: u64,
    },
    /// Make it so: plan, confirm, apply, verify. Given one saved plan (`plan --out`, a .json
    /// file) instead: check it is still current, then apply exactly its actions.
    Apply {
        #[command(flatten)]
        files: Files,
        #[command(flatten)]
        locking: Locking,
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
        /// `prometheus`: also the host settings and guest definitions a read-only plan finds
        /// drifting, pending restarts and the last apply's time and result, as metrics.
        #[arg(long, value_enum, default_value = "human")]
        format: VerifyFormat,
        /// Write the metrics to PATH for node_exporter's textfile collector (implies
        /// `--format prometheus`; PATH ends in `.prom`; replaced atomically, mode 0644).
        #[arg(long, value_name = "PATH")]
        textfile: Option<PathBuf>,
    },
    /// Summarise per-host plans of a fleet run (`plan --format json` files, or directories of
    /// `<host>.json`) in one Markdown or HTML page. Exit 0 all in sync, 2 any host drifts or
    /// waits for a restart, 1 any host failed.
    Report {
        /// Plan files (`<host>.json`), or directories of them; `<host>.map.svg` beside a plan
        /// is shown on the HTML page.
        #[arg(required = true)]
        plans: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "markdown")]
        format: ReportFormat,
    },
    /// Lint the configuration and the host against the tuning guide's rules. Exit 0 clean,
    /// 2 warnings, 1 errors.
    Check {
        #[command(flatten)]
        files: Files,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Draw the host's CPUs per NUMA node (cores × SMT threads) with the CPU pools and the
    /// guests pinned or floating there, as the plan would leave them (or as they are now).
    /// Read-only. Exit 0 without conflicts, 2 with conflicts, 1 on error.
    Map {
        #[command(flatten)]
        files: Files,
        #[arg(long, value_enum, default_value = "text")]
        format: MapFormat,
        /// Draw the host as it is now instead of as the plan would leave it.
        #[arg(long)]
        current: bool,
    },
    /// Print the current state of the owned settings as a kvmtune configuration.
    Import {
        /// A guest to import (repeatable). Without --guest and --host: every guest and the host.
        #[arg(long = "guest", value_name = "NAME")]
        guests: Vec<String>,
        /// Import the host settings (documented sysctls, THP, huge page pools, KSM, tuned).
        #[arg(long)]
        host: bool,
        #[arg(long, value_enum, default_value = "yaml")]
        format: ImportFormat,
    },
    /// Restore what the last apply (or the one at --to) changed, through plan and apply.
    Rollback {
        /// The apply record to restore (its UTC timestamp, or a prefix of it).
        #[arg(long, value_name = "TIMESTAMP")]
        to: Option<String>,
        /// List the apply records and exit.
        #[arg(long)]
        list: bool,
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        locking: Locking,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Measure a running guest's VM exits with `perf kvm stat` (the guide's chapter 8) and
    /// print them by reason with the guide's advice. Exit 0 measured, 2 advice or no exits
    /// recorded, 1 when perf cannot run (what is missing is named) or fails.
    Perf(PerfArgs),
    /// Print the JSON Schema of the configuration format (or of saved plans).
    Schema {
        /// The schema of saved plan files (`plan --out`) instead.
        #[arg(long)]
        saved_plan: bool,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// `kvmtune perf GUEST`.
#[derive(Debug, Args)]
pub struct PerfArgs {
    /// The running guest (libvirt domain name).
    #[arg(value_parser = |s: &str| crate::model::DomainName::new(s))]
    pub guest: crate::model::DomainName,
    /// Seconds to record (1 to 3600).
    #[arg(long, default_value = "10", value_name = "SECS")]
    pub duration: crate::perf::Seconds,
    /// The guest's /proc/kallsyms, saved in the guest and copied here (guide §8.2): also
    /// record a host+guest symbol profile (`perf kvm --host --guest record`).
    #[arg(long, value_name = "FILE", requires = "guest_modules")]
    pub guest_kallsyms: Option<PathBuf>,
    /// The guest's /proc/modules (with --guest-kallsyms).
    #[arg(long, value_name = "FILE", requires = "guest_kallsyms")]
    pub guest_modules: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}
