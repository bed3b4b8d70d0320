//! `kvmtune-bench defines`: what it costs to define N guests the way kvmtune must (each define
//! read back and verified), with and without libvirt's schema validation, over 1, 2, 4 ...
//! connections, against the write floor measured in the same run.
//!
//! Every variant starts from the un-tuned guests (re-defined before each run) and is timed
//! in-process: wall, this process's CPU (all threads) and libvirtd's CPU meanwhile. The order
//! of the variants rotates from one repetition to the next.
//!
//! * `floor`, `floor-validate` (and `floor/K`, `floor-validate/K`: K connections, one thread
//!   each): the benchmark's write floor — list, then per guest `GetXMLDesc(INACTIVE)`, a
//!   string edit, `DefineXML` (with `VIR_DOMAIN_DEFINE_VALIDATE` for `-validate`); no read-back.
//! * `schema/K`, `parse/K`: kvmtune's own pipeline in-process — load the config, observe,
//!   plan — then the plan's defines through [`kvmtune::libvirt::DefinePool::run`] with K
//!   connections and [`DefineMode::Schema`] / [`DefineMode::Parse`], each guest's work on its
//!   worker's connection as the executor does it: the precheck (typed settings, same UUID
//!   and persistent XML as planned), the define, and the verification (the guest re-planned
//!   against the stored XML must show no change left). `schema/1` is what `kvmtune apply`
//!   does today (minus the process, the backup record, live changes and the report).

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kvmtune::libvirt::{DefineMode, Hypervisor};
use kvmtune::plan::Action;
use virt::connect::Connect;

use crate::{
    config_yaml, daemon_cpu, ensure_defined, floor_write_once, floor_write_parallel, median, ms,
    reset, self_cpu, wait_idle,
};

/// One way of defining the N guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Floor { validate: bool, conns: usize },
    Kvmtune { mode: DefineMode, conns: usize },
}

impl Variant {
    fn parse(s: &str) -> anyhow::Result<Variant> {
        let (kind, conns) = match s.split_once('/') {
            Some((k, c)) => (k, c.parse().with_context(|| format!("variant {s:?}"))?),
            None => (s, 1),
        };
        if conns == 0 {
            bail!("variant {s:?}: at least one connection");
        }
        Ok(match kind {
            "floor" => Variant::Floor {
                validate: false,
                conns,
            },
            "floor-validate" => Variant::Floor {
                validate: true,
                conns,
            },
            "schema" => Variant::Kvmtune {
                mode: DefineMode::Schema,
                conns,
            },
            "parse" => Variant::Kvmtune {
                mode: DefineMode::Parse,
                conns,
            },
            _ => bail!("unknown variant {s:?} (floor, floor-validate, schema/K, parse/K)"),
        })
    }

    fn name(self) -> String {
        match self {
            Variant::Floor { validate, conns } => {
                format!("floor{}/{conns}", if validate { "-validate" } else { "" })
            }
            Variant::Kvmtune { mode, conns } => format!(
                "kvmtune {}/{conns}",
                match mode {
                    DefineMode::Schema => "schema",
                    DefineMode::Parse => "parse",
                }
            ),
        }
    }
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: Duration,
    /// kvmtune variants: the define phase (pool, read-back, verification) alone.
    defines: Option<Duration>,
    cpu: Duration,
    daemon: Option<Duration>,
}

