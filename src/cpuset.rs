//! `CpuSet`: a validated set of host CPU (or NUMA node) numbers.
//!
//! Invariant: a `CpuSet` is the *meaning* of a libvirt cpuset string, not its text:
//! `0-3`, `0,1,2,3` and `0-4,^4` are the same value. Parsing rejects malformed ranges
//! (`0-x`, `3-1`), empty results and numbers above [`MAX_CPU`]; `Display` prints the
//! canonical compact form (`0-3,8-11`), which is what kvmtune writes.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Highest CPU / node number accepted (libvirt's own limit is VIR_DOMAIN_CPUMASK_LEN = 16384).
pub const MAX_CPU: u32 = 16383;

/// A non-empty set of CPU or NUMA node numbers.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct CpuSet(BTreeSet<u32>);

/// Why a cpuset string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuSetError {
    #[error("empty cpuset")]
    Empty,
    #[error("`{0}` is not a CPU number, expected N, N-M or ^N")]
    BadNumber(String),
    #[error("range `{0}` is reversed (start above end)")]
    Reversed(String),
    #[error("CPU {0} is above the maximum {MAX_CPU}")]
    TooLarge(u32),
    #[error("`{0}` excludes every CPU it lists")]
    AllExcluded(String),
}

fn num(s: &str, whole: &str) -> Result<u32, CpuSetError> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CpuSetError::BadNumber(whole.trim().to_string()));
    }
    let n: u32 = t
        .parse()
        .map_err(|_| CpuSetError::BadNumber(whole.trim().to_string()))?;
    if n > MAX_CPU {
        return Err(CpuSetError::TooLarge(n));
    }
    Ok(n)
}

impl CpuSet {
    /// Builds a set from CPU numbers; `None` when empty.
    pub fn from_cpus(cpus: impl IntoIterator<Item = u32>) -> Option<CpuSet> {
        let s: BTreeSet<u32> = cpus.into_iter().collect();
        (!s.is_empty()).then_some(CpuSet(s))
    }

    /// The CPUs, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, cpu: u32) -> bool {
        self.0.contains(&cpu)
    }

    pub fn highest(&self) -> u32 {
        *self.0.iter().next_back().expect("CpuSet is never empty")
    }

    pub fn is_subset(&self, other: &CpuSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The CPUs of `self` not in `other` (`None` when nothing is left).
    pub fn without(&self, other: &CpuSet) -> Option<CpuSet> {
        CpuSet::from_cpus(self.0.difference(&other.0).copied())
    }

    /// The CPUs in both (`None` when they are disjoint).
    pub fn intersection(&self, other: &CpuSet) -> Option<CpuSet> {
        CpuSet::from_cpus(self.0.intersection(&other.0).copied())
    }

    pub fn union(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.union(&other.0).copied().collect())
    }

    pub fn intersects(&self, other: &CpuSet) -> bool {
        !self.0.is_disjoint(&other.0)
    }

    /// The kernel's hex bitmap form (`/proc/irq/default_smp_affinity`, workqueue `cpumask`):
    /// 32-bit groups, most significant first, comma-separated (`ff`, `1,00000000`).
    pub fn to_hex_mask(&self) -> String {
        let groups = (self.highest() / 32 + 1) as usize;
        let mut words = vec![0u32; groups];
        for c in self.iter() {
            words[(c / 32) as usize] |= 1 << (c % 32);
        }
        let mut out = format!("{:x}", words[groups - 1]);
        for w in words[..groups - 1].iter().rev() {
            out.push_str(&format!(",{w:08x}"));
        }
        out
    }

    /// Parses the kernel's hex bitmap form (leading zero groups allowed); `None` when it is
    /// malformed, names a CPU above [`MAX_CPU`] or is all zeros.
    pub fn from_hex_mask(s: &str) -> Option<CpuSet> {
        let s = s.trim();
        let groups: Vec<&str> = s.split(',').collect();
        if groups.len() > (MAX_CPU as usize / 32 + 1) {
            return None;
        }
        let mut cpus = Vec::new();
        for (i, g) in groups.iter().rev().enumerate() {
            if g.is_empty() || g.len() > 8 || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let w = u32::from_str_radix(g, 16).ok()?;
            for bit in 0..32 {
                if w & (1 << bit) != 0 {
                    let c = i as u32 * 32 + bit;
                    if c > MAX_CPU {
                        return None;
                    }
                    cpus.push(c);
                }
            }
        }
        CpuSet::from_cpus(cpus)
    }
}

