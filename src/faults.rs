//! Deterministic fault injection for the test suite (feature `fault-injection`).
//!
//! Invariant: without the feature every [`point`] is an empty inline function, so release
//! builds carry no hook. With it, `KVMTUNE_FAULT=<point>:<k>` kills the process with SIGKILL
//! right after the k-th time (1-based) execution passes `<point>`; any other value, or no
//! variable, does nothing. Points: `backup` (apply record stored), `host-write` (a host file
//! written and read back), `host-command` (a host command ran), `define` (a guest defined
//! and verified), `live` (a live guest change made), `lock-file` (the pin lock written).

/// Where execution passes a named point.
#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    use std::sync::Mutex;
    static COUNTS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

    let Ok(spec) = std::env::var("KVMTUNE_FAULT") else {
        return;
    };
    let Some((want, k)) = spec.split_once(':') else {
        return;
    };
    let Ok(k) = k.parse::<u64>() else { return };
    if want != name {
        return;
    }

    let n = {
        let mut c = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
        match c.iter_mut().find(|(p, _)| p == name) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                c.push((name.to_string(), 1));
                1
            }
        }
    };
    if n == k {
        // SAFETY: kill(2) on our own pid with a constant signal.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Where execution passes a named point (no-op: built without `fault-injection`).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}
