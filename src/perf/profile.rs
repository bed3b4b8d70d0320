//! The symbol profile `perf kvm --host --guest report --stdio` prints, run with the column
//! separator [`SEPARATOR`] and `--sort comm,dso,sym` (guide §8.2 step 4), parsed into rows.
//!
//! Invariant: [`parse`] is total over any text — never panics, reads at most
//! [`MAX_LINES`] lines, keeps at most [`MAX_ROWS`] rows of printable, bounded fields. Which
//! side a sample came from is perf's own mark in the symbol column (`[g]` guest kernel,
//! `[u]` guest user space, `[k]` host kernel, `[.]` host user space), never a guess from
//! names.

use serde::Serialize;

use crate::model::names::printable;

/// The column separator kvmtune asks perf for (`--field-separator`): a control character
/// that no command, object or symbol name holds.
pub const SEPARATOR: char = '\u{1f}';
pub const MAX_LINES: usize = 200_000;
pub const MAX_ROWS: usize = 10_000;
const MAX_FIELD: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    GuestKernel,
    GuestUser,
    HostKernel,
    HostUser,
    /// A mark kvmtune does not know (`[H]` hypervisor, `[?]`).
    Other,
}

impl Side {
    fn from_mark(c: char) -> Side {
        match c {
            'g' => Side::GuestKernel,
            'u' => Side::GuestUser,
            'k' => Side::HostKernel,
            '.' => Side::HostUser,
            _ => Side::Other,
        }
    }

    pub fn is_guest(self) -> bool {
        matches!(self, Side::GuestKernel | Side::GuestUser)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SymbolRow {
    pub overhead_pct: f64,
    pub command: String,
    pub object: String,
    pub side: Side,
    pub symbol: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Profile {
    /// The sampled event (`cycles:G`; `cpu-clock:ppp` where there is no hardware PMU).
    pub event: Option<String>,
    /// `Samples: 7K` as perf rounds it.
    pub samples: Option<String>,
    pub rows: Vec<SymbolRow>,
    pub skipped: usize,
}

impl Profile {
    pub fn guest_rows(&self) -> impl Iterator<Item = &SymbolRow> {
        self.rows.iter().filter(|r| r.side.is_guest())
    }
}

fn field(s: &str) -> String {
    printable(s.trim(), MAX_FIELD)
}

/// `# Samples: 7K of event 'cpu-clock:ppp'`.
fn samples_line(line: &str, p: &mut Profile) {
    if let Some(rest) = line.strip_prefix("# Samples:") {
        let (n, ev) = rest.split_once(" of event ").unwrap_or((rest, ""));
        p.samples = Some(field(n));
        let ev = ev.trim().trim_matches('\'');
        if !ev.is_empty() {
            p.event = Some(field(ev));
        }
    }
}

/// One row: `overhead SEP command SEP object SEP [m] symbol`.
pub fn row(line: &str) -> Option<SymbolRow> {
    let mut parts = line.split(SEPARATOR);
    let (o, c, d, s) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let overhead_pct = o
        .trim()
        .strip_suffix('%')?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())?;
    let s = s.trim();
    let (side, symbol) = match s.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((m, sym)) if m.chars().count() == 1 => {
            (Side::from_mark(m.chars().next()?), sym.trim())
        }
        _ => (Side::Other, s),
    };
    Some(SymbolRow {
        overhead_pct,
        command: field(c),
        object: field(d),
        side,
        symbol: field(symbol),
    })
}

pub fn parse(text: &str) -> Profile {
    let mut p = Profile::default();
    for line in text.lines().take(MAX_LINES) {
        if line.starts_with('#') {
            samples_line(line, &mut p);
        } else if !line.trim().is_empty() {
            match row(line) {
                Some(r) if p.rows.len() < MAX_ROWS => p.rows.push(r),
                _ => p.skipped += 1,
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_decide_the_side() {
        let r = row(" 95.06%\u{1f}vi\u{1f}[guest.kernel.kallsyms]\u{1f}[g] intel_idle").unwrap();
        assert_eq!(
            (r.side, r.symbol.as_str()),
            (Side::GuestKernel, "intel_idle")
        );
        let r = row(" 1.00%\u{1f}CPU 0/KVM\u{1f}[kernel.kallsyms]\u{1f}[k] vmx_vcpu_run").unwrap();
        assert_eq!(
            (r.side, r.command.as_str()),
            (Side::HostKernel, "CPU 0/KVM")
        );
        assert!(row("1%\u{1f}a\u{1f}b").is_none());
        assert!(row("x%\u{1f}a\u{1f}b\u{1f}[k] s").is_none());
    }
}