impl FromStr for CpuSet {
    type Err = CpuSetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(CpuSetError::Empty);
        }
        let mut set = BTreeSet::new();
        let mut excluded = BTreeSet::new();
        for part in s.split(',') {
            let p = part.trim();
            if let Some(ex) = p.strip_prefix('^') {
                excluded.insert(num(ex, part)?);
            } else if let Some((a, b)) = p.split_once('-') {
                let (a, b) = (num(a, part)?, num(b, part)?);
                if a > b {
                    return Err(CpuSetError::Reversed(p.to_string()));
                }
                set.extend(a..=b);
            } else {
                set.insert(num(p, part)?);
            }
        }
        for e in &excluded {
            set.remove(e);
        }
        if set.is_empty() {
            return Err(CpuSetError::AllExcluded(s.trim().to_string()));
        }
        Ok(CpuSet(set))
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut iter = self.0.iter().copied().peekable();
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end = iter.next().expect("peeked");
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

/// In saved plans and records a CPU set is its canonical text (`0-3,8`), parsed back with the
/// same checks as configuration.
impl serde::Serialize for CpuSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for CpuSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for CpuSet {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CpuSet".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(g)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_masks_round_trip() {
        for (set, hex) in [
            ("0", "1"),
            ("0-7", "ff"),
            ("1,3", "a"),
            ("32", "1,00000000"),
            ("0,33", "2,00000001"),
        ] {
            let c: super::CpuSet = set.parse().unwrap();
            assert_eq!(c.to_hex_mask(), hex, "{set}");
            assert_eq!(super::CpuSet::from_hex_mask(hex), Some(c.clone()), "{hex}");
        }
        assert_eq!(
            super::CpuSet::from_hex_mask("00000000,000000ff"),
            "0-7".parse().ok()
        );
        for bad in ["", "0", "g", "1,", "123456789", "0,0"] {
            assert_eq!(super::CpuSet::from_hex_mask(bad), None, "{bad}");
        }
    }

    use super::*;

    fn p(s: &str) -> CpuSet {
        s.parse().unwrap()
    }

    #[test]
    fn equal_by_meaning() {
        assert_eq!(p("0-3"), p("0,1,2,3"));
        assert_eq!(p("0-4,^4"), p("3,2,1,0"));
        assert_eq!(p(" 0-7,^5 ").to_string(), "0-4,6-7");
        assert_eq!(p("8,0-1,9").to_string(), "0-1,8-9");
        assert_eq!(p("5").to_string(), "5");
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(
            "0-x".parse::<CpuSet>(),
            Err(CpuSetError::BadNumber("0-x".into()))
        );
        assert_eq!(
            "3-1".parse::<CpuSet>(),
            Err(CpuSetError::Reversed("3-1".into()))
        );
        assert_eq!("".parse::<CpuSet>(), Err(CpuSetError::Empty));
        assert_eq!(
            "1,^1".parse::<CpuSet>(),
            Err(CpuSetError::AllExcluded("1,^1".into()))
        );
        assert!("1,,2".parse::<CpuSet>().is_err());
        assert!("-1".parse::<CpuSet>().is_err());
        assert!("+1".parse::<CpuSet>().is_err());
        assert!("99999999999999".parse::<CpuSet>().is_err());
        assert_eq!("16384".parse::<CpuSet>(), Err(CpuSetError::TooLarge(16384)));
        assert!("0-16383".parse::<CpuSet>().is_ok());
    }

    #[test]
    fn display_parses_back() {
        for s in ["0", "0-1", "0,2,4", "1-3,5,7-9,^8", "0-16383"] {
            let a = p(s);
            assert_eq!(p(&a.to_string()), a, "{s}");
        }
    }
}
