//! The fuzz smoke run CI does: every fuzz target (`fuzz/fuzz_targets/`) over its committed
//! seed corpus (`fuzz/corpus/<target>/`) plus deterministic mutations of each seed. The long
//! runs use cargo-fuzz (see README); this keeps the targets and seeds honest on every commit.

use std::path::PathBuf;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(out.len() >= 4, "{target}: only {} seeds", out.len());
    out
}

fn mutations(seed: &[u8], n: usize, state: &mut u64) -> Vec<Vec<u8>> {
    let mut next = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    };
    (0..n)
        .map(|_| {
            let mut v = seed.to_vec();
            for _ in 0..=(next() % 3) {
                let len = v.len();
                match next() % 3 {
                    0 if len > 0 => {
                        let i = (next() as usize) % len;
                        v[i] = b"<>/='\" \n:-,{}[]0123456789az"[(next() % 26) as usize];
                    }
                    1 if len > 0 => {
                        let i = (next() as usize) % len;
                        v.remove(i);
                    }
                    _ => {
                        let i = (next() as usize) % (len + 1);
                        v.truncate(i);
                    }
                }
            }
            v
        })
        .collect()
}

/// Every seed once; mutations of about 50 seeds spread over the corpus (the corpus is what
/// the long cargo-fuzz runs kept: thousands of inputs).
fn run(target: &str, f: fn(&[u8]), per_seed: usize) -> usize {
    let mut state = 0x2545f4914f6cdd1d;
    let mut n = 0;
    let seeds = seeds(target);
    let stride = (seeds.len() / 50).max(1);
    for (i, s) in seeds.iter().enumerate() {
        f(s);
        n += 1;
        if i % stride != 0 {
            continue;
        }
        for m in mutations(s, per_seed, &mut state) {
            f(&m);
            n += 1;
        }
    }
    n
}

#[test]
fn config_target() {
    assert!(run("config", kvmtune::fuzzing::config, 300) > 1000);
}

#[test]
fn cpuset_target() {
    assert!(run("cpuset", kvmtune::fuzzing::cpuset, 300) > 1000);
}

#[test]
fn domain_xml_target() {
    assert!(run("domain_xml", kvmtune::fuzzing::domain_xml, 20) > 1000);
}

#[test]
fn saved_plan_target() {
    assert!(run("saved_plan", kvmtune::fuzzing::saved_plan, 300) > 1000);
}

#[test]
fn lock_file_target() {
    assert!(run("lock_file", kvmtune::fuzzing::lock_file, 300) > 1000);
}

#[test]
fn apply_record_target() {
    assert!(run("apply_record", kvmtune::fuzzing::apply_record, 300) > 1000);
}

#[test]
fn perf_report_target() {
    assert!(run("perf_report", kvmtune::fuzzing::perf_report, 300) > 1000);
}

/// The seeds are real: each target's committed seeds include inputs it accepts whole.
#[test]
fn the_new_targets_seeds_parse() {
    let ok = |t: &str, f: &dyn Fn(&str) -> bool| {
        let n = seeds(t)
            .iter()
            .filter(|s| f(std::str::from_utf8(s).unwrap_or("")))
            .count();
        assert!(n >= 3, "{t}: only {n} seeds parse");
    };
    ok("saved_plan", &|s| {
        kvmtune::saved::SavedPlan::from_json(s).is_ok()
    });
    ok("lock_file", &|s| {
        kvmtune::model::lock::Lock::parse(s).is_ok()
    });
    ok("perf_report", &|s| kvmtune::perf::stat::parse(s).is_ok());
    ok("apply_record", &|s| {
        kvmtune::state::parse_manifest("20261202T000000.000Z", s).is_ok()
    });
}
