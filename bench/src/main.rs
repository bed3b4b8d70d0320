//! kvmtune-bench: times `kvmtune plan` and `kvmtune apply` against the libvirt floor and
//! against two peers (a `virsh` script and an Ansible playbook) on a real libvirtd.
//!
//! The read floor is the least work any tool must do to plan N guests: one read-only
//! connection, one `virConnectListAllDomains`, one `virDomainGetXMLDesc(INACTIVE)` per guest.
//! The write floor is the least work to apply: a read-write connection, the same list and
//! reads, a string edit, and one `virDomainDefineXML` per guest. kvmtune is timed in-process
//! (plan only, with a per-stage breakdown) and as a subprocess — `plan` with all changes
//! pending and with none, `apply` of everything, and a second (no-op) `apply` — with wall, CPU
//! and peak RSS; the floors and peers are measured in the same run and every figure is
//! reported as a ratio against them.
//!
//! Defines domains named `kvmtune-bench-NNNN`, starts the first `--running` of them (64 MiB,
//! a 16 MiB empty qcow2 disk), and at the end destroys and undefines every domain with that
//! prefix (unless `--keep`) and removes the disk images it created.
//!
//! A separate package of the kvmtune workspace (`bench/`), so that `cargo install --path .`
//! installs `kvmtune` alone. Install steps (docs/benchmarks.md, "How to run"):
//!
//!   apt-get install libvirt-dev pkg-config gcc qemu-utils time python3-venv python3-dev
//!   cargo build --release --workspace --bins   # target/release/kvmtune and kvmtune-bench
//!   python3 -m venv target/bench-venv          # the Ansible peer only:
//!   target/bench-venv/bin/pip install ansible libvirt-python lxml
//!   target/release/kvmtune-bench --uri qemu:///system --sizes 10,100,1000 --reps 5
//!   target/release/kvmtune-bench defines --n 1000   # the define experiment (src/defines.rs)
//!   target/release/kvmtune-bench cleanup      # remove leftovers of an interrupted run

mod defines;
mod report;

use std::collections::{BTreeMap, BTreeSet};
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
    about = "Benchmark kvmtune plan/apply against the libvirt floor, virsh and Ansible"
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
    /// Within a repetition, wait (up to this many seconds) for a quiet host before each
    /// measured command.
    #[arg(long, default_value_t = 10)]
    wait_idle_cmd: u64,
    /// Also print every repetition's figures.
    #[arg(long)]
    verbose: bool,
    /// How many bench guests to start (the first ones), so that some are running.
    #[arg(long, default_value_t = 2)]
    running: usize,
    /// Skip the virsh and Ansible peers.
    #[arg(long)]
    no_peers: bool,
    /// Largest N at which the virsh script is run (beyond it: extrapolated).
    #[arg(long, default_value_t = 100)]
    virsh_max_n: usize,
    /// Largest N at which the Ansible playbook is run (beyond it: extrapolated).
    #[arg(long, default_value_t = 100)]
    ansible_max_n: usize,
    /// Repetitions of the peers (the first this many of --reps).
    #[arg(long, default_value_t = 2)]
    peer_reps: usize,
    /// Directory with virsh-peer.sh and ansible/playbook.yml.
    #[arg(long, default_value = "bench")]
    bench_dir: PathBuf,
    /// Python venv with ansible and libvirt-python.
    #[arg(long, default_value = "target/bench-venv")]
    venv: PathBuf,
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
    /// The write floor as a process: list all domains, and for the first N bench domains
    /// GetXMLDesc, add the tuning by string edits, DefineXML.
    FloorWrite {
        #[arg(long)]
        n: usize,
        /// Define with VIR_DOMAIN_DEFINE_VALIDATE (libvirtd checks the XML against its RNG
        /// schema), as kvmtune does.
        #[arg(long)]
        validate: bool,
    },
    /// Re-define the original (un-tuned) XML of the first N bench domains.
    Reset {
        #[arg(long)]
        n: usize,
    },
    /// Destroy and undefine every domain whose name starts with kvmtune-bench-.
    Cleanup,
    /// The define experiment: N guests defined by the write floor (with and without schema
    /// validation) and by kvmtune's plan + `DefinePool` (`schema/K`, `parse/K`: K
    /// connections), each read back and verified; prints a table. Removes the bench domains
    /// at the end unless --keep.
    Defines {
        #[arg(long, default_value_t = 1000)]
        n: usize,
        /// Repetitions of every variant (the order rotates).
        #[arg(long, default_value_t = 2)]
        reps: usize,
        /// Variants: floor[/K], floor-validate[/K], schema/K, parse/K.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "floor,floor-validate,schema/1,schema/2,schema/4,parse/1,parse/2,parse/4"
        )]
        variants: Vec<String>,
    },
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
    env: &[(String, String)],
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
    let cmd = cmd.envs(env.iter().map(|(k, v)| (k, v)));
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
    targets: usize,
    errors: usize,
}

