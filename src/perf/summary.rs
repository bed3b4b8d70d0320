//! What `kvmtune perf` reports: exits by reason with their share and time, the advice that
//! applies, the guest profile, and why anything is empty — and its text form.
//!
//! Invariant: [`summarize`] is pure; a reason's share is perf's own `Samples%` when perf
//! printed one, else its samples over the total; rates are exits per second of the
//! requested duration. The JSON form is the [`Summary`] itself (`format_version` 1).

use std::fmt::Write;

use serde::Serialize;

use super::advice::Advice;
use super::profile::{Profile, SymbolRow};
use super::stat::StatReport;
use super::GuestContext;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonLine {
    pub reason: String,
    pub samples: u64,
    pub share_pct: f64,
    pub per_sec: f64,
    pub time_pct: Option<f64>,
    pub avg_us: Option<f64>,
    pub max_us: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExitSummary {
    /// All exits recorded (perf's `Total Samples`, else the sum of the rows).
    pub total: u64,
    pub per_sec: f64,
    pub by_reason: Vec<ReasonLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_events: Option<u64>,
}

impl ExitSummary {
    /// The shares add up to 100 % (within perf's rounding to 0.01 per row).
    pub fn shares_consistent(&self) -> bool {
        let sum: f64 = self.by_reason.iter().map(|r| r.share_pct).sum();
        self.by_reason.is_empty() || (sum - 100.0).abs() <= 0.01 * self.by_reason.len() as f64
    }
}

/// The top rows of the `--host --guest` profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileSummary {
    pub event: Option<String>,
    pub samples: Option<String>,
    pub guest_rows: usize,
    /// The first rows of the whole profile (host and guest).
    pub top: Vec<SymbolRow>,
    /// The first guest rows (`[g]` guest kernel, `[u]` guest user space).
    pub top_guest: Vec<SymbolRow>,
    /// Why no guest symbols are shown, when none are.
    pub diagnosis: Vec<String>,
}

/// How many profile rows the summary keeps.
pub const TOP_SYMBOLS: usize = 15;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub format_version: u32,
    pub guest: String,
    pub pid: u32,
    pub duration_secs: u32,
    pub context: GuestContext,
    /// The host's virtualization facts (hardware support, PVM, PMU, halt polling).
    pub host: super::preflight::HostVirt,
    pub exits: ExitSummary,
    pub advice: Vec<Advice>,
    /// Why no exits were recorded, when none were.
    pub diagnosis: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileSummary>,
    /// The perf command lines that were run.
    pub commands: Vec<String>,
}

/// Exits by reason, from perf's table.
pub fn summarize(r: &StatReport, secs: u32) -> ExitSummary {
    let total = r.total_samples.unwrap_or_else(|| r.row_samples());
    let secs = f64::from(secs.max(1));
    let by_reason = r
        .rows
        .iter()
        .map(|row| ReasonLine {
            reason: row.reason.clone(),
            samples: row.samples,
            share_pct: row.samples_pct.unwrap_or(if total == 0 {
                0.0
            } else {
                row.samples as f64 * 100.0 / total as f64
            }),
            per_sec: row.samples as f64 / secs,
            time_pct: row.time_pct,
            avg_us: row.avg_us,
            max_us: row.max_us,
        })
        .collect();
    ExitSummary {
        total,
        per_sec: total as f64 / secs,
        by_reason,
        lost_events: r.lost_events,
    }
}

/// The profile's first rows, overall and of the guest.
pub fn profile_summary(p: &Profile, diagnosis: Vec<String>) -> ProfileSummary {
    ProfileSummary {
        event: p.event.clone(),
        samples: p.samples.clone(),
        guest_rows: p.guest_rows().count(),
        top: p.rows.iter().take(TOP_SYMBOLS).cloned().collect(),
        top_guest: p.guest_rows().take(TOP_SYMBOLS).cloned().collect(),
        diagnosis,
    }
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}{unit}"))
}

