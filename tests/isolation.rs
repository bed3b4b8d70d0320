//! `host.cpu_pool.isolate.{irqs,workqueues,host_threads}` and `verify`'s isolation checks on a
//! simulated 4-CPU host (tests/data/isolate: /proc/irq with a managed IRQ, /proc/<pid>/task,
//! the workqueue cpumask, Debian's irqbalance file, a fake systemctl) and libvirt's `test:///`
//! driver (tests/data/isolate/host.xml). Reserved CPU 0, dedicated 1-3.
//!
//! A temp file cannot refuse a write with EIO, and moving a thread is `sched_setaffinity`, not a
//! file write: [`Kernel`] stands in for the kernel through the host-file and command seams
//! (a managed IRQ refuses its affinity, a thread whose cpuset lacks CPU 0 refuses with EINVAL,
//! a move rewrites the thread's `Cpus_allowed_list`). Through the CLI the real seams run: IRQ and
//! workqueue files are written; host threads below a temp root are never moved.

mod support;
use support::*;

use std::path::{Path, PathBuf};

use kvmtune::apply::{apply_with, HostIo, Target};
use kvmtune::cpuset::CpuSet;
use kvmtune::host::{CmdOutput, HostCommands, HostFiles, RealFiles};

fn data() -> PathBuf {
    repo().join("tests/data/isolate")
}

fn uri() -> String {
    format!("test://{}", data().join("host.xml").display())
}

