//! `kvmtune verify` against real running guests on libvirtd (`$KVMTUNE_TEST_URI`): thread
//! affinities of QEMU's vCPU and emulator threads, NUMA memory nodes, huge page backing and
//! live disk cache modes. Guests and the huge page pool are restored by guards, also when a test
//! fails. Fails (never skips) when libvirtd is unreachable.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn verify(yaml: &str, json: bool) -> (Option<i32>, String, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let mut args = vec!["verify", cfg.to_str().unwrap()];
    if json {
        args.extend(["--format", "json"]);
    }
    // /run and /proc are the real host's: the root is `/`.
    let out = kvmtune(Path::new("/"), &args);
    (out.status.code(), stdout(&out), out)
}

/// `(setting, expected, actual, ok)` of every check of the first guest.
fn checks(json: &str) -> Vec<(String, String, String, bool)> {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["guests"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["setting"].as_str().unwrap().to_string(),
                c["expected"].as_str().unwrap().to_string(),
                c["actual"].as_str().unwrap().to_string(),
                c["ok"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn failing(json: &str) -> Vec<String> {
    checks(json)
        .into_iter()
        .filter(|c| !c.3)
        .map(|c| c.0)
        .collect()
}

#[test]
fn pins_in_effect_hold_and_live_changes_are_differences() {
    let g = Guest::define(
        "verify-pins",
        Spec {
            vcpus: 2,
            tuning: "<cputune><vcpupin vcpu='0' cpuset='0'/><vcpupin vcpu='1' cpuset='1'/>\
                     <emulatorpin cpuset='1'/></cputune>\
                     <numatune><memory mode='strict' nodeset='0'/></numatune>"
                .into(),
            disk_driver: " cache='none'".into(),
            ..Spec::default()
        },
    );
    g.start();
    let yaml = format!(
        "guests:\n  {}:\n    cputune: {{ vcpupin: {{ 0: \"0\", 1: \"1\" }}, emulatorpin: \"1\" }}\n    numatune: {{ memory: {{ mode: strict, nodeset: \"0\" }} }}\n    disks: {{ \"*\": {{ cache: none }} }}\n",
        g.name()
    );
    let (code, json, out) = verify(&yaml, true);
    assert_eq!(code, Some(0), "{}", describe(&out));
    let all = checks(&json);
    let settings: Vec<&str> = all.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        settings,
        [
            "cputune.vcpupin.0",
            "cputune.vcpupin.1",
            "cputune.emulatorpin",
            "numatune.memory.nodeset",
            "disks.vda.cache"
        ]
    );
    for (s, e, a, ok) in &all {
        assert!(*ok && e == a, "{s}: expected {e}, actual {a}");
    }

    virsh_ok(&["vcpupin", g.name(), "0", "1", "--live"]);
    let (code, json, out) = verify(&yaml, true);
    assert_eq!(code, Some(2), "{}", describe(&out));
    assert_eq!(failing(&json), ["cputune.vcpupin.0"]);
    let c = checks(&json).into_iter().find(|c| !c.3).unwrap();
    assert_eq!((c.1.as_str(), c.2.as_str()), ("0", "1"));

    virsh_ok(&["emulatorpin", g.name(), "0", "--live"]);
    let (code, text, out) = verify(&yaml, false);
    assert_eq!(code, Some(2), "{}", describe(&out));
    let line = |s: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(s))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("cputune.vcpupin.0 ").ends_with("DIFFERS"), "{text}");
    assert!(line("cputune.emulatorpin ").ends_with("DIFFERS"), "{text}");
    assert!(line("cputune.vcpupin.1 ").ends_with("ok"), "{text}");
    assert!(
        text.contains("5 setting(s) checked on 1 running guest(s), 2 differ."),
        "{text}"
    );

    // Back as declared: everything holds again.
    virsh_ok(&["vcpupin", g.name(), "0", "0", "--live"]);
    virsh_ok(&["emulatorpin", g.name(), "1", "--live"]);
    let (code, _, out) = verify(&yaml, true);
    assert_eq!(code, Some(0), "{}", describe(&out));
}

