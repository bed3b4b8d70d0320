//! Fault injection on the real libvirtd and on a temp host root: SIGKILL at many points during
//! apply, libvirtd restarted in the middle of an apply, a kernel file that rejects a value, and a
//! read-only filesystem under `--root`. Afterwards every guest is still defined, each guest's
//! owned settings are wholly the old or wholly the new ones, owned host files are whole, and a
//! rerun converges.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The tests here disturb the whole hypervisor (libvirtd restarts): one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Two tunings the guests alternate between, so every apply has work to do.
fn tuning(names: &[String], variant: usize) -> String {
    let (pin, cache, emu) = if variant.is_multiple_of(2) {
        ("0", "none", "0-1")
    } else {
        ("1", "writeback", "1")
    };
    let mut y = format!(
        "host:\n  sysctl: {{ vm.swappiness: {} , vm.dirty_ratio: {} }}\nguests:\n",
        10 + variant % 2,
        20 + variant % 2
    );
    for n in names {
        y.push_str(&format!(
            "  {n}:\n    cputune: {{ vcpupin: {{ 0: \"{pin}\", 1: \"{pin}\" }}, emulatorpin: \"{emu}\" }}\n    disks: {{ \"*\": {{ cache: {cache} }} }}\n"
        ));
    }
    y
}

/// Whether `xml` has every owned setting `yaml` declares for `name`.
fn matches_new(yaml: &str, name: &str, xml: &str) -> bool {
    let d = kvmtune::desired::load_str("t.yaml", yaml).unwrap();
    let gd = d.guests.iter().find(|(n, _)| n.as_str() == name).unwrap().1;
    kvmtune::domain::plan_guest(gd, xml, None)
        .unwrap()
        .changes
        .is_empty()
}

/// A temp root with the two sysctls (plain files) and an /etc for persistence.
fn host_root() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("proc/sys/vm")).unwrap();
    std::fs::write(t.path().join("proc/sys/vm/swappiness"), "60\n").unwrap();
    std::fs::write(t.path().join("proc/sys/vm/dirty_ratio"), "20\n").unwrap();
    std::fs::create_dir_all(t.path().join("etc")).unwrap();
    t
}

