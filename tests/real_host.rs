//! Changes the real host and restores it: sysctl with persistence, transparent huge pages,
//! the 2M huge page pool (global and node 0, a few pages only: never more than the kernel can
//! give), KSM, a veth pair's MTU, and a real tuned daemon switching profiles. Runs as root in
//! CI; fails (never skips) when it cannot write /proc/sys.
//!
//! kvmtune runs with `--root /`, as on a real hypervisor: runtime values land on the real
//! kernel, the persisted files on the real /etc (`/etc/sysctl.d/90-kvmtune.conf`, ...), the
//! backups in the real `/var/lib/kvmtune`. The tests hold one lock (they share kernel state);
//! every kernel value is restored by a guard, and [`OwnedFiles`] saves kvmtune's persisted
//! files (removing them) and state directory before each test and puts them back exactly as
//! they were afterwards, also when an assertion fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

static HOST: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    HOST.lock().unwrap_or_else(|e| e.into_inner())
}

/// Restores the original content of host files on drop (in reverse order of saving).
struct Restore(Vec<(PathBuf, String)>);

impl Restore {
    fn save(files: &[&str]) -> Restore {
        Restore(
            files
                .iter()
                .map(|f| {
                    let p = PathBuf::from(f);
                    let v = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{f}: {e}"));
                    (p, v)
                })
                .collect(),
        )
    }
}

fn selected(v: &str) -> String {
    match (v.find('['), v.find(']')) {
        (Some(a), Some(b)) => v[a + 1..b].to_string(),
        _ => v.trim().to_string(),
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        for (p, v) in self.0.iter().rev() {
            let value = if v.contains('[') {
                selected(v)
            } else {
                v.trim().to_string()
            };
            let now = std::fs::read_to_string(p).unwrap_or_default();
            if now == *v {
                continue;
            }
            let mut r = std::fs::write(p, &value);
            // merge_across_nodes changes only while no pages are shared (EBUSY otherwise):
            // unmerge them (run = 2), write it, then put run back as it was.
            if r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EBUSY)
                && p.ends_with("merge_across_nodes")
            {
                let run = p.with_file_name("run");
                let was = std::fs::read_to_string(&run).unwrap_or_default();
                let _ = std::fs::write(&run, "2");
                r = std::fs::write(p, &value);
                let _ = std::fs::write(&run, was.trim());
            }
            if let Err(e) = r {
                eprintln!("could not restore {}: {e}", p.display());
            }
        }
    }
}

/// The files kvmtune persists to on the real host (src/host/persist.rs).
const PERSISTED: [&str; 5] = [
    kvmtune::host::persist::SYSCTL_CONF,
    kvmtune::host::persist::TMPFILES_CONF,
    kvmtune::host::persist::MODULES_CONF,
    kvmtune::host::persist::GRUB_CFG,
    kvmtune::host::tuned::CHILD_CONF,
];

/// kvmtune's state directory below `--root /` (backups and the apply lock).
const STATE_DIR: &str = "/var/lib/kvmtune";

/// A persisted file as it was: its path, its bytes and mode (`None`: absent), and whether its
/// directory existed.
type SavedFile = (PathBuf, Option<(Vec<u8>, u32)>, bool);

/// kvmtune's own files on the real host: each persisted file (content and mode, or absent, and
/// whether its directory existed) and the whole state directory (copied with `cp -a`). Taking
/// the guard saves them and removes the persisted files, so a test starts as on a host
/// kvmtune never persisted anything on; dropping it puts back exactly what was there (the
/// state directory too: removed, or replaced by the saved copy), also while a failed test
/// unwinds.
struct OwnedFiles {
    files: Vec<SavedFile>,
    state: tempfile::TempDir,
    state_existed: bool,
}