impl Summary {
    /// The human-readable form.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let c = &self.context;
        let _ = writeln!(
            s,
            "guest {} (QEMU pid {}): {} vCPU{}, {}, {}; recorded {} s",
            self.guest,
            self.pid,
            c.vcpus,
            if c.vcpus == 1 { "" } else { "s" },
            if c.pinned { "pinned" } else { "not pinned" },
            if c.hugepages {
                "huge pages"
            } else {
                "no huge pages"
            },
            self.duration_secs
        );
        let h = &self.host;
        let _ = writeln!(
            s,
            "host: hardware virtualization {}{}, {}, kvm halt_poll_ns {}",
            match h.hw_virt {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            },
            if h.pvm { " (KVM's PVM backend)" } else { "" },
            if h.pmu {
                "hardware PMU"
            } else {
                "no hardware PMU"
            },
            h.halt_poll_ns
                .map_or_else(|| "unknown".to_string(), |n| n.to_string())
        );
        let e = &self.exits;
        let _ = writeln!(s, "\nVM exits: {} ({:.1}/s)", e.total, e.per_sec);
        if !e.by_reason.is_empty() {
            let _ = writeln!(
                s,
                "  {:<24} {:>10} {:>8} {:>10} {:>8} {:>10} {:>10}",
                "reason", "exits", "share", "per s", "time", "avg", "max"
            );
            for r in &e.by_reason {
                let _ = writeln!(
                    s,
                    "  {:<24} {:>10} {:>7.2}% {:>10.1} {:>8} {:>10} {:>10}",
                    r.reason,
                    r.samples,
                    r.share_pct,
                    r.per_sec,
                    opt(r.time_pct, "%"),
                    opt(r.avg_us, "us"),
                    opt(r.max_us, "us"),
                );
            }
        }
        if let Some(n) = e.lost_events {
            let _ = writeln!(s, "  perf lost {n} events (the counts are lower bounds)");
        }
        for d in &self.diagnosis {
            let _ = writeln!(s, "  - {d}");
        }
        if !self.advice.is_empty() {
            let _ = writeln!(s, "\nAdvice:");
            for a in &self.advice {
                let _ = writeln!(
                    s,
                    "  [{}] {} ({:.1}% of exits, {:.0}/s per vCPU): {}\n      source: {}",
                    a.rule,
                    a.reasons.join("+"),
                    a.share_pct,
                    a.per_vcpu_sec,
                    a.advice,
                    a.source
                );
            }
        }
        if let Some(p) = &self.profile {
            self.profile_text(p, &mut s);
        }
        let _ = writeln!(s, "\nperf commands run:");
        for cmd in &self.commands {
            let _ = writeln!(s, "  {cmd}");
        }
        s
    }

    fn profile_text(&self, p: &ProfileSummary, s: &mut String) {
        let _ = writeln!(
            s,
            "\nProfile (perf kvm --host --guest, event {}, {} samples), top {}:",
            p.event.as_deref().unwrap_or("?"),
            p.samples.as_deref().unwrap_or("?"),
            p.top.len()
        );
        symbol_lines(&p.top, s);
        if !p.top_guest.is_empty() {
            let _ = writeln!(
                s,
                "Guest symbols ({} row{}), top {}:",
                p.guest_rows,
                if p.guest_rows == 1 { "" } else { "s" },
                p.top_guest.len()
            );
            symbol_lines(&p.top_guest, s);
        }
        for d in &p.diagnosis {
            let _ = writeln!(s, "  - {d}");
        }
    }
}

fn symbol_lines(rows: &[SymbolRow], s: &mut String) {
    use super::profile::Side;
    for r in rows {
        let side = match r.side {
            Side::GuestKernel => "guest kernel",
            Side::GuestUser => "guest user",
            Side::HostKernel => "host kernel",
            Side::HostUser => "host user",
            Side::Other => "other",
        };
        let _ = writeln!(
            s,
            "  {:>6.2}%  {:<12} {:<16} {:<24} {}",
            r.overhead_pct, side, r.command, r.object, r.symbol
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::stat::parse;
    use super::*;

    #[test]
    fn shares_and_rates() {
        let r = parse(
            "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\n\
             HLT 30 75.00% 90.00% 1.00us 9.00us 5.00us ( +- 1.00% )\n\
             MSR_WRITE 10 25.00% 10.00% 1.00us 2.00us 1.50us ( +- 1.00% )\n\
             Total Samples:40, Total events handled time:100.00us.\n",
        )
        .unwrap();
        let e = summarize(&r, 10);
        assert_eq!((e.total, e.per_sec), (40, 4.0));
        assert_eq!(e.by_reason[0].per_sec, 3.0);
        assert!(e.shares_consistent());
        let mut bad = e.clone();
        bad.by_reason[0].share_pct = 50.0;
        assert!(!bad.shares_consistent());
    }
}
