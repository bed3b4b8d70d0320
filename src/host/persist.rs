//! Files under /etc that kvmtune owns, so runtime values survive a reboot.
//!
//! Invariant: each owned file is rendered entirely from the desired state (header saying
//! kvmtune owns it, then entries in a fixed order) and is rewritten atomically as a whole;
//! its drift is planned entry by entry (`<key> (persisted)`, `absent → value`), plus one
//! whole-file change when the entries match but the bytes do not (hand edits), so the plan
//! is empty exactly when the file on disk equals what kvmtune would write.

use std::collections::BTreeMap;

use super::{FileWrite, HostChange, HostOp};
use crate::plan::Effect;

pub const SYSCTL_CONF: &str = "etc/sysctl.d/90-kvmtune.conf";
pub const TMPFILES_CONF: &str = "etc/tmpfiles.d/90-kvmtune.conf";
pub const MODULES_CONF: &str = "etc/modules-load.d/90-kvmtune.conf";
pub const GRUB_CFG: &str = "etc/default/grub.d/90-kvmtune.cfg";

const OWNED: &str = "# Written by kvmtune, which owns this file and rewrites it whole on every apply.\n# Do not edit: change kvmtune's configuration instead.\n";

/// The syntax of an owned file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// sysctl.d: `key = value`, keys sorted.
    Sysctl,
    /// tmpfiles.d: `w <path> - - - - <value>`, in apply order.
    Tmpfiles,
    /// modules-load.d: one module per line, sorted.
    Modules,
    /// A grub defaults drop-in appending huge page arguments to the kernel command line.
    Grub,
}

/// One persisted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Key inside the file: sysctl name, /sys path, module name, or page size (`1G`).
    pub key: String,
    /// The plan path (`sysctl.vm.swappiness (persisted)`).
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFile {
    pub file: &'static str,
    pub syntax: Syntax,
    pub entries: Vec<Entry>,
}

impl OwnedFile {
    pub fn new(file: &'static str, syntax: Syntax) -> OwnedFile {
        OwnedFile {
            file,
            syntax,
            entries: Vec::new(),
        }
    }

    pub fn push(&mut self, key: String, label: String, value: String) {
        self.entries.push(Entry { key, label, value });
    }

    /// The file's full content.
    pub fn render(&self) -> String {
        let mut out = String::from(OWNED);
        let mut entries = self.entries.clone();
        match self.syntax {
            Syntax::Sysctl => {
                out.push_str(
                    "# Applied at boot by systemd-sysctl.service (or procps) from /etc/sysctl.d.\n",
                );
                entries.sort_by(|a, b| a.key.cmp(&b.key));
                for e in &entries {
                    out.push_str(&format!("{} = {}\n", e.key, e.value));
                }
            }
            Syntax::Tmpfiles => {
                out.push_str("# Applied at boot by systemd-tmpfiles-setup.service: `w` writes the value to the file.\n");
                for e in &entries {
                    out.push_str(&format!("w {} - - - - {}\n", e.key, e.value));
                }
            }
            Syntax::Modules => {
                out.push_str("# Loaded at boot by systemd-modules-load.service.\n");
                entries.sort_by(|a, b| a.key.cmp(&b.key));
                for e in &entries {
                    out.push_str(&format!("{}\n", e.key));
                }
            }
            Syntax::Grub => {
                out.push_str("# Huge pages reserved at boot on the kernel command line. kvmtune never runs\n# update-grub: run it (or your bootloader's equivalent) yourself, then reboot.\n");
                let mut args = Vec::new();
                if entries.iter().any(|e| e.key == "1G") {
                    args.push("default_hugepagesz=1G".to_string());
                }
                for e in &entries {
                    args.push(format!("hugepagesz={} hugepages={}", e.key, e.value));
                }
                out.push_str(&format!(
                    "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX {}\"\n",
                    args.join(" ")
                ));
            }
        }
        out
    }

