//! `kvmtune perf`: the parsers over perf's recorded output (tests/data/perf, see its README),
//! the advice over whole reports, a property run over random and mutated perf output, and the
//! CLI's preflight against libvirt's test driver (no perf is run here; tests/perf_libvirtd.rs
//! runs it against a real guest).

mod support;
use support::{describe, err, kt, out, repo, Rng};

use kvmtune::perf::profile::{self, Side};
use kvmtune::perf::{advice, stat, summary, GuestContext};

fn data(name: &str) -> String {
    let p = repo().join("tests/data/perf").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn ctx(vcpus: u32, pinned: bool, hugepages: bool) -> GuestContext {
    GuestContext {
        domain_type: "kvm".into(),
        vcpus,
        pinned,
        hugepages,
    }
}

#[test]
fn the_recorded_report_of_a_running_guest_on_this_pvm_host_is_an_empty_table() {
    let r = stat::parse(&data("stat-report-pvm-running-guest.txt")).unwrap();
    assert_eq!(r.event, "VM-EXIT");
    assert_eq!(r.scope.as_deref(), Some("all VMs, all VCPUs"));
    assert_eq!((r.rows.len(), r.total_samples, r.skipped), (0, Some(0), 0));
    assert_eq!(r.total_time_us, Some(0.0));
    let e = summary::summarize(&r, 2);
    assert_eq!(e.total, 0);
    assert!(advice::advise(&e, &ctx(1, false, false)).is_empty());
}

#[test]
fn perfs_own_errors_are_no_table_and_say_what_perf_said() {
    for (f, said) in [
        (
            "stat-report-missing-file.txt",
            "failed to open /nonexistent",
        ),
        ("stat-record-no-such-process.txt", "No such process"),
    ] {
        let e = stat::parse(&data(f)).unwrap_err();
        assert!(e.to_string().contains(said), "{f}: {e}");
    }
}

#[test]
fn intel_table_rows_are_typed_and_consistent() {
    let r = stat::parse(&data("stat-report-vmx-layout.txt")).unwrap();
    assert_eq!(r.scope.as_deref(), Some("pid(s) 4242, all VCPUs"));
    let names: Vec<&str> = r.rows.iter().map(|x| x.reason.as_str()).collect();
    assert_eq!(
        names,
        [
            "HLT",
            "MSR_WRITE",
            "EXTERNAL_INTERRUPT",
            "EPT_VIOLATION",
            "IO_INSTRUCTION",
            "PAUSE_INSTRUCTION",
            "EPT_MISCONFIG",
            "CPUID"
        ]
    );
    let hlt = &r.rows[0];
    assert_eq!(hlt.samples, 18342);
    assert_eq!(hlt.samples_pct, Some(65.23));
    assert_eq!(hlt.time_pct, Some(99.95));
    assert_eq!(
        (hlt.min_us, hlt.max_us, hlt.avg_us),
        (Some(0.62), Some(10029.37), Some(1932.41))
    );
    assert_eq!(hlt.stddev_pct, Some(1.73));
    assert_eq!(r.total_samples, Some(r.row_samples()));
    assert_eq!(r.skipped, 0);
    let e = summary::summarize(&r, 10);
    assert!(e.shares_consistent(), "{e:#?}");
    assert_eq!(e.total, 28119);
}

#[test]
fn an_idle_pinned_guest_gets_halt_polling_and_an_unpinned_one_does_not() {
    let r = stat::parse(&data("stat-report-vmx-layout.txt")).unwrap();
    let e = summary::summarize(&r, 10);
    let ids =
        |c: &GuestContext| -> Vec<&str> { advice::advise(&e, c).iter().map(|a| a.rule).collect() };
    // 18342 HLT in 10 s over 4 vCPUs: 459/s per vCPU, 65 % of exits.
    assert_eq!(ids(&ctx(4, true, false)), ["halt-pinned"]);
    assert_eq!(ids(&ctx(4, false, false)), ["halt-idle"]);
    // Over 200 vCPUs the same exits are too rare per vCPU to matter.
    assert!(ids(&ctx(200, true, false)).is_empty());
}

#[test]
fn amd_names_with_spaces_and_nested_page_faults_without_huge_pages() {
    let r = stat::parse(&data("stat-report-svm-layout.txt")).unwrap();
    assert_eq!(r.rows.last().unwrap().reason, "DE excp");
    assert_eq!(r.rows.len(), 6);
    let e = summary::summarize(&r, 10);
    assert!(e.shares_consistent());
    let a = advice::advise(&e, &ctx(2, false, false));
    let ids: Vec<&str> = a.iter().map(|a| a.rule).collect();
    assert_eq!(ids, ["halt-idle", "ept-hugepages"]);
    assert_eq!(a[1].reasons, ["npf"]);
    let with_hp: Vec<&str> = advice::advise(&e, &ctx(2, false, true))
        .iter()
        .map(|a| a.rule)
        .collect();
    assert_eq!(with_hp, ["halt-idle"]);
}

#[test]
fn the_recorded_host_guest_profile_is_host_kernel_emulation() {
    let p = profile::parse(&data("host-guest-report-pvm.txt"));
    assert_eq!(p.event.as_deref(), Some("cpu-clock:ppp"));
    assert_eq!(p.samples.as_deref(), Some("7K"));
    assert!(p.rows.len() > 50, "{}", p.rows.len());
    assert_eq!(p.skipped, 0);
    assert_eq!(p.guest_rows().count(), 0);
    assert!(p.rows.iter().all(|r| r.side == Side::HostKernel));
    let top = &p.rows[0];
    assert_eq!(
        (
            top.overhead_pct,
            top.command.as_str(),
            top.object.as_str(),
            top.symbol.as_str()
        ),
        (
            12.72,
            "CPU 0/KVM",
            "[kernel.kallsyms]",
            "__get_user_nocheck_8"
        )
    );
    assert!(p.rows.iter().any(|r| r.symbol == "x86_emulate_instruction"));
    let sum: f64 = p.rows.iter().map(|r| r.overhead_pct).sum();
    assert!((sum - 100.0).abs() < 1.0, "{sum}");
}

#[test]
fn recorded_guest_samples_are_marked_g_and_kept_apart() {
    // A 5 s recording in which PVM ran the guest in guest mode for two samples: perf names
    // the vCPU thread `:TID` and cannot resolve the address with a kallsyms that is not the
    // guest's (the host's stood in).
    let p = profile::parse(&data("host-guest-report-pvm-guest-rows.txt"));
    let guest: Vec<_> = p.guest_rows().collect();
    assert_eq!(guest.len(), 2, "{:#?}", p.rows);
    assert_eq!(guest[0].side, Side::GuestKernel);
    assert_eq!(
        (guest[0].command.as_str(), guest[0].object.as_str()),
        (":4394", "[unknown]")
    );
    assert_eq!(guest[0].symbol, "0x0000000004f3a4f0");
    assert_eq!(guest[0].overhead_pct, 0.02);
    let s = summary::profile_summary(&p, vec![]);
    assert_eq!((s.guest_rows, s.top_guest.len()), (2, 2));
    assert_eq!(s.top.len(), summary::TOP_SYMBOLS);
    assert!(s.top.iter().all(|r| !r.side.is_guest()));
}

/// What a user sees for an idle guest on dedicated CPUs (the constructed Intel table).
#[test]
fn the_summary_text_of_an_idle_pinned_guest() {
    let r = stat::parse(&data("stat-report-vmx-layout.txt")).unwrap();
    let exits = summary::summarize(&r, 10);
    let context = ctx(4, true, false);
    let s = summary::Summary {
        format_version: 1,
        guest: "db1".into(),
        pid: 4242,
        duration_secs: 10,
        advice: advice::advise(&exits, &context),
        diagnosis: vec![],
        context,
        host: kvmtune::perf::preflight::HostVirt {
            hw_virt: Some(true),
            pvm: false,
            pmu: true,
            halt_poll_ns: Some(200000),
        },
        exits,
        profile: None,
        commands: vec![
            "perf kvm stat record -p 4242 -o D/kvm-stat.data --max-size=256M sleep 10".into(),
        ],
    };
    insta::assert_snapshot!("perf_summary_idle_pinned", s.text());
}

/// Property: perf's output is untrusted. Random bytes, random lines built from the table's
/// own tokens, and mutations of every recorded file never make the parsers panic or keep
/// unbounded or non-printable names (the checks are `kvmtune::fuzzing::perf_report`'s);
/// a table cut after any line still parses to a prefix of the rows.
#[test]
fn random_and_mutated_perf_output_never_breaks_the_parsers() {
    let files = [
        "stat-report-pvm-running-guest.txt",
        "stat-report-vmx-layout.txt",
        "stat-report-svm-layout.txt",
        "host-guest-report-pvm.txt",
        "host-guest-report-pvm-guest-rows.txt",
        "stat-report-missing-file.txt",
    ];
    let seeds: Vec<String> = files.iter().map(|f| data(f)).collect();
    let tokens = [
        "VM-EXIT",
        "Samples",
        "Samples%",
        "Time%",
        "Min",
        "Max",
        "Avg",
        "Time",
        "time",
        "HLT",
        "( +-",
        ")",
        "%",
        "us",
        "nan%",
        "-nanus",
        "1.5us",
        "18446744073709551616",
        "42",
        "99.9%",
        "\u{1f}",
        "[g]",
        "[k]",
        "Total Samples:",
        "Lost events:",
        "\t",
        "\u{7}",
        "Analyze events for ",
        "# Samples: 1K of event 'x'",
    ];
    let mut r = Rng::new(15);
    let mut n = 0;
    for _ in 0..400 {
        let len = r.below(400) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| r.below(256) as u8).collect();
        kvmtune::fuzzing::perf_report(&bytes);
        let mut s = String::from(
            "VM-EXIT    Samples  Samples%     Time%    Min Time    Max Time         Avg time\n",
        );
        for _ in 0..r.range(1, 30) {
            for _ in 0..r.range(1, 12) {
                s.push_str(r.pick(&tokens));
                s.push(' ');
            }
            s.push('\n');
        }
        kvmtune::fuzzing::perf_report(s.as_bytes());
        n += 2;
    }
    for seed in &seeds {
        for _ in 0..300 {
            let mut b = seed.as_bytes().to_vec();
            for _ in 0..r.range(1, 8) {
                let len = b.len();
                let i = r.index(len.max(1));
                match r.below(4) {
                    0 if len > 0 => {
                        b.remove(i.min(len - 1));
                    }
                    1 => b.insert(i.min(len), b"%u .-+(0123456789\n\x1f"[r.index(18)]),
                    2 if len > 0 => b[i.min(len - 1)] = r.below(256) as u8,
                    _ => b.truncate(i),
                }
            }
            kvmtune::fuzzing::perf_report(&b);
            n += 1;
        }
    }
    assert!(n > 2000);
    // Truncation after any line: the rows are a prefix of the whole table's.
    let whole = stat::parse(&seeds[1]).unwrap();
    let lines: Vec<&str> = seeds[1].lines().collect();
    for cut in 0..lines.len() {
        if let Ok(part) = stat::parse(&lines[..cut].join("\n")) {
            assert!(part.rows.len() <= whole.rows.len());
            assert_eq!(part.rows[..], whole.rows[..part.rows.len()], "cut at {cut}");
        }
    }
}

