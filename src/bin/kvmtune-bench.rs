//! kvmtune-bench: times `kvmtune plan` against the libvirt floor on a real libvirtd.
//!
//! The floor is the least work any tool must do to plan N guests: one read-only connection,
//! one `virConnectListAllDomains`, one `virDomainGetXMLDesc(INACTIVE)` per guest. kvmtune's
//! plan is timed in-process (with a per-stage breakdown) and as a subprocess (wall, CPU and
//! peak RSS from `wait4`); the floor is measured the same two ways in the same run, and every
//! figure is reported as a ratio against it.
//!
//! Defines (never starts) domains named `kvmtune-bench-NNNN` and undefines them at the end
//! (unless `--keep`); it only ever undefines inactive domains with that prefix.
//!
//!   cargo build --release --bins
//!   target/release/kvmtune-bench --uri qemu:///system --sizes 10,100,1000 --reps 5
//!   target/release/kvmtune-bench cleanup      # undefine leftovers of an interrupted run

use std::collections::BTreeSet;
use std::io::Read;
use std::os::raw::{c_int, c_long};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use virt::connect::Connect;
use virt::sys;

const PREFIX: &str = "kvmtune-bench-";

#[derive(Debug, Parser)]
#[command(
    name = "kvmtune-bench",
    about = "Benchmark kvmtune plan against the libvirt floor"
)]
struct Cli {
    /// libvirt URI.
    #[arg(long, global = true, default_value = "qemu:///system")]
    uri: String,
    /// Guest counts to benchmark, ascending.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    sizes: Vec<usize>,
    /// Repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Leave the bench domains defined at the end.
    #[arg(long)]
    keep: bool,
    /// The kvmtune binary (default: next to this one).
    #[arg(long)]
    kvmtune: Option<PathBuf>,
    /// Where config files are written.
    #[arg(long, default_value = "/tmp/kvmtune-bench")]
    workdir: PathBuf,
    /// GNU time, used to read a subprocess's own peak RSS (`%M`). Without it, peak RSS comes
    /// from wait4 and is an upper bound: Linux folds the parent's RSS high-water mark at
    /// spawn time into the child's ru_maxrss.
    #[arg(long, default_value = "/usr/bin/time")]
    time_bin: PathBuf,
    /// Before each repetition, wait (up to this many seconds) until the host's other CPU use
    /// drops below 15% (others' builds skew a 2-core box); 0 disables.
    #[arg(long, default_value_t = 60)]
    wait_idle: u64,
    /// Also print every repetition's figures.
    #[arg(long)]
    verbose: bool,
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// The floor as a process: list all domains, GetXMLDesc for the first N bench domains.
    Floor {
        #[arg(long, default_value = PREFIX)]
        prefix: String,
        #[arg(long)]
        n: usize,
    },
    /// Undefine every inactive domain whose name starts with kvmtune-bench-.
    Cleanup,
}