    /// Key → value as found in a file of this syntax (comments and unknown lines ignored).
    pub fn parse(&self, content: &str) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for line in content.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
                continue;
            }
            match self.syntax {
                Syntax::Sysctl => {
                    if let Some((k, v)) = l.split_once('=') {
                        let k = k.trim().trim_start_matches('-').replace('/', ".");
                        let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
                        m.insert(k, v);
                    }
                }
                Syntax::Tmpfiles => {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    if f.len() >= 7 && f[0].starts_with('w') {
                        m.insert(f[1].to_string(), f[6..].join(" "));
                    }
                }
                Syntax::Modules => {
                    m.insert(l.replace('-', "_"), "loaded".into());
                }
                Syntax::Grub => {
                    let Some(rest) = l.strip_prefix("GRUB_CMDLINE_LINUX=") else {
                        continue;
                    };
                    let mut size: Option<String> = None;
                    for tok in rest.trim_matches('"').split_whitespace() {
                        if let Some(s) = tok.strip_prefix("hugepagesz=") {
                            size = Some(s.to_string());
                        } else if let Some(n) = tok.strip_prefix("hugepages=") {
                            if let Some(s) = size.take() {
                                m.insert(s, n.to_string());
                            }
                        }
                    }
                }
            }
        }
        m
    }

    fn value_of(&self, e: &Entry) -> String {
        match self.syntax {
            Syntax::Modules => "loaded".into(),
            _ => e.value.clone(),
        }
    }

    fn label_for_unknown(&self, key: &str) -> String {
        match self.syntax {
            Syntax::Sysctl => format!("sysctl.{key} (persisted)"),
            Syntax::Tmpfiles => format!("{key} (persisted)"),
            Syntax::Modules => format!("modules.{key} (persisted)"),
            Syntax::Grub => format!("hugepages.{key} (boot)"),
        }
    }

    /// Pure: the changes between `current` (the file's content, `None` when absent) and what
    /// kvmtune would write, and the whole-file write that fixes them.
    pub fn plan(&self, current: Option<&str>) -> (Vec<HostChange>, Option<HostOp>) {
        if self.entries.is_empty() {
            return (Vec::new(), None);
        }
        let content = self.render();
        if current == Some(content.as_str()) {
            return (Vec::new(), None);
        }
        let effect = if self.syntax == Syntax::Grub {
            Effect::Reboot
        } else {
            Effect::Live
        };
        let mut have = current.map(|c| self.parse(c)).unwrap_or_default();
        let mut changes = Vec::new();
        for e in &self.entries {
            let want = self.value_of(e);
            let before = have.remove(&e.key);
            if before.as_deref() != Some(want.as_str()) {
                changes.push(HostChange {
                    path: e.label.clone(),
                    before,
                    after: Some(e.value.clone()),
                    effect,
                });
            }
        }
        for (k, v) in have {
            changes.push(HostChange {
                path: self.label_for_unknown(&k),
                before: Some(v),
                after: None,
                effect,
            });
        }
        if changes.is_empty() {
            changes.push(HostChange {
                path: format!("/{} (persisted)", self.file),
                before: Some("edited by hand".into()),
                after: Some("kvmtune's content".into()),
                effect,
            });
        }
        let op = HostOp::File(FileWrite {
            paths: changes.iter().map(|c| c.path.clone()).collect(),
            file: self.file.to_string(),
            content,
        });
        (changes, Some(op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_file_is_sorted_and_round_trips() {
        let mut f = OwnedFile::new(SYSCTL_CONF, Syntax::Sysctl);
        f.push("vm.swappiness".into(), "a".into(), "10".into());
        f.push("kernel.x".into(), "b".into(), "1 2".into());
        let text = f.render();
        assert!(text.starts_with("# Written by kvmtune"));
        assert!(
            text.ends_with("kernel.x = 1 2\nvm.swappiness = 10\n"),
            "{text}"
        );
        assert_eq!(f.parse(&text).len(), 2);
        assert_eq!(f.plan(Some(&text)), (Vec::new(), None));
        let (c, op) = f.plan(None);
        assert_eq!(c.len(), 2);
        assert!(op.is_some());
        // Hand edit that keeps the values: one whole-file change.
        let (c, _) = f.plan(Some(&text.replace("# Do not edit", "# edited")));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].path, "/etc/sysctl.d/90-kvmtune.conf (persisted)");
    }

    #[test]
    fn grub_drop_in_parses_its_own_output() {
        let mut f = OwnedFile::new(GRUB_CFG, Syntax::Grub);
        f.push("1G".into(), "hugepages.1G (boot)".into(), "4".into());
        let text = f.render();
        assert!(text.contains("GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX default_hugepagesz=1G hugepagesz=1G hugepages=4\""), "{text}");
        assert_eq!(f.parse(&text).get("1G").map(String::as_str), Some("4"));
        let (c, _) = f.plan(None);
        assert_eq!(c[0].effect, Effect::Reboot);
    }
}
