//! tuned's profile file syntax (`tuned.conf`): INI as tuned's Python `ConfigParser` reads it.
//!
//! Invariant: parsing is pure and never evaluates anything: `${var}`, `${f:...}` and `${i:...}`
//! are kept as opaque text. It follows what tuned's loader accepts (`=` the only delimiter,
//! full-line comments starting with `#` or `;`, inline comments from a `#` that follows
//! whitespace, indented lines continuing the previous value, case-sensitive keys, a repeated
//! section or key merging into the first with the later value winning) and refuses what tuned
//! refuses (text before the first section, a line with no `=`, an empty key) with an error
//! naming the file and the line.

/// One `key = value` line (with its continuation lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    pub key: String,
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// One `[section]`, options in first-appearance order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub options: Vec<Opt>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Opt> {
        self.options.iter().find(|o| o.key == key)
    }

    fn set(&mut self, key: String, value: String, line: usize) {
        match self.options.iter_mut().find(|o| o.key == key) {
            Some(o) => {
                o.value = value;
                o.line = line;
            }
            None => self.options.push(Opt { key, value, line }),
        }
    }
}

/// A parsed file: sections in first-appearance order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conf {
    pub sections: Vec<Section>,
}

impl Conf {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The value of `key` in `[section]`.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.section(section)?.get(key).map(|o| o.value.as_str())
    }
}

/// A line tuned would not load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {msg}")]
pub struct ConfError {
    pub file: String,
    pub line: usize,
    pub msg: String,
}

/// The line without an inline comment: from a `#` preceded by whitespace.
fn strip_inline(line: &str) -> &str {
    let b = line.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'#' && i > 0 && b[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Parses `text` (the content of `file`, named in errors).
pub fn parse(file: &str, text: &str) -> Result<Conf, ConfError> {
    let mut conf = Conf::default();
    // The section being filled (index) and the option a continuation line extends.
    let mut cur: Option<usize> = None;
    let mut last: Option<(String, usize)> = None;
    let err = |line: usize, msg: String| ConfError {
        file: file.to_string(),
        line,
        msg,
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        let content = strip_inline(raw);
        let value = content.trim();
        if value.is_empty() {
            continue;
        }
        // A continuation of the previous value: indented deeper than its key.
        if let (Some(s), Some((key, ind))) = (cur, &last) {
            if indent(raw) > *ind {
                let sec = &mut conf.sections[s];
                if let Some(o) = sec.options.iter_mut().find(|o| o.key == *key) {
                    o.value.push('\n');
                    o.value.push_str(value);
                }
                continue;
            }
        }
        if value.starts_with('[') && value.ends_with(']') && value.len() > 2 {
            let name = value[1..value.len() - 1].to_string();
            cur = Some(match conf.sections.iter().position(|s| s.name == name) {
                Some(p) => p,
                None => {
                    conf.sections.push(Section {
                        name,
                        line: n,
                        options: Vec::new(),
                    });
                    conf.sections.len() - 1
                }
            });
            last = None;
            continue;
        }
        let Some(s) = cur else {
            return Err(err(
                n,
                format!(
                    "`{}` comes before any [section]",
                    value.chars().take(60).collect::<String>().escape_debug()
                ),
            ));
        };
        let Some((k, v)) = value.split_once('=') else {
            return Err(err(
                n,
                format!(
                    "`{}` is not `key = value`",
                    value.chars().take(60).collect::<String>().escape_debug()
                ),
            ));
        };
        let key = k.trim().to_string();
        if key.is_empty() {
            return Err(err(n, "a line starts with `=`: the key is empty".into()));
        }
        last = Some((key.clone(), indent(raw)));
        conf.sections[s].set(key, v.trim().to_string(), n);
    }
    Ok(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(p: &str) -> String {
        let f = format!(
            "{}/tests/data/tuned/{p}/tuned.conf",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{f}: {e}"))
    }

    #[test]
    fn real_profiles_parse_with_values_kept_opaque() {
        let c = parse("throughput-performance", &data("throughput-performance")).unwrap();
        assert_eq!(c.get("sysctl", "vm.swappiness"), Some("10"));
        assert_eq!(c.get("sysctl", "net.core.somaxconn"), Some(">2048"));
        // A commented-out key is no key.
        assert_eq!(c.get("sysctl", "kernel.pid_max"), None);
        assert_eq!(
            c.get("vm.thunderx", "cpuinfo_regex"),
            Some("${thunderx_cpuinfo_regex}")
        );
        assert_eq!(c.get("sysctl.thunderx", "type"), Some("sysctl"));
        assert_eq!(c.get("disk", "readahead"), Some(">4096"));
        let names: Vec<&str> = c.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "main",
                "variables",
                "cpu",
                "vm.thunderx",
                "disk",
                "sysctl",
                "sysctl.thunderx"
            ]
        );

        let vh = parse("virtual-host", &data("virtual-host")).unwrap();
        assert_eq!(vh.get("main", "include"), Some("throughput-performance"));
        assert_eq!(
            vh.get("cpu", "force_latency"),
            Some("cstate.id_no_zero:3|70")
        );

        let cp = parse("cpu-partitioning", &data("cpu-partitioning")).unwrap();
        assert_eq!(
            cp.get("variables", "include"),
            Some("/etc/tuned/cpu-partitioning-variables.conf")
        );
        assert_eq!(
            cp.get("variables", "isolated_cores"),
            Some("${isolated_cores}")
        );
        assert_eq!(
            cp.get("variables", "isolated_cores_assert_check"),
            Some("\\\\${isolated_cores}")
        );
        assert_eq!(
            cp.get("sysfs", "/sys/devices/virtual/workqueue/*/cpumask"),
            Some("${not_isolated_cpumask}")
        );
        for p in [
            "virtual-guest",
            "realtime-virtual-host",
            "realtime",
            "network-latency",
        ] {
            let c = parse(p, &data(p)).unwrap();
            assert!(c.section("main").is_some(), "{p}");
        }
        let rt = parse("realtime", &data("realtime")).unwrap();
        assert_eq!(rt.get("main", "include"), Some("network-latency"));
        assert_eq!(rt.get("sysctl", "kernel.sched_rt_runtime_us"), Some("-1"));
    }

    #[test]
    fn comments_continuations_and_repeats() {
        let c = parse(
            "t",
            "; a comment\n[a]\nx = 1 # inline\ny=a#b\nz = first\n  second\n[b]\nk=v\n[a]\nx = 2\n",
        )
        .unwrap();
        assert_eq!(c.get("a", "x"), Some("2"));
        assert_eq!(c.get("a", "y"), Some("a#b"));
        assert_eq!(c.get("a", "z"), Some("first\nsecond"));
        assert_eq!(c.sections.len(), 2);
        assert_eq!(c.section("a").unwrap().options[0].line, 10);
    }

    #[test]
    fn what_tuned_refuses_is_an_error_naming_the_line() {
        let e = parse("/usr/lib/tuned/x/tuned.conf", "summary=x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/usr/lib/tuned/x/tuned.conf:1: `summary=x` comes before any [section]"
        );
        let e = parse("f", "[main]\n\ninclude\n").unwrap_err();
        assert_eq!(e.to_string(), "f:3: `include` is not `key = value`");
        let e = parse("f", "[main]\n= 3\n").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