// ---------------------------------------------------------------------------------------
// rusage via libc symbols (libc is linked by std; kvmtune has no direct `libc` dependency).

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Timeval {
    tv_sec: c_long,
    tv_usec: c_long,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Rusage {
    ru_utime: Timeval,
    ru_stime: Timeval,
    ru_maxrss: c_long,
    rest: [c_long; 13],
}

extern "C" {
    fn wait4(pid: c_int, status: *mut c_int, options: c_int, rusage: *mut Rusage) -> c_int;
    fn getrusage(who: c_int, usage: *mut Rusage) -> c_int;
}

fn tv(t: Timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

fn self_cpu() -> Duration {
    let mut ru = Rusage::default();
    // SAFETY: RUSAGE_SELF = 0; `ru` is a valid, correctly laid out struct rusage.
    unsafe { getrusage(0, &mut ru) };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One finished child process.
#[derive(Debug, Clone, Copy)]
struct ProcRun {
    wall: Duration,
    cpu: Duration,
    maxrss_kib: u64,
}

/// Runs `argv`, returns its stdout and its rusage (wall, user+sys, peak RSS).
///
/// With `time_bin`, the command runs under GNU time, which forks it from a small process and
/// reports the command's own peak RSS; wall and CPU still come from our wait4 (CPU then
/// includes GNU time's own, well under a millisecond).
fn run_measured(
    argv: &[String],
    time_bin: Option<&Path>,
    rss_file: &Path,
) -> anyhow::Result<(Vec<u8>, ProcRun)> {
    let mut cmd = match time_bin {
        Some(t) => {
            let mut c = Command::new(t);
            c.arg("-f").arg("%M").arg("-o").arg(rss_file).args(argv);
            c
        }
        None => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    let cmd = &mut cmd;
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {cmd:?}"))?;
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out)?;
    let mut err = Vec::new();
    child.stderr.take().unwrap().read_to_end(&mut err)?;
    let mut status: c_int = 0;
    let mut ru = Rusage::default();
    // SAFETY: the child is ours and not yet reaped (std never waits on drop).
    let r = unsafe { wait4(child.id() as c_int, &mut status, 0, &mut ru) };
    let wall = start.elapsed();
    if r < 0 {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let exited = status & 0x7f == 0;
    let code = (status >> 8) & 0xff;
    if !exited || code != 0 {
        bail!(
            "{cmd:?} failed (status {status:#x}): {}",
            String::from_utf8_lossy(&err)
        );
    }
    let maxrss_kib = match time_bin {
        Some(_) => std::fs::read_to_string(rss_file)?
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .parse()
            .with_context(|| format!("reading {}", rss_file.display()))?,
        None => ru.ru_maxrss as u64,
    };
    Ok((
        out,
        ProcRun {
            wall,
            cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
            maxrss_kib,
        },
    ))
}

// ---------------------------------------------------------------------------------------
// The floor.

fn bench_name(i: usize) -> String {
    format!("{PREFIX}{i:04}")
}

/// Index of a bench domain name (`kvmtune-bench-0042` → 42).
fn bench_index(prefix: &str, name: &str) -> Option<usize> {
    name.strip_prefix(prefix)?.parse().ok()
}

#[derive(Debug, Default, Clone, Copy)]
struct FloorTimes {
    connect: Duration,
    list: Duration,
    xml: Duration,
    total: Duration,
    domains: usize,
    bytes: usize,
}

/// Connect read-only, list all domains, GetXMLDesc(INACTIVE) for bench domains with index < n.
/// With `part = Some((k, m))`, only those whose index ≡ k (mod m).
fn floor_once(
    uri: &str,
    prefix: &str,
    n: usize,
    part: Option<(usize, usize)>,
) -> anyhow::Result<FloorTimes> {
    let t0 = Instant::now();
    let conn = Connect::open_read_only(Some(uri)).context("open_read_only")?;
    let t1 = Instant::now();
    let doms = conn.list_all_domains(0).context("list_all_domains")?;
    let t2 = Instant::now();
    let mut count = 0;
    let mut bytes = 0;
    for d in &doms {
        let name = d.name()?;
        let Some(i) = bench_index(prefix, &name) else {
            continue;
        };
        if i >= n || part.is_some_and(|(k, m)| i % m != k) {
            continue;
        }
        let xml = d.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)?;
        bytes += xml.len();
        count += 1;
    }
    let t3 = Instant::now();
    drop(doms);
    drop(conn);
    Ok(FloorTimes {
        connect: t1 - t0,
        list: t2 - t1,
        xml: t3 - t2,
        total: t0.elapsed(),
        domains: count,
        bytes,
    })
}

/// The floor split over `threads` connections, one thread each.
fn floor_parallel(uri: &str, n: usize, threads: usize) -> anyhow::Result<(Duration, usize)> {
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let uri = uri.to_string();
            std::thread::spawn(move || floor_once(&uri, PREFIX, n, Some((k, threads))))
        })
        .collect();
    let mut count = 0;
    for h in handles {
        count += h.join().expect("floor thread panicked")?.domains;
    }
    Ok((t0.elapsed(), count))
}

// ---------------------------------------------------------------------------------------
// kvmtune in-process.

#[derive(Debug, Default, Clone, Copy)]
struct KvmtuneTimes {
    load: Duration,
    connect: Duration,
    observe: Duration,
    plan: Duration,
    render: Duration,
    total: Duration,
    changes: usize,
    targets: usize,
    errors: usize,
}

fn kvmtune_once(uri: &str, cfg_name: &str, cfg: &str) -> anyhow::Result<KvmtuneTimes> {
    let t0 = Instant::now();
    let d = kvmtune::config::load_str(cfg_name, cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let t1 = Instant::now();
    let hv = kvmtune::libvirt::Hypervisor::open(uri, true)?;
    let t2 = Instant::now();
    let obs = kvmtune::observe::observe(&d, Path::new("/"), Some(&hv))?;
    let t3 = Instant::now();
    let plan = kvmtune::plan::plan(&d, &obs);
    let t4 = Instant::now();
    let json = kvmtune::render::plan_json(&plan);
    let t5 = Instant::now();
    std::hint::black_box(json.len());
    let out = KvmtuneTimes {
        load: t1 - t0,
        connect: t2 - t1,
        observe: t3 - t2,
        plan: t4 - t3,
        render: t5 - t4,
        total: t5 - t0,
        changes: plan.summary.changes,
        targets: plan.summary.targets,
        errors: plan.summary.errors,
    };
    drop((plan, obs, hv, d));
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Domains.

fn domain_xml(name: &str) -> String {
    format!(
        "<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu placement='static'>2</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/{name}.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'><model type='virtio'/></interface>
  </devices>
</domain>
"
    )
}

fn existing_bench(conn: &Connect) -> anyhow::Result<BTreeSet<String>> {
    Ok(conn
        .list_all_domains(0)?
        .iter()
        .filter_map(|d| d.name().ok())
        .filter(|n| n.starts_with(PREFIX))
        .collect())
}

/// Makes sure kvmtune-bench-0000 .. n-1 are defined; returns how many were newly defined.
fn ensure_defined(conn: &Connect, n: usize) -> anyhow::Result<usize> {
    let have = existing_bench(conn)?;
    let mut defined = 0;
    for i in 0..n {
        let name = bench_name(i);
        if have.contains(&name) {
            continue;
        }
        conn.define_domain_xml(&domain_xml(&name))
            .with_context(|| format!("defining {name}"))?;
        defined += 1;
    }
    Ok(defined)
}

fn cleanup(uri: &str) -> anyhow::Result<usize> {
    let conn = Connect::open(Some(uri)).context("open")?;
    let mut n = 0;
    for d in conn.list_all_domains(0)? {
        let name = d.name()?;
        if !name.starts_with(PREFIX) {
            continue;
        }
        if d.is_active()? {
            eprintln!("warning: {name} is running; not undefining it");
            continue;
        }
        d.undefine().with_context(|| format!("undefining {name}"))?;
        n += 1;
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------
// Config.

fn config_yaml(n: usize) -> String {
    let mut s = String::with_capacity(n * 200);
    s.push_str("guests:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  {}:\n    cputune: {{ vcpupin: {{ 0: \"0\", 1: \"1\" }}, emulatorpin: \"0-1\" }}\n    numatune: {{ memory: {{ mode: strict, nodeset: \"0\" }} }}\n    disks: {{ \"*\": {{ cache: none }} }}\n",
            bench_name(i)
        ));
    }
    s
}

// ---------------------------------------------------------------------------------------
// Statistics and reporting.

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2
    }
}

fn med_by<T>(v: &[T], f: impl Fn(&T) -> Duration) -> Duration {
    median(v.iter().map(f).collect())
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64())
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// (busy, total) jiffies of all CPUs from /proc/stat.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// Waits until the host is quiet: under 15% CPU busy over a 0.5 s window. Returns whether it
/// got quiet before `timeout`.
fn wait_idle(timeout: Duration) -> bool {
    if timeout.is_zero() {
        return true;
    }
    let start = Instant::now();
    loop {
        let Some((b0, t0)) = cpu_jiffies() else {
            return true;
        };
        std::thread::sleep(Duration::from_millis(500));
        let Some((b1, t1)) = cpu_jiffies() else {
            return true;
        };
        if t1 > t0 && ((b1 - b0) as f64) < 0.15 * (t1 - t0) as f64 {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
    }
}

/// CPU time (user+sys) used so far by the libvirtd / virtqemud process, if found.
fn daemon_cpu() -> Option<Duration> {
    let tick = 100.0; // USER_HZ on Linux
    for e in std::fs::read_dir("/proc").ok()? {
        let e = e.ok()?;
        let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) else {
            continue;
        };
        if !matches!(comm.trim(), "libvirtd" | "virtqemud") {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let after = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        // after ')' : state(0) ... utime is field 14 overall → index 11 here, stime 12.
        let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        return Some(Duration::from_secs_f64(ticks / tick));
    }
    None
}

struct SizeResult {
    n: usize,
    floor_in: Vec<FloorTimes>,
    kvm_in: Vec<KvmtuneTimes>,
    floor_in_cpu: Vec<Duration>,
    kvm_in_cpu: Vec<Duration>,
    floor_par2: Vec<Duration>,
    floor_proc: Vec<ProcRun>,
    kvm_proc: Vec<ProcRun>,
    daemon_cpu_floor: Option<Duration>,
    daemon_cpu_kvm: Option<Duration>,
    /// Repetitions that started while the host was still busy (wait_idle timed out).
    busy_reps: usize,
}

fn bench_size(
    cli: &Cli,
    kvmtune_bin: &Path,
    self_bin: &Path,
    n: usize,
) -> anyhow::Result<SizeResult> {
    std::fs::create_dir_all(&cli.workdir)?;
    let cfg = config_yaml(n);
    let cfg_path = cli.workdir.join(format!("bench-{n}.yaml"));
    std::fs::write(&cfg_path, &cfg)?;
    let cfg_name = cfg_path.display().to_string();

    // Warm-up (daemon caches, page cache for the binaries) and a sanity check.
    let f = floor_once(&cli.uri, PREFIX, n, None)?;
    if f.domains != n {
        bail!("floor saw {} bench domains, expected {n}", f.domains);
    }
    let k = kvmtune_once(&cli.uri, &cfg_name, &cfg)?;
    if k.errors != 0 || k.targets != n {
        bail!(
            "kvmtune plan: {} errors, {} targets (expected 0 and {n})",
            k.errors,
            k.targets
        );
    }

    let mut r = SizeResult {
        n,
        floor_in: vec![],
        kvm_in: vec![],
        floor_in_cpu: vec![],
        kvm_in_cpu: vec![],
        floor_par2: vec![],
        floor_proc: vec![],
        kvm_proc: vec![],
        daemon_cpu_floor: None,
        daemon_cpu_kvm: None,
        busy_reps: 0,
    };
    let mut dfloor = Duration::ZERO;
    let mut dkvm = Duration::ZERO;
    for rep in 0..cli.reps {
        if !wait_idle(Duration::from_secs(cli.wait_idle)) {
            r.busy_reps += 1;
        }
        // Alternate the order so neither side systematically runs on a warmer daemon.
        let floor_first = rep % 2 == 0;
        for side in 0..2 {
            if (side == 0) == floor_first {
                let (c0, d0) = (self_cpu(), daemon_cpu());
                r.floor_in.push(floor_once(&cli.uri, PREFIX, n, None)?);
                r.floor_in_cpu.push(self_cpu() - c0);
                if let (Some(a), Some(b)) = (d0, daemon_cpu()) {
                    dfloor += b - a;
                }
            } else {
                let (c0, d0) = (self_cpu(), daemon_cpu());
                r.kvm_in.push(kvmtune_once(&cli.uri, &cfg_name, &cfg)?);
                r.kvm_in_cpu.push(self_cpu() - c0);
                if let (Some(a), Some(b)) = (d0, daemon_cpu()) {
                    dkvm += b - a;
                }
            }
        }
        let (t, count) = floor_parallel(&cli.uri, n, 2)?;
        if count != n {
            bail!("parallel floor saw {count} domains, expected {n}");
        }
        r.floor_par2.push(t);

        let s = |p: &Path| p.display().to_string();
        let floor_argv: Vec<String> = vec![
            s(self_bin),
            "--uri".into(),
            cli.uri.clone(),
            "floor".into(),
            "--prefix".into(),
            PREFIX.into(),
            "--n".into(),
            n.to_string(),
        ];
        let kvm_argv: Vec<String> = vec![
            s(kvmtune_bin),
            "--connect".into(),
            cli.uri.clone(),
            "plan".into(),
            s(&cfg_path),
            "--format".into(),
            "json".into(),
        ];
        let time_bin = cli.time_bin.exists().then_some(cli.time_bin.as_path());
        let rss_file = cli.workdir.join("rss.txt");
        for side in 0..2 {
            if (side == 0) == floor_first {
                let (out, p) = run_measured(&floor_argv, time_bin, &rss_file)?;
                let s = String::from_utf8_lossy(&out);
                if !s.starts_with(&format!("{n} ")) {
                    bail!("floor subprocess printed {s:?}");
                }
                r.floor_proc.push(p);
            } else {
                let (out, p) = run_measured(&kvm_argv, time_bin, &rss_file)?;
                let v: serde_json::Value = serde_json::from_slice(&out)?;
                if v["summary"]["targets"] != n {
                    bail!("kvmtune plan summary: {}", v["summary"]);
                }
                r.kvm_proc.push(p);
            }
        }
    }
    if daemon_cpu().is_some() {
        r.daemon_cpu_floor = Some(dfloor / cli.reps as u32);
        r.daemon_cpu_kvm = Some(dkvm / cli.reps as u32);
    }
    Ok(r)
}

fn report_raw(results: &[SizeResult]) {
    println!("\n### Every repetition (ms; RSS MiB)\n");
    for r in results {
        let list = |v: Vec<Duration>| v.into_iter().map(ms).collect::<Vec<_>>().join(" ");
        println!("N={}:", r.n);
        println!(
            "  floor in-process     {}",
            list(r.floor_in.iter().map(|t| t.total).collect())
        );
        println!(
            "  floor GetXMLDesc×N   {}",
            list(r.floor_in.iter().map(|t| t.xml).collect())
        );
        println!(
            "  kvmtune in-process   {}",
            list(r.kvm_in.iter().map(|t| t.total).collect())
        );
        println!(
            "  kvmtune observe      {}",
            list(r.kvm_in.iter().map(|t| t.observe).collect())
        );
        println!("  floor 2 connections  {}", list(r.floor_par2.clone()));
        println!(
            "  floor proc wall      {}",
            list(r.floor_proc.iter().map(|p| p.wall).collect())
        );
        println!(
            "  kvmtune proc wall    {}",
            list(r.kvm_proc.iter().map(|p| p.wall).collect())
        );
        println!(
            "  floor proc CPU       {}",
            list(r.floor_proc.iter().map(|p| p.cpu).collect())
        );
        println!(
            "  kvmtune proc CPU     {}",
            list(r.kvm_proc.iter().map(|p| p.cpu).collect())
        );
        let rss = |v: &[ProcRun]| {
            v.iter()
                .map(|p| mib(p.maxrss_kib))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("  floor proc RSS       {}", rss(&r.floor_proc));
        println!("  kvmtune proc RSS     {}", rss(&r.kvm_proc));
    }
}

fn report(results: &[SizeResult], reps: usize) {
    println!("\n### kvmtune plan vs. floor (median of {reps})\n");
    println!(
        "| N | floor wall ms | kvmtune wall ms | ratio | floor proc wall ms | kvmtune proc wall ms | ratio | floor proc CPU ms | kvmtune proc CPU ms | ratio | floor peak RSS MiB | kvmtune peak RSS MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let fw = med_by(&r.floor_in, |t| t.total);
        let kw = med_by(&r.kvm_in, |t| t.total);
        let fpw = med_by(&r.floor_proc, |p| p.wall);
        let kpw = med_by(&r.kvm_proc, |p| p.wall);
        let fpc = med_by(&r.floor_proc, |p| p.cpu);
        let kpc = med_by(&r.kvm_proc, |p| p.cpu);
        let frss = r.floor_proc.iter().map(|p| p.maxrss_kib).max().unwrap_or(0);
        let krss = r.kvm_proc.iter().map(|p| p.maxrss_kib).max().unwrap_or(0);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.n,
            ms(fw),
            ms(kw),
            ratio(kw, fw),
            ms(fpw),
            ms(kpw),
            ratio(kpw, fpw),
            ms(fpc),
            ms(kpc),
            ratio(kpc, fpc),
            mib(frss),
            mib(krss),
        );
    }

    println!("\n### Best of {reps} (min wall ms; less sensitive to a noisy host)\n");
    println!("| N | floor | kvmtune | ratio | floor proc | kvmtune proc | ratio | floor proc CPU | kvmtune proc CPU | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let min = |v: Vec<Duration>| v.into_iter().min().unwrap_or_default();
        let fw = min(r.floor_in.iter().map(|t| t.total).collect());
        let kw = min(r.kvm_in.iter().map(|t| t.total).collect());
        let fpw = min(r.floor_proc.iter().map(|p| p.wall).collect());
        let kpw = min(r.kvm_proc.iter().map(|p| p.wall).collect());
        let fpc = min(r.floor_proc.iter().map(|p| p.cpu).collect());
        let kpc = min(r.kvm_proc.iter().map(|p| p.cpu).collect());
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.n,
            ms(fw),
            ms(kw),
            ratio(kw, fw),
            ms(fpw),
            ms(kpw),
            ratio(kpw, fpw),
            ms(fpc),
            ms(kpc),
            ratio(kpc, fpc),
        );
    }

    println!("\n### Where the time goes (in-process, median ms)\n");
    println!(
        "| N | floor connect | floor list | floor GetXMLDesc ×N | µs/GetXMLDesc | floor 2 conns | 2-conn speed-up | floor CPU | kvmtune load | kvmtune connect | kvmtune observe | kvmtune plan | kvmtune render | kvmtune CPU | daemon CPU floor | daemon CPU kvmtune |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let fw = med_by(&r.floor_in, |t| t.total);
        let fx = med_by(&r.floor_in, |t| t.xml);
        let p2 = median(r.floor_par2.clone());
        let opt = |d: Option<Duration>| d.map(ms).unwrap_or_else(|| "?".into());
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {:.2}× | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.n,
            ms(med_by(&r.floor_in, |t| t.connect)),
            ms(med_by(&r.floor_in, |t| t.list)),
            ms(fx),
            fx.as_secs_f64() * 1e6 / r.n as f64,
            ms(p2),
            fw.as_secs_f64() / p2.as_secs_f64(),
            ms(median(r.floor_in_cpu.clone())),
            ms(med_by(&r.kvm_in, |t| t.load)),
            ms(med_by(&r.kvm_in, |t| t.connect)),
            ms(med_by(&r.kvm_in, |t| t.observe)),
            ms(med_by(&r.kvm_in, |t| t.plan)),
            ms(med_by(&r.kvm_in, |t| t.render)),
            ms(median(r.kvm_in_cpu.clone())),
            opt(r.daemon_cpu_floor),
            opt(r.daemon_cpu_kvm),
        );
    }
    for r in results.iter().filter(|r| r.busy_reps > 0) {
        println!(
            "\nN={}: {} of the repetitions ran while other processes kept the host busy.",
            r.n, r.busy_reps
        );
    }
    if let Some(r) = results.first() {
        let k = &r.kvm_in[0];
        let f = &r.floor_in[0];
        println!(
            "\n(N={}: plan has {} changes over {} guests; floor read {} bytes of XML)",
            r.n, k.changes, k.targets, f.bytes
        );
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    virt::error::clear_error_callback();
    match &cli.mode {
        Some(Mode::Floor { prefix, n }) => {
            let f = floor_once(&cli.uri, prefix, *n, None)?;
            println!("{} {}", f.domains, f.bytes);
            return Ok(());
        }
        Some(Mode::Cleanup) => {
            let n = cleanup(&cli.uri)?;
            println!("undefined {n} domain(s)");
            return Ok(());
        }
        None => {}
    }

    let self_bin = std::env::current_exe()?;
    let kvmtune_bin = match &cli.kvmtune {
        Some(p) => p.clone(),
        None => self_bin.with_file_name("kvmtune"),
    };
    if !kvmtune_bin.exists() {
        bail!(
            "{} not found; run `cargo build --release --bins`",
            kvmtune_bin.display()
        );
    }
    let mut sizes = cli.sizes.clone();
    sizes.sort();
    sizes.dedup();
    if sizes.is_empty() || cli.reps == 0 {
        bail!("need at least one size and one rep");
    }

    let loadavg = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let load_before = loadavg();
    let result = (|| -> anyhow::Result<Vec<SizeResult>> {
        let admin = Connect::open(Some(&cli.uri)).context("opening a read-write connection")?;
        let mut results = Vec::new();
        for &n in &sizes {
            let t = Instant::now();
            let defined = ensure_defined(&admin, n)?;
            eprintln!(
                "N={n}: defined {defined} new domain(s) in {:.1}s; measuring {} reps...",
                t.elapsed().as_secs_f64(),
                cli.reps
            );
            let r = bench_size(&cli, &kvmtune_bin, &self_bin, n)?;
            eprintln!(
                "N={n}: floor {} ms, kvmtune {} ms",
                ms(med_by(&r.floor_in, |t| t.total)),
                ms(med_by(&r.kvm_in, |t| t.total))
            );
            results.push(r);
        }
        Ok(results)
    })();

    if !cli.keep {
        match cleanup(&cli.uri) {
            Ok(n) => eprintln!("undefined {n} bench domain(s)"),
            Err(e) => eprintln!("error: cleanup failed: {e:#}; run `kvmtune-bench cleanup`"),
        }
    }
    let results = result?;
    println!(
        "kvmtune-bench: uri {}, sizes {:?}, reps {}",
        cli.uri, sizes, cli.reps
    );
    println!("loadavg before: {load_before}; after: {}", loadavg());
    println!(
        "peak RSS from: {}",
        if cli.time_bin.exists() {
            "GNU time %M (the command's own)"
        } else {
            "wait4 ru_maxrss (upper bound: includes this process's RSS at spawn)"
        }
    );
    report(&results, cli.reps);
    if cli.verbose {
        report_raw(&results);
    }
    Ok(())
}
