//! The map for terminals: per NUMA node a box-drawing grid, each core a column and each SMT
//! thread a row; then the guests, the conflicts, notes and the legend.
//!
//! Invariant: a pure function of the [`HostMap`] and the [`Style`]; without colour the
//! output is plain text whose columns line up (every cell is padded to one width, counted in
//! characters), and every conflict is marked with `!` whether or not there is colour.

use std::fmt::Write;

use super::{cell_header, cell_lines, clean, core_label, guest_line, legend, title};
use super::{CpuCell, HostMap, NodeMap, PoolKind};
use crate::render::Style;

/// Lines are kept under this many columns by starting a new row of cores.
const MAX_WIDTH: usize = 120;

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

fn pool_code(k: PoolKind) -> &'static str {
    match k {
        PoolKind::Reserved => "90",
        PoolKind::Shared => "34",
        PoolKind::Dedicated => "32",
        PoolKind::Isolated => "35",
        PoolKind::Unpartitioned => "0",
    }
}

/// The inner width of every cell: the widest header, line or core label.
fn cell_width(m: &HostMap) -> usize {
    let mut w = 6;
    for n in &m.nodes {
        for c in &n.cores {
            w = w.max(width(&core_label(n, c)));
            for t in &c.threads {
                w = w.max(width(&cell_header(t)));
                for l in cell_lines(t) {
                    w = w.max(width(&l));
                }
            }
        }
    }
    w
}

fn rule(left: &str, mid: &str, right: &str, cols: usize, w: usize) -> String {
    let seg = "─".repeat(w + 2);
    format!("{left}{}{right}", vec![seg; cols].join(mid))
}

/// One thread row of a block of cores: the header line, then the occupant lines.
fn thread_row(cells: &[Option<&CpuCell>], w: usize, style: Style) -> Vec<String> {
    let lines: Vec<Vec<String>> = cells
        .iter()
        .map(|c| c.map(cell_lines).unwrap_or_default())
        .collect();
    let height = 1 + lines.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for row in 0..height {
        let mut s = String::from("│");
        for (c, ls) in cells.iter().zip(&lines) {
            let text = match (c, row) {
                (None, _) => String::new(),
                (Some(c), 0) => cell_header(c),
                (Some(_), r) => ls.get(r - 1).cloned().unwrap_or_default(),
            };
            let padded = pad(&text, w);
            let painted = match (c, row) {
                (Some(c), 0) if !c.conflicts.is_empty() => style.paint("1;31", &padded),
                (Some(c), 0) => style.paint(pool_code(c.pool), &padded),
                (Some(_), _) if text == "free" => style.paint("2", &padded),
                _ => padded,
            };
            let _ = write!(s, " {painted} │");
        }
        out.push(s);
    }
    out
}

fn node_block(n: &NodeMap, w: usize, style: Style, out: &mut String) {
    let _ = writeln!(
        out,
        "{}",
        style.paint("1", &format!("node {} (CPUs {})", n.node, n.cpus))
    );
    let threads = n.cores.iter().map(|c| c.threads.len()).max().unwrap_or(1);
    let label_w = width(&format!("thread {}", threads.saturating_sub(1))) + 1;
    let per_row = ((MAX_WIDTH - label_w - 1) / (w + 3)).max(1);
    for block in n.cores.chunks(per_row) {
        let heads: Vec<String> = block.iter().map(|c| pad(&core_label(n, c), w)).collect();
        let _ = writeln!(
            out,
            "{}  {}",
            " ".repeat(label_w),
            heads.join("   ").trim_end()
        );
        let _ = writeln!(
            out,
            "{}{}",
            " ".repeat(label_w),
            rule("┌", "┬", "┐", block.len(), w)
        );
        for t in 0..threads {
            if t > 0 {
                let _ = writeln!(
                    out,
                    "{}{}",
                    " ".repeat(label_w),
                    rule("├", "┼", "┤", block.len(), w)
                );
            }
            let cells: Vec<Option<&CpuCell>> = block.iter().map(|c| c.threads.get(t)).collect();
            for (i, line) in thread_row(&cells, w, style).into_iter().enumerate() {
                let label = if i == 0 {
                    format!("thread {t}")
                } else {
                    String::new()
                };
                let _ = writeln!(out, "{}{line}", pad(&label, label_w));
            }
        }
        let _ = writeln!(
            out,
            "{}{}",
            " ".repeat(label_w),
            rule("└", "┴", "┘", block.len(), w)
        );
    }
}

