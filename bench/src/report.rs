//! The report: markdown tables of the medians, ratios against the floors measured in the same
//! run, linear fits against N, the in-process breakdown, and the goals.

use std::time::Duration;

use crate::{
    med_by, median, mib, ms, RepResult, SizeResult, ANSIBLE_APPLY, ANSIBLE_CHECK, APPLY_ALL,
    APPLY_NOOP, FLOOR_READ, FLOOR_WRITE, PLAN_ALL, PLAN_NONE, SERIES, VIRSH_APPLY, VIRSH_READ,
};

/// The goals (issue "Typed blueprint and a layered core"), at N = 1000: plan and the no-op
/// apply within this many times the read floor ...
const READ_GOAL: f64 = 1.1;
/// ... and apply (all pending) within this many times the write floor.
const WRITE_GOAL: f64 = 2.0;

/// Least-squares fit y = a + b·x; returns (a, b, R²).
fn linfit(pts: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    if pts.len() < 2 {
        return None;
    }
    let k = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / k;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / k;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = pts.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let b = sxy / sxx;
    let a = my - b * mx;
    let r2 = if syy == 0.0 {
        1.0
    } else {
        sxy * sxy / (sxx * syy)
    };
    Some((a, b, r2))
}

pub(crate) fn x(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// Wall time of `series` at `n`: measured median, or extrapolated from the linear fit.
fn wall_or_fit(results: &[SizeResult], series: &str, n: usize) -> Option<(Duration, bool)> {
    if let Some(r) = results.iter().find(|r| r.n == n) {
        if let Some((w, _, _)) = r.stat(series) {
            return Some((w, false));
        }
    }
    let pts: Vec<(f64, f64)> = results
        .iter()
        .filter_map(|r| {
            r.stat(series)
                .map(|(w, _, _)| (r.n as f64, w.as_secs_f64()))
        })
        .collect();
    let (a, b, _) = linfit(&pts)?;
    Some((Duration::from_secs_f64((a + b * n as f64).max(0.0)), true))
}

/// Every table, in order.
pub(crate) fn report(results: &[SizeResult]) {
    report_ops(results);
    report_series(results);
    report_fits(results);
    report_breakdown(results);
    report_goals(results);
    report_conditions(results);
}

/// The four kvmtune operations against the floor and the peers.
fn report_ops(results: &[SizeResult]) {
    println!("\n### kvmtune against the floor and the peers (medians; ratios from the same run)\n");
    println!("Floor for `plan` and the no-op `apply`: the read floor; for `apply (all)`: the write floor.");
    println!("Peer columns: how many times more the peer takes than kvmtune (wall; CPU); `~` = the peer's");
    println!("time at that N is extrapolated from its linear fit, not measured.\n");
    println!("| N | operation | wall ms | CPU ms | peak RSS MiB | floor wall ms | ×floor wall | ×floor CPU | virsh wall ms | virsh ÷ kvmtune wall; CPU | Ansible wall ms | Ansible ÷ kvmtune wall; CPU |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        for (op, floor, virsh, ansible) in [
            (PLAN_ALL, FLOOR_READ, VIRSH_READ, ANSIBLE_CHECK),
            (PLAN_NONE, FLOOR_READ, VIRSH_READ, ANSIBLE_CHECK),
            (APPLY_ALL, FLOOR_WRITE, VIRSH_APPLY, ANSIBLE_APPLY),
            (APPLY_NOOP, FLOOR_READ, VIRSH_APPLY, ANSIBLE_APPLY),
        ] {
            let Some((w, c, rss)) = r.stat(op) else {
                continue;
            };
            let (fw, fc, _) = r.stat(floor).unwrap_or((w, c, 0));
            let peer = |p: &str| -> (String, String) {
                match r.stat(p) {
                    Some((pw, pc, _)) => (ms(pw), format!("{:.1}×; {:.1}×", x(pw, w), x(pc, c))),
                    None => match wall_or_fit(results, p, r.n) {
                        Some((pw, true)) => {
                            (format!("~{}", ms(pw)), format!("~{:.0}× wall", x(pw, w)))
                        }
                        _ => ("–".into(), "–".into()),
                    },
                }
            };
            let (vw, vr) = peer(virsh);
            let (aw, ar) = peer(ansible);
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.2}× | {:.2}× | {} | {} | {} | {} |",
                r.n,
                op.trim_start_matches("kvmtune "),
                ms(w),
                ms(c),
                mib(rss),
                ms(fw),
                x(w, fw),
                x(c, fc),
                vw,
                vr,
                aw,
                ar
            );
        }
    }
}

