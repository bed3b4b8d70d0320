//! No panics on any input: deterministic random mutations of real configuration files and
//! CPU-set strings go through the loader, validation and planner; every outcome must be a value
//! or an error, never a panic.

mod support;
use support::Rng;

use kvmtune::config::source::SourceFile;
use kvmtune::desired::load_sources;

const ALPHABET: &[u8] = b" \n:-,{}[]\"'&*!|>#^0123456789abcxyzMGK.";

fn mutate(rng: &mut Rng, s: &[u8]) -> Vec<u8> {
    let mut v = s.to_vec();
    for _ in 0..=rng.index(4) {
        match rng.index(4) {
            0 if !v.is_empty() => {
                let i = rng.index(v.len());
                v[i] = ALPHABET[rng.index(ALPHABET.len())];
            }
            1 if !v.is_empty() => {
                let i = rng.index(v.len());
                v.remove(i);
            }
            2 => {
                let i = rng.index(v.len() + 1);
                v.insert(i, ALPHABET[rng.index(ALPHABET.len())]);
            }
            _ => {
                let i = rng.index(v.len() + 1);
                v.truncate(i);
            }
        }
    }
    v
}

#[test]
fn mutated_configs_never_panic() {
    let seeds = [
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/tuning.yaml")).unwrap(),
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/demo/tuning.yaml"
        ))
        .unwrap(),
    ];
    let xml = std::fs::read_to_string(support::corpus_dir().join("cputune.xml")).unwrap();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let (mut ok, mut err) = (0, 0);
    for i in 0..4000 {
        let m = mutate(&mut rng, &seeds[i % 2]);
        let Ok(text) = String::from_utf8(m) else {
            continue;
        };
        match load_sources(&[SourceFile::from_text("m.yaml", text)]) {
            Ok(d) => {
                ok += 1;
                for g in d.guests.values() {
                    let _ = kvmtune::domain::plan_guest(g, &xml, None);
                }
            }
            Err(e) => {
                err += 1;
                // Every error is one located line per problem.
                for line in e.to_string().lines() {
                    assert!(line.starts_with("m.yaml"), "unlocated error: {line}");
                }
            }
        }
    }
    assert!(
        ok > 100 && err > 100,
        "ok={ok} err={err}: mutations not exercising both paths"
    );
}

#[test]
fn random_cpusets_never_panic_and_round_trip() {
    let mut rng = Rng(42);
    let mut parsed = 0;
    for _ in 0..20000 {
        let len = rng.index(12);
        let s: String = (0..len)
            .map(|_| b"0123456789-,^ x"[rng.index(15)] as char)
            .collect();
        if let Ok(c) = s.parse::<kvmtune::cpuset::CpuSet>() {
            parsed += 1;
            assert_eq!(
                c.to_string().parse::<kvmtune::cpuset::CpuSet>().unwrap(),
                c,
                "{s}"
            );
        }
    }
    assert!(parsed > 1000, "{parsed}");
}
