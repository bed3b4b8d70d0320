//! Changes the real host through `--root /` and restores it: sysctl, transparent huge pages,
//! the 2M huge page pool (global and node 0, a few pages only: never more than the kernel can
//! give). Runs as root in CI; fails (never skips) when it cannot write /proc/sys. Every value is
//! restored by a guard, also when an assertion fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Restores the original content of host files on drop.
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
        // Pools are restored in reverse (node pool before the global one).
        for (p, v) in self.0.iter().rev() {
            let value = if p.starts_with("/sys/kernel/mm/transparent_hugepage") {
                selected(v)
            } else {
                v.trim().to_string()
            };
            if let Err(e) = std::fs::write(p, value) {
                eprintln!("could not restore {}: {e}", p.display());
            }
        }
    }
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

const HP: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
const HP0: &str = "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages";
const THP_E: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
const THP_D: &str = "/sys/kernel/mm/transparent_hugepage/defrag";
const SWAP: &str = "/proc/sys/vm/swappiness";

#[test]
fn real_host_apply_converges_and_is_restored() {
    let guard = Restore::save(&[SWAP, THP_E, THP_D, HP, HP0]);
    let dir = tempfile::tempdir().unwrap();
    let swap_now: u32 = std::fs::read_to_string(SWAP)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let swap_new = if swap_now == 17 { 18 } else { 17 };
    let thp_now = selected(&std::fs::read_to_string(THP_E).unwrap());
    let thp_new = if thp_now == "never" {
        "madvise"
    } else {
        "never"
    };
    let hp_now: u64 = std::fs::read_to_string(HP).unwrap().trim().parse().unwrap();
    let (g, n0) = (hp_now + 8, hp_now + 4);

    std::fs::write(
        dir.path().join("global.yaml"),
        format!("host:\n  sysctl: {{ vm.swappiness: {swap_new} }}\n  transparent_hugepage: {{ enabled: {thp_new}, defrag: defer }}\n  hugepages:\n    - {{ size: 2M, count: {g} }}\n"),
    )
    .unwrap();
    let out = run_ok(
        dir.path(),
        &["--root", "/", "apply", "global.yaml", "--auto-approve"],
    );
    assert!(out.contains("0 failed"), "{out}");
    assert_eq!(
        std::fs::read_to_string(SWAP).unwrap().trim(),
        swap_new.to_string()
    );
    assert_eq!(selected(&std::fs::read_to_string(THP_E).unwrap()), thp_new);
    assert_eq!(selected(&std::fs::read_to_string(THP_D).unwrap()), "defer");
    assert_eq!(std::fs::read_to_string(HP).unwrap().trim(), g.to_string());
    let out = run_ok(
        dir.path(),
        &["--root", "/", "plan", "global.yaml", "--detailed-exitcode"],
    );
    assert!(out.starts_with("No changes."), "{out}");
    let out = run_ok(
        dir.path(),
        &[
            "--root",
            "/",
            "apply",
            "global.yaml",
            "--auto-approve",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["host_writes"], 0, "{out}");

    // Node 0's own pool (this machine has one node, so the global pool follows it).
    std::fs::write(
        dir.path().join("node.yaml"),
        format!("host:\n  hugepages:\n    - {{ size: 2M, node: 0, count: {n0} }}\n"),
    )
    .unwrap();
    run_ok(
        dir.path(),
        &["--root", "/", "apply", "node.yaml", "--auto-approve"],
    );
    assert_eq!(std::fs::read_to_string(HP0).unwrap().trim(), n0.to_string());
    let out = run_ok(
        dir.path(),
        &["--root", "/", "plan", "node.yaml", "--detailed-exitcode"],
    );
    assert!(out.starts_with("No changes."), "{out}");

    drop(guard);
    assert_eq!(
        std::fs::read_to_string(SWAP).unwrap().trim(),
        swap_now.to_string()
    );
    assert_eq!(
        std::fs::read_to_string(HP).unwrap().trim(),
        hp_now.to_string()
    );
    assert_eq!(selected(&std::fs::read_to_string(THP_E).unwrap()), thp_now);
}