/// Every process series.
fn report_series(results: &[SizeResult]) {
    println!("\n### Every process series\n");
    println!("| series | N | runs | wall ms (median) | wall ms (min) | CPU ms (median) | peak RSS MiB (max) | libvirtd CPU ms (median) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in SERIES {
        for r in results {
            let v = r.samples(s);
            if v.is_empty() {
                continue;
            }
            let d: Vec<Duration> = v.iter().filter_map(|s| s.daemon).collect();
            println!(
                "| {s} | {} | {} | {} | {} | {} | {} | {} |",
                r.n,
                v.len(),
                ms(med_by(&v, |s| s.p.wall)),
                ms(v.iter().map(|s| s.p.wall).min().unwrap()),
                ms(med_by(&v, |s| s.p.cpu)),
                mib(v.iter().map(|s| s.p.maxrss_kib).max().unwrap()),
                if d.is_empty() {
                    "?".into()
                } else {
                    ms(median(d))
                },
            );
        }
    }
}

/// Linear fits against N.
fn report_fits(results: &[SizeResult]) {
    println!("\n### Cost against N: least-squares fit over the medians (time = a + b·N)\n");
    println!("| series | N measured | wall a ms | wall b µs/guest | wall R² | CPU a ms | CPU b µs/guest | CPU R² | wall at N=1000 ms |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in SERIES {
        let pts: Vec<(usize, Duration, Duration)> = results
            .iter()
            .filter_map(|r| r.stat(s).map(|(w, c, _)| (r.n, w, c)))
            .collect();
        let wall: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (p.0 as f64, p.1.as_secs_f64() * 1e3))
            .collect();
        let cpu: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (p.0 as f64, p.2.as_secs_f64() * 1e3))
            .collect();
        let (Some((wa, wb, wr)), Some((ca, cb, cr))) = (linfit(&wall), linfit(&cpu)) else {
            continue;
        };
        let at1000 = match wall_or_fit(results, s, 1000) {
            Some((d, true)) => format!("~{} (extrapolated)", ms(d)),
            Some((d, false)) => ms(d),
            None => "–".into(),
        };
        println!(
            "| {s} | {} | {wa:.1} | {:.0} | {wr:.4} | {ca:.1} | {:.0} | {cr:.4} | {at1000} |",
            pts.iter()
                .map(|p| p.0.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            wb * 1e3,
            cb * 1e3,
        );
    }
}

/// Where the time goes (in-process).
fn report_breakdown(results: &[SizeResult]) {
    println!("\n### Where the time goes (in-process, median ms)\n");
    println!("| N | floor connect | floor list | floor GetXMLDesc ×N | µs/GetXMLDesc | read floor, 2 conns | 2-conn speed-up | write floor | µs/DefineXML | write floor, 2 conns | 2-conn speed-up | kvmtune load | kvmtune connect | kvmtune observe | kvmtune plan | kvmtune render | kvmtune CPU | libvirtd CPU floor | libvirtd CPU kvmtune |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let fin = r.all(|x| &x.floor_in);
        let kin = r.all(|x| &x.kvm_in);
        let win = r.all(|x| &x.write_in);
        let fw = med_by(&fin, |t| t.total);
        let fx = med_by(&fin, |t| t.xml);
        let p2 = median(r.all(|x| &x.floor_par2));
        let ww = med_by(&win, |t| t.total);
        let wd = med_by(&win, |t| t.define);
        let w2 = median(r.all(|x| &x.write_par2));
        let dm = |f: fn(&RepResult) -> Option<Duration>| {
            let v: Vec<Duration> = r.reps.iter().filter_map(f).collect();
            if v.is_empty() {
                "?".to_string()
            } else {
                ms(median(v))
            }
        };
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {:.2}× | {} | {:.0} | {} | {:.2}× | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.n,
            ms(med_by(&fin, |t| t.connect)),
            ms(med_by(&fin, |t| t.list)),
            ms(fx),
            fx.as_secs_f64() * 1e6 / r.n as f64,
            ms(p2),
            x(fw, p2),
            ms(ww),
            wd.as_secs_f64() * 1e6 / r.n as f64,
            ms(w2),
            x(ww, w2),
            ms(med_by(&kin, |t| t.load)),
            ms(med_by(&kin, |t| t.connect)),
            ms(med_by(&kin, |t| t.observe)),
            ms(med_by(&kin, |t| t.plan)),
            ms(med_by(&kin, |t| t.render)),
            ms(median(r.all(|x| &x.kvm_in_cpu))),
            dm(|x| x.daemon_floor),
            dm(|x| x.daemon_kvm),
        );
    }
}

