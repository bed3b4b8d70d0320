//! The host-file seam: every read and write of a file below `--root` goes through here.
//!
//! Invariants:
//! - Reads open non-blocking and accept only regular files (kernel attributes under /proc
//!   and /sys are regular files): a FIFO, socket or device in place of a host file is an
//!   error naming it, never a hang. A read is bounded ([`MAX_READ`]).
//! - Kernel files are written in place (one `write()`, never created, the last component
//!   never a symlink).
//! - Files kvmtune owns are replaced atomically: a temp file with an unpredictable name,
//!   created exclusively (`O_EXCL|O_NOFOLLOW`) with its final mode, fsynced, renamed over the
//!   target (a symlink planted at the target is replaced, never followed). Below the root,
//!   every directory on the way must be a real directory, not a symlink ([`real_dir`]).

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path};

/// The most kvmtune reads of one file (a kernel attribute, a config, a saved plan, a record).
pub const MAX_READ: u64 = 64 << 20;

/// How host files are written and read back. [`RealFiles`] is the only production
/// implementation; the trait is the seam through which tests make the "kernel" keep a smaller
/// huge page count than requested, which the real kernel does only after taking all free memory.
pub trait HostFiles {
    /// Writes a kernel file in place.
    fn write(&self, file: &Path, content: &str) -> std::io::Result<()>;
    fn read(&self, file: &Path) -> std::io::Result<String>;
    /// Replaces a whole file atomically, creating its directory when missing.
    fn replace(&self, file: &Path, content: &str) -> std::io::Result<()> {
        atomic_replace(file, content, 0o644)
    }
}

/// Plain file I/O: kernel files take the value in one write() and are never created.
pub struct RealFiles;

impl HostFiles for RealFiles {
    fn write(&self, file: &Path, content: &str) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(file)?;
        regular(&f, file)?;
        f.write_all(content.as_bytes())
    }

    fn read(&self, file: &Path) -> std::io::Result<String> {
        read(file)
    }
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

/// Refuses what is not a regular file.
fn regular(f: &std::fs::File, path: &Path) -> std::io::Result<()> {
    let m = f.metadata()?;
    if m.file_type().is_file() {
        Ok(())
    } else {
        Err(invalid(format!(
            "{} is not a regular file (a {}): refusing to use it",
            path.display(),
            kind(&m)
        )))
    }
}

fn kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else if t.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}

/// Reads a regular file (non-blocking open, bounded).
pub fn read(p: &Path) -> std::io::Result<String> {
    read_flags(p, libc::O_NONBLOCK)
}

/// [`read_opt`] of a file found by listing a directory: a symlink there is refused, not followed.
pub fn read_opt_nofollow(p: &Path) -> std::io::Result<Option<String>> {
    match read_flags(p, libc::O_NONBLOCK | libc::O_NOFOLLOW) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(invalid(format!(
            "{} is a symlink: refusing to follow it",
            p.display()
        ))),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_flags(p: &Path, flags: i32) -> std::io::Result<String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(p)?;
    regular(&f, p)?;
    let mut s = String::new();
    let n = f.take(MAX_READ + 1).read_to_string(&mut s)?;
    if n as u64 > MAX_READ {
        return Err(invalid(format!(
            "{} is larger than {} MiB: refusing to read it",
            p.display(),
            MAX_READ >> 20
        )));
    }
    Ok(s)
}

/// Reads a file, `None` when it does not exist.
pub fn read_opt(p: &Path) -> std::io::Result<Option<String>> {
    match read(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Not found, or a path through a regular file (`active_profile/tuned.conf`).
fn absent(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// Names in a directory, sorted; `None` when it does not exist.
pub fn list_opt(p: &Path) -> std::io::Result<Option<Vec<String>>> {
    match std::fs::read_dir(p) {
        Ok(rd) => {
            let mut v = Vec::new();
            for e in rd {
                v.push(e?.file_name().to_string_lossy().into_owned());
            }
            v.sort();
            Ok(Some(v))
        }
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// 16 random hex digits from the kernel (for temp names nobody can predict).
pub fn random_hex() -> String {
    let mut b = [0u8; 8];
    // SAFETY: getrandom fills the buffer we own; on failure we fall back below.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        b = (t ^ ((std::process::id() as u64) << 32)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Makes `at` a real directory: creates it (mode `mode`) when missing, refuses a symlink or
/// anything else in its place.
fn real_component(at: &Path, mode: u32) -> std::io::Result<()> {
    match std::fs::symlink_metadata(at) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(m) => Err(invalid(format!(
            "{} is a {}, not a directory: refusing to write below it",
            at.display(),
            kind(&m)
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match std::fs::DirBuilder::new().mode(mode).create(at) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => real_component(at, mode),
                r => r,
            }
        }
        Err(e) => Err(e),
    }
}

/// Temp file next to `file` (same filesystem), fsync, rename over `file`, with `mode`. For a
/// path the user named (`--out`, `--lock-file`); below the root, [`real_dir_below`] first.
pub fn atomic_replace(file: &Path, content: &str, mode: u32) -> std::io::Result<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.kvmtune-{}", random_hex()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        // The umask may have taken bits away: set exactly `mode`, on the descriptor.
        use std::os::unix::fs::PermissionsExt;
        if f.metadata()?.mode() & 0o7777 != mode {
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Makes every directory of `dir` below `root` a real one, creating missing ones (the root
/// itself may be anything the user named, a symlink included).
pub fn real_dir_below(root: &Path, dir: &Path) -> std::io::Result<()> {
    let rel = dir
        .strip_prefix(root)
        .map_err(|_| invalid(format!("{} is not below {}", dir.display(), root.display())))?;
    let mut at = root.to_path_buf();
    for c in rel.components() {
        match c {
            Component::Normal(n) => at.push(n),
            _ => return Err(invalid(format!("{} is not a plain path", dir.display()))),
        }
        real_component(&at, 0o755)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_not_waited_on() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_opt(&p).unwrap_err();
        assert!(
            e.to_string().contains("is not a regular file (a FIFO)"),
            "{e}"
        );
        // Without a reader the non-blocking open fails (ENXIO); with one, fstat refuses it.
        assert!(RealFiles.write(&p, "1").is_err());
    }

    #[test]
    fn replace_never_follows_a_planted_symlink_and_sets_the_mode() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "secret").unwrap();
        let target = t.path().join("etc/out.conf");
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        real_dir_below(t.path(), &t.path().join("etc")).unwrap();
        atomic_replace(&target, "new\n", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret");
        let m = std::fs::symlink_metadata(&target).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!(m.mode() & 0o777, 0o600);
        // A symlinked directory below the root is refused.
        std::fs::create_dir_all(t.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(t.path().join("elsewhere"), t.path().join("var")).unwrap();
        let e = real_dir_below(t.path(), &t.path().join("var/lib")).unwrap_err();
        assert!(
            e.to_string().contains("is a symlink, not a directory"),
            "{e}"
        );
        assert!(!t.path().join("elsewhere/lib").exists());
    }

    #[test]
    fn temp_names_are_unpredictable() {
        assert_ne!(random_hex(), random_hex());
        assert_eq!(random_hex().len(), 16);
    }
}
