//! The kernel command line and systemd parts of `host.cpu_pool.isolate` on a simulated 2-node
//! SMT host (examples/demo/root: 2 nodes × 4 cores × 2 threads, plus tests/data/boot-host: the
//! running kernel's /proc/cmdline, PID 1's status, two BLS entries and grubenv).
//!
//! Without grubby below the root (the end-to-end tests): plan shows every write with its
//! effect, apply then plan = 0 changes, a second apply writes nothing, rollback restores every
//! file. With grubby installed below the root the BLS part is tested by planning against the
//! entry files and checking the argv and the executor's read-back through the command seam; no
//! program stands in for grubby (a recording seam runs nothing and changes nothing).

mod support;
use support::*;

use std::cell::RefCell;
use std::path::Path;

use kvmtune::host::kernel_args;
use kvmtune::host::{CmdOutput, HostCommands, HostOp};

const ISOLATE: &str = "host:
  hugepages:
    - { size: 1G, count: 4, persist: boot }
  cpu_pool:
    reserved: \"0,8\"
    shared: \"1-3,9-11\"
    isolate: { kernel: true, systemd: true }
";

const GRUB: &str = "etc/default/grub.d/90-kvmtune.cfg";
const SYSTEMD: &str = "etc/systemd/system.conf.d/90-kvmtune.conf";
const ENTRY_NEW: &str =
    "boot/loader/entries/4a1b2c3d5e6f47a8b9c0d1e2f3a4b5c6-6.8.9-300.fc40.x86_64.conf";
const ENTRY_OLD: &str =
    "boot/loader/entries/4a1b2c3d5e6f47a8b9c0d1e2f3a4b5c6-6.7.5-200.fc40.x86_64.conf";

/// The demo root with the boot overlay; `grubby`: a grubby file below the root (never run).
fn boot_root(grubby: bool) -> tempfile::TempDir {
    let root = demo_root();
    copy_tree(&repo().join("tests/data/boot-host"), root.path());
    if grubby {
        let g = root.path().join("usr/sbin/grubby");
        std::fs::create_dir_all(g.parent().unwrap()).unwrap();
        // Present, as detection needs; the tests run no program of this name.
        std::fs::write(&g, "").unwrap();
    }
    root
}