impl OwnedFiles {
    fn take() -> OwnedFiles {
        use std::os::unix::fs::PermissionsExt;
        let files = PERSISTED
            .iter()
            .map(|f| {
                let p = Path::new("/").join(f);
                let saved = std::fs::read(&p).ok().map(|b| {
                    let mode = std::fs::metadata(&p).unwrap().permissions().mode();
                    (b, mode)
                });
                if saved.is_some() {
                    std::fs::remove_file(&p).unwrap();
                }
                let dir_existed = p.parent().unwrap().is_dir();
                (p, saved, dir_existed)
            })
            .collect();
        let state = tempfile::tempdir().unwrap();
        let state_existed = Path::new(STATE_DIR).exists();
        if state_existed {
            let st = Command::new("cp")
                .args(["-a", STATE_DIR])
                .arg(state.path().join("kvmtune"))
                .status()
                .unwrap();
            assert!(st.success(), "saving {STATE_DIR}");
        }
        OwnedFiles {
            files,
            state,
            state_existed,
        }
    }
}

impl Drop for OwnedFiles {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        for (p, saved, dir_existed) in &self.files {
            let result = match saved {
                Some((bytes, mode)) => std::fs::create_dir_all(p.parent().unwrap())
                    .and_then(|_| std::fs::write(p, bytes))
                    .and_then(|_| {
                        std::fs::set_permissions(p, std::fs::Permissions::from_mode(*mode))
                    }),
                None => match std::fs::remove_file(p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => {
                        if !dir_existed {
                            // Only if empty: kvmtune created it for this file.
                            let _ = std::fs::remove_dir(p.parent().unwrap());
                        }
                        Ok(())
                    }
                },
            };
            if let Err(e) = result {
                eprintln!("could not restore {}: {e}", p.display());
            }
        }
        if let Err(e) = std::fs::remove_dir_all(STATE_DIR) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("could not remove {STATE_DIR}: {e}");
            }
        }
        if self.state_existed {
            // Contents into the (re-created) directory: `cp -a DIR DEST` would nest DIR inside
            // DEST if anything re-created DEST meanwhile.
            let _ = std::fs::create_dir_all(STATE_DIR);
            let ok = Command::new("cp")
                .arg("-a")
                .arg(self.state.path().join("kvmtune/."))
                .arg(STATE_DIR)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("could not restore {STATE_DIR}");
            }
        }
    }
}

/// kvmtune's files on the real host as they are: each persisted file's bytes (or absent) and
/// every path below the state directory with its bytes (`None` for a directory).
type Snapshot = (Vec<Option<Vec<u8>>>, Vec<(PathBuf, Option<Vec<u8>>)>);

fn owned_snapshot() -> Snapshot {
    let files = PERSISTED
        .iter()
        .map(|f| std::fs::read(Path::new("/").join(f)).ok())
        .collect();
    let mut state = Vec::new();
    let mut stack = vec![PathBuf::from(STATE_DIR)];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            state.push((p, None));
        } else if p.exists() {
            state.push((p.clone(), std::fs::read(&p).ok()));
        }
    }
    state.sort();
    (files, state)
}

