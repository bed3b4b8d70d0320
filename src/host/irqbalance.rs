//! irqbalance's ban list: `IRQBALANCE_BANNED_CPULIST=<every online CPU not reserved>` in
//! `/etc/default/irqbalance` (Debian) or `/etc/sysconfig/irqbalance` (RHEL), so irqbalance
//! never moves an IRQ back onto an isolated CPU.
//!
//! Invariants:
//! - The file is the distribution's, not kvmtune's: only the lines assigning
//!   `IRQBALANCE_BANNED_CPULIST` change (each keeps its indentation and `export`); when there
//!   is none, one line is appended. Every other byte stays as it was. The value compares as
//!   the CPU set it means (the last assignment counts, as in the shell).
//! - Which file: the Debian one when it exists, else the RHEL one when it exists; when neither
//!   does, one is created only if irqbalance is installed (`/usr/sbin/irqbalance`), in
//!   `/etc/sysconfig` when that directory exists, else `/etc/default`. Without irqbalance
//!   nothing is written (a note says so).
//! - The edit is an atomic replace after a stale check (the SHA-256 of the content planning
//!   read); a running irqbalance (`systemctl is-active`) is restarted only after its file
//!   changed, and only when it is installed.

use super::isolate::{online, yaml};
use super::ops::{content_hash, HostOp};
use super::{Builder, HostChange, HostObserved, Reads};
use crate::cpuset::CpuSet;
pub use crate::model::keys::IrqbalanceFile;
use crate::model::Effect;

pub const KEY: &str = "IRQBALANCE_BANNED_CPULIST";
pub const SBIN: &str = "usr/sbin";
pub const SYSTEMCTL: &str = "usr/bin/systemctl";
pub const SERVICE: &str = "irqbalance.service";

/// The plan path of the ban list.
pub fn path() -> String {
    format!("cpu_pool.isolate.irqs.{KEY}")
}

pub fn reads(r: &mut Reads) {
    for f in [IrqbalanceFile::Debian, IrqbalanceFile::Rhel] {
        r.files.insert(f.file().into());
    }
    r.files.insert(super::isolate::CPU_ONLINE.into());
    r.dirs.insert(SBIN.into());
    r.dirs.insert("etc/sysconfig".into());
}

/// The value part of an assignment line (`  export KEY=value # c`), `None` for other lines.
fn assigned(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let t = t
        .strip_prefix("export")
        .filter(|r| r.starts_with([' ', '\t']))
        .map(str::trim_start)
        .unwrap_or(t);
    t.strip_prefix(KEY)?.strip_prefix('=')
}

/// A shell word's value: quotes removed; unquoted, up to whitespace or a comment.
fn unquote(v: &str) -> String {
    let v = v.trim_end_matches(['\n', '\r']);
    for q in ['"', '\''] {
        if let Some(rest) = v.strip_prefix(q) {
            return rest.split(q).next().unwrap_or("").to_string();
        }
    }
    v.split([' ', '\t', '#']).next().unwrap_or("").to_string()
}

/// The ban list the file sets (the last assignment), `None` when it sets none.
pub fn current(content: &str) -> Option<String> {
    content
        .lines()
        .filter_map(assigned)
        .next_back()
        .map(unquote)
}

/// `content` with every assignment of the key set to `banned` (or one appended); with `None`
/// (a rollback to a file that did not set it) the assignments are removed.
pub fn edit(content: Option<&str>, banned: Option<&CpuSet>) -> String {
    let content = content.unwrap_or("");
    let mut out = String::with_capacity(content.len() + 64);
    let mut found = false;
    for line in content.split_inclusive('\n') {
        match (assigned(line), banned) {
            (Some(v), Some(banned)) => {
                found = true;
                let prefix = &line[..line.len() - v.len()];
                let end = if line.ends_with('\n') { "\n" } else { "" };
                out.push_str(&format!("{prefix}{banned}{end}"));
            }
            (Some(_), None) => {}
            (None, _) => out.push_str(line),
        }
    }
    let Some(banned) = banned else {
        return out;
    };
    if !found {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{KEY}={banned}\n"));
    }
    out
}

/// Which file to edit, `None` when irqbalance is neither configured nor installed.
fn which(obs: &HostObserved) -> Option<IrqbalanceFile> {
    for f in [IrqbalanceFile::Debian, IrqbalanceFile::Rhel] {
        if obs.file(f.file()).is_some() {
            return Some(f);
        }
    }
    if !installed(obs) {
        return None;
    }
    Some(if obs.dir("etc/sysconfig").is_some() {
        IrqbalanceFile::Rhel
    } else {
        IrqbalanceFile::Debian
    })
}