// ------------------------------------------------------------ CLI preflight (test driver) --

#[test]
fn a_guest_that_is_not_defined_not_running_or_not_kvm_is_named() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let o = kt(r, &["perf", "nosuch", "--duration", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("guest nosuch: no such domain is defined"),
        "{}",
        describe(&o)
    );
    let o = kt(r, &["perf", "web1", "--duration", "1"]);
    assert!(
        err(&o).contains("guest web1 is not running"),
        "{}",
        describe(&o)
    );
    let o = kt(r, &["perf", "db1", "--duration", "1"]);
    assert!(
        err(&o).contains("guest db1 runs under `test`, not KVM"),
        "{}",
        describe(&o)
    );
    // Nothing was run: no perf command line on stdout.
    assert!(out(&o).is_empty(), "{}", describe(&o));
}

#[test]
fn missing_perf_and_tracefs_are_said_exactly_in_json_too() {
    let root = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let o = support::kt_cmd(root.path(), &["perf", "db1", "--format", "json"])
        .env("PATH", empty_path.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).expect("JSON");
    let kinds: Vec<&str> = v["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["missing"].as_str().unwrap())
        .collect();
    // The test suite runs as root (like the rest of it); the empty root has no tracefs.
    assert_eq!(
        kinds,
        ["perf_binary", "tracefs_not_mounted", "guest_not_kvm"],
        "{}",
        describe(&o)
    );
    let msgs = v["missing"].to_string();
    assert!(msgs.contains("apt-get install linux-perf"), "{msgs}");
    assert!(
        msgs.contains("mount -t tracefs nodev /sys/kernel/tracing"),
        "{msgs}"
    );
}

#[test]
fn a_root_without_kvm_tracepoints_says_which_directory() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("sys/kernel/tracing/events/sched")).unwrap();
    let o = kt(root.path(), &["perf", "db1"]);
    let e = err(&o);
    assert!(
        e.contains("the kernel has no kvm tracepoints:")
            && e.contains("sys/kernel/tracing/events/kvm is missing"),
        "{}",
        describe(&o)
    );
}

#[test]
fn bad_options_are_refused_before_anything_runs() {
    let root = tempfile::tempdir().unwrap();
    for (args, says) in [
        (&["perf", "db1", "--duration", "0"][..], "1 to 3600 seconds"),
        (
            &["perf", "db1", "--duration", "3601"][..],
            "1 to 3600 seconds",
        ),
        (&["perf", "a/b"][..], "/"),
        (
            &["perf", "db1", "--guest-kallsyms", "k"][..],
            "--guest-modules",
        ),
    ] {
        let o = kt(root.path(), args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", describe(&o));
        assert!(err(&o).contains(says), "{args:?}: {}", describe(&o));
    }
}
