//! The map as a self-contained SVG (for docs and pull-request reviews): the same grid as the
//! text map, CPUs coloured by pool, conflicts outlined in red, then guests, conflicts, notes
//! and a legend.
//!
//! Invariant: a pure function of the [`HostMap`]: integer coordinates, no scripts, no
//! external references (fonts are the generic `monospace`), every text and attribute value
//! XML-escaped; each CPU is one `<g id="cpu-N">`.

use std::fmt::Write;

use super::{cell_entries, cell_header, cell_lines, clean, core_label, guest_line, legend, title};
use super::{CpuCell, HostMap, PoolKind};

const MARGIN: usize = 16;
const LINE: usize = 15;
const LABEL_W: usize = 72;
const GAP: usize = 4;
const CORES_PER_ROW: usize = 8;
const RED: &str = "#c00000";

/// Approximate width of `n` characters of 12px monospace.
fn text_w(n: usize) -> usize {
    n * 15 / 2
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in clean(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Text colours for guests, by their place in the (name-ordered) guest list.
const INKS: [&str; 8] = [
    "#1f4e99", "#a04000", "#1b6e20", "#7a1f7a", "#6b5a00", "#006d6d", "#9c1c4a", "#3c3c8c",
];

fn ink(m: &HostMap, guest: &str) -> &'static str {
    m.guests
        .iter()
        .position(|g| g.name == guest)
        .map_or("#333333", |i| INKS[i % INKS.len()])
}

fn fill(k: PoolKind) -> &'static str {
    match k {
        PoolKind::Reserved => "#d4d4d4",
        PoolKind::Shared => "#cfe0ff",
        PoolKind::Dedicated => "#cdeccd",
        PoolKind::Isolated => "#e3d4f5",
        PoolKind::Unpartitioned => "#f2f2f2",
    }
}

struct Layout {
    cell_w: usize,
    cell_h: usize,
}

fn layout(m: &HostMap) -> Layout {
    let mut chars = 12;
    let mut lines = 1;
    for c in m.cells() {
        let ls = cell_lines(c);
        lines = lines.max(ls.len());
        chars = chars.max(cell_header(c).chars().count());
        for l in ls {
            chars = chars.max(l.chars().count());
        }
    }
    Layout {
        cell_w: text_w(chars) + 12,
        cell_h: 8 + LINE * (1 + lines),
    }
}

fn text(out: &mut String, x: usize, y: usize, attrs: &str, s: &str) {
    let _ = writeln!(out, "<text x=\"{x}\" y=\"{y}\"{attrs}>{}</text>", esc(s));
}

fn cell(out: &mut String, m: &HostMap, c: &CpuCell, x: usize, y: usize, l: &Layout) {
    let conflict = !c.conflicts.is_empty();
    let _ = writeln!(
        out,
        "<g id=\"cpu-{}\" class=\"cpu {}{}\">",
        c.cpu,
        c.pool.word(),
        if conflict { " conflict" } else { "" }
    );
    let (stroke, sw) = if conflict { (RED, 3) } else { ("#666666", 1) };
    let _ = writeln!(
        out,
        "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{}\" rx=\"4\" fill=\"{}\" stroke=\"{stroke}\" stroke-width=\"{sw}\"/>",
        l.cell_w,
        l.cell_h,
        fill(c.pool)
    );
    let head = if conflict {
        format!(" font-weight=\"bold\" fill=\"{RED}\"")
    } else {
        " font-weight=\"bold\"".to_string()
    };
    text(out, x + 6, y + 4 + LINE, &head, &cell_header(c));
    for (i, (guest, line)) in cell_entries(c).iter().enumerate() {
        let colour = guest.as_deref().map_or("#555555", |g| ink(m, g));
        let style = if guest.is_none() || line.starts_with('~') {
            " font-style=\"italic\""
        } else {
            ""
        };
        let attrs = format!(" fill=\"{colour}\"{style}");
        text(out, x + 6, y + 4 + LINE * (i + 2), &attrs, line);
    }
    out.push_str("</g>\n");
}