/// kvmtune's plan, then its defines through a pool. Per guest, on the worker's connection,
/// what the executor does (src/apply.rs `guest`): the precheck (the action is what its typed
/// settings give; the domain still has the planned UUID and persistent XML), the define, and
/// the verification (the guest re-planned against the stored XML: no change left).
fn kvmtune_defines(
    uri: &str,
    cfg: &str,
    n: usize,
    mode: DefineMode,
    conns: usize,
) -> anyhow::Result<Duration> {
    let d = kvmtune::desired::load_str("bench.yaml", cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hv = Hypervisor::open(uri, false)?;
    let obs = kvmtune::observe::observe(&d, Path::new("/"), Some(&hv))?;
    let plan = kvmtune::pipeline::plan(&d, &obs);
    let actions: Vec<&Action> = (plan.actions.iter())
        .filter(|a| matches!(a, Action::Guest { define: true, .. }))
        .collect();
    if actions.len() != n {
        bail!("kvmtune planned {} defines, expected {n}", actions.len());
    }
    let t0 = Instant::now();
    let pool = hv.define_pool(conns)?;
    let mut failures = Vec::new();
    let work = |i: usize, hv: &Hypervisor| -> Result<(), String> {
        let Action::Guest {
            name,
            uuid,
            old_xml,
            new_xml,
            ..
        } = actions[i]
        else {
            unreachable!("only guest actions")
        };
        let gd = plan.guest_desired(&d, name).ok_or("not in the config")?;
        kvmtune::plan::check_guest_action(gd, plan.inputs, actions[i])?;
        match hv.current(name.as_str()).map_err(|e| e.to_string())? {
            Some((u, x)) if u.eq_ignore_ascii_case(uuid.as_str()) && x == *old_xml => {}
            _ => return Err("not as planned".into()),
        }
        let stored = (hv.define_with(name.as_str(), new_xml, mode)).map_err(|e| e.to_string())?;
        match kvmtune::domain::plan_guest(gd, &stored, None) {
            Ok(p) if p.changes.is_empty() => Ok(()),
            Ok(p) => Err(format!("{} change(s) left", p.changes.len())),
            Err(_) => Err("the stored XML does not plan".into()),
        }
    };
    let reported = pool.run(n, work, |i, r| {
        if let Err(e) = r {
            failures.push(format!("{}: {e}", actions[i].target()));
        }
        ControlFlow::Continue(())
    });
    let t = t0.elapsed();
    if reported != n || !failures.is_empty() {
        bail!(
            "{reported} of {n} defines reported; {} failed: {}",
            failures.len(),
            failures
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(t)
}

fn run_once(uri: &str, cfg: &str, n: usize, v: Variant) -> anyhow::Result<Run> {
    let (c0, d0, t0) = (self_cpu(), daemon_cpu(), Instant::now());
    let defines = match v {
        Variant::Floor { validate, conns: 1 } => {
            let w = floor_write_once(uri, n, None, validate)?;
            if w.domains != n {
                bail!("the write floor defined {} guests, expected {n}", w.domains);
            }
            None
        }
        Variant::Floor { validate, conns } => {
            let (_, count) = floor_write_parallel(uri, n, conns, validate)?;
            if count != n {
                bail!("the write floor defined {count} guests, expected {n}");
            }
            None
        }
        Variant::Kvmtune { mode, conns } => Some(kvmtune_defines(uri, cfg, n, mode, conns)?),
    };
    let wall = t0.elapsed();
    Ok(Run {
        wall,
        defines,
        cpu: self_cpu() - c0,
        daemon: d0.zip(daemon_cpu()).and_then(|(a, b)| b.checked_sub(a)),
    })
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// Runs the experiment: `variants` at `n` guests, `reps` times each.
pub(crate) fn run(
    uri: &str,
    n: usize,
    reps: usize,
    variants: &[String],
    wait: Duration,
) -> anyhow::Result<()> {
    let variants: Vec<Variant> = variants
        .iter()
        .map(|s| Variant::parse(s))
        .collect::<anyhow::Result<_>>()?;
    if variants.is_empty() || reps == 0 {
        bail!("need at least one variant and one rep");
    }
    let admin = Connect::open(Some(uri)).context("opening a read-write connection")?;
    let defined = ensure_defined(&admin, n)?;
    eprintln!("defines: {defined} guest(s) newly defined; {reps} rep(s) of {variants:?}");
    let cfg = config_yaml(n);
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); variants.len()];
    let (mut busy, mut retries) = (0, 0);
    for rep in 0..reps {
        for k in 0..variants.len() {
            let vi = (k + rep) % variants.len();
            let mut attempt = 0;
            let r = loop {
                let r = reset(uri, n).and_then(|()| {
                    if !wait_idle(wait) {
                        busy += 1;
                    }
                    run_once(uri, &cfg, n, variants[vi])
                });
                match r {
                    Ok(r) => break r,
                    // Others' tests restart libvirtd now and then: wait, redo the run.
                    Err(e) if attempt < 3 => {
                        eprintln!(
                            "  rep {rep} {}: {e:#}; redoing it in 10 s",
                            variants[vi].name()
                        );
                        attempt += 1;
                        retries += 1;
                        std::thread::sleep(Duration::from_secs(10));
                    }
                    Err(e) => return Err(e),
                }
            };
            eprintln!(
                "  rep {rep} {}: wall {} s, defines {} s, CPU {} s, libvirtd CPU {} s",
                variants[vi].name(),
                secs(r.wall),
                r.defines.map(secs).unwrap_or_else(|| "–".into()),
                secs(r.cpu),
                r.daemon.map(secs).unwrap_or_else(|| "?".into())
            );
            runs[vi].push(r);
        }
    }
    reset(uri, n)?;
    print_table(n, &variants, &runs, (busy, retries));
    Ok(())
}

/// `conditions`: runs started on a busy host, runs redone after an error.
fn print_table(n: usize, variants: &[Variant], runs: &[Vec<Run>], conditions: (usize, usize)) {
    let floor = variants
        .iter()
        .position(|v| {
            *v == Variant::Floor {
                validate: false,
                conns: 1,
            }
        })
        .map(|i| median(runs[i].iter().map(|r| r.wall).collect()));
    println!("\n### Defining N = {n} guests (in-process, medians; ratios from the same run)\n");
    println!("| variant | wall s (each run) | wall s | × write floor | define phase s | ms per guest (define phase) | CPU s (this process) | libvirtd CPU s |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (v, rs) in variants.iter().zip(runs) {
        let wall = median(rs.iter().map(|r| r.wall).collect());
        let each: Vec<String> = rs.iter().map(|r| secs(r.wall)).collect();
        let defs: Vec<Duration> = rs.iter().filter_map(|r| r.defines).collect();
        let daemon: Vec<Duration> = rs.iter().filter_map(|r| r.daemon).collect();
        let (dphase, per) = if defs.is_empty() {
            ("–".to_string(), "–".to_string())
        } else {
            let m = median(defs);
            (secs(m), format!("{:.2}", m.as_secs_f64() * 1e3 / n as f64))
        };
        println!(
            "| {} | {} | {} | {} | {dphase} | {per} | {} | {} |",
            v.name(),
            each.join(", "),
            secs(wall),
            floor.map_or("–".into(), |f| format!(
                "{:.2}×",
                crate::report::x(wall, f)
            )),
            secs(median(rs.iter().map(|r| r.cpu).collect())),
            if daemon.is_empty() {
                "?".into()
            } else {
                secs(median(daemon))
            },
        );
    }
    println!(
        "\n{} run(s) started before the host went quiet, {} redone after an error; load average now {}; floor median {} ms.",
        conditions.0,
        conditions.1,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
        floor.map_or("–".into(), ms)
    );
}