fn kvmtune_once(uri: &str, cfg_name: &str, cfg: &str) -> anyhow::Result<KvmtuneTimes> {
    let t0 = Instant::now();
    let d = kvmtune::desired::load_str(cfg_name, cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let t1 = Instant::now();
    let hv = kvmtune::libvirt::Hypervisor::open(uri, true)?;
    let t2 = Instant::now();
    let obs = kvmtune::observe::observe(&d, Path::new("/"), Some(&hv))?;
    let t3 = Instant::now();
    let plan = kvmtune::pipeline::plan(&d, &obs);
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
        targets: plan.summary.targets,
        errors: plan.summary.errors,
    };
    drop((plan, obs, hv, d));
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The write floor.

/// The tuning of the bench config, as string edits of libvirt's formatting of a bench guest:
/// `<cputune>` and `<numatune>` after `</vcpu>`, `cache='none'` on the qcow2 driver.
fn tune_xml(xml: &str) -> String {
    xml.replacen(
        "</vcpu>\n",
        "</vcpu>\n  <cputune>\n    <vcpupin vcpu='0' cpuset='0'/>\n    <vcpupin vcpu='1' cpuset='1'/>\n    <emulatorpin cpuset='0-1'/>\n  </cputune>\n  <numatune>\n    <memory mode='strict' nodeset='0'/>\n  </numatune>\n",
        1,
    )
    .replace(
        "<driver name='qemu' type='qcow2'/>",
        "<driver name='qemu' type='qcow2' cache='none'/>",
    )
}

#[derive(Debug, Default, Clone, Copy)]
struct WriteTimes {
    read: Duration,
    define: Duration,
    total: Duration,
    domains: usize,
}

/// Connect read-write, list all domains, and for bench domains with index < n (≡ k mod m with
/// `part`): GetXMLDesc(INACTIVE), `tune_xml`, DefineXML.
fn floor_write_once(
    uri: &str,
    n: usize,
    part: Option<(usize, usize)>,
    validate: bool,
) -> anyhow::Result<WriteTimes> {
    let t0 = Instant::now();
    let conn = Connect::open(Some(uri)).context("open")?;
    let doms = conn.list_all_domains(0).context("list_all_domains")?;
    let mut w = WriteTimes::default();
    for d in &doms {
        let name = d.name()?;
        let Some(i) = bench_index(PREFIX, &name) else {
            continue;
        };
        if i >= n || part.is_some_and(|(k, m)| i % m != k) {
            continue;
        }
        let t = Instant::now();
        let xml = d.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)?;
        let new = tune_xml(&xml);
        if new == xml {
            bail!("{name}: nothing to tune (not reset?)");
        }
        let t1 = Instant::now();
        let flags = if validate {
            sys::VIR_DOMAIN_DEFINE_VALIDATE
        } else {
            0
        };
        conn.define_domain_xml_flags(&new, flags)
            .with_context(|| format!("defining {name}"))?;
        w.read += t1 - t;
        w.define += t1.elapsed();
        w.domains += 1;
    }
    drop(doms);
    drop(conn);
    w.total = t0.elapsed();
    Ok(w)
}

/// The write floor split over `threads` connections, one thread each.
fn floor_write_parallel(
    uri: &str,
    n: usize,
    threads: usize,
    validate: bool,
) -> anyhow::Result<(Duration, usize)> {
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let uri = uri.to_string();
            std::thread::spawn(move || floor_write_once(&uri, n, Some((k, threads)), validate))
        })
        .collect();
    let mut count = 0;
    for h in handles {
        count += h.join().expect("floor thread panicked")?.domains;
    }
    Ok((t0.elapsed(), count))
}

// ---------------------------------------------------------------------------------------
// Domains.

