//! The Ansible module (`ansible/plugins/modules/kvmtune.py`) for real: ansible-core from PyPI in a
//! venv (created under target/ on first use), a playbook against localhost with
//! `connection: local` on a temp `--root`: check mode changes nothing, the first run reports
//! changed=1, the second changed=0.

mod support;
use support::*;

use std::path::{Path, PathBuf};
use std::process::Command;

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

struct Run {
    stdout: String,
    code: Option<i32>,
}

fn playbook(venv: &Path, work: &Path, extra: &[&str]) -> Run {
    let out = Command::new(venv.join("bin/ansible-playbook"))
        .args(["-i", "localhost,"])
        .arg(work.join("playbook.yml"))
        .args(extra)
        .arg("-e")
        .arg(format!(
            "ansible_python_interpreter={}",
            venv.join("bin/python").display()
        ))
        .env("ANSIBLE_COLLECTIONS_PATH", work.join("collections"))
        .env("ANSIBLE_HOME", work.join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", work.join("ansible-tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_STDOUT_CALLBACK", "default")
        .env_remove("LIBVIRT_DEFAULT_URI")
        .output()
        .unwrap();
    Run {
        stdout: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        code: out.status.code(),
    }
}

fn recap_changed(r: &Run) -> u32 {
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("localhost") && l.contains("changed="))
        .unwrap_or_else(|| panic!("no recap line:\n{}", r.stdout));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("changed="))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[test]
fn ansible_module_check_mode_then_changed_once_then_unchanged() {
    let venv = venv();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    copy_tree(&repo().join("examples/demo/root"), &root);
    let coll = work.path().join("collections/ansible_collections/kvmtune");
    std::fs::create_dir_all(&coll).unwrap();
    std::os::unix::fs::symlink(repo().join("ansible"), coll.join("kvmtune")).unwrap();
    let cfg = work.path().join("tuning.yaml");
    std::fs::write(
        &cfg,
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 7 }\n",
    )
    .unwrap();
    std::fs::write(
        work.path().join("playbook.yml"),
        format!(
            "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n    \
             - name: tune\n      kvmtune.kvmtune.kvmtune:\n        config: {cfg}\n        root: {root}\n        \
             connect: test:///default\n        binary: {bin}\n      register: r\n    \
             - name: show\n      debug: {{ var: r.pending_restart }}\n",
            cfg = cfg.display(),
            root = root.display(),
            bin = env!("CARGO_BIN_EXE_kvmtune"),
        ),
    )
    .unwrap();
    let swappiness = || std::fs::read_to_string(root.join("proc/sys/vm/swappiness")).unwrap();
    let before = swappiness();
    assert_ne!(before.trim(), "7");

    let check = playbook(&venv, work.path(), &["--check", "--diff"]);
    assert_eq!(check.code, Some(0), "{}", check.stdout);
    assert_eq!(recap_changed(&check), 1, "{}", check.stdout);
    assert!(
        check.stdout.contains("host sysctl.vm.swappiness: 7"),
        "diff:\n{}",
        check.stdout
    );
    assert_eq!(swappiness(), before, "check mode changed something");

    let first = playbook(&venv, work.path(), &[]);
    assert_eq!(first.code, Some(0), "{}", first.stdout);
    assert_eq!(recap_changed(&first), 1, "{}", first.stdout);
    assert_eq!(swappiness().trim(), "7");

    let second = playbook(&venv, work.path(), &[]);
    assert_eq!(second.code, Some(0), "{}", second.stdout);
    assert_eq!(recap_changed(&second), 0, "{}", second.stdout);

    let check = playbook(&venv, work.path(), &["--check"]);
    assert_eq!(recap_changed(&check), 0, "{}", check.stdout);
}
