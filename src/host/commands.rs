//! The command seam: host changes that are not file writes (`tuned-adm`, `modprobe`, `mount`,
//! `systemctl`, and moving a thread with `sched_setaffinity`) run through [`HostCommands`].
//!
//! Invariant: the planner only describes commands (argv); only the executor runs them, through
//! this trait, so planning stays pure and tests can stand in for the real programs.

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdOutput {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout and stderr, trimmed, joined on one line each.
    pub fn text(&self) -> String {
        let mut s = self.stdout.trim().to_string();
        if !self.stderr.trim().is_empty() {
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(self.stderr.trim());
        }
        s
    }
}

pub trait HostCommands {
    fn run(&self, argv: &[String]) -> std::io::Result<CmdOutput>;

    /// Moves thread `tid` onto `cpus` (`sched_setaffinity(2)`). The real one acts on the
    /// running kernel and refuses (`Unsupported`) any `root` but the running system's `/`;
    /// tests stand in for the kernel on a simulated tree.
    fn set_affinity(
        &self,
        root: &std::path::Path,
        tid: u32,
        cpus: &crate::cpuset::CpuSet,
    ) -> std::io::Result<()> {
        super::threads::set_affinity_live(root, tid, cpus)
    }
}

/// Runs the program with stdin closed.
pub struct RealCommands;

impl HostCommands for RealCommands {
    fn run(&self, argv: &[String]) -> std::io::Result<CmdOutput> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty command"))?;
        let o = std::process::Command::new(prog)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()?;
        Ok(CmdOutput {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        })
    }
}