/// The text map.
pub fn render(m: &HostMap, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}\n",
        style.paint("1", &format!("kvmtune map: {}", title(m)))
    );
    let w = cell_width(m);
    for n in &m.nodes {
        node_block(n, w, style, &mut out);
        out.push('\n');
    }
    let _ = writeln!(out, "{}", style.paint("1", "guests:"));
    if m.guests.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for g in &m.guests {
        let _ = writeln!(out, "  {}", guest_line(g));
    }
    if m.conflicts.is_empty() {
        let _ = writeln!(out, "{} none", style.paint("1", "conflicts:"));
    } else {
        let _ = writeln!(out, "{}", style.paint("1;31", "conflicts:"));
        for c in &m.conflicts {
            let _ = writeln!(out, "  {} {}", style.paint("1;31", "!"), clean(&c.message));
        }
    }
    if !m.notes.is_empty() {
        let _ = writeln!(out, "{}", style.paint("1", "notes:"));
        for n in &m.notes {
            let _ = writeln!(out, "  - {}", clean(n));
        }
    }
    let _ = writeln!(out, "{}", style.paint("1", "legend:"));
    let entries = legend(m);
    let lw = entries.iter().map(|(_, w, _)| width(w)).max().unwrap_or(0);
    for (kind, what, meaning) in entries {
        let what = pad(&what, lw);
        let what = match kind {
            Some(k) => style.paint(pool_code(k), &what),
            None if what.trim() == "!" => style.paint("1;31", &what),
            None => what,
        };
        let _ = writeln!(out, "  {what}  {meaning}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{current, dom};
    use super::*;

    fn two_on_cpu_2() -> HostMap {
        let pin = "<cputune><vcpupin vcpu='0' cpuset='2'/></cputune>";
        current(
            "host:\n  cpu_pool: { reserved: \"0\" }\nguests:\n  a: {}\n",
            &[("a", dom("a", 1, pin))],
            &[("a-very-long-guest-name", dom("b", 1, pin))],
        )
    }

    #[test]
    fn colour_paints_but_marks_and_columns_stay() {
        let m = two_on_cpu_2();
        let plain = render(&m, Style::PLAIN);
        let colour = render(&m, Style { color: true });
        assert!(!plain.contains('\x1b'));
        assert!(colour.contains("\x1b[1;31m!2 dedicated"), "{colour}");
        let strip = |s: &str| {
            let mut out = String::new();
            let mut esc = false;
            for c in s.chars() {
                match (esc, c) {
                    (false, '\x1b') => esc = true,
                    (true, 'm') => esc = false,
                    (true, _) => {}
                    (false, c) => out.push(c),
                }
            }
            out
        };
        assert_eq!(strip(&colour), plain);
        // Every grid line of a node block is as wide as its rule.
        let grid: Vec<&str> = plain.lines().filter(|l| l.contains('│')).collect();
        let w = width(grid[0]);
        assert!(grid.iter().all(|l| width(l) == w), "{plain}");
        assert!(plain.contains("│ a-very-lo… v0"), "{plain}");
        assert!(plain.contains("a and a-very-long-guest-name have vCPUs pinned to the same CPU 2"));
    }

    #[test]
    fn wide_nodes_wrap_into_rows_of_cores() {
        let topo = crate::topology::HostTopology::synthetic(1, 16, 2);
        let d = crate::desired::Desired::default();
        let obs = crate::observe::Observed {
            topology: Some(topo),
            ..Default::default()
        };
        let others = std::collections::BTreeMap::new();
        let m = super::super::build(&super::super::MapInput {
            desired: &d,
            observed: &obs,
            plan: None,
            others: &others,
            hostname: "h",
        })
        .unwrap();
        let t = render(&m, Style::PLAIN);
        assert!(t.lines().all(|l| width(l) <= MAX_WIDTH), "{t}");
        assert!(t.matches('┌').count() > 1, "{t}");
        for cpu in 0..32 {
            let n = t.matches(&format!("│ {cpu} cpu ")).count();
            assert_eq!(n, 1, "CPU {cpu} in {t}");
        }
    }
}
