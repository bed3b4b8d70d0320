//! Validated sizes: huge page sizes and memory amounts.
//!
//! Invariant: sizes are compared by value in KiB, never by their text: `2M`, `2048K`,
//! `2048KiB` and libvirt's `<page size='2' unit='M'/>` are the same [`PageSize`].

use std::fmt;
use std::str::FromStr;

/// Why a size was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("`{0}` is not a size, expected a number with a unit such as 2M, 1G or 2048K")]
    Malformed(String),
    #[error("unknown unit `{0}`, expected one of b, K, KiB, M, MiB, G, GiB, T, TiB (libvirt also accepts KB, MB, ...)")]
    Unit(String),
    #[error("{0} KiB is not a supported huge page size, expected 2M (2048K) or 1G (1048576K)")]
    PageSize(u64),
    #[error("size overflows")]
    Overflow,
}

/// Converts a (value, libvirt unit) pair to KiB. libvirt units: b/bytes, KB (1000), k/KiB (1024), ...
pub fn to_kib(value: u64, unit: &str) -> Result<u64, SizeError> {
    let (mult_bytes, _) = unit_bytes(unit)?;
    let bytes = (value as u128) * mult_bytes;
    let kib = bytes / 1024;
    u64::try_from(kib).map_err(|_| SizeError::Overflow)
}

fn unit_bytes(unit: &str) -> Result<(u128, ()), SizeError> {
    let u = unit.trim();
    let m: u128 = match u {
        "" | "k" | "K" | "KiB" | "kiB" | "Ki" => 1024,
        "b" | "B" | "bytes" => 1,
        "KB" | "kB" => 1000,
        "M" | "m" | "MiB" | "Mi" => 1024 * 1024,
        "MB" => 1000 * 1000,
        "G" | "g" | "GiB" | "Gi" => 1 << 30,
        "GB" => 1_000_000_000,
        "T" | "t" | "TiB" | "Ti" => 1 << 40,
        "TB" => 1_000_000_000_000,
        other => return Err(SizeError::Unit(other.to_string())),
    };
    Ok((m, ()))
}

/// Parses `2M`, `1G`, `2048K`, `1048576KiB`, `512` (KiB) into KiB.
pub fn parse_kib(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    if n.is_empty() {
        return Err(SizeError::Malformed(s.to_string()));
    }
    let v: u64 = n.parse().map_err(|_| SizeError::Overflow)?;
    to_kib(v, unit)
}

/// A huge page size the x86 kernel supports: 2 MiB or 1 GiB.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct PageSize(u64);

impl TryFrom<String> for PageSize {
    type Error = SizeError;
    fn try_from(s: String) -> Result<Self, SizeError> {
        s.parse()
    }
}

impl From<PageSize> for String {
    fn from(p: PageSize) -> String {
        p.to_string()
    }
}

impl schemars::JsonSchema for PageSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PageSize".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(g)
    }
}

impl PageSize {
    pub const TWO_MIB: PageSize = PageSize(2048);
    pub const ONE_GIB: PageSize = PageSize(1048576);

    pub fn from_kib(kib: u64) -> Result<PageSize, SizeError> {
        match kib {
            2048 | 1048576 => Ok(PageSize(kib)),
            other => Err(SizeError::PageSize(other)),
        }
    }

    pub fn kib(self) -> u64 {
        self.0
    }

    /// The sysfs directory name: `hugepages-2048kB`.
    pub fn sysfs_dir(self) -> String {
        format!("hugepages-{}kB", self.0)
    }
}

impl FromStr for PageSize {
    type Err = SizeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PageSize::from_kib(parse_kib(s)?)
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1048576 => f.write_str("1G"),
            2048 => f.write_str("2M"),
            k => write!(f, "{k}K"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_by_value() {
        for s in ["2M", "2048K", "2048KiB", "2MiB", "2048"] {
            assert_eq!(s.parse::<PageSize>().unwrap(), PageSize::TWO_MIB, "{s}");
        }
        for s in ["1G", "1048576K", "1GiB", "1024M"] {
            assert_eq!(s.parse::<PageSize>().unwrap(), PageSize::ONE_GIB, "{s}");
        }
        assert_eq!("4K".parse::<PageSize>(), Err(SizeError::PageSize(4)));
        assert!("2X".parse::<PageSize>().is_err());
        assert!("M".parse::<PageSize>().is_err());
        assert!("99999999999999999999999G".parse::<PageSize>().is_err());
        assert_eq!(to_kib(2, "M").unwrap(), 2048);
        assert_eq!(to_kib(2097152, "b").unwrap(), 2048);
        assert_eq!(PageSize::ONE_GIB.to_string(), "1G");
        assert_eq!(PageSize::TWO_MIB.sysfs_dir(), "hugepages-2048kB");
    }
}
