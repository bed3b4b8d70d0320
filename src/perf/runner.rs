//! The perf command lines kvmtune runs, and running them bounded.
//!
//! Invariant: every argv comes from [`Invocation::argv`], built only from typed values — the
//! QEMU pid (a number), the duration ([`Seconds`]), the data file kvmtune created in its own
//! temporary directory, and the guest symbol files the user named (passed as
//! `--option=PATH`, so no path can be read as an option). A run is bounded: at most
//! [`MAX_OUTPUT`] bytes of each of stdout and stderr are kept (the rest is drained and
//! dropped), the data file at most [`MAX_DATA`] (perf's `--max-size`), and the wall time at
//! [`Invocation::timeout`], after which perf and its process group are killed.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Seconds;

/// Bytes kept of each of perf's output streams.
pub const MAX_OUTPUT: u64 = 4 << 20;
/// perf's `--max-size` for a recording.
pub const MAX_DATA: &str = "256M";
/// Time a record may take beyond its duration (perf writes the data file at the end).
const RECORD_GRACE: Duration = Duration::from_secs(60);
/// Time a report may take.
const REPORT_TIMEOUT: Duration = Duration::from_secs(300);

/// The guest's `/proc/kallsyms` and `/proc/modules`, saved in the guest and copied to the host
/// (guide §8.2, procedure 8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestSymbols {
    pub kallsyms: PathBuf,
    pub modules: PathBuf,
}

/// One perf run.
#[derive(Debug, Clone, Copy)]
pub enum Invocation<'a> {
    /// `perf kvm stat record -p PID -o DATA --max-size=… sleep SECS`.
    StatRecord {
        pid: u32,
        secs: Seconds,
        data: &'a Path,
    },
    /// `perf kvm -i DATA stat report` (perf 6.1's `stat report` has no `-i` of its own).
    StatReport { data: &'a Path },
    /// `perf kvm --host --guest --guestkallsyms=… --guestmodules=… record -p PID -o DATA …`.
    ProfileRecord {
        pid: u32,
        secs: Seconds,
        data: &'a Path,
        syms: &'a GuestSymbols,
    },
    /// `perf kvm --host --guest … report -i DATA --stdio --sort comm,dso,sym -t SEP`.
    ProfileReport {
        data: &'a Path,
        syms: &'a GuestSymbols,
    },
}

fn opt(name: &str, path: &Path) -> OsString {
    let mut s = OsString::from(name);
    s.push("=");
    s.push(path.as_os_str());
    s
}

impl Invocation<'_> {
    pub fn argv(&self) -> Vec<OsString> {
        let os = |s: &str| OsString::from(s);
        let record = |pid: u32, secs: Seconds, data: &Path| {
            vec![
                os("record"),
                os("-p"),
                os(&pid.to_string()),
                os("-o"),
                data.as_os_str().to_owned(),
                os(&format!("--max-size={MAX_DATA}")),
                os("sleep"),
                os(&secs.get().to_string()),
            ]
        };
        let host_guest = |syms: &GuestSymbols| {
            vec![
                os("kvm"),
                os("--host"),
                os("--guest"),
                opt("--guestkallsyms", &syms.kallsyms),
                opt("--guestmodules", &syms.modules),
            ]
        };
        match *self {
            Invocation::StatRecord { pid, secs, data } => {
                let mut v = vec![os("kvm"), os("stat")];
                v.extend(record(pid, secs, data));
                v
            }
            Invocation::StatReport { data } => vec![
                os("kvm"),
                os("-i"),
                data.as_os_str().to_owned(),
                os("stat"),
                os("report"),
            ],
            Invocation::ProfileRecord {
                pid,
                secs,
                data,
                syms,
            } => {
                let mut v = host_guest(syms);
                v.extend(record(pid, secs, data));
                v
            }
            Invocation::ProfileReport { data, syms } => {
                let mut v = host_guest(syms);
                v.extend([
                    os("report"),
                    os("-i"),
                    data.as_os_str().to_owned(),
                    os("--stdio"),
                    os("--sort"),
                    os("comm,dso,sym"),
                    os(&format!("--field-separator={}", super::profile::SEPARATOR)),
                ]);
                v
            }
        }
    }

    pub fn timeout(&self) -> Duration {
        match self {
            Invocation::StatRecord { secs, .. } | Invocation::ProfileRecord { secs, .. } => {
                Duration::from_secs(secs.get().into()) + RECORD_GRACE
            }
            _ => REPORT_TIMEOUT,
        }
    }

    /// The command line as a person would type it (for the summary; separators shown as \x1f).
    pub fn display(&self) -> String {
        let mut parts = vec!["perf".to_string()];
        for a in self.argv() {
            parts.push(crate::model::names::printable(&a.to_string_lossy(), 300));
        }
        parts.join(" ")
    }
}

