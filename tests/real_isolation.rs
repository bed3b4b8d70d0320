//! `cpu_pool.isolate.{irqs,workqueues,host_threads}` on this machine's real host (`--root /`):
//! IRQ affinities, the default IRQ affinity and the workqueue cpumask are written for real,
//! every movable host thread is moved with `sched_setaffinity` (a `sleep` child of the test is
//! the planted intruder), and `verify` passes afterwards. Reserved CPU 0, dedicated CPU 1 (the
//! machine has 2 CPUs; with more, the rest are dedicated too). Runs as root; fails, never
//! skips, when it cannot write /proc/irq.
//!
//! [`RealHost`] saves every IRQ's affinity, the default affinity, the workqueue cpumask and
//! every thread's CPUs before anything runs, and puts them back when dropped (also while a
//! failed test unwinds): threads that still exist (same tid and start time) get their CPUs
//! back, threads born during the test on the reserved CPUs only (they inherited a moved
//! parent's) get every online CPU, which is what they would have inherited. kvmtune's backup
//! records and refusal record written by the test are removed again. `persist: false`: no file
//! under /etc is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kvmtune::cpuset::CpuSet;
use kvmtune::host::threads::{read as read_threads, set_affinity_live};

const DEFAULT: &str = "/proc/irq/default_smp_affinity";
const WQ: &str = "/sys/devices/virtual/workqueue/cpumask";
const STATE: &str = "/var/lib/kvmtune";
const REFUSED: &str = "/var/lib/kvmtune/refused.json";

fn read(p: &str) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn online() -> CpuSet {
    read("/sys/devices/system/cpu/online")
        .trim()
        .parse()
        .unwrap()
}

fn irq_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/proc/irq")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .map(|e| e.path().join("smp_affinity_list"))
        .filter(|p| p.exists())
        .collect();
    v.sort();
    v
}

fn applies() -> BTreeSet<String> {
    std::fs::read_dir(Path::new(STATE).join("applies"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The real host's isolation state, restored on drop.
struct RealHost {
    files: Vec<(PathBuf, String)>,
    threads: BTreeMap<u32, (u64, CpuSet)>,
    applies: BTreeSet<String>,
    refused: Option<Vec<u8>>,
    child: Option<std::process::Child>,
}

impl RealHost {
    fn save() -> RealHost {
        let mut files: Vec<(PathBuf, String)> = [DEFAULT, WQ]
            .iter()
            .map(|f| (PathBuf::from(f), read(f)))
            .collect();
        for p in irq_files() {
            let v = read(p.to_str().unwrap());
            files.push((p, v));
        }
        let threads = read_threads(Path::new("/"))
            .unwrap()
            .into_iter()
            .filter_map(|t| Some((t.tid, (t.start, t.cpus?))))
            .collect();
        RealHost {
            files,
            threads,
            applies: applies(),
            refused: std::fs::read(REFUSED).ok(),
            child: None,
        }
    }
}

impl Drop for RealHost {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (p, v) in &self.files {
            let now = std::fs::read_to_string(p).unwrap_or_default();
            if now.trim() == v.trim() {
                continue;
            }
            let r = std::fs::write(p, v.trim());
            // A managed IRQ refuses any write: it was never changed.
            if let Err(e) = r.as_ref() {
                if !matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EPERM)) {
                    eprintln!("could not restore {}: {e}", p.display());
                }
            }
        }
        let online = online();
        let reserved: CpuSet = "0".parse().unwrap();
        for t in read_threads(Path::new("/")).unwrap_or_default() {
            let Some(now) = t.cpus.clone() else { continue };
            let want = match self.threads.get(&t.tid) {
                Some((start, was)) if *start == t.start => was.clone(),
                Some(_) | None if now == reserved && !t.is_qemu() && !t.per_cpu_kthread() => {
                    online.clone()
                }
                _ => continue,
            };
            if now != want {
                if let Err(e) = set_affinity_live(Path::new("/"), t.tid, &want) {
                    if e.raw_os_error() != Some(libc::ESRCH) {
                        eprintln!("could not restore tid {} ({}): {e}", t.tid, t.comm);
                    }
                }
            }
        }
        for id in applies().difference(&self.applies) {
            let _ = std::fs::remove_dir_all(Path::new(STATE).join("applies").join(id));
        }
        let _ = match &self.refused {
            Some(b) => std::fs::write(REFUSED, b),
            None => std::fs::remove_file(REFUSED).or(Ok(())),
        };
    }
}

fn uri() -> String {
    format!(
        "test://{}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/isolate/host.xml")
            .display()
    )
}

