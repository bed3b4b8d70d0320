//! Fleet behaviour of the CLI: the blast radius of a broken file (a file meant for other
//! hosts cannot break this one: selected by path, `--host-config DIR` with `groups/` and
//! `hosts/`, or by a `hosts:` selector read on its own), `validate` over the whole repository
//! reporting every broken file once, a hostname that nothing selects (warning, `--strict`),
//! and host read errors naming the file and the key.

mod support;
use support::*;

use std::path::Path;
use std::process::Command;

fn plan(root: &Path, host: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args(["--connect", &demo_uri(), "--hostname", host, "--root"])
        .arg(root)
        .arg("plan")
        .args(args)
        .args(["--format", "json"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// The planned `path=after` pairs.
fn afters(o: &std::process::Output) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&out(o)).unwrap_or_else(|e| {
        panic!("{e}: {}", describe(o));
    });
    v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c["path"].as_str().unwrap(),
                c["after"].as_str().unwrap()
            )
        })
        .collect()
}

/// A repository: shared, a group file, two host files, a shared file selecting hv-13.
fn repository(dir: &Path) {
    write(
        dir,
        "shared.yaml",
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 7 }\n",
    );
    write(
        dir,
        "groups/rack-a.yaml",
        "host:\n  sysctl: { vm.dirty_background_ratio: 3 }\n",
    );
    write(
        dir,
        "hosts/hv-1.yaml",
        "host:\n  sysctl: { vm.dirty_ratio: 11 }\n",
    );
    write(
        dir,
        "hosts/hv-13.yaml",
        "host:\n  sysctl: { vm.dirty_ratio: 13 }\n",
    );
    write(
        dir,
        "for-13.yaml",
        "hosts: [hv-13]\nhost:\n  sysctl: { vm.dirty_background_ratio: 4 }\n",
    );
}

#[test]
fn a_syntax_error_in_a_file_for_one_host_breaks_only_that_host() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    repository(d);
    let repo = d.display().to_string();
    let hc = ["--host-config", repo.as_str(), "--group", "rack-a"];
    let o = plan(root.path(), "hv-1", &hc);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(
        afters(&o),
        [
            "sysctl.vm.dirty_background_ratio=3",
            "sysctl.vm.dirty_ratio=11",
            "sysctl.vm.swappiness=7"
        ]
    );
    let o = plan(root.path(), "hv-13", &["--host-config", &repo]);
    assert_eq!(
        afters(&o),
        [
            "sysctl.vm.dirty_background_ratio=4",
            "sysctl.vm.dirty_ratio=13",
            "sysctl.vm.swappiness=7"
        ]
    );

    // Broken: hv-13's own file, and the shared file after its selector. hv-1 plans as before.
    write(
        d,
        "hosts/hv-13.yaml",
        "host:\n  sysctl: { vm.dirty_ratio: 13\n",
    );
    write(
        d,
        "for-13.yaml",
        "hosts: [hv-13]\nhost:\n  sysctl: [vm.dirty_background_ratio: 4\n",
    );
    let o = plan(root.path(), "hv-1", &hc);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(afters(&o).len(), 3, "{}", describe(&o));
    // hv-13 fails, naming both files with line and column.
    let o = plan(root.path(), "hv-13", &["--host-config", &repo]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let e = err(&o);
    assert!(
        e.contains(&format!("{repo}/for-13.yaml:4:1: YAML syntax error")),
        "{e}"
    );
    assert!(
        e.contains(&format!("{repo}/hosts/hv-13.yaml:3:1: YAML syntax error")),
        "{e}"
    );
    // The same with plain files (no --host-config): the selector is read on its own.
    let files = [format!("{repo}/shared.yaml"), format!("{repo}/for-13.yaml")];
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let o = plan(root.path(), "hv-1", &args);
    assert_eq!(afters(&o), ["sysctl.vm.swappiness=7"], "{}", describe(&o));

    // A syntax error before or inside the selector: nobody can tell whom the file is for,
    // so it breaks every host (fails closed) and says where.
    write(d, "for-13.yaml", "hosts: [hv-13\nhost: {}\n");
    let o = plan(root.path(), "hv-1", &hc);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(err(&o).contains("for-13.yaml:2:"), "{}", describe(&o));
    write(d, "for-13.yaml", "host: { sysctl: [\nhosts: [hv-13]\n");
    let o = plan(root.path(), "hv-1", &hc);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
}