/// Draws the nodes from `y`; returns the width used and the next free `y`.
fn nodes(out: &mut String, m: &HostMap, l: &Layout, mut y: usize) -> (usize, usize) {
    let mut width = 0;
    for n in &m.nodes {
        y += 22;
        text(
            out,
            MARGIN,
            y,
            " font-size=\"14\" font-weight=\"bold\"",
            &format!("node {} (CPUs {})", n.node, n.cpus),
        );
        let threads = n.cores.iter().map(|c| c.threads.len()).max().unwrap_or(1);
        for block in n.cores.chunks(CORES_PER_ROW) {
            y += 8 + LINE;
            let x0 = MARGIN + LABEL_W;
            for (i, c) in block.iter().enumerate() {
                text(out, x0 + i * (l.cell_w + GAP) + 6, y, "", &core_label(n, c));
            }
            y += 6;
            for t in 0..threads {
                text(out, MARGIN, y + 4 + LINE, "", &format!("thread {t}"));
                for (i, c) in block.iter().enumerate() {
                    if let Some(cpu) = c.threads.get(t) {
                        cell(out, m, cpu, x0 + i * (l.cell_w + GAP), y, l);
                    }
                }
                y += l.cell_h + GAP;
            }
            width = width.max(x0 + block.len() * (l.cell_w + GAP));
        }
        y += 8;
    }
    (width, y)
}

/// The lines below the grid: (text, attributes, swatch colour).
fn footer(m: &HostMap) -> Vec<(String, String, Option<&'static str>)> {
    let bold = " font-weight=\"bold\"".to_string();
    let mut v: Vec<(String, String, Option<&'static str>)> =
        vec![("guests:".into(), bold.clone(), None)];
    for g in &m.guests {
        let attrs = format!(" fill=\"{}\"", ink(m, &g.name));
        v.push((format!("  {}", guest_line(g)), attrs, None));
    }
    if m.conflicts.is_empty() {
        v.push(("conflicts: none".into(), bold.clone(), None));
    } else {
        v.push((
            "conflicts:".into(),
            format!(" font-weight=\"bold\" fill=\"{RED}\""),
            None,
        ));
        for c in &m.conflicts {
            v.push((
                format!("  ! {}", c.message),
                format!(" fill=\"{RED}\""),
                None,
            ));
        }
    }
    if !m.notes.is_empty() {
        v.push(("notes:".into(), bold.clone(), None));
        for n in &m.notes {
            v.push((format!("  - {n}"), String::new(), None));
        }
    }
    v.push(("legend:".into(), bold, None));
    let entries = legend(m);
    let lw = entries
        .iter()
        .map(|(_, w, _)| w.chars().count())
        .max()
        .unwrap_or(0);
    for (kind, what, meaning) in entries {
        let pad = " ".repeat(lw - what.chars().count());
        v.push((
            format!("    {what}{pad}  {meaning}"),
            String::new(),
            kind.map(fill),
        ));
    }
    v
}

/// The SVG map.
pub fn render(m: &HostMap) -> String {
    let l = layout(m);
    let mut body = String::new();
    let head = format!("kvmtune map: {}", title(m));
    text(
        &mut body,
        MARGIN,
        MARGIN + 14,
        " font-size=\"16\" font-weight=\"bold\"",
        &head,
    );
    let (mut width, mut y) = nodes(&mut body, m, &l, MARGIN + 14);
    width = width.max(MARGIN + text_w(head.chars().count()) * 4 / 3);
    y += 8;
    for (line, attrs, swatch) in footer(m) {
        y += LINE + 2;
        if let Some(colour) = swatch {
            let _ = writeln!(
                body,
                "<rect x=\"{MARGIN}\" y=\"{}\" width=\"20\" height=\"13\" fill=\"{colour}\" stroke=\"#666666\"/>",
                y - 11
            );
        }
        width = width.max(MARGIN + text_w(line.chars().count()));
        let _ = writeln!(
            body,
            "<text x=\"{MARGIN}\" y=\"{y}\" xml:space=\"preserve\"{attrs}>{}</text>",
            esc(&line)
        );
    }
    let (w, h) = (width + MARGIN, y + MARGIN);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"monospace\" font-size=\"12\">"
    );
    let _ = writeln!(out, "<title>{}</title>", esc(&head));
    let _ = writeln!(out, "<rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>");
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{current, dom};
    use super::*;

    #[test]
    fn names_are_escaped_and_the_svg_is_xml() {
        let name = "x<y&\"z'\u{7}";
        let pin = "<cputune><vcpupin vcpu='0' cpuset='3'/></cputune>";
        let m = current("guests: {}\n", &[], &[(name, dom("x", 1, pin))]);
        let svg = render(&m);
        assert!(svg.contains("x&lt;y&amp;&quot;z&apos;? (shut off"), "{svg}");
        let doc = crate::xmltree::Document::parse(&svg).unwrap();
        assert_eq!(doc.name(doc.root()), "svg");
        assert_eq!(render(&m), svg, "deterministic");
        assert_eq!(svg.matches("<g id=\"cpu-").count(), 8);
    }
}