fn kvmtune(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn run_ok(dir: &Path, args: &[&str]) -> String {
    let o = kvmtune(dir, args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// With `--root /`: apply → plan is empty → second apply writes nothing; returns the first
/// apply's output. The configuration is `dir/t.yaml`.
fn converge(dir: &Path, yaml: &str) -> String {
    let cfg = dir.join("t.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let cfg = cfg.to_str().unwrap();
    let out = run_ok(dir, &["--root", "/", "apply", cfg, "--auto-approve"]);
    assert!(out.contains(" 0 failed"), "{out}");
    let plan = run_ok(dir, &["--root", "/", "plan", cfg, "--detailed-exitcode"]);
    assert!(plan.starts_with("No changes."), "{plan}");
    let again = run_ok(
        dir,
        &[
            "--root",
            "/",
            "apply",
            cfg,
            "--auto-approve",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        (v["host_writes"].as_u64(), v["host_commands"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
    out
}

fn read(f: &str) -> String {
    std::fs::read_to_string(f).unwrap().trim().to_string()
}

const HP: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
const HP0: &str = "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages";
const THP_E: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
const THP_D: &str = "/sys/kernel/mm/transparent_hugepage/defrag";
const SWAP: &str = "/proc/sys/vm/swappiness";
const DIRTY: &str = "/proc/sys/vm/dirty_ratio";

#[test]
fn sysctl_and_thp_runtime_and_persisted() {
    let _l = lock();
    let guard = Restore::save(&[SWAP, DIRTY, THP_E, THP_D]);
    let kvmtune_files = owned_snapshot();
    let owned = OwnedFiles::take();
    let dir = tempfile::tempdir().unwrap();
    let swap_now = read(SWAP);
    let swap_new = if swap_now == "17" { "18" } else { "17" };
    let thp_now = selected(&read(THP_E));
    let thp_new = if thp_now == "never" {
        "madvise"
    } else {
        "never"
    };
    let out = converge(
        dir.path(),
        &format!("host:\n  sysctl: {{ vm.swappiness: {swap_new}, vm.dirty_ratio: 21 }}\n  transparent_hugepage: {{ enabled: {thp_new}, defrag: defer }}\n"),
    );
    assert!(
        out.contains(&format!(
            "+ sysctl.vm.swappiness (persisted): (absent) → {swap_new}"
        )),
        "{out}"
    );
    assert_eq!(read(SWAP), swap_new);
    assert_eq!(read(DIRTY), "21");
    assert_eq!(selected(&read(THP_E)), thp_new);
    assert_eq!(selected(&read(THP_D)), "defer");
    let conf = std::fs::read_to_string("/etc/sysctl.d/90-kvmtune.conf").unwrap();
    assert!(conf.starts_with("# Written by kvmtune"), "{conf}");
    assert!(
        conf.ends_with(&format!(
            "vm.dirty_ratio = 21\nvm.swappiness = {swap_new}\n"
        )),
        "{conf}"
    );
    let tmpfiles = std::fs::read_to_string("/etc/tmpfiles.d/90-kvmtune.conf").unwrap();
    assert!(
        tmpfiles.contains(&format!(
            "w /sys/kernel/mm/transparent_hugepage/enabled - - - - {thp_new}\n"
        )),
        "{tmpfiles}"
    );
    // apply kept the previous values in the real state directory.
    assert!(Path::new(STATE_DIR).join("applies").is_dir());

    // Runtime drift and persisted drift show separately.
    std::fs::write(SWAP, &swap_now).unwrap();
    std::fs::write("/etc/sysctl.d/90-kvmtune.conf", "vm.swappiness = 3\n").unwrap();
    let plan = run_ok(
        dir.path(),
        &[
            "--root",
            "/",
            "plan",
            dir.path().join("t.yaml").to_str().unwrap(),
        ],
    );
    assert!(
        plan.contains(&format!("~ sysctl.vm.swappiness: {swap_now} → {swap_new}")),
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "~ sysctl.vm.swappiness (persisted): 3 → {swap_new}"
        )),
        "{plan}"
    );
    assert!(
        plan.contains("+ sysctl.vm.dirty_ratio (persisted): (absent) → 21"),
        "{plan}"
    );

    drop(owned);
    assert_eq!(
        owned_snapshot(),
        kvmtune_files,
        "kvmtune's files not restored"
    );
    drop(guard);
    assert_eq!(read(SWAP), swap_now);
    assert_eq!(selected(&read(THP_E)), thp_now);
}

#[test]
fn hugepage_pools_global_and_node0() {
    let _l = lock();
    let guard = Restore::save(&[HP, HP0]);
    let kvmtune_files = owned_snapshot();
    let owned = OwnedFiles::take();
    let dir = tempfile::tempdir().unwrap();
    let hp_now: u64 = read(HP).parse().unwrap();
    // A few pages only; the global pool is restored last (saved first).
    let (g, n0) = (hp_now + 8, hp_now + 4);
    converge(
        dir.path(),
        &format!("host:\n  hugepages:\n    - {{ size: 2M, count: {g} }}\n"),
    );
    assert_eq!(read(HP), g.to_string());
    let tmpfiles = std::fs::read_to_string("/etc/tmpfiles.d/90-kvmtune.conf").unwrap();
    assert!(
        tmpfiles.contains(&format!(
            "w /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages - - - - {g}\n"
        )),
        "{tmpfiles}"
    );
    // Node 0's own pool (this machine has one node, so the global pool follows it).
    converge(
        dir.path(),
        &format!("host:\n  hugepages:\n    - {{ size: 2M, node: 0, count: {n0} }}\n"),
    );
    assert_eq!(read(HP0), n0.to_string());
    drop(owned);
    assert_eq!(
        owned_snapshot(),
        kvmtune_files,
        "kvmtune's files not restored"
    );
    drop(guard);
    assert_eq!(read(HP), hp_now.to_string());
}

const KSM: &str = "/sys/kernel/mm/ksm";

#[test]
fn ksm_run_sleep_pages_and_merge_across_nodes() {
    let _l = lock();
    let files: Vec<String> = [
        "merge_across_nodes",
        "sleep_millisecs",
        "pages_to_scan",
        "run",
    ]
    .iter()
    .map(|f| format!("{KSM}/{f}"))
    .collect();
    // Restored in reverse: run first (stop merging), then the rest.
    let guard = Restore::save(&files.iter().map(String::as_str).collect::<Vec<_>>());
    let before: Vec<String> = files.iter().map(|f| read(f)).collect();
    let kvmtune_files = owned_snapshot();
    let owned = OwnedFiles::take();
    let dir = tempfile::tempdir().unwrap();
    let shared = read(&format!("{KSM}/pages_shared"));
    let merge = if shared == "0" {
        format!(", merge_across_nodes: {}", before[0] != "1")
    } else {
        String::new()
    };
    let sleep = if before[1] == "37" { 38 } else { 37 };
    let out = converge(
        dir.path(),
        &format!(
            "host:\n  ksm: {{ run: true, sleep_millisecs: {sleep}, pages_to_scan: 123{merge} }}\n"
        ),
    );
    assert!(out.contains("ksm.run"), "{out}");
    assert_eq!(read(&files[3]), "1");
    assert_eq!(read(&files[1]), sleep.to_string());
    assert_eq!(read(&files[2]), "123");
    let tmpfiles = std::fs::read_to_string("/etc/tmpfiles.d/90-kvmtune.conf").unwrap();
    assert!(
        tmpfiles.ends_with("w /sys/kernel/mm/ksm/run - - - - 1\n"),
        "{tmpfiles}"
    );
    drop(owned);
    assert_eq!(
        owned_snapshot(),
        kvmtune_files,
        "kvmtune's files not restored"
    );
    drop(guard);
    let after: Vec<String> = files.iter().map(|f| read(f)).collect();
    assert_eq!(after, before);
}

/// Deletes the veth pair on drop.
struct Veth;

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", "kvmtune0"])
            .status();
    }
}

#[test]
fn veth_pair_mtu() {
    let _l = lock();
    let _ = Command::new("ip")
        .args(["link", "del", "kvmtune0"])
        .output();
    let st = Command::new("ip")
        .args([
            "link", "add", "kvmtune0", "type", "veth", "peer", "name", "kvmtune1",
        ])
        .status()
        .unwrap();
    assert!(
        st.success(),
        "ip link add kvmtune0 type veth peer name kvmtune1 failed"
    );
    let _veth = Veth;
    assert_eq!(read("/sys/class/net/kvmtune0/mtu"), "1500");
    let kvmtune_files = owned_snapshot();
    let owned = OwnedFiles::take();
    let dir = tempfile::tempdir().unwrap();
    let out = converge(
        dir.path(),
        "host:\n  interfaces: { kvmtune0: { mtu: 9000 } }\n",
    );
    assert!(
        out.contains("~ interfaces.kvmtune0.mtu: 1500 → 9000"),
        "{out}"
    );
    assert_eq!(read("/sys/class/net/kvmtune0/mtu"), "9000");
    let ip = Command::new("ip")
        .args(["-o", "link", "show", "kvmtune0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ip.stdout).contains("mtu 9000"));
    drop(owned);
    assert_eq!(
        owned_snapshot(),
        kvmtune_files,
        "kvmtune's files not restored"
    );
}

/// Puts tuned back: the original profile (or off), the files it records, daemons we started,
/// and any sysctl/THP/readahead value left different.
struct TunedGuard {
    active: String,
    mode: String,
    saved: Restore,
    started_tuned: bool,
    started_dbus: bool,
}

impl Drop for TunedGuard {
    fn drop(&mut self) {
        let p = self.active.trim();
        let args: Vec<&str> = if p.is_empty() {
            vec!["off"]
        } else {
            vec!["profile", p]
        };
        let _ = Command::new("tuned-adm").args(&args).status();
        let _ = std::fs::write("/etc/tuned/active_profile", &self.active);
        let _ = std::fs::write("/etc/tuned/profile_mode", &self.mode);
        if self.started_tuned {
            if let Ok(pid) = std::fs::read_to_string("/run/tuned/tuned.pid") {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        if self.started_dbus {
            if let Ok(pid) = std::fs::read_to_string("/run/dbus/pid") {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        // `saved` restores the values on its own drop, after tuned let go of them.
        let _ = &self.saved;
    }
}

fn tuned_running() -> bool {
    std::fs::read_to_string("/run/tuned/tuned.pid")
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
}

/// A running tuned daemon (started, and dbus too, when they are not running) with a guard
/// that puts tuned and what virtual-host and throughput-performance change back.
fn tuned_up() -> TunedGuard {
    // What virtual-host and throughput-performance change on this machine.
    let mut files = vec![
        SWAP.to_string(),
        DIRTY.to_string(),
        "/proc/sys/vm/dirty_background_ratio".into(),
        "/proc/sys/net/core/somaxconn".into(),
        THP_E.into(),
        THP_D.into(),
    ];
    for b in std::fs::read_dir("/sys/block").unwrap() {
        files.push(format!(
            "{}/queue/read_ahead_kb",
            b.unwrap().path().display()
        ));
    }
    let saved = Restore::save(&files.iter().map(String::as_str).collect::<Vec<_>>());
    let mut guard = TunedGuard {
        active: std::fs::read_to_string("/etc/tuned/active_profile").unwrap_or_default(),
        mode: std::fs::read_to_string("/etc/tuned/profile_mode").unwrap_or_default(),
        saved,
        started_tuned: false,
        started_dbus: false,
    };
    if !Path::new("/run/dbus/system_bus_socket").exists() {
        std::fs::create_dir_all("/run/dbus").unwrap();
        let _ = std::fs::remove_file("/run/dbus/pid");
        assert!(Command::new("dbus-daemon")
            .args(["--system", "--fork"])
            .status()
            .unwrap()
            .success());
        guard.started_dbus = true;
    }
    if !tuned_running() {
        if guard.active.trim().is_empty() {
            // Started with no profile in auto mode, tuned would apply the recommended one.
            std::fs::write("/etc/tuned/profile_mode", "manual\n").unwrap();
        }
        assert!(Command::new("tuned").arg("-d").status().unwrap().success());
        guard.started_tuned = true;
    }
    let mut ready = false;
    for _ in 0..60 {
        // "Current active profile: x" or "No current active profile." (exit 1) both mean
        // the daemon answers; "Cannot talk to TuneD daemon" means it does not (yet).
        let o = Command::new("tuned-adm").arg("active").output().unwrap();
        if String::from_utf8_lossy(&o.stdout).contains("active profile") {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(ready, "tuned-adm active does not answer");
    guard
}

#[test]
fn tuned_daemon_switches_profile_and_verifies() {
    let _l = lock();
    let guard = tuned_up();
    let original = guard.active.trim().to_string();
    let target = if original == "virtual-host" {
        "throughput-performance"
    } else {
        "virtual-host"
    };

    let kvmtune_files = owned_snapshot();
    let owned = OwnedFiles::take();
    let dir = tempfile::tempdir().unwrap();
    let out = converge(
        dir.path(),
        &format!("host:\n  tuned: {{ profile: {target} }}\n"),
    );
    assert!(
        out.contains(&format!(
            "tuned.profile: {} → {target}",
            if original.is_empty() {
                "(none)"
            } else {
                &original
            }
        )),
        "{out}"
    );
    assert!(
        out.contains("tuned-adm verify`: Verification succeeded")
            || out.contains("tuned-adm verify`: Verfication succeeded"),
        "{out}"
    );
    let active = Command::new("tuned-adm").arg("active").output().unwrap();
    assert!(String::from_utf8_lossy(&active.stdout)
        .contains(&format!("Current active profile: {target}")));

    // An unknown profile is a validation error listing the real ones.
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(&cfg, "host:\n  tuned: { profile: no-such-profile }\n").unwrap();
    let o = kvmtune(
        dir.path(),
        &["--root", "/", "validate", cfg.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("tuned has no profile `no-such-profile`; available: ")
            && err.contains("virtual-host"),
        "{err}"
    );

    drop(owned);
    assert_eq!(
        owned_snapshot(),
        kvmtune_files,
        "kvmtune's files not restored"
    );
    drop(guard);
    let now = std::fs::read_to_string("/etc/tuned/active_profile").unwrap_or_default();
    assert_eq!(now.trim(), original);
}

/// The conflict with the real daemon: virtual-host sets vm.swappiness 10 (through
/// throughput-performance) and the configuration declares 7. kvmtune activates its child
/// profile, so tuned itself sets 7 and `tuned-adm verify` passes, now and on the next plan.
#[test]
fn tuned_child_profile_holds_a_declared_sysctl_the_profile_sets_and_verify_passes() {
    let _l = lock();
    // Taken first, dropped last (also when unwinding): tuned lets go of the child before
    // its file goes.
    let kvmtune_files = owned_snapshot();
    let owned = OwnedFiles::take();
    let guard = tuned_up();
    let original = guard.active.trim().to_string();
    let swap_before = read(SWAP);
    let dir = tempfile::tempdir().unwrap();
    let out = converge(
        dir.path(),
        "host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 7 }\n",
    );
    assert!(
        out.contains("+ tuned.kvmtune.sysctl.vm.swappiness: (absent) → 7")
            && out.contains("tuned.profile: ")
            && out.contains(" → kvmtune"),
        "{out}"
    );
    assert!(
        out.contains("tuned-adm verify`: Verification succeeded")
            || out.contains("tuned-adm verify`: Verfication succeeded"),
        "{out}"
    );
    assert_eq!(read(SWAP), "7");
    let active = Command::new("tuned-adm").arg("active").output().unwrap();
    assert!(
        String::from_utf8_lossy(&active.stdout).contains("Current active profile: kvmtune"),
        "{}",
        String::from_utf8_lossy(&active.stdout)
    );
    let verify = Command::new("tuned-adm").arg("verify").output().unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let child = std::fs::read_to_string("/etc/tuned/kvmtune/tuned.conf").unwrap();
    assert!(
        child.contains("include=virtual-host\n") && child.contains("[sysctl]\nvm.swappiness=7\n"),
        "{child}"
    );

    drop(guard);
    let now = std::fs::read_to_string("/etc/tuned/active_profile").unwrap_or_default();
    assert_eq!(now.trim(), original);
    assert_eq!(read(SWAP), swap_before);
    drop(owned);
    assert_eq!(
        owned_snapshot(),
        kvmtune_files,
        "kvmtune's files not restored"
    );
    assert!(!Path::new("/etc/tuned/kvmtune").exists() || kvmtune_files.0[4].is_some());
}
