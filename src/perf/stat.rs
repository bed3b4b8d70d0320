//! The VM-exit table `perf kvm stat report` prints (perf 6.1, `tools/perf/builtin-kvm.c`
//! `print_result`), parsed into typed rows.
//!
//! Invariant: [`parse`] is total over any text — it never panics, reads at most
//! [`MAX_LINES`] lines and keeps at most [`MAX_ROWS`] rows with names of at most
//! [`MAX_NAME`] printable characters; a number that is not finite is `None`, never a
//! guess. A line it cannot read inside the table is counted in `skipped`, not fatal; only
//! text without the table's header is an error.
//!
//! The format, from the format strings in perf 6.1's binary (`%*s %10llu %8.2f%% %8.2f%%
//! %9.2fus %9.2fus %9.2fus ( +-%7.2f%% )`):
//!
//! ```text
//! Analyze events for all VMs, all VCPUs:
//!
//!              VM-EXIT    Samples  Samples%     Time%    Min Time    Max Time         Avg time
//!
//!            MSR_WRITE       1302    48.17%     1.07%      0.56us     41.24us      1.69us ( +-   4.88% )
//!
//! Total Samples:2703, Total events handled time:205797.27us.
//! ```
//!
//! Exit names can hold spaces (AMD's `DE excp`), so a row is read from the right.

use serde::Serialize;

use crate::model::names::printable;

/// Lines read at most (perf prints one per exit reason; x86 has fewer than 100).
pub const MAX_LINES: usize = 100_000;
/// Rows kept at most.
pub const MAX_ROWS: usize = 4_096;
/// Characters of an exit name kept at most.
pub const MAX_NAME: usize = 64;

/// One exit reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExitRow {
    /// The exit reason as perf names it (`HLT`, `EPT_VIOLATION`, AMD: `hlt`, `npf`).
    pub reason: String,
    pub samples: u64,
    /// Share of all exits, percent.
    pub samples_pct: Option<f64>,
    /// Share of the time spent handling exits, percent.
    pub time_pct: Option<f64>,
    pub min_us: Option<f64>,
    pub max_us: Option<f64>,
    pub avg_us: Option<f64>,
    /// Relative standard deviation of the handling time, percent.
    pub stddev_pct: Option<f64>,
}

/// A parsed `perf kvm stat report`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct StatReport {
    /// The event column's title: `VM-EXIT` (or `MMIO Access`, `IO Port Access`).
    pub event: String,
    /// `all VMs, all VCPUs` as perf says what it analysed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub rows: Vec<ExitRow>,
    pub total_samples: Option<u64>,
    pub total_time_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_events: Option<u64>,
    /// Lines inside the table that were not rows.
    pub skipped: usize,
}