fn cfg(dir: &Path, text: &str) -> String {
    let p = dir.join("k.yaml");
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn rd(root: &Path, f: &str) -> Option<String> {
    std::fs::read_to_string(root.join(f)).ok()
}

fn plan_of(root: &Path, text: &str) -> (kvmtune::desired::Desired, kvmtune::plan::Plan) {
    let d = kvmtune::desired::load_str("k.yaml", text).unwrap();
    let obs = kvmtune::observe::observe(&d, root, None).unwrap();
    let p = kvmtune::pipeline::plan(&d, &obs);
    (d, p)
}

fn host_ops(p: &kvmtune::plan::Plan) -> Vec<HostOp> {
    p.actions
        .iter()
        .find_map(|a| match a {
            kvmtune::plan::Action::Host(ops) => Some(ops.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn boot_op(p: &kvmtune::plan::Plan) -> Option<HostOp> {
    host_ops(p)
        .into_iter()
        .find(|op| matches!(op, HostOp::BootEntries { .. }))
}

#[test]
fn isolation_plans_applies_converges_and_rolls_back_without_grubby() {
    let root = boot_root(false);
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), ISOLATE);
    let r = root.path();
    let o = kt(r, &["plan", &c]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    insta::assert_snapshot!("isolation_plan_without_grubby", out(&o));

    let o = kt(r, &["apply", &c, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    insta::assert_snapshot!(
        "isolation_files",
        [GRUB, SYSTEMD]
            .iter()
            .map(|f| format!("==> /{f} <==\n{}", rd(r, f).unwrap()))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Boot entries are left alone without grubby; kvmtune ran no command.
    let base = repo().join("tests/data/boot-host");
    for e in [ENTRY_NEW, ENTRY_OLD, "boot/grub2/grubenv"] {
        assert_eq!(rd(r, e), rd(&base, e), "{e}");
    }

    // apply then plan = 0 changes (the notes still say a reboot is pending).
    let o = kt(r, &["plan", &c, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let text = out(&o);
    assert!(text.contains("\nNo changes."), "{text}");
    assert!(
        text.contains("note: kernel argument `nohz_full=4-7,12-15`: needs reboot (not on the running kernel's command line)"),
        "{text}"
    );
    let o = kt(r, &["apply", &c, "--auto-approve", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["host_writes"].as_u64(), v["host_commands"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );

    // rollback: both drop-ins did not exist, so both declare nothing afterwards.
    let o = kt(r, &["rollback", "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    for (kind, f) in [
        (kvmtune::model::OwnedFileKind::Grub, GRUB),
        (kvmtune::model::OwnedFileKind::Systemd, SYSTEMD),
    ] {
        let now = rd(r, f).unwrap();
        assert_eq!(
            kvmtune::host::persist::OwnedFile::entries_of(kind, &now),
            Vec::new(),
            "{f}: {now}"
        );
    }
    assert!(!rd(r, GRUB).unwrap().contains("isolcpus"));
    assert!(!rd(r, SYSTEMD).unwrap().contains("CPUAffinity"));
    // And the forward plan wants everything again.
    let (_, p) = plan_of(r, ISOLATE);
    assert_eq!(p.changes.len(), 6, "{:#?}", p.changes);
}

#[test]
fn bls_entries_are_planned_from_the_entry_files_with_grubby() {
    let root = boot_root(true);
    let r = root.path();
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), ISOLATE);
    let o = kt(r, &["plan", &c]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    insta::assert_snapshot!("isolation_plan_with_grubby", out(&o));

    let (_, p) = plan_of(r, ISOLATE);
    let Some(HostOp::BootEntries {
        add,
        remove,
        labels,
        ..
    }) = boot_op(&p)
    else {
        panic!("no boot entries step: {:#?}", host_ops(&p));
    };
    assert!(remove.is_empty());
    // The 1G pool is in both entries already (one through $kernelopts): not a change.
    assert_eq!(
        labels,
        [
            "cpu_pool.isolate.kernel.isolcpus (boot entries)",
            "cpu_pool.isolate.kernel.nohz_full (boot entries)",
            "cpu_pool.isolate.kernel.rcu_nocbs (boot entries)",
            "cpu_pool.isolate.kernel.irqaffinity (boot entries)",
        ]
    );
    // The boot-entry step runs after the drop-in, which records what kvmtune owns.
    let ops = host_ops(&p);
    assert!(matches!(ops.last(), Some(HostOp::BootEntries { .. })));
    let argv = kernel_args::grubby_argv(r, "usr/sbin/grubby", &kernel_args::tokens(&add), &[]);
    assert_eq!(
        argv,
        [
            r.join("usr/sbin/grubby").display().to_string(),
            "--update-kernel=ALL".into(),
            "--args=default_hugepagesz=1G hugepagesz=1G hugepages=4 isolcpus=managed_irq,domain,4-7,12-15 nohz_full=4-7,12-15 rcu_nocbs=4-7,12-15 irqaffinity=0,8".into(),
            format!("--bls-directory={}", r.join("boot/loader/entries").display()),
            format!("--env={}", r.join("boot/grub2/grubenv").display()),
        ]
    );
    // On the real root, grubby edits its own entries: no directory options.
    assert_eq!(
        kernel_args::grubby_argv(
            Path::new("/"),
            "sbin/grubby",
            &["a=1".into()],
            &["b=2".into()]
        ),
        [
            "/sbin/grubby",
            "--update-kernel=ALL",
            "--args=a=1",
            "--remove-args=b=2"
        ]
    );
}

/// Appends `args` to every BLS entry's arguments (its `options`, or grubenv's `kernelopts`),
/// as the boot entries read after grubby ran.
fn add_to_entries(root: &Path, args: &str) {
    for f in [ENTRY_NEW, "boot/grub2/grubenv"] {
        let p = root.join(f);
        let t = std::fs::read_to_string(&p).unwrap();
        let t = t
            .lines()
            .map(|l| {
                if l.starts_with("options ") || l.starts_with("kernelopts=") {
                    format!("{l} {args}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&p, t + "\n").unwrap();
    }
}

#[test]
fn entries_that_have_the_arguments_plan_nothing_and_a_second_apply_writes_nothing() {
    let root = boot_root(true);
    let r = root.path();
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), ISOLATE);
    // The drop-ins as kvmtune writes them, the entries as grubby leaves them.
    // The grubby below this root is an empty file: it cannot run, and the error says so.
    let o = kt(r, &["apply", &c, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        describe(&o).contains("could not be run"),
        "{}",
        describe(&o)
    );
    add_to_entries(
        r,
        "isolcpus=managed_irq,domain,4-7,12-15 nohz_full=4-7,12-15 rcu_nocbs=4-7,12-15 irqaffinity=0,8",
    );
    let (_, p) = plan_of(r, ISOLATE);
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    assert!(host_ops(&p).is_empty(), "{:#?}", host_ops(&p));
    let o = kt(r, &["apply", &c, "--auto-approve", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["host_writes"].as_u64(), v["host_commands"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
}

/// Records every command and changes nothing (a grubby that exits 0 and does nothing).
struct Recorder(RefCell<Vec<Vec<String>>>);

impl HostCommands for Recorder {
    fn run(&self, argv: &[String]) -> std::io::Result<CmdOutput> {
        self.0.borrow_mut().push(argv.to_vec());
        Ok(CmdOutput {
            code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
        })
    }
}

#[test]
fn the_executor_reads_the_entries_back_and_refuses_stale_ones() {
    let root = boot_root(true);
    let r = root.path();
    let (_, p) = plan_of(r, ISOLATE);
    let op = boot_op(&p).unwrap();
    let rec = Recorder(RefCell::new(Vec::new()));
    let e = kvmtune::host::execute(&kvmtune::host::RealFiles, &rec, r, &op).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("succeeded, but /boot/loader/entries/4a1b2c3d5e6f47a8b9c0d1e2f3a4b5c6-6.7.5-200.fc40.x86_64.conf lacks isolcpus=managed_irq,domain,4-7,12-15 nohz_full=4-7,12-15"),
        "{msg}"
    );
    assert!(
        msg.starts_with("`/usr/sbin/grubby --update-kernel=ALL --args="),
        "{msg}"
    );
    assert_eq!(rec.0.borrow().len(), 1);
    // An entry changed since planning: nothing runs.
    add_to_entries(r, "quiet");
    let rec = Recorder(RefCell::new(Vec::new()));
    let e = kvmtune::host::execute(&kvmtune::host::RealFiles, &rec, r, &op).unwrap_err();
    assert!(
        e.to_string()
            .contains("the plan was made when it was `sha256"),
        "{e}"
    );
    assert!(rec.0.borrow().is_empty());
    // A symlinked entry is refused, not followed.
    std::os::unix::fs::symlink("/etc/passwd", r.join("boot/loader/entries/evil.conf")).unwrap();
    let d = kvmtune::desired::load_str("k.yaml", ISOLATE).unwrap();
    let e = kvmtune::observe::observe(&d, r, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("evil.conf is a symlink: refusing to follow it"),
        "{e}"
    );
}

#[test]
fn an_operators_own_isolcpus_is_never_removed() {
    let root = boot_root(true);
    let r = root.path();
    // Declared while the entry has the operator's isolcpus: a plan error, no boot step.
    add_to_entries(r, "isolcpus=3");
    let (_, p) = plan_of(r, ISOLATE);
    assert!(boot_op(&p).is_none(), "{:#?}", host_ops(&p));
    let msgs: Vec<&str> = p.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    assert!(
        msgs[0].contains(
            "has `isolcpus=3`, which kvmtune did not write: `grubby --args` would replace it"
        ),
        "{msgs:#?}"
    );

    // kvmtune owned isolation before (its drop-in says so); now only the pool is declared.
    let owned = "host:\n  cpu_pool: { reserved: \"0,8\", shared: \"1-3,9-11\", isolate: { kernel: true } }\n";
    let g = r.join(GRUB);
    std::fs::create_dir_all(g.parent().unwrap()).unwrap();
    let (_, p0) = plan_of(&repo().join("examples/demo/root"), owned);
    let grub_op = host_ops(&p0)
        .into_iter()
        .find(|op| matches!(op, HostOp::OwnedFile { .. }))
        .unwrap();
    kvmtune::host::execute(
        &kvmtune::host::RealFiles,
        &Recorder(RefCell::new(vec![])),
        r,
        &grub_op,
    )
    .unwrap();
    assert!(rd(r, GRUB)
        .unwrap()
        .contains("isolcpus=managed_irq,domain,4-7,12-15"));
    // The entries have kvmtune's other arguments and the operator's isolcpus=3.
    add_to_entries(r, "nohz_full=4-7,12-15 rcu_nocbs=4-7,12-15 irqaffinity=0,8");
    let pool_only = "host:\n  hugepages: [ { size: 1G, count: 4, persist: boot } ]\n";
    let (_, p) = plan_of(r, pool_only);
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    let Some(HostOp::BootEntries {
        add,
        remove,
        labels,
        ..
    }) = boot_op(&p)
    else {
        panic!("{:#?}", host_ops(&p));
    };
    assert_eq!(
        labels,
        [
            "cpu_pool.isolate.kernel.nohz_full (boot entries)",
            "cpu_pool.isolate.kernel.rcu_nocbs (boot entries)",
            "cpu_pool.isolate.kernel.irqaffinity (boot entries)",
        ],
        "kvmtune's own isolcpus is not in any entry: nothing to say about it"
    );
    let argv = kernel_args::grubby_argv(
        r,
        "usr/sbin/grubby",
        &kernel_args::tokens(&add),
        &kvmtune::host::kernel_args::tokens(&remove),
    );
    let removed = argv
        .iter()
        .find_map(|a| a.strip_prefix("--remove-args="))
        .unwrap();
    // Exact name=value only (grubby removes every value of a bare name): never isolcpus=3.
    assert_eq!(
        removed,
        "isolcpus=managed_irq,domain,4-7,12-15 nohz_full=4-7,12-15 rcu_nocbs=4-7,12-15 irqaffinity=0,8"
    );
    assert!(removed.split(' ').all(|t| t.contains('=')));
    assert!(!removed.contains("isolcpus=3"));
    // The running kernel never had them: no note about removing them at reboot.
    assert!(
        !p.notes.iter().any(|n| n.contains("no longer declared")),
        "{:#?}",
        p.notes
    );
}

#[test]
fn saved_plans_cannot_carry_other_kernel_arguments() {
    let root = boot_root(true);
    let (d, p) = plan_of(root.path(), ISOLATE);
    let op = boot_op(&p).unwrap();
    assert_eq!(kvmtune::host::undeclared(&d.host, &op, false), None);
    let forged = |f: &dyn Fn(&mut kvmtune::host::persist::Entry)| {
        let HostOp::BootEntries {
            mut add,
            remove,
            before,
            labels,
        } = op.clone()
        else {
            unreachable!()
        };
        for e in &mut add {
            f(e);
        }
        HostOp::BootEntries {
            add,
            remove,
            before,
            labels,
        }
    };
    use kvmtune::host::kernel_args::BootArgName;
    use kvmtune::host::persist::PersistKey;
    // The boot-entry step with one argument's value replaced.
    let with_value = |arg: BootArgName, value: &str| {
        forged(&|e| {
            if e.key == (PersistKey::BootArg { arg }) {
                e.value = value.into();
            }
        })
    };
    let isolate_reserved = with_value(BootArgName::NohzFull, "0-15");
    assert!(kvmtune::host::undeclared(&d.host, &isolate_reserved, false).is_some());
    let irqs_elsewhere = with_value(BootArgName::Irqaffinity, "4");
    assert!(kvmtune::host::undeclared(&d.host, &irqs_elsewhere, false).is_some());
    // Free text never passes the entry check.
    let text = with_value(BootArgName::RcuNocbs, "4 init=/bin/sh");
    assert!(text.check().is_err());
    // The systemd drop-in: only the reserved set.
    let sd = host_ops(&p)
        .into_iter()
        .find(|op| {
            matches!(op, HostOp::OwnedFile { file, .. } if *file == kvmtune::model::OwnedFileKind::Systemd)
        })
        .unwrap();
    assert_eq!(kvmtune::host::undeclared(&d.host, &sd, false), None);
    let HostOp::OwnedFile {
        file,
        mut entries,
        before,
        labels,
    } = sd
    else {
        unreachable!()
    };
    entries[0].value = "0-15".into();
    let bad = HostOp::OwnedFile {
        file,
        entries,
        before,
        labels,
    };
    assert!(kvmtune::host::undeclared(&d.host, &bad, false).is_some());
}

#[test]
fn rollback_removes_from_the_entries_only_what_the_apply_added() {
    let root = boot_root(true);
    let r = root.path();
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), ISOLATE);
    // The drop-ins are written, the empty grubby cannot run; the entries then get what
    // grubby would have added. The 1G pool was in the entries before kvmtune declared it.
    let o = kt(r, &["apply", &c, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    add_to_entries(
        r,
        "isolcpus=managed_irq,domain,4-7,12-15 nohz_full=4-7,12-15 rcu_nocbs=4-7,12-15 irqaffinity=0,8",
    );
    let rec = kvmtune::state::load(r, None).unwrap();
    assert_eq!(
        rec.manifest.host.boot_had.len(),
        1,
        "{:?}",
        rec.manifest.host
    );
    let rb = kvmtune::rollback::plan_rollback(&rec, r, None).unwrap();
    let Some(HostOp::BootEntries {
        add,
        remove,
        labels,
        ..
    }) = boot_op(&rb.plan)
    else {
        panic!("{:#?}", rb.plan.actions);
    };
    assert!(add.is_empty());
    assert_eq!(
        labels,
        [
            "cpu_pool.isolate.kernel.isolcpus (boot entries)",
            "cpu_pool.isolate.kernel.nohz_full (boot entries)",
            "cpu_pool.isolate.kernel.rcu_nocbs (boot entries)",
            "cpu_pool.isolate.kernel.irqaffinity (boot entries)",
        ]
    );
    assert_eq!(
        kernel_args::tokens(&remove).join(" "),
        "isolcpus=managed_irq,domain,4-7,12-15 nohz_full=4-7,12-15 rcu_nocbs=4-7,12-15 irqaffinity=0,8"
    );
    // Both drop-ins are planned back to declaring nothing.
    let files: Vec<_> = host_ops(&rb.plan)
        .into_iter()
        .filter_map(|op| match op {
            HostOp::OwnedFile { file, entries, .. } => Some((file, entries.len())),
            _ => None,
        })
        .collect();
    assert_eq!(
        files,
        [
            (kvmtune::model::OwnedFileKind::Grub, 0),
            (kvmtune::model::OwnedFileKind::Systemd, 0)
        ]
    );
}