fn kvmtune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args(["--root", "/", "--connect", &uri()])
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = kvmtune(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{args:?}: {text}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// (tid, start) of every thread a saved plan moves.
fn planned_moves(saved: &Path) -> BTreeSet<(u64, u64)> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved).unwrap()).unwrap();
    let mut out = BTreeSet::new();
    for a in v["actions"].as_array().unwrap() {
        for op in a["action"].as_array().into_iter().flatten() {
            for t in op["threads"].as_array().into_iter().flatten() {
                out.insert((t["tid"].as_u64().unwrap(), t["start"].as_u64().unwrap()));
            }
        }
    }
    out
}

fn status_cpus(pid: u32) -> String {
    read(&format!("/proc/{pid}/status"))
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn irqs_workqueues_and_host_threads_on_the_real_host() {
    assert!(
        std::fs::metadata(DEFAULT).is_ok(),
        "{DEFAULT} missing: this test needs a real Linux host"
    );
    let online = online();
    assert!(online.len() >= 2, "needs 2 CPUs or more, has {online}");
    let mut host = RealHost::save();
    // The planted intruder: a child of the test that may run on every CPU.
    let child = Command::new("sleep").arg("600").spawn().unwrap();
    let pid = child.id();
    host.child = Some(child);
    set_affinity_live(Path::new("/"), pid, &online).unwrap();
    assert_eq!(status_cpus(pid).parse::<CpuSet>().unwrap(), online);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(
        &cfg,
        "host:\n  persist: false\n  cpu_pool:\n    reserved: \"0\"\n    isolate: { irqs: true, workqueues: true, host_threads: true }\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();

    // Before: verify finds the intruder.
    let o = kvmtune(&["verify", cfg]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!("pid {pid} tid {pid} (sleep) on {online}")),
        "{text}"
    );

    let first = dir.path().join("first.json");
    let plan = ok(&["plan", cfg, "--out", first.to_str().unwrap()]);
    assert!(
        plan.contains(&format!(
            "~ cpu_pool.isolate.host_threads.{pid} (sleep): {online} → 0"
        )),
        "{plan}"
    );
    let out = ok(&["apply", first.to_str().unwrap(), "--auto-approve"]);
    eprintln!("{out}");
    assert_eq!(status_cpus(pid), "0", "the intruder was not moved");
    assert_eq!(
        kvmtune::model::Readback::HexMask.canonical(&read(DEFAULT)),
        "1"
    );
    assert_eq!(kvmtune::model::Readback::HexMask.canonical(&read(WQ)), "1");
    // Every IRQ is on CPU 0 now, except those the kernel manages (recorded, noted).
    let refused = std::fs::read_to_string(REFUSED).unwrap_or_default();
    let refused = kvmtune::host::isolate::Refused::parse(&refused);
    for p in irq_files() {
        let irq: u32 = p
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let now: CpuSet = read(p.to_str().unwrap()).trim().parse().unwrap();
        let managed = refused.irqs.iter().any(|r| r.irq.get() == irq);
        assert!(
            now == "0".parse().unwrap() || managed,
            "IRQ {irq} is on {now}"
        );
        if managed {
            assert!(out.contains(&format!("IRQ {irq} ")), "{out}");
        }
    }

    // The next plan moves none of the threads moved (threads born since may appear: drift),
    // and writes no IRQ, default affinity or cpumask.
    let second = dir.path().join("second.json");
    let plan = ok(&[
        "plan",
        cfg,
        "--out",
        second.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&plan).unwrap();
    for c in v["changes"].as_array().unwrap() {
        let path = c["path"].as_str().unwrap();
        assert!(path.starts_with("cpu_pool.isolate.host_threads."), "{c}");
    }
    let again: BTreeSet<_> = planned_moves(&first)
        .intersection(&planned_moves(&second))
        .cloned()
        .collect();
    assert!(again.is_empty(), "planned again after the move: {again:?}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["apply", cfg, "--auto-approve", "--format", "json"])).unwrap();
    assert_eq!(v["host_writes"].as_u64(), Some(0), "{v}");

    // verify passes: any finding left is a thread born after the snapshot (drift), never one
    // that existed before, and never an IRQ.
    let o = kvmtune(&["verify", cfg, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap();
    for c in v["host"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
    {
        let actual = c["actual"].as_str().unwrap();
        assert_eq!(c["setting"], "cpu_pool.isolate.host_threads", "{v}");
        let tid: u32 = actual.split_whitespace().nth(3).unwrap().parse().unwrap();
        let now = read_threads(Path::new("/"))
            .unwrap()
            .into_iter()
            .find(|t| t.tid == tid);
        let existed =
            now.is_some_and(|t| host.threads.get(&tid).is_some_and(|(s, _)| *s == t.start));
        assert!(
            !existed,
            "{actual}: existed before the apply and is still on a dedicated CPU"
        );
        eprintln!("drift (born during the test): {actual}");
    }
    assert_eq!(status_cpus(pid), "0");
}