impl StatReport {
    /// The sum of the rows' samples.
    pub fn row_samples(&self) -> u64 {
        self.rows
            .iter()
            .fold(0u64, |a, r| a.saturating_add(r.samples))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatError {
    #[error("perf printed no VM-exit table (its output began: {0:?})")]
    NoTable(String),
}

/// The column titles after the event name, as whitespace-separated words.
const HEADER_TAIL: [&str; 9] = [
    "Samples", "Samples%", "Time%", "Min", "Time", "Max", "Time", "Avg", "time",
];

fn finite(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn pct(s: &str) -> Option<f64> {
    finite(s.strip_suffix('%')?)
}

fn us(s: &str) -> Option<f64> {
    finite(s.strip_suffix("us")?)
}

/// The event name of a header line (`VM-EXIT`), when `line` is the table's header.
fn header(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().take(64).collect();
    if words.len() <= HEADER_TAIL.len() || words[words.len() - HEADER_TAIL.len()..] != HEADER_TAIL {
        return None;
    }
    Some(printable(
        &words[..words.len() - HEADER_TAIL.len()].join(" "),
        MAX_NAME,
    ))
}

/// One table row, read from the right; `None` when it is not one.
pub fn row(line: &str) -> Option<ExitRow> {
    let (left, stddev_pct) = match line.find("( +-") {
        Some(i) => {
            let tail = line[i + 4..].trim().strip_suffix(')')?.trim();
            (&line[..i], Some(pct(tail)))
        }
        None => (line, None),
    };
    let mut w: Vec<&str> = left.split_whitespace().take(64).collect();
    if w.len() < 7 {
        return None;
    }
    let nums = w.split_off(w.len() - 6);
    let samples = nums[0].parse::<u64>().ok()?;
    // Each value must at least have its unit; a value perf could not compute (nan) is None.
    if !nums[1].ends_with('%') || !nums[2].ends_with('%') {
        return None;
    }
    if !nums[3..].iter().all(|n| n.ends_with("us")) {
        return None;
    }
    Some(ExitRow {
        reason: printable(&w.join(" "), MAX_NAME),
        samples,
        samples_pct: pct(nums[1]),
        time_pct: pct(nums[2]),
        min_us: us(nums[3]),
        max_us: us(nums[4]),
        avg_us: us(nums[5]),
        stddev_pct: stddev_pct.flatten(),
    })
}

/// `Total Samples:2703, Total events handled time:205797.27us.`
fn totals(line: &str) -> Option<(Option<u64>, Option<f64>)> {
    let rest = line.trim().strip_prefix("Total Samples:")?;
    let (n, time) = rest.split_once(',').unwrap_or((rest, ""));
    let t = time
        .trim()
        .strip_prefix("Total events handled time:")
        .map(|t| t.trim_end_matches('.'))
        .and_then(us);
    Some((n.trim().parse().ok(), t))
}

/// Parses perf's report (stdout and stderr together: perf 6.1 prints it on stderr).
pub fn parse(text: &str) -> Result<StatReport, StatError> {
    let mut lines = text.lines().take(MAX_LINES);
    let mut report = StatReport::default();
    let mut found = false;
    for line in lines.by_ref() {
        if let Some(scope) = line.trim().strip_prefix("Analyze events for ") {
            report.scope = Some(printable(scope.trim_end_matches(':'), 200));
        } else if let Some(event) = header(line) {
            report.event = event;
            found = true;
            break;
        }
    }
    if !found {
        let start: String = text.chars().take(300).collect();
        return Err(StatError::NoTable(printable(start.trim(), 300)));
    }
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        if let Some((n, t)) = totals(line) {
            report.total_samples = n;
            report.total_time_us = t;
        } else if let Some(n) = line.trim().strip_prefix("Lost events:") {
            report.lost_events = n.trim().parse().ok();
        } else if report.total_samples.is_none() && report.total_time_us.is_none() {
            match row(line) {
                Some(r) if report.rows.len() < MAX_ROWS => report.rows.push(r),
                _ => report.skipped += 1,
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_from_the_right_keep_spaced_names() {
        let r = row("             DE excp          3     0.11%     0.01%      1.10us      2.90us      1.80us ( +-  30.12% )").unwrap();
        assert_eq!(r.reason, "DE excp");
        assert_eq!(r.samples, 3);
        assert_eq!(r.samples_pct, Some(0.11));
        assert_eq!(r.avg_us, Some(1.8));
        assert_eq!(r.stddev_pct, Some(30.12));
        let wide = row("HLT 5 1.00% 2.00% 1.00us 2.00us 1.50us ( +-1234.50% )").unwrap();
        assert_eq!(wide.stddev_pct, Some(1234.5));
    }

    #[test]
    fn nan_is_none_and_non_rows_are_none() {
        let r = row("HLT 0 -nan% nan% 0.00us 0.00us -nan us ( +- nan% )");
        assert!(r.is_none(), "a broken unit is not a row: {r:?}");
        let r = row("HLT 1 100.00% -nan% 0.00us 0.00us -nanus ( +- -nan% )").unwrap();
        assert_eq!((r.time_pct, r.avg_us, r.stddev_pct), (None, None, None));
        assert!(row("Total Samples:0, Total events handled time:0.00us.").is_none());
        assert!(row("HLT x 1% 1% 1us 1us 1us").is_none());
        assert!(row("").is_none());
    }

    #[test]
    fn without_a_header_the_start_of_the_output_is_the_error() {
        let e = parse("failed to open x: No such file or directory\n").unwrap_err();
        assert!(e.to_string().contains("failed to open x"), "{e}");
    }
}