#[test]
fn stopped_guests_have_nothing_to_verify_and_unknown_guests_are_errors() {
    let g = Guest::define("verify-stopped", Spec::default());
    let yaml = format!(
        "guests:\n  {}:\n    cputune: {{ emulatorpin: \"0\" }}\n",
        g.name()
    );
    let (code, text, out) = verify(&yaml, false);
    assert_eq!(code, Some(0), "{}", describe(&out));
    assert!(
        text.contains(&format!(
            "guest {}: not running, nothing to verify",
            g.name()
        )),
        "{text}"
    );
    let (code, json, _) = verify(&yaml, true);
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["guests"][0]["state"], "not_running");

    let (code, _, out) = verify(
        "guests:\n  kvmtune-it-no-such-guest:\n    vcpu: { count: 1 }\n",
        false,
    );
    assert_eq!(code, Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("no such domain"),
        "{}",
        describe(&out)
    );
}

const POOL: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";

/// Sets the global 2M pool and restores the previous size on drop (also on panic).
struct PoolGuard(String);

impl PoolGuard {
    fn set(pages: u64) -> PoolGuard {
        let before = std::fs::read_to_string(POOL).expect("reading the 2M pool");
        let guard = PoolGuard(before.trim().to_string());
        std::fs::write(POOL, pages.to_string()).expect("sizing the 2M pool");
        let now: u64 = std::fs::read_to_string(POOL)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(now >= pages, "the kernel gave {now} of {pages} 2M pages");
        guard
    }
}

impl Drop for PoolGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(POOL, &self.0) {
            eprintln!("warning: could not restore {POOL} to {}: {e}", self.0);
        }
    }
}

fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn hugepage_backed_guest_runs_on_the_pool_and_verify_says_so() {
    assert!(
        std::fs::read_to_string("/proc/mounts")
            .unwrap()
            .lines()
            .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs")),
        "hugetlbfs is not mounted: run scripts/env-up.sh"
    );
    // The pool guard first: locals drop in reverse order, so the guests are destroyed before
    // the pool shrinks back.
    let _pool = PoolGuard::set(40);
    let huge = Guest::define(
        "verify-huge",
        Spec {
            tuning: "<memoryBacking><hugepages/></memoryBacking>".into(),
            ..Spec::default()
        },
    );
    let plain = Guest::define("verify-plain", Spec::default());
    let free_before = meminfo("HugePages_Free");
    let started = virsh(&["start", huge.name()]);
    let err = stderr(&started);
    assert!(
        !err.contains("hugetlbfs filesystem is not mounted"),
        "libvirtd does not know the hugetlbfs mount: it reads the mounts only when it starts, \
         and it was started before hugetlbfs was mounted. Restart libvirtd once (scripts/env-up.sh \
         now mounts hugetlbfs before starting it).\n{err}"
    );
    assert!(started.status.success(), "starting {}: {err}", huge.name());
    plain.start();
    let used = free_before - meminfo("HugePages_Free");
    assert!(used >= 32, "the 64 MiB guest took {used} huge pages");

    let yaml = format!(
        "guests:\n  {}:\n    memory_backing: {{ hugepages: {{ size: 2M }} }}\n  {}:\n    memory_backing: {{ hugepages: {{ size: 2M }} }}\n",
        huge.name(),
        plain.name()
    );
    let (code, json, out) = verify(&yaml, true);
    assert_eq!(code, Some(2), "{}", describe(&out));
    let v: Value = serde_json::from_str(&json).unwrap();
    let by_name = |n: &str| {
        v["guests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == n)
            .unwrap()["checks"][0]
            .clone()
    };
    let h = by_name(huge.name());
    assert_eq!(h["setting"], "memory_backing.hugepages");
    assert_eq!(h["expected"], "65536 KiB in 2M pages");
    assert_eq!(h["actual"], "65536 KiB in 2M pages");
    assert_eq!(h["ok"], true);
    let p = by_name(plain.name());
    assert_eq!(p["ok"], false, "{p}");
    assert_eq!(p["actual"], "no huge pages");

    // Only the hugepage-backed guest declared: everything holds.
    let yaml = format!(
        "guests:\n  {}:\n    memory_backing: {{ hugepages: true }}\n",
        huge.name()
    );
    let (code, _, out) = verify(&yaml, true);
    assert_eq!(code, Some(0), "{}", describe(&out));
    drop(plain);
    drop(huge);
}