/// The goals, met or not.
fn report_goals(results: &[SizeResult]) {
    println!("\n### Goals\n");
    let yes = |b: bool| if b { "met" } else { "NOT met" };
    for r in results {
        // Issue 7's goal at every N; this tighter ones at N = 1000.
        let (read_goal, write_goal) = if r.n >= 1000 {
            (READ_GOAL, Some(WRITE_GOAL))
        } else {
            (1.5, None)
        };
        for (op, floor, goal) in [
            (PLAN_NONE, FLOOR_READ, Some(read_goal)),
            (PLAN_ALL, FLOOR_READ, Some(read_goal)),
            (APPLY_NOOP, FLOOR_READ, Some(read_goal)),
            (APPLY_ALL, FLOOR_WRITE, write_goal),
        ] {
            let (Some((w, _, _)), Some((fw, _, _))) = (r.stat(op), r.stat(floor)) else {
                continue;
            };
            let which = if floor == FLOOR_READ { "read" } else { "write" };
            let verdict = match goal {
                Some(g) => format!("(goal ≤ {g}×): {}", yes(x(w, fw) <= g)),
                None => "(no goal at this N)".into(),
            };
            println!(
                "* N={}: {op} = {:.2}× {which} floor {verdict}",
                r.n,
                x(w, fw)
            );
        }
    }
    if let Some(r) = results.iter().find(|r| r.n == 100) {
        for (op, peer) in [
            (APPLY_ALL, VIRSH_APPLY),
            (PLAN_ALL, VIRSH_READ),
            (APPLY_NOOP, VIRSH_APPLY),
        ] {
            if let (Some((w, _, _)), Some((pw, _, _))) = (r.stat(op), r.stat(peer)) {
                println!(
                    "* N=100: {peer} takes {:.1}× {op} (goal ≥ 10×): {}",
                    x(pw, w),
                    yes(x(pw, w) >= 10.0)
                );
            }
        }
    }
    if let Some(r) = results.iter().find(|r| r.n == 1000) {
        let max = [PLAN_ALL, PLAN_NONE, APPLY_ALL, APPLY_NOOP]
            .iter()
            .filter_map(|s| r.stat(s).map(|t| t.2))
            .max()
            .unwrap_or(0);
        println!(
            "* N=1000: kvmtune peak RSS {} MiB = {:.1} MB (goal < 64 MB): {}",
            mib(max),
            max as f64 * 1024.0 / 1e6,
            yes((max as f64 * 1024.0) < 64e6)
        );
    }
}

/// Load and retries per size.
fn report_conditions(results: &[SizeResult]) {
    for r in results {
        let busy: usize = r.reps.iter().map(|x| x.busy_cmds).sum();
        let lo = r.loads.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = r.loads.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "\nN={}: {} reps; load average (1 min) at rep start {lo:.2}–{hi:.2}; {} rep(s) and {busy} command(s) started on a busy host; {} rep(s) redone after an error.",
            r.n,
            r.reps.len(),
            r.busy_reps,
            r.retries
        );
    }
}

/// Every repetition's figures (`--verbose`).
pub(crate) fn report_raw(results: &[SizeResult]) {
    println!("\n### Every repetition (wall ms / CPU ms / RSS MiB)\n");
    for r in results {
        println!("N={}:", r.n);
        for s in SERIES {
            let v = r.samples(s);
            if v.is_empty() {
                continue;
            }
            let l: Vec<String> = v
                .iter()
                .map(|s| format!("{}/{}/{}", ms(s.p.wall), ms(s.p.cpu), mib(s.p.maxrss_kib)))
                .collect();
            println!("  {s:<28} {}", l.join("  "));
        }
        let l: Vec<String> = r.all(|x| &x.floor_in).iter().map(|t| ms(t.total)).collect();
        println!("  {:<28} {}", "floor read in-process", l.join(" "));
        let l: Vec<String> = r.all(|x| &x.kvm_in).iter().map(|t| ms(t.total)).collect();
        println!("  {:<28} {}", "kvmtune plan in-process", l.join(" "));
        let l: Vec<String> = r.all(|x| &x.write_in).iter().map(|t| ms(t.total)).collect();
        println!("  {:<28} {}", "floor write in-process", l.join(" "));
    }
}
