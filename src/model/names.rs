//! Validated names: every string kvmtune turns into a path, an argument or a libvirt lookup.
//!
//! Invariant: a value of these types cannot name a path outside its directory (no `/`, no
//! `..`, no control characters) nor start like a command-line option; deserialisation
//! validates exactly as the constructors do, so a saved plan or record cannot smuggle one in.

use std::fmt;

/// `s` safe to echo in a message: control characters escaped, at most `max` characters.
pub fn printable(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars().take(max) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// Declares a validated string newtype with serde (`try_from`/`into` String) and JSON Schema.
macro_rules! name_type {
    ($(#[$m:meta])* $t:ident, $check:path) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $t(String);

        impl $t {
            pub fn new(s: &str) -> Result<$t, String> {
                $check(s).map(|s| $t(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $t::new(&s)
            }
        }

        impl From<$t> for String {
            fn from(d: $t) -> String {
                d.0
            }
        }

        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
            fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
                String::json_schema(g)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn domain_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("guest name is empty".into());
    }
    if s.len() > 255 {
        return Err("guest name is longer than 255 bytes".into());
    }
    if s.contains('/') || s.chars().any(char::is_control) {
        return Err(format!(
            "`{}` is not a valid libvirt domain name (no `/` or control characters)",
            s.escape_debug()
        ));
    }
    Ok(s.to_string())
}

name_type!(
    /// A libvirt domain name: non-empty, no `/`, no control characters.
    DomainName,
    domain_name
);

/// A name that becomes a file or directory name: letters, digits, `-`, `_`, `.`, not `.`/`..`,
/// not starting with `-` (it could read as an option), at most `max` bytes.
fn file_safe_name(s: &str, max: usize, what: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= max
        && !s.starts_with('-')
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{}` is not a {what} (letters, digits, `-`, `_`, `.`)",
            s.escape_debug()
        ))
    }
}

fn network_name(s: &str) -> Result<String, String> {
    file_safe_name(s, 255, "libvirt network name")
}

name_type!(
    /// A libvirt network name: letters, digits, `-`, `_`, `.` (libvirt forms a file name from it).
    NetworkName,
    network_name
);

fn sysctl_key(s: &str) -> Result<String, String> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '@'))
    };
    if s.len() <= 255 && s.split('.').all(ok_part) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{}` is not a sysctl key, expected dotted names like vm.swappiness",
            s.escape_debug()
        ))
    }
}

name_type!(
    /// A sysctl key in dotted form (`net.ipv4.conf.all.arp_filter`), safe to map under /proc/sys.
    SysctlKey,
    sysctl_key
);

impl SysctlKey {
    /// The path below /proc/sys: `vm/swappiness`.
    pub fn proc_path(&self) -> String {
        self.0.replace('.', "/")
    }
}

fn mac(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "`{}` is not a MAC address, expected six hex pairs like 52:54:00:12:34:56 (or \"*\")",
            s.escape_debug()
        ))
    }
}

name_type!(
    /// A MAC address, lowercase canonical `52:54:00:aa:bb:cc`.
    MacAddr,
    mac
);

fn if_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() < 16
        && s != "."
        && s != ".."
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{}` is not a network interface name (1-15 characters, no `/`)",
            s.escape_debug()
        ))
    }
}

name_type!(
    /// A network interface name as the kernel allows it (`/sys/class/net/<name>`).
    IfName,
    if_name
);

fn module_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 55
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        // /sys/module spells it with `_`.
        Ok(s.replace('-', "_"))
    } else {
        Err(format!(
            "`{}` is not a kernel module name",
            s.escape_debug()
        ))
    }
}

name_type!(
    /// A kernel module name in /sys/module's spelling (`-` → `_`): the argument of modprobe.
    ModuleName,
    module_name
);

fn profile_name(s: &str) -> Result<String, String> {
    file_safe_name(s, 128, "tuned profile name")
}

name_type!(
    /// A tuned profile name (a directory under /usr/lib/tuned): the argument of `tuned-adm profile`.
    ProfileName,
    profile_name
);

fn uuid(s: &str) -> Result<String, String> {
    let groups: Vec<&str> = s.split('-').collect();
    let ok = groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("`{}` is not a UUID", s.escape_debug()))
    }
}

name_type!(
    /// A domain UUID, lowercase `8-4-4-4-12` hex.
    Uuid,
    uuid
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_paths_and_options() {
        assert!(ProfileName::new(".hidden").is_ok());
        for bad in ["", "..", "a/b", "-x", "a\nb"] {
            assert!(IfName::new(bad).is_err(), "{bad:?}");
            assert!(ModuleName::new(bad).is_err(), "{bad:?}");
            assert!(ProfileName::new(bad).is_err(), "{bad:?}");
        }
        assert!(SysctlKey::new("vm..x").is_err());
        assert!(SysctlKey::new("vm/../x").is_err());
        assert_eq!(ModuleName::new("vhost-net").unwrap().as_str(), "vhost_net");
        assert!(Uuid::new("c7a5fdbd-edaf-9455-926a-d65c16db1809").is_ok());
        assert!(Uuid::new("../../x").is_err());
        let j: Result<IfName, _> = serde_json::from_str("\"../../etc\"");
        assert!(j.is_err());
    }
}
