//! `kvmtune verify --format prometheus` and `--textfile`: drift as metrics, on the demo host
//! (test driver + a temp copy of its /proc and /sys tree, with one QEMU process laid out
//! below the root as libvirt and the kernel show it). Every exposition is checked with
//! Prometheus' own `promtool check metrics` (Debian's `prometheus` package, installed by
//! scripts/env-up.sh); the test fails, never skips, without it.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::*;

/// `promtool check metrics` on `text`: its complaints (empty when it has none).
fn promtool(text: &str) -> String {
    let mut c = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus; scripts/env-up.sh installs it)");
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    let said = format!("{}{}", out(&o), err(&o));
    assert!(
        o.status.success() || !said.is_empty(),
        "promtool failed silently"
    );
    if o.status.success() {
        said
    } else {
        format!("promtool exit {:?}: {said}", o.status.code())
    }
}

/// The value of the series `series` (`name{labels}` exactly as printed).
fn value(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(str::to_string)
}

/// Lays out db1's QEMU process below `root`: the pid file libvirt writes, four vCPU threads
/// pinned as declared, an emulator thread allowed everywhere (drift), memory on both nodes
/// (drift) and no huge page mapping (drift).
fn fake_qemu(root: &Path) {
    let pid = 4242;
    std::fs::create_dir_all(root.join("run/libvirt/qemu")).unwrap();
    std::fs::write(root.join("run/libvirt/qemu/db1.pid"), format!("{pid}\n")).unwrap();
    let threads = [
        (pid, "qemu-system-x86", "0-15"),
        (4243, "CPU 0/KVM", "2"),
        (4244, "CPU 1/KVM", "3"),
        (4245, "CPU 2/KVM", "10"),
        (4246, "CPU 3/KVM", "11"),
    ];
    for (tid, comm, cpus) in threads {
        let d = root.join(format!("proc/{pid}/task/{tid}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(
            d.join("status"),
            format!("Name:\t{comm}\nCpus_allowed_list:\t{cpus}\nMems_allowed_list:\t0-1\n"),
        )
        .unwrap();
        std::fs::write(
            d.join("stat"),
            format!("{tid} ({comm}) S 1 {pid} {pid} 0 -1 4194368 0 0\n"),
        )
        .unwrap();
    }
    std::fs::write(
        root.join(format!("proc/{pid}/smaps")),
        "7f0000000000-7f0100000000 rw-p 00000000 00:00 0\nSize:            4194304 kB\nKernelPageSize:        4 kB\n",
    )
    .unwrap();
}

fn demo_config() -> String {
    repo()
        .join("examples/demo/tuning.yaml")
        .display()
        .to_string()
}

#[test]
fn demo_metrics_snapshot() {
    let root = demo_root();
    fake_qemu(root.path());
    // The host settings stay applied below the root; the test driver forgets guest changes
    // when the process ends, so the guests drift again, as a guest edited by hand would.
    let o = kt(root.path(), &["apply", "--auto-approve", &demo_config()]);
    assert!(o.status.success(), "{}", describe(&o));
    let o = kt(
        root.path(),
        &["verify", "--format", "prometheus", &demo_config()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let text = out(&o);
    assert_eq!(promtool(&text), "", "{text}");
    assert_eq!(value(&text, "kvmtune_verify_success").as_deref(), Some("1"));
    // The duration and the apply's time are the values that change from run to run.
    let stable: String = text
        .lines()
        .map(|l| {
            for name in [
                "kvmtune_verify_duration_seconds",
                "kvmtune_last_apply_timestamp_seconds",
            ] {
                if let Some(v) = l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')) {
                    assert!(v.parse::<f64>().is_ok_and(|s| s >= 0.0), "{l}");
                    return format!("{name} (varies)\n");
                }
            }
            format!("{l}\n")
        })
        .collect();
    insta::assert_snapshot!("demo_metrics", stable);
}

const SWAPPINESS: &str = "host:\n  sysctl: { vm.swappiness: 10 }\n";
const IN_SYNC: &str = "kvmtune_setting_in_sync{target=\"host\",setting=\"sysctl.vm.swappiness\"}";

#[test]
fn a_drifting_sysctl_is_out_of_sync_until_applied() {
    let root = demo_root();
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("t.yaml");
    std::fs::write(&cfg, SWAPPINESS).unwrap();
    let cfg = cfg.to_str().unwrap();
    let metrics = |want: i32| {
        let o = kt(root.path(), &["verify", "--format", "prometheus", cfg]);
        assert_eq!(o.status.code(), Some(want), "{}", describe(&o));
        let text = out(&o);
        assert_eq!(promtool(&text), "", "{text}");
        text
    };

    let before = metrics(2);
    assert_eq!(value(&before, IN_SYNC).as_deref(), Some("0"), "{before}");
    assert_eq!(
        value(&before, "kvmtune_settings_drifting{target=\"host\"}").as_deref(),
        Some("1")
    );
    // No apply yet: no last-apply series at all (not a fake 0 timestamp).
    assert_eq!(value(&before, "kvmtune_last_apply_success"), None);

    let o = kt(root.path(), &["apply", cfg, "--auto-approve"]);
    assert!(o.status.success(), "{}", describe(&o));
    let after = metrics(0);
    assert_eq!(value(&after, IN_SYNC).as_deref(), Some("1"), "{after}");
    assert_eq!(
        value(&after, "kvmtune_last_apply_success").as_deref(),
        Some("1")
    );
    let when: u64 = value(&after, "kvmtune_last_apply_timestamp_seconds")
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(when <= now && now - when < 3600, "{when} vs {now}");

    // Idempotent: nothing left to plan, and a second apply writes no record.
    let o = kt(root.path(), &["plan", "--detailed-exitcode", cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let records = || {
        std::fs::read_dir(root.path().join("var/lib/kvmtune/applies"))
            .unwrap()
            .count()
    };
    let n = records();
    let o = kt(root.path(), &["apply", cfg, "--auto-approve"]);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(records(), n);

    // Drift again by hand: out of sync again, the last apply still a success.
    std::fs::write(root.path().join("proc/sys/vm/swappiness"), "60\n").unwrap();
    let again = metrics(2);
    assert_eq!(value(&again, IN_SYNC).as_deref(), Some("0"));
    assert_eq!(
        value(&again, "kvmtune_last_apply_success").as_deref(),
        Some("1")
    );
}

#[test]
fn a_failed_apply_is_recorded_as_such() {
    let root = demo_root();
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("t.yaml");
    std::fs::write(&cfg, SWAPPINESS).unwrap();
    let cfg = cfg.to_str().unwrap();
    // The kernel file refuses writes (EROFS): the apply fails and says so in its record.
    let ro = ReadOnlyFile::new(&root.path().join("proc/sys/vm/swappiness"));
    let o = kt(root.path(), &["apply", cfg, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    drop(ro);
    let o = kt(root.path(), &["verify", "--format", "prometheus", cfg]);
    let text = out(&o);
    assert_eq!(
        value(&text, "kvmtune_last_apply_success").as_deref(),
        Some("0"),
        "{}",
        describe(&o)
    );
}

#[test]
fn textfile_is_replaced_atomically_and_never_through_a_symlink() {
    use std::os::unix::fs::MetadataExt;
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, SWAPPINESS).unwrap();
    let cfg = cfg.to_str().unwrap();
    let prom = dir.path().join("kvmtune.prom");
    let run = |path: &Path| {
        kt(
            root.path(),
            &["verify", cfg, "--textfile", path.to_str().unwrap()],
        )
    };

    let o = run(&prom);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert_eq!(out(&o), "", "metrics go to the file, not stdout");
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(promtool(&text), "", "{text}");
    assert_eq!(value(&text, IN_SYNC).as_deref(), Some("0"));
    assert_eq!(std::fs::metadata(&prom).unwrap().mode() & 0o777, 0o644);
    // Replaced whole: a new inode, no temp file left beside it.
    let ino = std::fs::metadata(&prom).unwrap().ino();
    assert_eq!(run(&prom).status.code(), Some(2));
    assert_ne!(std::fs::metadata(&prom).unwrap().ino(), ino);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("prom"))
        .collect();
    assert_eq!(names, ["kvmtune.prom"]);

    // A symlink in its place is refused and its target left alone.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep\n").unwrap();
    let link = dir.path().join("link.prom");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let o = run(&link);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("is a symlink: refusing to replace it"),
        "{}",
        describe(&o)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    // Names node_exporter would not read, and missing directories, are refused.
    for bad in [
        dir.path().join("kvmtune.txt"),
        dir.path().join("no/such.prom"),
    ] {
        let o = run(&bad);
        assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
        assert!(!bad.exists());
    }
    let o = kt(
        root.path(),
        &[
            "verify",
            cfg,
            "--format",
            "json",
            "--textfile",
            prom.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
}

#[test]
fn a_broken_configuration_still_writes_a_failure_metric() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, "host:\n  sysctl: { vm.swappiness: [\n").unwrap();
    let prom = dir.path().join("kvmtune.prom");
    let o = kt(
        root.path(),
        &[
            "verify",
            cfg.to_str().unwrap(),
            "--textfile",
            prom.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(err(&o).contains("t.yaml"), "{}", describe(&o));
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(promtool(&text), "", "{text}");
    assert_eq!(value(&text, "kvmtune_verify_success").as_deref(), Some("0"));
    assert_eq!(value(&text, IN_SYNC), None);
}
