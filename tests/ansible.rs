//! The Ansible collection (`ansible/`) for real: ansible-core from PyPI in a venv (created
//! under target/ on first use), playbooks with `connection: local` on temp `--root` trees and
//! libvirt's `test:///` driver.
//!
//! - one host: check mode changes nothing, the first run reports changed=1, the second
//!   changed=0; diff mode shows one pair per setting in the CLI's words, with its effect, and
//!   the guest XML; returned data usable in `when:`;
//! - a fleet of 50 simulated hypervisors (each its own root and host file copy, a fleet
//!   directory with shared, per-group and per-host files), forks 10: check mode, converge,
//!   changed=0, a syntax error in one host's files fails that host only, a missing guest fails
//!   only its host, an unmatched hostname warns (and fails with `strict`);
//! - the role on three hosts: validate once on the controller, install, lay out, converge;
//! - `ansible-test sanity` and `ansible-doc` for the collection.
//!
//! The test driver keeps guest definitions per connection (each kvmtune run starts from the
//! host file again), so the fleet's guests are declared in sync with their host file: their
//! part is observed and planned on every host, and only host settings change.

mod support;
use support::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// `target/ansible-venv` with ansible-core installed (from PyPI on first use).
fn venv() -> PathBuf {
    let v = std::env::var_os("KVMTUNE_ANSIBLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/ansible-venv"));
    if v.join("bin/ansible-playbook").exists() {
        return v;
    }
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&v)
        .status()
        .expect("python3 is needed for the Ansible test")
        .success();
    assert!(ok, "python3 -m venv {} failed", v.display());
    let out = Command::new(v.join("bin/pip"))
        .args(["install", "-q", "ansible-core"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip install ansible-core failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

/// `work/collections/ansible_collections/kvmtune/kvmtune` → the repository's `ansible/`.
fn collections(work: &Path) -> PathBuf {
    let c = work.join("collections");
    let ns = c.join("ansible_collections/kvmtune");
    std::fs::create_dir_all(&ns).unwrap();
    std::os::unix::fs::symlink(repo().join("ansible"), ns.join("kvmtune")).unwrap();
    c
}

struct Run {
    stdout: String,
    code: Option<i32>,
    /// Per host, its last task result (the `tree` callback), when asked for.
    results: BTreeMap<String, serde_json::Value>,
    secs: f64,
}

impl Run {
    /// Per host: (changed, failed) from the play recap.
    fn recap(&self) -> BTreeMap<String, (u32, u32)> {
        let field = |l: &str, name: &str| -> u32 {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {l:?}"))
        };
        let recap = self
            .stdout
            .split("PLAY RECAP")
            .nth(1)
            .unwrap_or_else(|| panic!("no recap:\n{}", self.stdout));
        recap
            .lines()
            .filter(|l| l.contains("changed="))
            .map(|l| {
                let host = l.split_whitespace().next().unwrap().to_string();
                (host, (field(l, "changed="), field(l, "failed=")))
            })
            .collect()
    }

    fn result(&self, host: &str) -> &serde_json::Value {
        self.results
            .get(host)
            .unwrap_or_else(|| panic!("no result for {host}:\n{}", self.stdout))
    }
}

struct Ansible {
    venv: PathBuf,
    work: PathBuf,
    collections: PathBuf,
}

impl Ansible {
    fn new(work: &Path) -> Ansible {
        Ansible {
            venv: venv(),
            work: work.to_path_buf(),
            collections: collections(work),
        }
    }

    fn env(&self, c: &mut Command) {
        c.env("ANSIBLE_COLLECTIONS_PATH", &self.collections)
            .env("ANSIBLE_HOME", self.work.join("ansible-home"))
            .env("ANSIBLE_LOCAL_TEMP", self.work.join("ansible-tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_STDOUT_CALLBACK", "default")
            .env("ANSIBLE_FORKS", "10")
            .env_remove("LIBVIRT_DEFAULT_URI");
    }

    /// ansible-playbook `playbook` on `inventory`; with `tree`, each host's last task result.
    fn playbook(&self, inventory: &str, playbook: &Path, extra: &[&str], tree: bool) -> Run {
        let mut c = Command::new(self.venv.join("bin/ansible-playbook"));
        c.args(["-i", inventory]).arg(playbook).args(extra);
        c.arg("-e").arg(format!(
            "ansible_python_interpreter={}",
            self.venv.join("bin/python").display()
        ));
        self.env(&mut c);
        let dir = tempfile::tempdir_in(&self.work).unwrap();
        if tree {
            c.env("ANSIBLE_CALLBACKS_ENABLED", "ansible.builtin.tree")
                .env("ANSIBLE_CALLBACK_TREE_DIR", dir.path());
        }
        let t = Instant::now();
        let out = c.output().unwrap();
        let secs = t.elapsed().as_secs_f64();
        let mut results = BTreeMap::new();
        if tree {
            for e in std::fs::read_dir(dir.path()).unwrap() {
                let p = e.unwrap().path();
                let v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                results.insert(p.file_name().unwrap().to_string_lossy().into_owned(), v);
            }
        }
        Run {
            stdout: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            code: out.status.code(),
            results,
            secs,
        }
    }
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kvmtune")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn ansible_module_check_mode_then_changed_once_then_unchanged() {
    let work = tempfile::tempdir().unwrap();
    let a = Ansible::new(work.path());
    let root = work.path().join("root");
    copy_tree(&repo().join("examples/demo/root"), &root);
    let cfg = work.path().join("tuning.yaml");
    std::fs::write(
        &cfg,
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 7 }\n",
    )
    .unwrap();
    let pb = work.path().join("playbook.yml");
    std::fs::write(
        &pb,
        format!(
            "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n    \
             - name: tune\n      kvmtune.kvmtune.kvmtune:\n        config: {cfg}\n        root: {root}\n        \
             connect: test:///default\n        binary: {bin}\n      register: r\n    \
             - name: drift\n      debug: {{ msg: \"drift {{{{ r.changes | length }}}} {{{{ r.errors | length }}}} {{{{ r.plan.summary.changes }}}}\" }}\n      \
             when: r.changes | length > 0\n",
            cfg = cfg.display(),
            root = root.display(),
            bin = bin(),
        ),
    )
    .unwrap();
    let swappiness = || read(&root.join("proc/sys/vm/swappiness"));
    let before = swappiness();
    assert_ne!(before, "7");

    let check = a.playbook("localhost,", &pb, &["--check", "--diff"], false);
    assert_eq!(check.code, Some(0), "{}", check.stdout);
    assert_eq!(check.recap()["localhost"], (1, 0), "{}", check.stdout);
    for line in [
        "--- before: host sysctl.vm.swappiness",
        "+++ after: host sysctl.vm.swappiness",
        "-60",
        "+7",
        "\"msg\": \"drift 1 0 1\"",
    ] {
        assert!(
            check.stdout.contains(line),
            "{line:?} in:\n{}",
            check.stdout
        );
    }
    assert_eq!(swappiness(), before, "check mode changed something");

    let first = a.playbook("localhost,", &pb, &[], false);
    assert_eq!(first.code, Some(0), "{}", first.stdout);
    assert_eq!(first.recap()["localhost"], (1, 0), "{}", first.stdout);
    assert_eq!(swappiness(), "7");

    let second = a.playbook("localhost,", &pb, &[], true);
    assert_eq!(second.code, Some(0), "{}", second.stdout);
    assert_eq!(second.recap()["localhost"], (0, 0), "{}", second.stdout);
    // The `when:` task was skipped (the tree callback records no skips): the module's
    // result is the last, with nothing to do.
    assert!(
        !second.stdout.contains("\"msg\": \"drift"),
        "{}",
        second.stdout
    );
    let r = second.result("localhost");
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["changes"], serde_json::json!([]), "{r}");
    assert_eq!(r["plan"]["errors"], serde_json::json!([]), "{r}");

    let check = a.playbook("localhost,", &pb, &["--check"], false);
    assert_eq!(check.recap()["localhost"], (0, 0), "{}", check.stdout);
}

/// Diff mode on the demo host (check mode: the test driver does not keep definitions across
/// runs): one pair per setting with the CLI's `(absent)` and effect markers, the guest XML.
#[test]
fn diff_mode_shows_each_setting_in_the_cli_words_and_the_guest_xml() {
    let work = tempfile::tempdir().unwrap();
    let a = Ansible::new(work.path());
    let root = work.path().join("root");
    copy_tree(&repo().join("examples/demo/root"), &root);
    let cfg = work.path().join("tuning.yaml");
    std::fs::write(
        &cfg,
        "host:\n  sysctl: { vm.swappiness: 7 }\nguests:\n  db1: { vcpu: { count: 3 } }\n",
    )
    .unwrap();
    let pb = work.path().join("playbook.yml");
    std::fs::write(
        &pb,
        format!(
            "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n    \
             - kvmtune.kvmtune.kvmtune:\n        config: {cfg}\n        root: {root}\n        \
             connect: {uri}\n        binary: {bin}\n",
            cfg = cfg.display(),
            root = root.display(),
            uri = demo_uri(),
            bin = bin(),
        ),
    )
    .unwrap();
    let run = a.playbook("localhost,", &pb, &["--check", "--diff"], true);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    // The callback shows the diffs (and keeps them out of the dumped result).
    let r = run.result("localhost");
    for pair in [
        "--- before: host sysctl.vm.swappiness (persisted)\n+++ after: host sysctl.vm.swappiness (persisted)\n@@ -1 +1 @@\n-(absent)\n+7\n",
        "--- before: guest db1 vcpu.count\n+++ after: guest db1 vcpu.count (restart needed)\n@@ -1 +1 @@\n-4\n+3\n",
        "--- before: db1 (defined)\n+++ after: db1 (planned)\n",
        "-  <vcpu placement='static'>4</vcpu>\n+  <vcpu placement='static'>3</vcpu>\n",
    ] {
        assert!(run.stdout.contains(pair), "{pair:?} in:\n{}", run.stdout);
    }
    // Exactly one pair per planned change, plus one per guest definition.
    let changes = r["changes"].as_array().unwrap();
    assert_eq!(
        run.stdout.matches("--- before: ").count(),
        changes.len() + 1,
        "{}",
        run.stdout
    );
    assert_eq!(
        r["pending_restart"],
        serde_json::json!([]),
        "check mode wrote nothing"
    );
}

/// One simulated hypervisor of the fleet.
struct Hv {
    /// Inventory name.
    name: String,
    /// The name kvmtune is given (`hostname:`), a typo for one host.
    kt_name: String,
    root: PathBuf,
}

struct Fleet {
    work: tempfile::TempDir,
    repo: PathBuf,
    hosts: Vec<Hv>,
    inventory: PathBuf,
    playbook: PathBuf,
}

const FLEET: usize = 50;
/// The host whose kvmtune hostname matches no file (a typo in its inventory variable).
const TYPO: &str = "hv-50";

fn dirty_ratio(i: usize) -> usize {
    5 + i % 30
}

impl Fleet {
    fn new() -> Fleet {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        let repo_dir = w.join("repo");
        std::fs::create_dir_all(repo_dir.join("hosts")).unwrap();
        std::fs::create_dir_all(repo_dir.join("groups")).unwrap();
        let xml = std::fs::read_to_string(repo().join("examples/demo/host.xml")).unwrap();
        let mut hosts = Vec::new();
        let mut inv = String::from("all:\n  children:\n    hypervisors:\n      hosts:\n");
        let mut rack = String::new();
        for i in 1..=FLEET {
            let name = format!("hv-{i:02}");
            let root = w.join("roots").join(&name);
            copy_tree(&repo().join("examples/demo/root"), &root);
            let host_xml = w.join("libvirt").join(format!("{name}.xml"));
            std::fs::create_dir_all(host_xml.parent().unwrap()).unwrap();
            std::fs::write(&host_xml, &xml).unwrap();
            let kt_name = if name == TYPO {
                "hv50".to_string()
            } else {
                name.clone()
            };
            inv.push_str(&format!(
                "        {name}: {{ kt_root: {}, kt_uri: \"test://{}\", kt_name: {kt_name} }}\n",
                root.display(),
                host_xml.display()
            ));
            if i <= 25 {
                rack.push_str(&format!("        {name}:\n"));
            }
            if name != TYPO {
                std::fs::write(
                    repo_dir.join(format!("hosts/{name}.yaml")),
                    format!(
                        "host:\n  sysctl: {{ vm.dirty_ratio: {} }}\n",
                        dirty_ratio(i)
                    ),
                )
                .unwrap();
            }
            hosts.push(Hv {
                name,
                kt_name,
                root,
            });
        }
        inv.push_str("    rack_a:\n      hosts:\n");
        inv.push_str(&rack);
        inv.push_str(&format!(
            "  vars:\n    ansible_connection: local\n    kt_bin: {}\n    repo: {}\n",
            bin(),
            repo_dir.display()
        ));
        let inventory = w.join("inventory.yml");
        std::fs::write(&inventory, inv).unwrap();
        std::fs::write(
            repo_dir.join("groups/rack_a.yaml"),
            "host:\n  sysctl: { vm.dirty_background_ratio: 3 }\n",
        )
        .unwrap();
        let playbook = w.join("fleet.yml");
        std::fs::write(
            &playbook,
            "- hosts: hypervisors\n  gather_facts: false\n  tasks:\n    - name: tune\n      kvmtune.kvmtune.kvmtune:\n        \
             host_config: \"{{ repo }}\"\n        hostname: \"{{ kt_name }}\"\n        groups: \"{{ group_names }}\"\n        \
             root: \"{{ kt_root }}\"\n        connect: \"{{ kt_uri }}\"\n        binary: \"{{ kt_bin }}\"\n        \
             lock_timeout: 5\n        strict: \"{{ strict | default(false) }}\"\n",
        )
        .unwrap();
        let f = Fleet {
            work,
            repo: repo_dir,
            hosts,
            inventory,
            playbook,
        };
        f.shared(10);
        f
    }

    /// The shared file (every host): swappiness, and web1 declared as it is (in sync).
    fn shared(&self, swappiness: u32) {
        std::fs::write(
            self.repo.join("shared.yaml"),
            format!(
                "host:\n  persist: false\n  sysctl: {{ vm.swappiness: {swappiness} }}\n\
                 guests:\n  web1: {{ vcpu: {{ count: 2 }} }}\n"
            ),
        )
        .unwrap();
    }

    fn run(&self, a: &Ansible, extra: &[&str]) -> Run {
        a.playbook(
            self.inventory.to_str().unwrap(),
            &self.playbook,
            extra,
            true,
        )
    }

    fn sysctl(&self, h: &Hv, key: &str) -> String {
        read(&h.root.join("proc/sys/vm").join(key))
    }

    /// Every host but `except` has swappiness `want` and its own dirty ratio.
    fn assert_converged(&self, want: u32, except: &[&str]) {
        for (i, h) in self.hosts.iter().enumerate() {
            if except.contains(&h.name.as_str()) {
                continue;
            }
            assert_eq!(self.sysctl(h, "swappiness"), want.to_string(), "{}", h.name);
            let ratio = if h.name == TYPO {
                "20".to_string() // its own file is not found: unchanged
            } else {
                dirty_ratio(i + 1).to_string()
            };
            assert_eq!(self.sysctl(h, "dirty_ratio"), ratio, "{}", h.name);
            let bg = if i < 25 { "3" } else { "10" };
            assert_eq!(self.sysctl(h, "dirty_background_ratio"), bg, "{}", h.name);
        }
    }
}

/// Asserts the recap: `changed` for every host but the failed ones, which failed.
fn assert_recap(run: &Run, changed: u32, failed: &[&str]) {
    let recap = run.recap();
    assert_eq!(recap.len(), FLEET, "{}", run.stdout);
    for (h, (c, f)) in &recap {
        if failed.contains(&h.as_str()) {
            assert_eq!(*f, 1, "{h} should fail:\n{}", run.stdout);
        } else {
            assert_eq!((*c, *f), (changed, 0), "{h}:\n{}", run.stdout);
        }
    }
}

fn msg(run: &Run, host: &str) -> String {
    run.result(host)["msg"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_fleet_of_50_converges_and_one_broken_file_fails_only_its_host() {
    let fleet = Fleet::new();
    let a = Ansible::new(fleet.work.path());
    let untouched: Vec<String> = fleet
        .hosts
        .iter()
        .map(|h| fleet.sysctl(h, "swappiness"))
        .collect();
    let mut times = Vec::new();

    // Check mode: a change on every host, nothing written.
    let check = fleet.run(&a, &["--check"]);
    times.push(("check", check.secs));
    assert_eq!(check.code, Some(0), "{}", check.stdout);
    assert_recap(&check, 1, &[]);
    for (h, before) in fleet.hosts.iter().zip(&untouched) {
        assert_eq!(&fleet.sysctl(h, "swappiness"), before, "{}", h.name);
        assert!(!h.root.join("var/lib/kvmtune").exists(), "{}", h.name);
    }
    // The typo'd hostname is warned about (once, for that host only).
    let warning = "no configuration applies to host `hv50`";
    assert_eq!(check.stdout.matches(warning).count(), 1, "{}", check.stdout);
    assert_eq!(
        check.stdout.matches("no configuration applies").count(),
        1,
        "{}",
        check.stdout
    );
    let r = check.result("hv-01");
    assert_eq!(r["plan"]["summary"]["changes"], 3, "{r:#}");
    assert_eq!(r["errors"], serde_json::json!([]));

    // The real run converges; the second changes nothing.
    let first = fleet.run(&a, &[]);
    times.push(("first", first.secs));
    assert_eq!(first.code, Some(0), "{}", first.stdout);
    assert_recap(&first, 1, &[]);
    fleet.assert_converged(10, &[]);
    let second = fleet.run(&a, &[]);
    times.push(("second", second.secs));
    assert_eq!(second.code, Some(0), "{}", second.stdout);
    assert_recap(&second, 0, &[]);

    // A syntax error in hv-13's own file and in a shared file that selects only hv-13: hv-13
    // fails, naming both places; the other 49 converge to the new shared value.
    fleet.shared(11);
    std::fs::write(
        fleet.repo.join("hosts/hv-13.yaml"),
        "host:\n  sysctl: { vm.dirty_ratio: 9\n",
    )
    .unwrap();
    std::fs::write(
        fleet.repo.join("zz-hv-13-extra.yaml"),
        "hosts: [hv-13]\nhost:\n  sysctl: [unclosed\n",
    )
    .unwrap();
    let broken = fleet.run(&a, &[]);
    times.push(("broken file", broken.secs));
    assert_recap(&broken, 1, &["hv-13"]);
    let m = msg(&broken, "hv-13");
    for part in [
        "hosts/hv-13.yaml:3:",
        "zz-hv-13-extra.yaml:4:",
        "YAML syntax error",
    ] {
        assert!(m.contains(part), "{part:?} in {m:?}");
    }
    assert!(m.len() < 600, "msg is not a dump: {m:?}");
    let r = broken.result("hv-13");
    assert_eq!(r["changed"], false, "{r:#}");
    assert_eq!(r["plan"]["changes"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["plan"]["summary"]["changes"], 0, "{r:#}");
    assert!(
        r["errors"][0]["location"]
            .as_str()
            .is_some_and(|l| l.contains("hv-13")),
        "{r:#}"
    );
    fleet.assert_converged(11, &["hv-13"]);
    assert_eq!(fleet.sysctl(&fleet.hosts[12], "swappiness"), "10");
    // `validate` over the repository (what CI runs) names both broken files.
    let o = Command::new(bin())
        .args(["validate", "--host-config"])
        .arg(&fleet.repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(err(&o).contains("hosts/hv-13.yaml:3:"), "{}", describe(&o));
    assert!(
        err(&o).contains("zz-hv-13-extra.yaml:4:"),
        "{}",
        describe(&o)
    );

    // Fixed; now hv-07 declares a guest its hypervisor does not have: hv-07 fails with the
    // file, key and cause (and applies nothing), the other 49 converge.
    std::fs::remove_file(fleet.repo.join("zz-hv-13-extra.yaml")).unwrap();
    std::fs::write(
        fleet.repo.join("hosts/hv-13.yaml"),
        format!(
            "host:\n  sysctl: {{ vm.dirty_ratio: {} }}\n",
            dirty_ratio(13)
        ),
    )
    .unwrap();
    std::fs::write(
        fleet.repo.join("hosts/hv-07.yaml"),
        format!(
            "host:\n  sysctl: {{ vm.dirty_ratio: {} }}\nguests:\n  db9: {{ vcpu: {{ count: 2 }} }}\n",
            dirty_ratio(7)
        ),
    )
    .unwrap();
    fleet.shared(12);
    let missing = fleet.run(&a, &[]);
    times.push(("missing guest", missing.secs));
    assert_recap(&missing, 1, &["hv-07"]);
    let m = msg(&missing, "hv-07");
    assert!(
        m.contains("hosts/hv-07.yaml:4:3: guests.db9: no guest named `db9`"),
        "{m:?}"
    );
    assert!(!m.contains("not saved"), "{m:?}");
    let r = missing.result("hv-07");
    assert_eq!(r["changed"], false);
    assert_eq!(r["errors"][0]["key"], "guests.db9", "{r:#}");
    assert_eq!(r["plan"]["errors"][0]["target"], "guest/db9", "{r:#}");
    fleet.assert_converged(12, &["hv-07"]);
    assert_eq!(fleet.sysctl(&fleet.hosts[6], "swappiness"), "11");

    // `strict`: the unmatched host fails (only it is run).
    let strict = a.playbook(
        fleet.inventory.to_str().unwrap(),
        &fleet.playbook,
        &["--limit", TYPO, "-e", "strict=true"],
        true,
    );
    assert_eq!(strict.recap()[TYPO].1, 1, "{}", strict.stdout);
    assert!(msg(&strict, TYPO).contains(warning), "{}", strict.stdout);

    let total: f64 = times.iter().map(|(_, s)| s).sum();
    eprintln!(
        "fleet of {FLEET}, forks 10: {} (total {total:.1} s, {:.2} s per host per run)",
        times
            .iter()
            .map(|(what, s)| format!("{what} {s:.1} s"))
            .collect::<Vec<_>>()
            .join(", "),
        total / (times.len() * FLEET) as f64
    );
    let _ = &fleet.hosts[0].kt_name;
}

/// The role on three hosts: validate once on the controller, install the binary, lay out the
/// files that apply to each host (and only those), converge, then changed=0; a broken file
/// stops the play at validate before any host is touched.
#[test]
fn the_role_validates_once_installs_lays_out_and_converges() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let a = Ansible::new(w);
    let repo_dir = w.join("repo");
    std::fs::create_dir_all(repo_dir.join("hosts")).unwrap();
    std::fs::create_dir_all(repo_dir.join("groups")).unwrap();
    std::fs::write(
        repo_dir.join("shared.yaml"),
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 10 }\n",
    )
    .unwrap();
    std::fs::write(
        repo_dir.join("groups/db.yaml"),
        "host:\n  sysctl: { vm.dirty_background_ratio: 3 }\n",
    )
    .unwrap();
    for (h, r) in [("hv-a", 11), ("hv-b", 12)] {
        std::fs::write(
            repo_dir.join(format!("hosts/{h}.yaml")),
            format!("host:\n  sysctl: {{ vm.dirty_ratio: {r} }}\n"),
        )
        .unwrap();
    }
    let mut inv = String::from("all:\n  children:\n    hypervisors:\n      hosts:\n");
    for h in ["hv-a", "hv-b", "hv-c"] {
        let root = w.join("roots").join(h);
        copy_tree(&repo().join("examples/demo/root"), &root);
        inv.push_str(&format!("        {h}: {{ kt_root: {} }}\n", root.display()));
    }
    inv.push_str("    db:\n      hosts:\n        hv-a:\n");
    inv.push_str("  vars:\n    ansible_connection: local\n");
    let inventory = w.join("inventory.yml");
    std::fs::write(&inventory, inv).unwrap();
    let pb = w.join("site.yml");
    std::fs::write(
        &pb,
        format!(
            "- hosts: hypervisors\n  gather_facts: false\n  serial: 2\n  roles:\n    - role: kvmtune.kvmtune.kvmtune\n      vars:\n        \
             kvmtune_binary_src: {bin}\n        kvmtune_repo_src: {repo}\n        \
             kvmtune_binary_dest: \"{{{{ kt_root }}}}/usr/local/bin/kvmtune\"\n        \
             kvmtune_repo_dest: \"{{{{ kt_root }}}}/etc/kvmtune\"\n        kvmtune_root: \"{{{{ kt_root }}}}\"\n",
            bin = bin(),
            repo = repo_dir.display()
        ),
    )
    .unwrap();
    let root = |h: &str| w.join("roots").join(h);
    // Laid out earlier, no longer applies: removed.
    std::fs::create_dir_all(root("hv-c").join("etc/kvmtune/hosts")).unwrap();
    std::fs::write(
        root("hv-c").join("etc/kvmtune/hosts/old.yaml"),
        "host:\n  sysctl: { vm.swappiness: 99 }\n",
    )
    .unwrap();

    let inv = inventory.to_str().unwrap();
    let t = Instant::now();
    let first = a.playbook(inv, &pb, &[], false);
    let first_secs = t.elapsed().as_secs_f64();
    assert_eq!(first.code, Some(0), "{}", first.stdout);
    // Validate ran once per `serial:` batch, on the controller.
    assert_eq!(
        first
            .stdout
            .matches("TASK [kvmtune.kvmtune.kvmtune : Validate the whole configuration repository")
            .count(),
        2,
        "{}",
        first.stdout
    );
    for (h, ratio, bg) in [
        ("hv-a", "11", "3"),
        ("hv-b", "12", "10"),
        ("hv-c", "20", "10"),
    ] {
        let r = root(h);
        assert_eq!(read(&r.join("proc/sys/vm/swappiness")), "10", "{h}");
        assert_eq!(read(&r.join("proc/sys/vm/dirty_ratio")), ratio, "{h}");
        assert_eq!(
            read(&r.join("proc/sys/vm/dirty_background_ratio")),
            bg,
            "{h}"
        );
        assert!(r.join("usr/local/bin/kvmtune").is_file(), "{h}");
        let mut laid: Vec<String> = walk(&r.join("etc/kvmtune"));
        laid.sort();
        let mut want = vec!["shared.yaml".to_string()];
        if h == "hv-a" {
            want.insert(0, "groups/db.yaml".into());
        }
        if h != "hv-c" {
            want.push(format!("hosts/{h}.yaml"));
        }
        want.sort();
        assert_eq!(laid, want, "{h}");
    }
    // hv-c has no file of its own: warned.
    assert!(
        first
            .stdout
            .contains("no configuration applies to host `hv-c`"),
        "{}",
        first.stdout
    );

    let second = a.playbook(inv, &pb, &[], false);
    assert_eq!(second.code, Some(0), "{}", second.stdout);
    for (h, (c, f)) in second.recap() {
        assert_eq!((c, f), (0, 0), "{h}:\n{}", second.stdout);
    }

    // A broken file for hv-b: validate on the controller fails the play before any change.
    std::fs::write(
        repo_dir.join("hosts/hv-b.yaml"),
        "host:\n  sysctl: { vm.dirty_ratio: 13\n",
    )
    .unwrap();
    std::fs::write(
        repo_dir.join("shared.yaml"),
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 14 }\n",
    )
    .unwrap();
    let gated = a.playbook(inv, &pb, &[], false);
    assert_ne!(gated.code, Some(0), "{}", gated.stdout);
    assert!(
        gated.stdout.contains("hosts/hv-b.yaml:3:"),
        "{}",
        gated.stdout
    );
    for h in ["hv-a", "hv-b", "hv-c"] {
        assert_eq!(read(&root(h).join("proc/sys/vm/swappiness")), "10", "{h}");
    }
    eprintln!("role on 3 hosts (serial 2): first run {first_secs:.1} s");
}

/// Files below `dir`, relative to it.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

/// `ansible-test sanity` (every test that needs no docker or network at run time; their
/// requirements are installed from PyPI into ansible-test's venvs on first use) and
/// `ansible-doc` for the module and the role.
#[test]
fn ansible_test_sanity_and_ansible_doc_pass() {
    let venv = venv();
    let work = tempfile::tempdir().unwrap();
    // ansible-test needs the collection at ansible_collections/<ns>/<name>, as files.
    let coll = work.path().join("ansible_collections/kvmtune/kvmtune");
    copy_tree(&repo().join("ansible"), &coll);
    // ansible-test bootstraps pip in its venvs with a script from ci-files.testing.ansible.com,
    // which this machine cannot reach: a stand-in (tests/data/ansible/get_pip.py) in its cache.
    let home = repo().join("target/ansible-test-home");
    let cache = home.join(".ansible/test/cache");
    std::fs::create_dir_all(&cache).unwrap();
    let pip = std::fs::read(repo().join("tests/data/ansible/get_pip.py")).unwrap();
    for version in ["24_2", "25_1"] {
        std::fs::write(cache.join(format!("get_pip_{version}.py")), &pip).unwrap();
    }
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let t = Instant::now();
    let out = Command::new(venv.join("bin/ansible-test"))
        .args([
            "sanity",
            "--python",
            "3.11",
            "--requirements",
            "--color",
            "no",
        ])
        .current_dir(&coll)
        .env("HOME", &home)
        .env("PATH", &path)
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ansible-test sanity failed:\n{text}");
    let ran: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Running sanity test \""))
        .filter_map(|l| l.split('"').next())
        .collect();
    for t in [
        "validate-modules",
        "pep8",
        "pylint",
        "yamllint",
        "ansible-doc",
        "import",
        "compile",
        "runtime-metadata",
    ] {
        assert!(ran.contains(&t), "{t} did not run: {ran:?}\n{text}");
    }
    eprintln!(
        "ansible-test sanity: {} tests in {secs:.1} s: {}",
        ran.len(),
        ran.join(", ")
    );

    let docs = work.path();
    for (kind, marker) in [("module", "host_config"), ("role", "kvmtune_repo_src")] {
        let o = Command::new(venv.join("bin/ansible-doc"))
            .args(["-t", kind, "kvmtune.kvmtune.kvmtune"])
            .env("ANSIBLE_COLLECTIONS_PATH", docs)
            .env("ANSIBLE_HOME", docs.join("ansible-home"))
            .env("ANSIBLE_NOCOLOR", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "ansible-doc -t {kind}: {}",
            describe(&o)
        );
        assert!(text.contains(marker), "{kind}: {text}");
    }
}