/// What a perf run left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit code; `None` when perf was killed by a signal (or by the timeout).
    pub code: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    /// Either stream was longer than [`MAX_OUTPUT`].
    pub truncated: bool,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// Both streams (perf prints its reports on stderr).
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

type Reader = std::thread::JoinHandle<(String, bool)>;

/// A perf process that is running.
pub struct Running {
    child: Child,
    deadline: Instant,
    out: Reader,
    err: Reader,
}

fn bounded_reader(mut r: impl Read + Send + 'static) -> Reader {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.by_ref().take(MAX_OUTPUT).read_to_end(&mut buf);
        // Keep draining so perf never blocks on a full pipe; count whether anything was left.
        let rest = std::io::copy(&mut r, &mut std::io::sink()).unwrap_or(0);
        (String::from_utf8_lossy(&buf).into_owned(), rest > 0)
    })
}

/// Starts `perf` with the invocation's argv; stdin is closed.
pub fn spawn(perf: &Path, inv: &Invocation) -> std::io::Result<Running> {
    spawn_argv(perf, &inv.argv(), inv.timeout())
}

/// Starts any program bounded like perf (the seam the tests use with `sh`).
pub fn spawn_argv(
    program: &Path,
    argv: &[impl AsRef<OsStr>],
    timeout: Duration,
) -> std::io::Result<Running> {
    use std::os::unix::process::CommandExt;
    // Its own process group: a timeout kills perf and the workload (`sleep`) it started, so
    // no grandchild keeps the output pipes open.
    let mut child = Command::new(program)
        .args(argv)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (Some(o), Some(e)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(std::io::Error::other("perf's output pipes are missing"));
    };
    Ok(Running {
        child,
        deadline: Instant::now() + timeout,
        out: bounded_reader(o),
        err: bounded_reader(e),
    })
}

impl Running {
    /// Waits for the process (killing it at the deadline) and collects its output.
    pub fn finish(mut self) -> std::io::Result<Output> {
        let mut timed_out = false;
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break s;
            }
            if Instant::now() >= self.deadline {
                timed_out = true;
                if let Ok(pgid) = i32::try_from(self.child.id()) {
                    // SAFETY: kill(2) on our own child's process group; no memory involved.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                }
                let _ = self.child.kill();
                break self.child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (stdout, t1) = self.out.join().unwrap_or_default();
        let (stderr, t2) = self.err.join().unwrap_or_default();
        Ok(Output {
            code: status.code(),
            timed_out,
            stdout,
            stderr,
            truncated: t1 || t2,
        })
    }
}

/// Runs one invocation to its end.
pub fn run(perf: &Path, inv: &Invocation) -> std::io::Result<Output> {
    spawn(perf, inv)?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syms() -> GuestSymbols {
        GuestSymbols {
            kallsyms: "-rf /x".into(),
            modules: "m".into(),
        }
    }

    #[test]
    fn argv_is_built_from_typed_values() {
        let secs = Seconds::new(5).unwrap();
        let data = Path::new("/tmp/k/stat.data");
        let a = Invocation::StatRecord {
            pid: 42,
            secs,
            data,
        }
        .display();
        assert_eq!(
            a,
            "perf kvm stat record -p 42 -o /tmp/k/stat.data --max-size=256M sleep 5"
        );
        assert_eq!(
            Invocation::StatReport { data }.display(),
            "perf kvm -i /tmp/k/stat.data stat report"
        );
        let s = syms();
        let p = Invocation::ProfileRecord {
            pid: 42,
            secs,
            data,
            syms: &s,
        };
        // A path that looks like an option stays inside its --option=PATH argument.
        assert!(p.argv().contains(&OsString::from("--guestkallsyms=-rf /x")));
        assert_eq!(p.timeout(), Duration::from_secs(65));
        let r = Invocation::ProfileReport { data, syms: &s }.argv();
        assert_eq!(
            r.last().unwrap(),
            &OsString::from("--field-separator=\u{1f}")
        );
    }

    #[test]
    fn output_is_bounded_and_time_is_bounded() {
        let sh = Path::new("/bin/sh");
        // 6 MiB on stdout: 4 MiB kept, the rest drained (the process still ends).
        let o = spawn_argv(
            sh,
            &["-c", "head -c 6291456 /dev/zero; echo done >&2"],
            Duration::from_secs(60),
        )
        .unwrap()
        .finish()
        .unwrap();
        assert_eq!(o.stdout.len() as u64, MAX_OUTPUT);
        assert!(o.truncated && o.ok());
        assert_eq!(o.stderr, "done\n");
        let o = spawn_argv(sh, &["-c", "sleep 30"], Duration::from_millis(100))
            .unwrap()
            .finish()
            .unwrap();
        assert!(o.timed_out && !o.ok() && o.code.is_none());
    }
}