/// Copies the tree without the `.gitkeep` placeholders (device directories are empty).
fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &dest);
        } else if e.file_name() != ".gitkeep" {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// kvmtune against tests/data/isolate/host.xml with `root`.
fn kt_at(root: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args(["--connect", &uri(), "--root"])
        .arg(root)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn sim_root() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    copy(&data().join("root"), t.path());
    t
}

fn read(root: &Path, f: &str) -> String {
    std::fs::read_to_string(root.join(f)).unwrap()
}

fn cfg(dir: &Path, isolate: &str) -> String {
    let p = dir.join("t.yaml");
    std::fs::write(
        &p,
        format!("host:\n  cpu_pool:\n    reserved: \"0\"\n    isolate: {{ {isolate} }}\n"),
    )
    .unwrap();
    p.display().to_string()
}

/// The files these tests change, with their content.
fn snapshot(root: &Path) -> Vec<(String, String)> {
    let mut files = vec![
        "proc/irq/default_smp_affinity".to_string(),
        "sys/devices/virtual/workqueue/cpumask".into(),
        "etc/default/irqbalance".into(),
    ];
    for irq in [0, 1, 8, 36] {
        files.push(format!("proc/irq/{irq}/smp_affinity_list"));
    }
    files
        .into_iter()
        .map(|f| {
            let c = read(root, &f);
            (f, c)
        })
        .collect()
}

#[test]
fn irqs_and_workqueues_plan_apply_converge_and_roll_back() {
    let root = sim_root();
    let r = root.path();
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), "irqs: true, workqueues: true");
    let before = snapshot(r);

    let o = kt(r, &["plan", &cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let plan = out(&o);
    for want in [
        "~ cpu_pool.isolate.irqs.default_smp_affinity: f → 1",
        "~ cpu_pool.isolate.irqs.1: 0-3 → 0",
        "~ cpu_pool.isolate.irqs.8: 0-3 → 0",
        "~ cpu_pool.isolate.irqs.36: 0-3 → 0",
        "~ cpu_pool.isolate.workqueues: f → 1",
        "+ cpu_pool.isolate.irqs.IRQBALANCE_BANNED_CPULIST: (unset) → 1-3",
        "+ cpu_pool.isolate.irqs.default_smp_affinity (persisted): (absent) → 1",
        "+ cpu_pool.isolate.workqueues (persisted): (absent) → 1",
    ] {
        assert!(plan.contains(want), "missing `{want}` in\n{plan}");
    }
    // IRQ 0 is already on the reserved CPU; `x1` is not an IRQ number.
    assert!(!plan.contains("irqs.0:") && !plan.contains("x1"), "{plan}");
    let j = kt(r, &["plan", &cfg, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out(&j)).unwrap();
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 8, "{changes:#?}");
    assert!(
        changes.iter().all(|c| c["effect"] == "live"),
        "{changes:#?}"
    );
    assert_eq!(snapshot(r), before, "plan wrote something");

    let o = kt(r, &["apply", &cfg, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(read(r, "proc/irq/default_smp_affinity").trim(), "1");
    for irq in [0, 1, 8, 36] {
        assert_eq!(
            read(r, &format!("proc/irq/{irq}/smp_affinity_list")).trim(),
            "0"
        );
    }
    assert_eq!(read(r, "sys/devices/virtual/workqueue/cpumask").trim(), "1");
    // Only the key was added to the distribution's file; every other byte stays.
    let original = &before
        .iter()
        .find(|(f, _)| f == "etc/default/irqbalance")
        .unwrap()
        .1;
    assert_eq!(
        read(r, "etc/default/irqbalance"),
        format!("{original}IRQBALANCE_BANNED_CPULIST=1-3\n")
    );
    // irqbalance runs: restarted once, because its file changed.
    assert_eq!(
        read(r, "systemctl.log"),
        "is-active --quiet irqbalance.service\nrestart irqbalance.service\n"
    );
    let tmpfiles = read(r, "etc/tmpfiles.d/90-kvmtune.conf");
    assert!(
        tmpfiles.ends_with("w /proc/irq/default_smp_affinity - - - - 1\nw /sys/devices/virtual/workqueue/cpumask - - - - 1\n"),
        "{tmpfiles}"
    );

    let o = kt(r, &["plan", &cfg, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(out(&o).starts_with("No changes."), "{}", out(&o));
    let o = kt(r, &["apply", &cfg, "--auto-approve", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(
        (v["host_writes"].as_u64(), v["host_commands"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(read(r, "systemctl.log").lines().count(), 2);

    // Rollback puts every value back, the distribution's file byte for byte.
    let o = kt(r, &["rollback", "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(snapshot(r), before);
    let o = kt(r, &["plan", &cfg, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    // The owned tmpfiles.d file is rewritten declaring nothing (never deleted): its two
    // entries show again, as do the six runtime values.
    assert_eq!(v["changes"].as_array().unwrap().len(), 8, "{v}");
}

#[test]
fn saved_plan_with_isolation_applies_and_refuses_a_widened_ban_list() {
    let root = sim_root();
    let r = root.path();
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), "irqs: true");
    let saved = dir.path().join("plan.json").display().to_string();
    let o = kt(r, &["plan", &cfg, "--out", &saved]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    // An edited ban list that would keep irqbalance off the reserved CPU is refused whole.
    let text = std::fs::read_to_string(&saved).unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        text.replace("\"banned\": \"1-3\"", "\"banned\": \"0-3\""),
    )
    .unwrap();
    assert_ne!(std::fs::read_to_string(&bad).unwrap(), text);
    let o = kt(r, &["apply", bad.to_str().unwrap(), "--auto-approve"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(err(&o).contains("does not declare"), "{}", describe(&o));
    let o = kt(r, &["apply", &saved, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(read(r, "proc/irq/8/smp_affinity_list").trim(), "0");
}

#[test]
fn host_threads_below_a_temp_root_are_planned_but_never_moved() {
    let root = sim_root();
    let r = root.path();
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), "host_threads: true");
    let o = kt(r, &["plan", &cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let plan = out(&o);
    for want in [
        "~ cpu_pool.isolate.host_threads.1 (systemd): 0-3 → 0",
        "~ cpu_pool.isolate.host_threads.2 (kthreadd): 0-3 → 0",
        "~ cpu_pool.isolate.host_threads.500 (sshd): 0-3 → 0",
        "~ cpu_pool.isolate.host_threads.800 (refuser): 2-3 → 0",
        "apply moves host threads only on the running kernel",
    ] {
        assert!(plan.contains(want), "missing `{want}` in\n{plan}");
    }
    // Never: QEMU (600), per-CPU kthreads (10, 11), threads already reserved (700).
    for pid in [600, 10, 11, 700] {
        assert!(!plan.contains(&format!("host_threads.{pid} ")), "{plan}");
    }
    let status = read(r, "proc/500/task/501/status");
    let o = kt(r, &["apply", &cfg, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        describe(&o).contains("is not /: not moved"),
        "{}",
        describe(&o)
    );
    assert_eq!(read(r, "proc/500/task/501/status"), status);
}

/// The kernel, on a simulated tree: IRQ 36 is managed (EIO), thread 800's cpuset has no
/// reserved CPU (EINVAL); a moved thread's `Cpus_allowed_list` and a written IRQ's
/// effective affinity change as the kernel would change them.
struct Kernel {
    root: PathBuf,
    commands: std::sync::Mutex<Vec<String>>,
}

impl HostFiles for Kernel {
    fn write(&self, file: &Path, content: &str) -> std::io::Result<()> {
        if file.ends_with("proc/irq/36/smp_affinity_list") {
            return Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        RealFiles.write(file, content)?;
        if file.ends_with("smp_affinity_list") {
            let first = content
                .trim()
                .parse::<CpuSet>()
                .unwrap()
                .iter()
                .next()
                .unwrap();
            RealFiles.write(
                &file.with_file_name("effective_affinity_list"),
                &format!("{first}\n"),
            )?;
        }
        Ok(())
    }

    fn read(&self, file: &Path) -> std::io::Result<String> {
        RealFiles.read(file)
    }
}

impl HostCommands for Kernel {
    fn run(&self, argv: &[String]) -> std::io::Result<CmdOutput> {
        self.commands.lock().unwrap().push(argv[1..].join(" "));
        Ok(CmdOutput {
            code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
        })
    }

    fn set_affinity(&self, root: &Path, tid: u32, cpus: &CpuSet) -> std::io::Result<()> {
        assert_eq!(root, self.root);
        if tid == 800 {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        for pid in std::fs::read_dir(root.join("proc")).unwrap() {
            let status = pid.unwrap().path().join(format!("task/{tid}/status"));
            if let Ok(s) = std::fs::read_to_string(&status) {
                let s: String = s
                    .lines()
                    .map(|l| match l.starts_with("Cpus_allowed_list:") {
                        true => format!("Cpus_allowed_list:\t{cpus}\n"),
                        false => format!("{l}\n"),
                    })
                    .collect();
                return std::fs::write(&status, s);
            }
        }
        Err(std::io::Error::from_raw_os_error(libc::ESRCH))
    }
}

fn desired(isolate: &str) -> kvmtune::desired::Desired {
    kvmtune::desired::load_str(
        "t.yaml",
        &format!("host:\n  cpu_pool:\n    reserved: \"0\"\n    isolate: {{ {isolate} }}\n"),
    )
    .unwrap()
}

/// observe → plan → apply through the simulated kernel; returns the plan and the report.
fn apply_sim(
    d: &kvmtune::desired::Desired,
    k: &Kernel,
) -> (kvmtune::plan::Plan, kvmtune::apply::ApplyReport) {
    let obs = kvmtune::observe::observe(d, &k.root, None).unwrap();
    let plan = kvmtune::pipeline::plan(d, &obs);
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    let t = Target {
        root: &k.root,
        hv: None,
        io: HostIo { files: k, cmds: k },
    };
    let report = apply_with(&plan, d, t, &mut |_, _, _| {});
    (plan, report)
}

const ALL: &str = "irqs: true, workqueues: true, host_threads: true";

#[test]
fn managed_irqs_and_refusing_threads_are_reported_once_and_the_plan_converges() {
    let root = sim_root();
    let k = Kernel {
        root: root.path().to_path_buf(),
        commands: Default::default(),
    };
    let d = desired(ALL);
    let (plan, report) = apply_sim(&d, &k);
    let paths: Vec<&str> = plan.changes.iter().map(|c| c.path.as_str()).collect();
    assert!(paths.contains(&"cpu_pool.isolate.irqs.36"), "{paths:?}");
    assert!(report.ok(), "{report:#?}");
    let notes = report.notes.join("\n");
    assert!(
        notes.contains("IRQ 36 (virtio1-req.0): the kernel refused a new affinity")
            && notes.contains("recorded: not planned again"),
        "{notes}"
    );
    assert!(
        notes.contains("refused (EINVAL") && notes.contains("tid 800"),
        "{notes}"
    );
    assert!(notes.contains("irqbalance.service restarted"), "{notes}");
    let r = root.path();
    assert_eq!(read(r, "proc/irq/36/smp_affinity_list").trim(), "0-3");
    assert_eq!(read(r, "proc/irq/8/smp_affinity_list").trim(), "0");
    for (pid, tid) in [(1, 1), (2, 2), (500, 500), (500, 501)] {
        let s = read(r, &format!("proc/{pid}/task/{tid}/status"));
        assert!(s.contains("Cpus_allowed_list:\t0\n"), "{pid}/{tid}: {s}");
    }
    // Untouched: QEMU, per-CPU kthreads, the refusing thread.
    for (pid, tid, cpus) in [
        (600, 600, "0-3"),
        (600, 601, "2"),
        (10, 10, "1"),
        (11, 11, "2"),
        (800, 800, "2-3"),
    ] {
        let s = read(r, &format!("proc/{pid}/task/{tid}/status"));
        assert!(
            s.contains(&format!("Cpus_allowed_list:\t{cpus}\n")),
            "{pid}/{tid}: {s}"
        );
    }
    let rec: serde_json::Value =
        serde_json::from_str(&read(r, "var/lib/kvmtune/refused.json")).unwrap();
    assert_eq!(rec["irqs"][0]["irq"], 36);
    assert_eq!(rec["irqs"][0]["devices"], "virtio1-req.0");
    assert_eq!(rec["threads"][0]["tid"], 800);

    // The next plan is empty: the refusals are notes, not changes planned forever.
    let obs = kvmtune::observe::observe(&d, r, None).unwrap();
    let again = kvmtune::pipeline::plan(&d, &obs);
    assert!(again.changes.is_empty(), "{:#?}", again.changes);
    assert!(again.actions.is_empty(), "{:#?}", again.actions);
    let notes = again.notes.join("\n");
    assert!(notes.contains("IRQ 36 (virtio1-req.0)"), "{notes}");
    assert!(notes.contains("1 thread(s) refused"), "{notes}");
    let (_, second) = apply_sim(&d, &k);
    assert_eq!((second.host_writes, second.host_commands), (0, 0));
    assert_eq!(
        *k.commands.lock().unwrap(),
        [
            "is-active --quiet irqbalance.service",
            "restart irqbalance.service"
        ]
    );

    // The same IRQ number with another device is tried again (numbers are reused).
    std::fs::rename(
        r.join("proc/irq/36/virtio1-req.0"),
        r.join("proc/irq/36/nvme0q1"),
    )
    .unwrap();
    let obs = kvmtune::observe::observe(&d, r, None).unwrap();
    let p = kvmtune::pipeline::plan(&d, &obs);
    let paths: Vec<&str> = p.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["cpu_pool.isolate.irqs.36"]);
}

#[test]
fn a_thread_that_changed_or_exited_since_the_plan_is_left_alone() {
    let root = sim_root();
    let r = root.path();
    let k = Kernel {
        root: r.to_path_buf(),
        commands: Default::default(),
    };
    let d = desired("host_threads: true");
    let obs = kvmtune::observe::observe(&d, r, None).unwrap();
    let plan = kvmtune::pipeline::plan(&d, &obs);
    // Between plan and apply: 501 is pinned elsewhere by someone, 2 exits, 1 is a new
    // thread with the same tid (another start time).
    let st = r.join("proc/500/task/501/status");
    let s = std::fs::read_to_string(&st)
        .unwrap()
        .replace("list:\t0-3", "list:\t3");
    std::fs::write(&st, s).unwrap();
    std::fs::remove_dir_all(r.join("proc/2")).unwrap();
    let stat = r.join("proc/1/task/1/stat");
    let s = std::fs::read_to_string(&stat)
        .unwrap()
        .replace(" 10 0 0\n", " 99 0 0\n");
    std::fs::write(&stat, s).unwrap();
    let t = Target {
        root: r,
        hv: None,
        io: HostIo {
            files: &k,
            cmds: &k,
        },
    };
    let report = apply_with(&plan, &d, t, &mut |_, _, _| {});
    assert!(report.ok(), "{report:#?}");
    let notes = report.notes.join("\n");
    assert!(
        notes.contains("changed since the plan, left alone (plan again): tid 501"),
        "{notes}"
    );
    assert!(
        notes.contains("host_threads.2 (kthreadd): 0 moved; exited before the move: tid 2"),
        "{notes}"
    );
    assert!(
        notes.contains("host_threads.1 (systemd): 0 moved; exited before the move: tid 1"),
        "{notes}"
    );
    assert!(read(r, "proc/500/task/501/status").contains("list:\t3\n"));
    assert!(read(r, "proc/1/task/1/status").contains("list:\t0-3\n"));
    assert!(read(r, "proc/500/task/500/status").contains("list:\t0\n"));
}

#[test]
fn verify_finds_a_planted_intruder_thread_and_irq_and_passes_after_apply() {
    let root = sim_root();
    let r = root.path();
    std::fs::remove_dir_all(r.join("proc/800")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), ALL);
    let verify = || kt_at(r, &["verify", &cfg]);
    let o = verify();
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let text = out(&o);
    for want in [
        "cpu_pool.isolate.host_threads  nothing on dedicated CPUs 1-3  pid 500 tid 501 (sshd worker) on 0-3  DIFFERS",
        "pid 2 tid 2 (kthreadd) on 0-3",
        "cpu_pool.isolate.irqs  nothing on dedicated CPUs 1-3  IRQ 8 (rtc0) on 2  DIFFERS",
        "IRQ 36 (virtio1-req.0) on 3",
        "guests not declared  nothing on dedicated CPUs 1-3  nothing on dedicated CPUs 1-3  ok",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
    // Never findings: QEMU's threads, per-CPU kthreads, IRQ 0 on the reserved CPU.
    for not in ["pid 600", "CPU 0/KVM", "ksoftirqd", "cpuhp", "IRQ 0 "] {
        assert!(!text.contains(not), "{not} in\n{text}");
    }
    // The same findings as metrics: one intruder per failing check.
    let intruders = |kind: &str| {
        let o = kt_at(r, &["verify", &cfg, "--format", "prometheus"]);
        let line = format!("kvmtune_isolation_intruders{{kind=\"{kind}\"}} ");
        out(&o)
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()).map(str::to_string))
            .unwrap_or_else(|| panic!("no {line} in\n{}", out(&o)))
    };
    let findings = |setting: &str| {
        text.lines()
            .filter(|l| l.contains(setting) && l.ends_with("DIFFERS"))
            .count()
    };
    let (threads, irqs) = (
        findings("cpu_pool.isolate.host_threads"),
        findings("cpu_pool.isolate.irqs"),
    );
    assert!(threads >= 2 && irqs >= 2, "{text}");
    assert_eq!(intruders("thread"), threads.to_string(), "{text}");
    assert_eq!(intruders("irq"), irqs.to_string(), "{text}");
    assert_eq!(intruders("vcpu"), "0", "{text}");
    let k = Kernel {
        root: r.to_path_buf(),
        commands: Default::default(),
    };
    let (_, report) = apply_sim(&desired(ALL), &k);
    assert!(report.ok(), "{report:#?}");
    let o = verify();
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(
        out(&o).contains("note: cpu_pool.isolate.irqs: managed by the kernel (they refused a new affinity), on dedicated CPUs until isolcpus=managed_irq takes effect at boot: IRQ 36 (virtio1-req.0) on 3"),
        "{}",
        out(&o)
    );
    let o = kt_at(r, &["verify", &cfg, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["summary"]["differences"], 0, "{v}");
    for kind in ["thread", "irq", "vcpu"] {
        assert_eq!(intruders(kind), "0", "{kind} after apply");
    }
    assert_eq!(v["host"].as_array().unwrap().len(), 3, "{v}");
}

#[test]
fn unmanaged_guests_that_float_over_dedicated_cpus_are_findings() {
    use kvmtune::verify::isolation::{compare, HostFacts};
    let d = desired("irqs: true");
    let xml = |vcpu: &str, pins: &str| {
        format!("<domain><name>x</name>{vcpu}<cputune>{pins}</cputune></domain>")
    };
    let facts = HostFacts {
        online: "0-3".parse().ok(),
        others: [
            ("floater".to_string(), xml("<vcpu>2</vcpu>", "")),
            (
                "pinned".to_string(),
                xml(
                    "<vcpu>2</vcpu>",
                    "<vcpupin vcpu='0' cpuset='0'/><vcpupin vcpu='1' cpuset='3'/>",
                ),
            ),
            ("confined".to_string(), xml("<vcpu cpuset='0'>4</vcpu>", "")),
        ]
        .into(),
        ..Default::default()
    };
    let (checks, _) = compare(&d.host, &facts);
    let found: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.actual.as_str())
        .collect();
    assert_eq!(
        found,
        [
            "guest floater vCPU 0 can run on 0-3",
            "guest floater vCPU 1 can run on 0-3",
            "guest pinned vCPU 1 can run on 3"
        ]
    );
    // No IRQ read: the IRQ category passes.
    assert!(checks
        .iter()
        .any(|c| c.setting == "cpu_pool.isolate.irqs" && c.ok));
    // Nothing declared: nothing checked.
    let none = desired("").host;
    assert!(compare(&none, &facts).0.is_empty());
}

#[test]
fn an_irq_whose_move_waits_for_its_next_interrupt_is_a_note_not_a_finding() {
    use kvmtune::model::keys::IrqNum;
    use kvmtune::verify::isolation::{compare, HostFacts, IrqFact};
    let irq = |n: u32, affinity: &str, effective: &str| IrqFact {
        irq: IrqNum::new(n).unwrap(),
        devices: format!("dev{n}"),
        affinity: affinity.parse().ok(),
        effective: effective.parse().ok(),
    };
    let facts = HostFacts {
        online: "0-3".parse().ok(),
        irqs: vec![
            irq(5, "0", "2"),
            irq(6, "0-3", "0"),
            irq(7, "0-3", "3"),
            irq(9, "1", ""),
        ],
        ..Default::default()
    };
    let (checks, notes) = compare(&desired("irqs: true").host, &facts);
    let found: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.actual.as_str())
        .collect();
    assert_eq!(found, ["IRQ 7 (dev7) on 3", "IRQ 9 (dev9) on 1"]);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("next interrupt") && n.contains("IRQ 5 (dev5) on 2")),
        "{notes:?}"
    );
}

#[test]
fn the_executor_never_moves_qemu_or_per_cpu_kthreads_whatever_the_plan_says() {
    use kvmtune::host::threads::ThreadRef;
    use kvmtune::host::HostOp;
    let root = sim_root();
    let r = root.path();
    let k = Kernel {
        root: r.to_path_buf(),
        commands: Default::default(),
    };
    let d = desired("host_threads: true");
    let obs = kvmtune::observe::observe(&d, r, None).unwrap();
    let mut plan = kvmtune::pipeline::plan(&d, &obs);
    let op = |pid: u32, tid: u32, start: u64, before: &str| HostOp::MoveThreads {
        pid,
        comm: "x".into(),
        cpus: "0".parse().unwrap(),
        threads: vec![ThreadRef {
            tid,
            start,
            before: before.parse().unwrap(),
        }],
    };
    plan.actions = vec![kvmtune::plan::Action::Host(vec![
        op(600, 601, 601, "2"),
        op(10, 10, 12, "1"),
    ])];
    let t = Target {
        root: r,
        hv: None,
        io: HostIo {
            files: &k,
            cmds: &k,
        },
    };
    let report = apply_with(&plan, &d, t, &mut |_, _, _| {});
    let failed = format!("{:?}", report.results[0].failed);
    assert!(
        failed.contains("a QEMU process or kvmtune itself is never moved"),
        "{failed}"
    );
    assert!(
        failed.contains("tid 10 is a per-CPU kernel thread"),
        "{failed}"
    );
    assert!(read(r, "proc/600/task/601/status").contains("list:\t2\n"));
    assert!(read(r, "proc/10/task/10/status").contains("list:\t1\n"));
}