fn sigkill(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

#[test]
fn sigkill_at_many_points_leaves_guests_defined_and_a_rerun_converges() {
    let _serial = serial();
    let guests: Vec<Guest> = (0..6)
        .map(|i| Guest::define(&format!("kill{i}"), Spec::default()))
        .collect();
    let names: Vec<String> = guests.iter().map(|g| g.name().to_string()).collect();
    let root = host_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    let kill_points = 30;
    let mut killed_mid_apply = 0;
    for i in 0..kill_points {
        let yaml = tuning(&names, i);
        let before: Vec<String> = names
            .iter()
            .map(|n| virsh_ok(&["dumpxml", "--inactive", n]))
            .collect();
        std::fs::write(&cfg, &yaml).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kvmtune"))
            .args([
                "--connect",
                &uri(),
                "--root",
                root.path().to_str().unwrap(),
                "apply",
                cfg.to_str().unwrap(),
                "--auto-approve",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill points spread over the whole apply (start-up, observe, defines, host writes).
        std::thread::sleep(Duration::from_millis((i as u64 * 7) % 120));
        sigkill(child.id());
        let status = child.wait().unwrap();
        if status.code().is_none() {
            killed_mid_apply += 1;
        }
        // Every guest is defined and either untouched or wholly in the new state.
        for (n, old) in names.iter().zip(&before) {
            assert!(
                domain_exists(n),
                "kill point {i}: guest {n} is no longer defined"
            );
            let now = virsh_ok(&["dumpxml", "--inactive", n]);
            assert!(
                &now == old || matches_new(&yaml, n, &now),
                "kill point {i}: guest {n} is neither its old XML nor the new tuning"
            );
        }
        // The owned persistence file is absent or whole (atomic replace).
        let f = root.path().join("etc/sysctl.d/90-kvmtune.conf");
        if let Ok(text) = std::fs::read_to_string(&f) {
            assert!(
                text.contains("vm.dirty_ratio") && text.contains("vm.swappiness"),
                "kill point {i}: torn file:\n{text}"
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(root.path().join("etc/sysctl.d"))
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            leftovers.len() <= 2,
            "kill point {i}: temp files pile up: {leftovers:?}"
        );
    }
    assert!(
        killed_mid_apply >= kill_points / 2,
        "only {killed_mid_apply} of {kill_points} kills landed mid-apply"
    );
    // A rerun converges.
    let yaml = tuning(&names, 0);
    std::fs::write(&cfg, &yaml).unwrap();
    let o = kvmtune(
        root.path(),
        &["apply", cfg.to_str().unwrap(), "--auto-approve"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let o = kvmtune(
        root.path(),
        &["plan", cfg.to_str().unwrap(), "--detailed-exitcode"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    eprintln!("kill points: {kill_points}, killed mid-apply: {killed_mid_apply}");
}

/// Restores libvirtd if the test stopped it, whatever happens.
struct LibvirtdUp;

impl Drop for LibvirtdUp {
    fn drop(&mut self) {
        ensure_libvirtd();
    }
}

fn libvirtd_pid() -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-x", "libvirtd"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Starts libvirtd again once the stopped one has exited, and waits until it answers.
fn ensure_libvirtd() {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if libvirtd_pid().is_none() {
            let _ = Command::new("libvirtd").arg("-d").status();
        }
        if virsh(&["version"]).status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("libvirtd did not come back");
}

#[test]
fn libvirtd_restarted_mid_apply_is_a_clear_error_and_a_rerun_converges() {
    let _serial = serial();
    let guests: Vec<Guest> = (0..8)
        .map(|i| Guest::define(&format!("lvd{i}"), Spec::default()))
        .collect();
    let names: Vec<String> = guests.iter().map(|g| g.name().to_string()).collect();
    let root = host_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    let _up = LibvirtdUp;
    let mut saw_error = false;
    for (i, delay) in [5u64, 15, 30, 60].iter().enumerate() {
        std::fs::write(&cfg, tuning(&names, i + 1)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kvmtune"))
            .args([
                "--connect",
                &uri(),
                "--root",
                root.path().to_str().unwrap(),
                "apply",
                cfg.to_str().unwrap(),
                "--auto-approve",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(*delay));
        if let Some(pid) = libvirtd_pid() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let out = child.wait_with_output().unwrap();
        ensure_libvirtd();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains("panicked"), "{text}");
        if out.status.code() == Some(1) {
            saw_error = true;
            // The error names the step and the object.
            assert!(
                text.contains("connecting to")
                    || text.contains("guest ")
                    || text.contains("listing domains"),
                "unclear error: {text}"
            );
        }
        for n in &names {
            assert!(domain_exists(n), "guest {n} vanished");
        }
        let o = kvmtune(
            root.path(),
            &["apply", cfg.to_str().unwrap(), "--auto-approve"],
        );
        assert_eq!(o.status.code(), Some(0), "rerun: {}", describe(&o));
        let o = kvmtune(
            root.path(),
            &["plan", cfg.to_str().unwrap(), "--detailed-exitcode"],
        );
        assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    }
    assert!(saw_error, "libvirtd never went away during an apply");
}

fn run(root: &Path, yaml: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args([
            "--root",
            root.to_str().unwrap(),
            "apply",
            cfg.to_str().unwrap(),
            "--auto-approve",
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// A kernel file that rejects a value with EINVAL: the THP `defrag` path of the root tree points
/// at the real `enabled` file, which refuses `defer`. The other keys are still applied.
#[test]
fn a_kernel_file_rejecting_a_value_is_reported_and_other_keys_apply() {
    let _serial = serial();
    let root = host_root();
    let thp = root.path().join("sys/kernel/mm/transparent_hugepage");
    std::fs::create_dir_all(&thp).unwrap();
    std::os::unix::fs::symlink(
        "/sys/kernel/mm/transparent_hugepage/enabled",
        thp.join("defrag"),
    )
    .unwrap();
    let before = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap();
    let o = run(root.path(), "host:\n  persist: false\n  sysctl: { vm.swappiness: 7 }\n  transparent_hugepage: { defrag: defer }\n");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("transparent_hugepage.defrag") && out.contains("Invalid argument"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness")).unwrap(),
        "7\n"
    );
    assert_eq!(
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap(),
        before
    );
    // Planning again: the applied key is settled; only the refused one is still a change.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, "host:\n  persist: false\n  sysctl: { vm.swappiness: 7 }\n  transparent_hugepage: { defrag: defer }\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args([
            "--root",
            root.path().to_str().unwrap(),
            "plan",
            cfg.to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let paths: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["transparent_hugepage.defrag"]);
}

/// A read-only filesystem under --root (a read-only bind mount): apply cannot store the
/// previous state, so it changes nothing and says so in one line; exit 1; plan still works.
#[test]
fn a_read_only_root_is_a_clear_error() {
    let _serial = serial();
    let root = host_root();
    let ro = tempfile::tempdir().unwrap();
    let st = Command::new("mount")
        .args([
            "--bind",
            root.path().to_str().unwrap(),
            ro.path().to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success(), "bind mount failed (tests run as root)");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(ro.path().to_path_buf());
    let st = Command::new("mount")
        .args(["-o", "remount,bind,ro", ro.path().to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = run(
        ro.path(),
        "host:\n  sysctl: { vm.swappiness: 7, vm.dirty_ratio: 5 }\n",
    );
    // apply backs up the previous values before changing anything: with nowhere to keep
    // them, it changes nothing and says why.
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "error: state directory {}/var/lib/kvmtune: Read-only file system (os error 30)",
            ro.path().display()
        )
    );
    // plan (which writes nothing) still works on the read-only root.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(
        &cfg,
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 7 }\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args([
            "--root",
            ro.path().to_str().unwrap(),
            "plan",
            cfg.to_str().unwrap(),
            "--detailed-exitcode",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness")).unwrap(),
        "60\n"
    );
}
