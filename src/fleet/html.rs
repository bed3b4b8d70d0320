//! The fleet report as one self-contained HTML page.
//!
//! Invariant: pure; the page loads nothing (inline CSS and script, pin maps as `data:` images,
//! and a Content-Security-Policy that allows nothing else), and every text from the inputs
//! is escaped ([`esc`]). Pin maps are shown as images, never inlined as markup, so an SVG's
//! scripts and links never run. The table sorts by any column on click (or Enter).

use std::fmt::Write;

use super::{detail, Fleet, HostRow, Status};

/// Escapes text for HTML content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}\
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
td.n,th.n{text-align:right}\
th{background:#eee;cursor:pointer;user-select:none}\
th[aria-sort=ascending]::after{content:' \\25B2'}\
th[aria-sort=descending]::after{content:' \\25BC'}\
.failing{background:#fdd}.drifting{background:#ffd}.pending{background:#eef}.in_sync{background:#dfd}\
ul.counts{list-style:none;padding:0;display:flex;gap:1em}\
ul.counts li{padding:.3em .8em;border-radius:.3em}\
section.host{border-top:1px solid #ccc;margin-top:1.5em}\
img.map{max-width:100%;border:1px solid #ccc}";

const SCRIPT: &str = r#"(function () {
  var table = document.getElementById('hosts');
  var heads = table.tHead.rows[0].cells;
  function key(row, i, num) {
    var c = row.cells[i];
    var v = c.getAttribute('data-sort');
    if (v === null) { v = c.textContent; }
    return num ? parseFloat(v) : v;
  }
  function sortBy(i) {
    var th = heads[i];
    var num = th.getAttribute('data-type') === 'number';
    var dir = th.getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending';
    for (var j = 0; j < heads.length; j++) { heads[j].removeAttribute('aria-sort'); }
    th.setAttribute('aria-sort', dir);
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, i, num), y = key(b, i, num);
      var r = num ? x - y : (x < y ? -1 : (x > y ? 1 : 0));
      if (r === 0) { var p = key(a, 0, false), q = key(b, 0, false); r = p < q ? -1 : (p > q ? 1 : 0); }
      return dir === 'ascending' ? r : -r;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  Array.prototype.forEach.call(heads, function (th, i) {
    th.tabIndex = 0;
    th.addEventListener('click', function () { sortBy(i); });
    th.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(i); }
    });
  });
  document.body.setAttribute('data-sortable', 'yes');
})();
"#;

/// The columns: (heading, numeric).
const COLUMNS: [(&str, bool); 8] = [
    ("Host", false),
    ("Status", false),
    ("Changes", true),
    ("Restart", true),
    ("Reboot", true),
    ("Pending restart", true),
    ("Errors", true),
    ("Detail", false),
];

fn row(out: &mut String, n: usize, h: &HostRow) {
    let s = h.status;
    let _ = write!(
        out,
        "<tr data-host=\"{host}\" data-status=\"{id}\"><td data-sort=\"{host}\"><a href=\"#host-{n}\">{host}</a></td>\
         <td class=\"{id}\" data-sort=\"{rank}\">{label}</td>",
        host = esc(&h.host),
        id = s.id(),
        rank = Status::ALL.iter().position(|x| *x == s).unwrap_or(0),
        label = s.label(),
    );
    for v in [
        h.changes,
        h.restart,
        h.reboot,
        h.pending.len(),
        h.errors.len(),
    ] {
        let _ = write!(out, "<td class=\"n\" data-sort=\"{v}\">{v}</td>");
    }
    let _ = writeln!(out, "<td>{}</td></tr>", esc(&detail(h)));
}

fn section(out: &mut String, n: usize, h: &HostRow) {
    let _ = writeln!(
        out,
        "<section class=\"host\" id=\"host-{n}\"><h2>{} <small class=\"{}\">{}</small></h2>\n<p>{} ({})</p>",
        esc(&h.host),
        h.status.id(),
        h.status.label(),
        esc(&h.file),
        h.kind
    );
    if !h.errors.is_empty() {
        out.push_str("<ul class=\"errors\">\n");
        for e in &h.errors {
            let _ = writeln!(out, "<li>{}</li>", esc(e));
        }
        out.push_str("</ul>\n");
    }
    if !h.listed.is_empty() {
        out.push_str("<table class=\"changes\"><thead><tr><th>Target</th><th>Setting</th><th>Now</th><th>Declared</th><th>Effect</th></tr></thead><tbody>\n");
        for c in &h.listed {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.target),
                esc(&c.path),
                esc(&c.before),
                esc(&c.after),
                c.effect.as_str()
            );
        }
        out.push_str("</tbody></table>\n");
        if h.changes > h.listed.len() {
            let _ = writeln!(
                out,
                "<p>… and {} more changes.</p>",
                h.changes - h.listed.len()
            );
        }
    }
    if !h.pending.is_empty() {
        let _ = writeln!(
            out,
            "<p>Waiting for a restart: {}</p>",
            esc(&h.pending.join(", "))
        );
    }
    match &h.map {
        Some(Ok(svg)) => {
            let _ = writeln!(
                out,
                "<figure><img class=\"map\" alt=\"pin map of {}\" src=\"data:image/svg+xml;base64,{}\"><figcaption>Pin map</figcaption></figure>",
                esc(&h.host),
                base64(svg.as_bytes())
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(out, "<p class=\"nomap\">Pin map not shown: {}</p>", esc(e));
        }
        None => {}
    }
    out.push_str("</section>\n");
}

/// The page. Pure.
pub fn page(f: &Fleet) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        out,
        "<title>kvmtune fleet report</title>\n<style>{STYLE}</style></head><body>"
    );
    out.push_str("<h1>kvmtune fleet report</h1>\n");
    let _ = writeln!(out, "<p id=\"summary\">{}</p>", esc(&f.summary_line()));
    out.push_str("<ul class=\"counts\">");
    for s in [
        Status::InSync,
        Status::Drifting,
        Status::Pending,
        Status::Failing,
    ] {
        let _ = write!(
            out,
            "<li class=\"{id}\"><b data-count=\"{id}\">{}</b> {}</li>",
            f.count(s),
            s.label(),
            id = s.id()
        );
    }
    out.push_str("</ul>\n<table id=\"hosts\"><thead><tr>");
    for (i, (h, num)) in COLUMNS.iter().enumerate() {
        let _ = write!(
            out,
            "<th{}{}{}>{h}</th>",
            if *num { " class=\"n\"" } else { "" },
            if *num {
                " data-type=\"number\""
            } else {
                " data-type=\"text\""
            },
            if i == 0 {
                " aria-sort=\"ascending\""
            } else {
                ""
            },
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (n, h) in f.hosts.iter().enumerate() {
        row(&mut out, n + 1, h);
    }
    out.push_str("</tbody></table>\n");
    for (n, h) in f.hosts.iter().enumerate() {
        section(&mut out, n + 1, h);
    }
    let _ = writeln!(out, "<script>{SCRIPT}</script>\n</body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