fn image_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/var/lib/libvirt/images/{name}.qcow2"))
}

/// The un-tuned bench guest. The UUID is fixed per index so that re-defining this XML resets a
/// tuned guest to its original definition.
fn domain_xml(i: usize) -> String {
    let name = bench_name(i);
    let image = image_path(&name);
    format!(
        "<domain type='kvm'>
  <name>{name}</name>
  <uuid>6b766d74-756e-6562-656e-6368{i:08x}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu placement='static'>2</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'><model type='virtio'/></interface>
  </devices>
</domain>
",
        image.display()
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
        conn.define_domain_xml(&domain_xml(i))
            .with_context(|| format!("defining {name}"))?;
        defined += 1;
    }
    Ok(defined)
}

/// Re-defines the original (un-tuned) XML of kvmtune-bench-0000 .. n-1.
fn reset(uri: &str, n: usize) -> anyhow::Result<()> {
    let conn = Connect::open(Some(uri)).context("open")?;
    for i in 0..n {
        conn.define_domain_xml(&domain_xml(i))
            .with_context(|| format!("re-defining {}", bench_name(i)))?;
    }
    Ok(())
}

/// Starts kvmtune-bench-0000 .. k-1 (creating a 16 MiB qcow2 image for each, if missing).
fn start_running(conn: &Connect, k: usize) -> anyhow::Result<()> {
    for d in conn.list_all_domains(0)? {
        let name = d.name()?;
        let Some(i) = bench_index(PREFIX, &name) else {
            continue;
        };
        if i >= k || d.is_active()? {
            continue;
        }
        let img = image_path(&name);
        if !img.exists() {
            let st = Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2"])
                .arg(&img)
                .arg("16M")
                .status()
                .context("qemu-img")?;
            if !st.success() {
                bail!("qemu-img create {} failed", img.display());
            }
        }
        d.create().with_context(|| format!("starting {name}"))?;
    }
    Ok(())
}

