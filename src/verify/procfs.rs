//! Reading a running guest's QEMU process below the root: its pid file, threads and mappings.
//!
//! Invariant: read-only; every error names the file. A thread that exits while being read is
//! skipped (QEMU starts and ends worker threads at any time).

use std::io::ErrorKind;
use std::path::Path;

use super::{Mapping, ThreadInfo};
use crate::cpuset::CpuSet;

type ReadError = (String, std::io::Error);

/// `PF_USER_WORKER` (include/linux/sched.h): a thread the kernel created in a user process
/// (vhost workers, KVM's NX huge page recovery).
const PF_USER_WORKER: u64 = 0x0000_4000;

fn read(root: &Path, rel: &str) -> Result<String, ReadError> {
    let p = root.join(rel);
    std::fs::read_to_string(&p).map_err(|e| (p.display().to_string(), e))
}

/// The QEMU pid libvirt wrote to `run/libvirt/qemu/<name>.pid`.
pub fn qemu_pid(root: &Path, name: &str) -> Result<u32, ReadError> {
    let rel = format!("run/libvirt/qemu/{name}.pid");
    let text = read(root, &rel)?;
    text.trim().parse().map_err(|_| {
        (
            root.join(&rel).display().to_string(),
            std::io::Error::new(ErrorKind::InvalidData, format!("not a pid: {text:?}")),
        )
    })
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// The `flags` field of `/proc/PID/task/TID/stat` (the 9th field; `comm` may hold spaces).
fn stat_flags(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(6)?.parse().ok()
}

/// Every thread of `pid`: name, CPU and memory-node affinity, and whether the kernel made it.
pub fn threads(root: &Path, pid: u32) -> Result<Vec<ThreadInfo>, ReadError> {
    let dir = root.join(format!("proc/{pid}/task"));
    let entries = std::fs::read_dir(&dir).map_err(|e| (dir.display().to_string(), e))?;
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|e| (dir.display().to_string(), e))?;
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let base = format!("proc/{pid}/task/{tid}");
        let vanished =
            |r: &ReadError| r.1.kind() == ErrorKind::NotFound || r.1.raw_os_error() == Some(3);
        let (comm, status, stat) = match (
            read(root, &format!("{base}/comm")),
            read(root, &format!("{base}/status")),
            read(root, &format!("{base}/stat")),
        ) {
            (Ok(c), Ok(s), Ok(st)) => (c, s, st),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                if vanished(&e) {
                    continue;
                }
                return Err(e);
            }
        };
        let set = |key| status_field(&status, key).and_then(|v| v.parse::<CpuSet>().ok());
        out.push(ThreadInfo {
            tid,
            comm: comm.trim_end_matches('\n').to_string(),
            cpus_allowed: set("Cpus_allowed_list"),
            mems_allowed: set("Mems_allowed_list"),
            kernel_worker: stat_flags(&stat).is_some_and(|f| f & PF_USER_WORKER != 0),
        });
    }
    out.sort_by_key(|t| t.tid);
    Ok(out)
}

/// The mappings of `pid` from `smaps` (size, kernel page size), with the `numa_maps` policy.
pub fn mappings(root: &Path, pid: u32) -> Result<Vec<Mapping>, ReadError> {
    let smaps = read(root, &format!("proc/{pid}/smaps"))?;
    let mut out = parse_smaps(&smaps);
    // numa_maps is absent on kernels without NUMA; the policy is then unknown.
    if let Ok(numa) = read(root, &format!("proc/{pid}/numa_maps")) {
        for line in numa.lines() {
            let mut w = line.split_whitespace();
            let (Some(addr), Some(policy)) = (w.next(), w.next()) else {
                continue;
            };
            let Ok(start) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            if let Some(m) = out.iter_mut().find(|m| m.start == start) {
                m.policy = Some(policy.to_string());
            }
        }
    }
    Ok(out)
}

/// Parses `/proc/PID/smaps`: one [`Mapping`] per header line with its `Size` and
/// `KernelPageSize`.
pub fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(_)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                out.push(Mapping {
                    start,
                    size_kib: 0,
                    kernel_page_kib: 4,
                    policy: None,
                });
                continue;
            }
        }
        let kib = |key: &str| {
            line.strip_prefix(key)
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(m) = out.last_mut() {
            if let Some(v) = kib("Size:") {
                m.size_kib = v;
            } else if let Some(v) = kib("KernelPageSize:") {
                m.kernel_page_kib = v;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_flags_skip_comm_with_spaces() {
        let stat = "1662 (CPU 0/KVM) S 1 1655 1655 0 -1 4194368 0 0";
        assert_eq!(stat_flags(stat), Some(4194368));
    }

    #[test]
    fn smaps_sizes_and_page_sizes() {
        let text =
            "7f0000000000-7f0004000000 rw-s 00000000 00:2d 1234 /dev/hugepages/libvirt/qemu/x\n\
                    Size:              65536 kB\n\
                    KernelPageSize:     2048 kB\n\
                    MMUPageSize:        2048 kB\n\
                    VmFlags: rd wr sh mr mw me ms de ht sd\n\
                    55d000000000-55d000001000 r--p 00000000 fd:00 42 /usr/bin/qemu-system-x86_64\n\
                    Size:                  4 kB\n\
                    KernelPageSize:        4 kB\n";
        let m = parse_smaps(text);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].size_kib, m[0].kernel_page_kib), (65536, 2048));
        assert_eq!((m[1].size_kib, m[1].kernel_page_kib), (4, 4));
        assert_eq!(m[0].start, 0x7f0000000000);
    }
}