pub fn installed(obs: &HostObserved) -> bool {
    obs.dir(SBIN)
        .is_some_and(|l| l.iter().any(|n| n == "irqbalance"))
}

/// The value the file sets, as a CPU set (`None`: unset or not a CPU list).
fn value(obs: &HostObserved, file: IrqbalanceFile) -> (Option<&str>, Option<String>) {
    let content = obs.file(file.file());
    (content, content.and_then(current).filter(|v| !v.is_empty()))
}

/// Rollback: the ban list as it was before an apply (`None`: the key is removed).
pub fn plan_restore(
    file: IrqbalanceFile,
    banned: Option<&CpuSet>,
    obs: &HostObserved,
    b: &mut Builder,
) {
    let (content, now) = value(obs, file);
    let same = match (&now, banned) {
        (None, None) => true,
        (Some(v), Some(b)) => v.parse::<CpuSet>().ok().as_ref() == Some(b),
        _ => false,
    };
    if !same {
        change(file, banned, content, now, b);
    }
}

fn change(
    file: IrqbalanceFile,
    banned: Option<&CpuSet>,
    content: Option<&str>,
    now: Option<String>,
    b: &mut Builder,
) {
    b.change(HostChange {
        path: path(),
        before: now,
        after: banned.map(CpuSet::to_string),
        effect: Effect::Live,
    });
    b.post(HostOp::Irqbalance {
        file,
        banned: banned.cloned(),
        before: content.map(content_hash),
    });
}

pub fn plan(reserved: &CpuSet, obs: &HostObserved, b: &mut Builder) {
    let Some(online) = online(obs) else {
        b.issue(
            yaml("irqs"),
            format!(
                "/{} is missing or unreadable: the CPUs irqbalance must avoid are unknown",
                super::isolate::CPU_ONLINE
            ),
        );
        return;
    };
    let Some(banned) = online.without(reserved) else {
        return; // every CPU is reserved: nothing to ban
    };
    let Some(file) = which(obs) else {
        b.note("cpu_pool.isolate.irqs: irqbalance is not installed (no /usr/sbin/irqbalance): no ban list written".into());
        return;
    };
    let (content, now) = value(obs, file);
    if now
        .as_deref()
        .and_then(|v| v.parse::<CpuSet>().ok())
        .as_ref()
        == Some(&banned)
    {
        return;
    }
    change(file, Some(&banned), content, now, b);
    if installed(obs) {
        b.post(HostOp::RestartIrqbalance);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> CpuSet {
        s.parse().unwrap()
    }

    #[test]
    fn only_the_key_changes_and_everything_else_stays_byte_for_byte() {
        let debian = "# irqbalance\n#IRQBALANCE_BANNED_CPULIST=\n  export IRQBALANCE_BANNED_CPULIST=\"3\"  \r\nOPTIONS=\"--x\"\nIRQBALANCE_BANNED_CPULIST=2 # later\nlast";
        assert_eq!(current(debian).as_deref(), Some("2"));
        let out = edit(Some(debian), Some(&set("1-3")));
        assert_eq!(
            out,
            "# irqbalance\n#IRQBALANCE_BANNED_CPULIST=\n  export IRQBALANCE_BANNED_CPULIST=1-3\nOPTIONS=\"--x\"\nIRQBALANCE_BANNED_CPULIST=1-3\nlast"
        );
        assert_eq!(current(&out).as_deref(), Some("1-3"));
        assert_eq!(
            edit(Some("A=1"), Some(&set("1"))),
            "A=1\nIRQBALANCE_BANNED_CPULIST=1\n"
        );
        assert_eq!(edit(None, Some(&set("1"))), "IRQBALANCE_BANNED_CPULIST=1\n");
        // Rollback to a file without the key: only its lines go.
        assert_eq!(
            edit(Some(&out), None),
            "# irqbalance\n#IRQBALANCE_BANNED_CPULIST=\nOPTIONS=\"--x\"\nlast"
        );
        assert_eq!(current("#IRQBALANCE_BANNED_CPULIST=1\n"), None);
        assert_eq!(current("IRQBALANCE_BANNED_CPULISTX=1\n"), None);
        assert_eq!(
            current("IRQBALANCE_BANNED_CPULIST='0-1'\n").as_deref(),
            Some("0-1")
        );
    }
}