/// Destroys (if running) and undefines every kvmtune-bench-* domain, and removes their images.
fn cleanup(uri: &str) -> anyhow::Result<usize> {
    let conn = Connect::open(Some(uri)).context("open")?;
    let mut n = 0;
    for d in conn.list_all_domains(0)? {
        let name = d.name()?;
        if !name.starts_with(PREFIX) {
            continue;
        }
        if d.is_active()? {
            d.destroy().with_context(|| format!("destroying {name}"))?;
        }
        d.undefine().with_context(|| format!("undefining {name}"))?;
        let _ = std::fs::remove_file(image_path(&name));
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

// ---------------------------------------------------------------------------------------
// The measured processes.

const FLOOR_READ: &str = "floor read";
const FLOOR_WRITE: &str = "floor write";
const PLAN_ALL: &str = "kvmtune plan (all pending)";
const PLAN_NONE: &str = "kvmtune plan (no changes)";
const APPLY_ALL: &str = "kvmtune apply (all)";
const APPLY_NOOP: &str = "kvmtune apply (no-op)";
const VIRSH_READ: &str = "virsh read";
const VIRSH_APPLY: &str = "virsh apply";
const ANSIBLE_CHECK: &str = "ansible check";
const ANSIBLE_APPLY: &str = "ansible apply";

/// Every process series, in report order.
const SERIES: [&str; 10] = [
    FLOOR_READ,
    PLAN_ALL,
    PLAN_NONE,
    APPLY_NOOP,
    FLOOR_WRITE,
    APPLY_ALL,
    VIRSH_READ,
    VIRSH_APPLY,
    ANSIBLE_CHECK,
    ANSIBLE_APPLY,
];

/// One measured process and the CPU libvirtd spent meanwhile.
#[derive(Debug, Clone, Copy)]
struct Sample {
    p: ProcRun,
    daemon: Option<Duration>,
}

#[derive(Default)]
struct RepResult {
    floor_in: Vec<FloorTimes>,
    kvm_in: Vec<KvmtuneTimes>,
    floor_in_cpu: Vec<Duration>,
    kvm_in_cpu: Vec<Duration>,
    floor_par2: Vec<Duration>,
    write_in: Vec<WriteTimes>,
    write_par2: Vec<Duration>,
    procs: BTreeMap<&'static str, Vec<Sample>>,
    daemon_floor: Option<Duration>,
    daemon_kvm: Option<Duration>,
    busy_cmds: usize,
}

struct SizeResult {
    n: usize,
    reps: Vec<RepResult>,
    /// Repetitions that started while the host was still busy (wait_idle timed out).
    busy_reps: usize,
    /// 1-minute load average at the start of each repetition.
    loads: Vec<f64>,
    /// Repetitions redone after an error (e.g. libvirtd restarted by someone else).
    retries: usize,
}

impl SizeResult {
    fn all<T: Clone>(&self, f: impl Fn(&RepResult) -> &Vec<T>) -> Vec<T> {
        self.reps
            .iter()
            .flat_map(|r| f(r).iter().cloned())
            .collect()
    }
    fn samples(&self, series: &str) -> Vec<Sample> {
        self.reps
            .iter()
            .flat_map(|r| r.procs.get(series).cloned().unwrap_or_default())
            .collect()
    }
    /// (median wall, median CPU, max peak RSS KiB), if measured.
    fn stat(&self, series: &str) -> Option<(Duration, Duration, u64)> {
        let v = self.samples(series);
        if v.is_empty() {
            return None;
        }
        Some((
            med_by(&v, |s| s.p.wall),
            med_by(&v, |s| s.p.cpu),
            v.iter().map(|s| s.p.maxrss_kib).max().unwrap_or(0),
        ))
    }
}

fn loadavg1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

struct Ctx<'a> {
    cli: &'a Cli,
    n: usize,
    cfg: String,
    cfg_name: String,
    kvmtune_bin: String,
    self_bin: String,
    playbook: String,
    virsh_script: String,
    venv_bin: PathBuf,
    time_bin: Option<&'a Path>,
    rss_file: PathBuf,
}

impl Ctx<'_> {
    fn kvmtune(&self, cmd: &str) -> Vec<String> {
        let mut v: Vec<String> = vec![
            self.kvmtune_bin.clone(),
            "--connect".into(),
            self.cli.uri.clone(),
            cmd.into(),
            self.cfg_name.clone(),
        ];
        if cmd == "apply" {
            v.push("--auto-approve".into());
        }
        v.extend(["--format".into(), "json".into()]);
        v
    }
    fn floor(&self, mode: &str) -> Vec<String> {
        let mut v = vec![
            self.self_bin.clone(),
            "--uri".into(),
            self.cli.uri.clone(),
            mode.into(),
        ];
        if mode == "floor" {
            v.extend(["--prefix".into(), PREFIX.into()]);
        }
        v.extend(["--n".into(), self.n.to_string()]);
        v
    }
    fn virsh(&self, mode: &str) -> Vec<String> {
        vec![
            self.virsh_script.clone(),
            mode.into(),
            self.n.to_string(),
            self.cli.uri.clone(),
        ]
    }
    fn ansible(&self, check: bool) -> Vec<String> {
        let mut v: Vec<String> = vec![
            self.venv_bin.join("ansible-playbook").display().to_string(),
            "-i".into(),
            "localhost,".into(),
            "-c".into(),
            "local".into(),
            self.playbook.clone(),
            "-e".into(),
            format!("n={}", self.n),
            "-e".into(),
            format!("uri={}", self.cli.uri),
        ];
        if check {
            v.push("--check".into());
        }
        v
    }
    fn ansible_env(&self) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_default();
        vec![
            ("PATH".into(), format!("{}:{path}", self.venv_bin.display())),
            ("ANSIBLE_NOCOLOR".into(), "1".into()),
            ("ANSIBLE_LOCALHOST_WARNING".into(), "0".into()),
            ("ANSIBLE_INVENTORY_UNPARSED_WARNING".into(), "0".into()),
            (
                "ANSIBLE_PYTHON_INTERPRETER".into(),
                self.venv_bin.join("python").display().to_string(),
            ),
        ]
    }

    /// Waits for a quiet host, runs `argv`, records the sample under `series`.
    fn measure(
        &self,
        r: &mut RepResult,
        series: &'static str,
        argv: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<Vec<u8>> {
        if !wait_idle(Duration::from_secs(self.cli.wait_idle_cmd)) {
            r.busy_cmds += 1;
        }
        let d0 = daemon_cpu();
        let (out, p) = run_measured(argv, env, self.time_bin, &self.rss_file)?;
        let daemon = match (d0, daemon_cpu()) {
            (Some(a), Some(b)) => b.checked_sub(a),
            _ => None,
        };
        r.procs
            .entry(series)
            .or_default()
            .push(Sample { p, daemon });
        if self.cli.verbose {
            eprintln!(
                "  N={} {series}: wall {} ms, CPU {} ms, RSS {} MiB",
                self.n,
                ms(p.wall),
                ms(p.cpu),
                mib(p.maxrss_kib)
            );
        }
        Ok(out)
    }

    fn floor_read(&self, r: &mut RepResult) -> anyhow::Result<()> {
        let out = self.measure(r, FLOOR_READ, &self.floor("floor"), &[])?;
        let s = String::from_utf8_lossy(&out);
        if !s.starts_with(&format!("{} ", self.n)) {
            bail!("floor subprocess printed {s:?}");
        }
        Ok(())
    }

    /// Runs kvmtune plan/apply as a process, checks its JSON, returns it.
    fn kvmtune_proc(
        &self,
        r: &mut RepResult,
        series: &'static str,
        cmd: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let out = self.measure(r, series, &self.kvmtune(cmd), &[])?;
        let v: serde_json::Value = serde_json::from_slice(&out)?;
        let n = self.n;
        let ok = match series {
            PLAN_ALL => v["summary"]["targets"] == n && v["summary"]["changes"] == 6 * n,
            PLAN_NONE => v["summary"]["changes"] == 0 && v["summary"]["errors"] == 0,
            APPLY_ALL => v["defines"] == n,
            APPLY_NOOP => v["defines"] == 0,
            _ => true,
        };
        if !ok {
            let short: String = v.to_string().chars().take(400).collect();
            bail!("{series}: unexpected output {short}");
        }
        Ok(v)
    }

    /// Checks that kvmtune sees nothing left to do (after a floor or peer apply).
    fn check_tuned(&self, who: &str) -> anyhow::Result<()> {
        let out = Command::new(&self.kvmtune_bin)
            .args(["--connect", &self.cli.uri, "plan", &self.cfg_name])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !text.contains("No changes") {
            let short: String = text.chars().take(1500).collect();
            bail!("after {who}, kvmtune still plans changes: not equivalent work:\n{short}");
        }
        Ok(())
    }

    fn ansible_run(&self, r: &mut RepResult, check: bool) -> anyhow::Result<()> {
        let series = if check { ANSIBLE_CHECK } else { ANSIBLE_APPLY };
        let out = self.measure(r, series, &self.ansible(check), &self.ansible_env())?;
        let s = String::from_utf8_lossy(&out);
        if !s.contains("failed=0") || !s.contains("changed=1") {
            let tail: String = s
                .chars()
                .rev()
                .take(600)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            bail!("{series}: unexpected result: {tail}");
        }
        Ok(())
    }

    /// One repetition of everything, starting from the un-tuned state.
    fn rep(&self, rep: usize) -> anyhow::Result<RepResult> {
        let cli = self.cli;
        let n = self.n;
        let uri = cli.uri.as_str();
        let mut r = RepResult::default();
        let floor_first = rep.is_multiple_of(2);
        let virsh = !cli.no_peers && rep < cli.peer_reps && n <= cli.virsh_max_n;
        let ansible = !cli.no_peers && rep < cli.peer_reps && n <= cli.ansible_max_n;

        // Un-tuned: plan with every change pending.
        reset(uri, n)?;
        for side in 0..2 {
            if (side == 0) == floor_first {
                self.floor_read(&mut r)?;
            } else {
                self.kvmtune_proc(&mut r, PLAN_ALL, "plan")?;
            }
        }
        // In-process, with the per-stage breakdown (alternating order).
        let (mut dfloor, mut dkvm) = (None, None);
        for side in 0..2 {
            if (side == 0) == floor_first {
                let (c0, d0) = (self_cpu(), daemon_cpu());
                r.floor_in.push(floor_once(uri, PREFIX, n, None)?);
                r.floor_in_cpu.push(self_cpu() - c0);
                dfloor = d0.zip(daemon_cpu()).and_then(|(a, b)| b.checked_sub(a));
            } else {
                let (c0, d0) = (self_cpu(), daemon_cpu());
                r.kvm_in.push(kvmtune_once(uri, &self.cfg_name, &self.cfg)?);
                r.kvm_in_cpu.push(self_cpu() - c0);
                dkvm = d0.zip(daemon_cpu()).and_then(|(a, b)| b.checked_sub(a));
            }
        }
        r.daemon_floor = dfloor;
        r.daemon_kvm = dkvm;
        let (t, count) = floor_parallel(uri, n, 2)?;
        if count != n {
            bail!("parallel floor saw {count} domains, expected {n}");
        }
        r.floor_par2.push(t);
        if virsh {
            self.measure(&mut r, VIRSH_READ, &self.virsh("read"), &[])?;
        }
        if ansible {
            self.ansible_run(&mut r, true)?;
        }

        // Apply everything, then nothing is pending.
        self.kvmtune_proc(&mut r, APPLY_ALL, "apply")?;
        for side in 0..2 {
            if (side == 0) == floor_first {
                self.floor_read(&mut r)?;
            } else {
                self.kvmtune_proc(&mut r, PLAN_NONE, "plan")?;
            }
        }
        self.kvmtune_proc(&mut r, APPLY_NOOP, "apply")?;

        // The write floor, as a process, in-process, and over 2 connections.
        reset(uri, n)?;
        let out = self.measure(&mut r, FLOOR_WRITE, &self.floor("floor-write"), &[])?;
        if !String::from_utf8_lossy(&out).starts_with(&format!("{n} ")) {
            bail!("floor-write printed {:?}", String::from_utf8_lossy(&out));
        }
        if rep == 0 {
            self.check_tuned("the write floor")?;
        }
        reset(uri, n)?;
        wait_idle(Duration::from_secs(cli.wait_idle_cmd));
        r.write_in.push(floor_write_once(uri, n, None, false)?);
        reset(uri, n)?;
        wait_idle(Duration::from_secs(cli.wait_idle_cmd));
        let (t, count) = floor_write_parallel(uri, n, 2, false)?;
        if count != n {
            bail!("parallel write floor defined {count} domains, expected {n}");
        }
        r.write_par2.push(t);

        // The peers' apply, each from the un-tuned state.
        if virsh {
            reset(uri, n)?;
            self.measure(&mut r, VIRSH_APPLY, &self.virsh("apply"), &[])?;
            self.check_tuned("the virsh script")?;
        }
        if ansible {
            reset(uri, n)?;
            self.ansible_run(&mut r, false)?;
            self.check_tuned("the Ansible playbook")?;
        }
        Ok(r)
    }
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
    let abs = |p: &Path| -> anyhow::Result<String> {
        Ok(std::fs::canonicalize(p)
            .with_context(|| format!("{} not found", p.display()))?
            .display()
            .to_string())
    };
    let peers = !cli.no_peers;
    let ctx = Ctx {
        cli,
        n,
        cfg,
        cfg_name: cfg_path.display().to_string(),
        kvmtune_bin: kvmtune_bin.display().to_string(),
        self_bin: self_bin.display().to_string(),
        playbook: if peers {
            abs(&cli.bench_dir.join("ansible/playbook.yml"))?
        } else {
            String::new()
        },
        virsh_script: if peers {
            abs(&cli.bench_dir.join("virsh-peer.sh"))?
        } else {
            String::new()
        },
        venv_bin: if peers {
            PathBuf::from(abs(&cli.venv)?).join("bin")
        } else {
            PathBuf::new()
        },
        time_bin: cli.time_bin.exists().then_some(cli.time_bin.as_path()),
        rss_file: cli.workdir.join("rss.txt"),
    };

    // Warm-up (daemon caches, page cache for the binaries) and a sanity check.
    reset(&cli.uri, n)?;
    let f = floor_once(&cli.uri, PREFIX, n, None)?;
    if f.domains != n {
        bail!("floor saw {} bench domains, expected {n}", f.domains);
    }
    let k = kvmtune_once(&cli.uri, &ctx.cfg_name, &ctx.cfg)?;
    if k.errors != 0 || k.targets != n {
        bail!(
            "kvmtune plan: {} errors, {} targets (expected 0 and {n})",
            k.errors,
            k.targets
        );
    }

    let mut res = SizeResult {
        n,
        reps: vec![],
        busy_reps: 0,
        loads: vec![],
        retries: 0,
    };
    for rep in 0..cli.reps {
        let mut attempt = 0;
        loop {
            if !wait_idle(Duration::from_secs(cli.wait_idle)) {
                res.busy_reps += 1;
            }
            res.loads.push(loadavg1());
            match ctx.rep(rep) {
                Ok(r) => {
                    res.reps.push(r);
                    break;
                }
                Err(e) if attempt < 2 => {
                    eprintln!("N={n} rep {rep}: {e:#}; redoing the repetition in 5 s");
                    res.retries += 1;
                    attempt += 1;
                    std::thread::sleep(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
        eprintln!(
            "N={n}: rep {} done (load {:.2})",
            rep + 1,
            res.loads.last().unwrap()
        );
    }
    Ok(res)
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
        Some(Mode::FloorWrite { n, validate }) => {
            let w = floor_write_once(&cli.uri, *n, None, *validate)?;
            println!(
                "{} {} {}",
                w.domains,
                w.read.as_micros(),
                w.define.as_micros()
            );
            return Ok(());
        }
        Some(Mode::Reset { n }) => {
            reset(&cli.uri, *n)?;
            return Ok(());
        }
        Some(Mode::Cleanup) => {
            let n = cleanup(&cli.uri)?;
            println!("removed {n} domain(s)");
            return Ok(());
        }
        Some(Mode::Defines { n, reps, variants }) => {
            let wait = Duration::from_secs(cli.wait_idle_cmd);
            let result = defines::run(&cli.uri, *n, *reps, variants, wait);
            if !cli.keep {
                match cleanup(&cli.uri) {
                    Ok(n) => eprintln!("destroyed/undefined {n} bench domain(s)"),
                    Err(e) => {
                        eprintln!("error: cleanup failed: {e:#}; run `kvmtune-bench cleanup`")
                    }
                }
            }
            return result;
        }
        None => {}
    }
    run_all(&cli)
}

/// The whole benchmark: every size, every repetition, then the report.
fn run_all(cli: &Cli) -> anyhow::Result<()> {
    let self_bin = std::env::current_exe()?;
    let kvmtune_bin = match &cli.kvmtune {
        Some(p) => p.clone(),
        None => self_bin.with_file_name("kvmtune"),
    };
    if !kvmtune_bin.exists() {
        bail!(
            "{} not found; run `cargo build --release --workspace --bins`",
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
    let started = Instant::now();
    let result = (|| -> anyhow::Result<Vec<SizeResult>> {
        // Start from a clean slate: leftovers may have other UUIDs.
        let removed = cleanup(&cli.uri)?;
        if removed > 0 {
            eprintln!("removed {removed} leftover bench domain(s)");
        }
        let admin = Connect::open(Some(&cli.uri)).context("opening a read-write connection")?;
        let mut results = Vec::new();
        for &n in &sizes {
            let t = Instant::now();
            let defined = ensure_defined(&admin, n)?;
            start_running(&admin, cli.running.min(n))?;
            eprintln!(
                "N={n}: defined {defined} new domain(s) in {:.1}s; {} running; measuring {} reps...",
                t.elapsed().as_secs_f64(),
                cli.running.min(n),
                cli.reps
            );
            results.push(bench_size(cli, &kvmtune_bin, &self_bin, n)?);
        }
        Ok(results)
    })();

    if !cli.keep {
        match cleanup(&cli.uri) {
            Ok(n) => eprintln!("destroyed/undefined {n} bench domain(s)"),
            Err(e) => eprintln!("error: cleanup failed: {e:#}; run `kvmtune-bench cleanup`"),
        }
    }
    let results = result?;
    println!(
        "kvmtune-bench: uri {}, sizes {:?}, reps {} (peers: {} reps, virsh up to N={}, Ansible up to N={}), {} guest(s) running, {:.0} s",
        cli.uri,
        sizes,
        cli.reps,
        if cli.no_peers { 0 } else { cli.peer_reps.min(cli.reps) },
        cli.virsh_max_n,
        cli.ansible_max_n,
        cli.running,
        started.elapsed().as_secs_f64()
    );
    println!("loadavg before: {load_before}; after: {}", loadavg());
    println!(
        "peak RSS from: {}",
        if cli.time_bin.exists() {
            "GNU time %M (the command's own; for a process tree, its largest process)"
        } else {
            "wait4 ru_maxrss (upper bound: includes this process's RSS at spawn)"
        }
    );
    report::report(&results);
    if cli.verbose {
        report::report_raw(&results);
    }
    Ok(())
}