#[test]
fn validate_reports_every_broken_file_of_the_repository_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    repository(d);
    let repo = d.display().to_string();
    let validate = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kvmtune"))
            .args(["--hostname", "ci-runner", "--root", "/"])
            .args(["validate", "--host-config", &repo])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = validate(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(out(&o), "Valid: 1 host setting(s), 0 guest(s).\n");
    let o = validate(&["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["files"], 5, "{v}");

    // A syntax error in a host file, one in a group file, a type error in a file for hv-13,
    // a conflict between a host file and the shared file: each named once.
    write(
        d,
        "hosts/hv-1.yaml",
        "host:\n  sysctl: { vm.dirty_ratio: 11\n",
    );
    write(d, "groups/rack-a.yaml", "host: [\n");
    write(
        d,
        "for-13.yaml",
        "hosts: [hv-13]\nhost:\n  transparent_hugepage: { enabled: sometimes }\n",
    );
    write(
        d,
        "hosts/hv-13.yaml",
        "host:\n  sysctl: { vm.swappiness: 8 }\n",
    );
    let o = validate(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let e = err(&o);
    for (what, part) in [
        (
            "host file",
            format!("{repo}/hosts/hv-1.yaml:3:1: YAML syntax error"),
        ),
        ("group file", format!("{repo}/groups/rack-a.yaml:")),
        ("selected file", format!("{repo}/for-13.yaml:3:")),
        ("conflict", format!("{repo}/hosts/hv-13.yaml:2:")),
    ] {
        assert_eq!(
            e.matches(part.as_str()).count(),
            1,
            "{what}: {part:?} once in:\n{e}"
        );
    }
    assert_eq!(e.lines().count(), 4, "{e}");
}

#[test]
fn a_hostname_nothing_selects_is_warned_about_and_fails_with_strict() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    repository(d);
    let repo = d.display().to_string();
    let o = plan(root.path(), "hv-1", &["--host-config", &repo]);
    assert!(!err(&o).contains("warning"), "{}", describe(&o));
    // A typo: the shared file applies, and the host is said to have nothing of its own.
    let o = plan(root.path(), "hv1", &["--host-config", &repo]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(
        err(&o).trim(),
        "warning: no configuration applies to host `hv1`: no hosts/hv1.yaml or groups/<group>.yaml, no file's `hosts:` matches it (only 1 shared file applies)"
    );
    assert_eq!(afters(&o), ["sysctl.vm.swappiness=7"]);
    let o = plan(root.path(), "hv1", &["--host-config", &repo, "--strict"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(err(&o).contains("(--strict)"), "{}", describe(&o));
    // A group file counts as the host's own.
    let o = plan(
        root.path(),
        "hv1",
        &["--host-config", &repo, "--group", "rack-a", "--strict"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    // Selectors only (no fleet directory).
    let sel = format!("{repo}/for-13.yaml");
    let o = plan(root.path(), "hv-14", &[&sel]);
    assert!(
        err(&o).contains("no file's `hosts:` matches it"),
        "{}",
        describe(&o)
    );
    // A repository of host files only, none for this host: nothing is managed, and said so.
    std::fs::remove_file(d.join("shared.yaml")).unwrap();
    std::fs::remove_file(d.join("for-13.yaml")).unwrap();
    let o = plan(root.path(), "hv-99", &["--host-config", &repo]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(afters(&o).is_empty());
    assert!(
        err(&o).starts_with("warning: no configuration applies to host `hv-99`"),
        "{}",
        describe(&o)
    );
    // Plain files without selectors are for whichever host runs them: no warning.
    let cfg = d.join("hosts/hv-1.yaml").display().to_string();
    let o = plan(root.path(), "anything", &[&cfg, "--strict"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(err(&o).is_empty(), "{}", describe(&o));
}

/// Run as root without the capabilities that bypass file permissions (CAP_DAC_OVERRIDE,
/// CAP_DAC_READ_SEARCH), so a mode-000 file in the temp root is unreadable, as a protected
/// kernel file is to an unprivileged user.
#[test]
fn a_host_file_that_cannot_be_read_is_named_with_its_key() {
    use std::os::unix::fs::PermissionsExt;
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "t.yaml",
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 7 }\n",
    );
    let f = root.path().join("proc/sys/vm/swappiness");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
    let o = Command::new("setpriv")
        .args([
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_kvmtune"))
        .arg("--root")
        .arg(root.path())
        .arg("plan")
        .arg(dir.path().join("t.yaml"))
        .output()
        .expect("setpriv (util-linux) is needed");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert_eq!(
        err(&o).trim(),
        format!(
            "error: observing the current state: reading host state under {}: /proc/sys/vm/swappiness (host.sysctl.vm.swappiness): Permission denied (os error 13)",
            root.path().display()
        )
    );
}
