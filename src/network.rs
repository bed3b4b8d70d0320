//! libvirt virtual networks (`networks:`): the declared elements of each declared network's
//! persistent definition, and its autostart flag.
//!
//! Invariant: only declared networks, and of each only the declared elements (`<forward
//! mode>`, `<bridge name>`, `<mtu size>`, the first IPv4 `<ip>`), are planned; everything else
//! of an existing definition is kept byte for byte. Networks are compared by meaning (no
//! `<forward>` is `isolated`, `<forward>` without a mode is `nat`, a netmask is its prefix;
//! what libvirt adds — uuid, mac, stp, dhcp — is never compared). kvmtune defines networks
//! and sets autostart; it never starts, restarts, destroys or undefines one. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::config::raw::{NetForward, RawNetwork};
use crate::config::source::KeyPath;
use crate::libvirt::NetworkObserved;
use crate::model::{IfName, NetworkName};
use crate::xmltree::Document;

/// `ADDRESS/PREFIX` of the host on an IPv4 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Ipv4Cidr, String> {
        let bad = || {
            format!(
                "`{}` is not ADDRESS/PREFIX like 192.168.100.1/24",
                s.escape_debug()
            )
        };
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if !(1..=30).contains(&prefix) {
            return Err(format!("prefix /{prefix} leaves no room for hosts (1-30)"));
        }
        Ok(Ipv4Cidr { addr, prefix })
    }
}

/// The prefix length of a contiguous IPv4 netmask.
fn netmask_prefix(mask: &str) -> Option<u8> {
    let m = u32::from(mask.parse::<Ipv4Addr>().ok()?);
    (m.leading_ones() + m.trailing_zeros() == 32).then_some(m.leading_ones() as u8)
}

/// One declared network, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkDesired {
    pub bridge: Option<IfName>,
    pub forward: Option<NetForward>,
    pub mtu: Option<u32>,
    pub ip: Option<Ipv4Cidr>,
    pub autostart: Option<bool>,
    /// The SR-IOV physical function of a `forward: hostdev` pool.
    pub pf: Option<IfName>,
    /// `networks.<name>`, for locating errors.
    pub key_path: KeyPath,
}

fn key(base: &KeyPath, k: &str) -> KeyPath {
    let mut v = base.clone();
    v.push(k.to_string());
    v
}

/// Validates `networks.<name>`; every problem is returned with its key.
pub fn validate(
    name: &str,
    raw: &RawNetwork,
) -> Result<(NetworkName, NetworkDesired), Vec<(KeyPath, String)>> {
    let base: KeyPath = vec!["networks".into(), name.to_string()];
    let mut errs = Vec::new();
    let name = NetworkName::new(name)
        .map_err(|e| errs.push((base.clone(), e)))
        .ok();
    let bridge = raw.bridge.as_deref().and_then(|b| {
        IfName::new(b)
            .map_err(|e| errs.push((key(&base, "bridge"), e)))
            .ok()
    });
    let ip = raw.ip.as_deref().and_then(|s| {
        s.parse::<Ipv4Cidr>()
            .map_err(|e| errs.push((key(&base, "ip"), e)))
            .ok()
    });
    let pf = raw.pf.as_deref().and_then(|b| {
        IfName::new(b)
            .map_err(|e| errs.push((key(&base, "pf"), e)))
            .ok()
    });
    let hostdev = raw.forward == Some(NetForward::Hostdev);
    if hostdev && raw.pf.is_none() {
        errs.push((
            key(&base, "forward"),
            "forward: hostdev needs `pf:` (the SR-IOV physical function)".into(),
        ));
    }
    if !hostdev && raw.pf.is_some() {
        errs.push((key(&base, "pf"), "pf is for forward: hostdev only".into()));
    }
    if hostdev {
        for (k, set) in [
            ("bridge", raw.bridge.is_some()),
            ("mtu", raw.mtu.is_some()),
            ("ip", raw.ip.is_some()),
        ] {
            if set {
                errs.push((
                    key(&base, k),
                    format!("a forward: hostdev pool has no {k} (the guest drives the VF itself)"),
                ));
            }
        }
    }
    if let Some(m) = raw.mtu {
        if !(68..=65535).contains(&m) {
            errs.push((key(&base, "mtu"), format!("mtu {m} is outside 68-65535")));
        }
    }
    if raw.forward == Some(NetForward::Bridge) {
        if raw.bridge.is_none() {
            errs.push((
                key(&base, "forward"),
                "forward: bridge needs `bridge:` (an existing host bridge)".into(),
            ));
        }
        if raw.mtu.is_some() {
            errs.push((
                key(&base, "mtu"),
                "libvirt allows no mtu with forward: bridge (the host bridge's own MTU applies: set host.interfaces.<bridge>.mtu)".into(),
            ));
        }
        if raw.ip.is_some() {
            errs.push((
                key(&base, "ip"),
                "libvirt allows no ip with forward: bridge".into(),
            ));
        }
    }
    match (name, errs.is_empty()) {
        (Some(n), true) => Ok((
            n,
            NetworkDesired {
                bridge,
                forward: raw.forward,
                mtu: raw.mtu,
                ip,
                autostart: raw.autostart,
                pf,
                key_path: base,
            },
        )),
        _ => Err(errs),
    }
}

/// What a network's definition means, for the elements kvmtune manages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkMeaning {
    /// The forward mode as libvirt spells it (`isolated` for no `<forward>`).
    pub forward: String,
    pub bridge: Option<String>,
    pub mtu: Option<String>,
    /// The first IPv4 `<ip>` as `ADDRESS/PREFIX` (netmasks converted).
    pub ip: Option<String>,
    /// `<forward><pf dev=...>`.
    pub pf: Option<String>,
}

/// Reads the managed elements of a network definition.
pub fn read(xml: &str) -> Result<NetworkMeaning, String> {
    let doc = Document::parse(xml).map_err(|e| format!("its definition is not XML: {e}"))?;
    let root = doc.root();
    if doc.name(root) != "network" {
        return Err("its definition is not a <network>".into());
    }
    let forward = match doc.child(root, "forward") {
        None => "isolated".to_string(),
        Some(f) => doc.attr(f, "mode").unwrap_or_else(|| "nat".into()),
    };
    let bridge = doc.child(root, "bridge").and_then(|b| doc.attr(b, "name"));
    let mtu = doc.child(root, "mtu").and_then(|m| doc.attr(m, "size"));
    let ip = first_ipv4(&doc).map(|i| {
        let addr = doc.attr(i, "address").unwrap_or_default();
        let prefix = doc.attr(i, "prefix").or_else(|| {
            doc.attr(i, "netmask")
                .map(|m| netmask_prefix(&m).map_or(m, |p| p.to_string()))
        });
        match prefix {
            Some(p) => format!("{addr}/{p}"),
            None => addr,
        }
    });
    let pf = doc
        .child(root, "forward")
        .and_then(|f| doc.child(f, "pf"))
        .and_then(|p| doc.attr(p, "dev"));
    Ok(NetworkMeaning {
        forward,
        bridge,
        mtu,
        ip,
        pf,
    })
}

fn first_ipv4(doc: &Document) -> Option<crate::xmltree::NodeId> {
    doc.children_named(doc.root(), "ip")
        .into_iter()
        .find(|&i| doc.attr(i, "family").is_none_or(|f| f == "ipv4"))
}

/// One managed element that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetChange {
    /// The YAML key below `networks.<name>`.
    pub field: &'static str,
    pub before: Option<String>,
    pub after: String,
    /// The network runs: libvirt keeps the running configuration until it is restarted.
    pub restart: bool,
}

/// What planning one network gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPlan {
    pub changes: Vec<NetChange>,
    /// The definition to define (`None`: the definition is as declared).
    pub new_xml: Option<String>,
    /// The autostart flag to set.
    pub autostart: Option<bool>,
}

/// The definition kvmtune gives a network that does not exist yet: only declared elements
/// (libvirt fills in uuid, mac and its defaults).
fn fresh(name: &NetworkName) -> String {
    format!("<network>\n  <name>{name}</name>\n</network>\n")
}

/// Plans one declared network against its definition (`None`: not defined). Pure.
pub fn plan_network(
    name: &NetworkName,
    nd: &NetworkDesired,
    obs: Option<&NetworkObserved>,
) -> Result<NetworkPlan, (KeyPath, String)> {
    let base = obs.map_or_else(|| fresh(name), |o| o.xml.clone());
    let active = obs.is_some_and(|o| o.active);
    let at = |k: &str| key(&nd.key_path, k);
    let now = read(&base).map_err(|e| (nd.key_path.clone(), e))?;
    if obs.is_none() {
        let needs_ip = matches!(
            nd.forward,
            Some(NetForward::Nat | NetForward::Route | NetForward::Open)
        );
        if needs_ip && nd.ip.is_none() {
            return Err((
                at("ip"),
                format!(
                    "network {name} does not exist and libvirt defines a {} network only with an address: declare `ip:` (e.g. 192.168.100.1/24)",
                    nd.forward.map_or("", |f| f.as_str())
                ),
            ));
        }
    }
    let mut doc = Document::parse(&base).map_err(|e| (nd.key_path.clone(), e.to_string()))?;
    let root = doc.root();
    let mut changes = Vec::new();
    let mut change = |field, before: Option<String>, after: String| {
        changes.push(NetChange {
            field,
            before,
            after,
            restart: active,
        })
    };
    if let Some(f) = nd.forward {
        if now.forward != f.as_str() {
            change("forward", Some(now.forward.clone()), f.as_str().into());
            match (f, doc.child(root, "forward")) {
                (NetForward::Isolated, Some(el)) => doc.remove(el),
                (NetForward::Isolated, None) => {}
                (f, _) => {
                    let el = doc.ensure_child(root, "forward");
                    doc.set_attr(el, "mode", f.as_str());
                    if f == NetForward::Hostdev && doc.attr(el, "managed").is_none() {
                        // libvirt detaches each VF from its host driver at guest start.
                        doc.set_attr(el, "managed", "yes");
                    }
                }
            }
        }
    }
    if let Some(pf) = &nd.pf {
        if now.pf.as_deref() != Some(pf.as_str()) {
            change("pf", now.pf.clone(), pf.to_string());
            let fw = doc.ensure_child(root, "forward");
            let el = doc.ensure_child(fw, "pf");
            doc.set_attr(el, "dev", pf.as_str());
        }
    }
    if let Some(b) = &nd.bridge {
        if now.bridge.as_deref() != Some(b.as_str()) {
            change("bridge", now.bridge.clone(), b.to_string());
            let el = doc.ensure_child(root, "bridge");
            doc.set_attr(el, "name", b.as_str());
        }
    }
    if let Some(m) = nd.mtu {
        if now.mtu.as_deref() != Some(m.to_string().as_str()) {
            change("mtu", now.mtu.clone(), m.to_string());
            let el = doc.ensure_child(root, "mtu");
            doc.set_attr(el, "size", &m.to_string());
        }
    }
    if let Some(ip) = nd.ip {
        if now.ip.as_deref() != Some(ip.to_string().as_str()) {
            change("ip", now.ip.clone(), ip.to_string());
            let el = first_ipv4(&doc).unwrap_or_else(|| doc.append_element(root, "ip"));
            doc.set_attr(el, "address", &ip.addr.to_string());
            doc.remove_attr(el, "netmask");
            doc.set_attr(el, "prefix", &ip.prefix.to_string());
        }
    }
    let autostart_now = obs.is_some_and(|o| o.autostart);
    let autostart = nd.autostart.filter(|&a| a != autostart_now);
    if let Some(a) = autostart {
        changes.push(NetChange {
            field: "autostart",
            before: obs.map(|_| autostart_now.to_string()),
            after: a.to_string(),
            restart: false,
        });
    }
    let define = obs.is_none() || changes.iter().any(|c| c.field != "autostart");
    Ok(NetworkPlan {
        changes,
        new_xml: define.then(|| doc.to_xml()),
        autostart,
    })
}

/// Why a network action is not what the declared network gives when planned against the
/// recorded definition (`old_xml`, `None`: it did not exist).
pub fn check_action(
    name: &NetworkName,
    nd: &NetworkDesired,
    old_xml: Option<&str>,
    new_xml: Option<&str>,
    autostart: Option<bool>,
) -> Result<(), String> {
    if autostart.is_some() && autostart != nd.autostart {
        return Err("its autostart step is not what the configuration declares".into());
    }
    let obs = old_xml.map(|x| NetworkObserved {
        xml: x.to_string(),
        active: false,
        autostart: false,
    });
    let derived = plan_network(name, nd, obs.as_ref()).map_err(|(_, e)| e)?;
    if derived.new_xml.as_deref() != new_xml {
        return Err(
            "its new definition is not what the configuration gives when applied to its recorded definition (only the declared elements may change)".into(),
        );
    }
    Ok(())
}

/// The managed elements of `stored` that are still not as declared (for verifying a define).
pub fn not_kept(name: &NetworkName, nd: &NetworkDesired, stored: &str) -> Vec<String> {
    let obs = NetworkObserved {
        xml: stored.to_string(),
        active: false,
        autostart: nd.autostart.unwrap_or(false),
    };
    match plan_network(name, nd, Some(&obs)) {
        Ok(p) => p
            .changes
            .iter()
            .map(|c| {
                format!(
                    "{}: wanted {}, libvirt stored {}",
                    c.field,
                    c.after,
                    c.before.as_deref().unwrap_or("nothing")
                )
            })
            .collect(),
        Err((_, e)) => vec![e],
    }
}

/// The networks a domain's interfaces use (`<interface><source network=...>`).
pub fn used_networks(domain_xml: &str) -> BTreeSet<String> {
    let Ok(doc) = Document::parse(domain_xml) else {
        return BTreeSet::new();
    };
    let Some(devices) = doc.child(doc.root(), "devices") else {
        return BTreeSet::new();
    };
    doc.children_named(devices, "interface")
        .into_iter()
        .filter_map(|i| doc.child(i, "source"))
        .filter_map(|s| doc.attr(s, "network"))
        .collect()
}

/// Network name → the running guests attached to it, from their live XML.
pub fn attached(running: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (guest, xml) in running {
        for n in used_networks(xml) {
            out.entry(n).or_default().push(guest.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nd(yaml: &str) -> (NetworkName, NetworkDesired) {
        let raw: RawNetwork = serde_yaml::from_str(yaml).unwrap();
        validate("backup0", &raw).unwrap()
    }

    fn obs(xml: &str, active: bool, autostart: bool) -> NetworkObserved {
        NetworkObserved {
            xml: xml.into(),
            active,
            autostart,
        }
    }

    /// What libvirt 9.0 returns for `<network><name>backup0</name><bridge name='virbr-bk'/>
    /// <mtu size='9000'/></network>` (uuid, stp, delay and mac added).
    const STORED_ISOLATED: &str = "<network>\n  <name>backup0</name>\n  <uuid>b3998f1e-e5f4-4341-bc18-6dd18cfba6b8</uuid>\n  <bridge name='virbr-bk' stp='on' delay='0'/>\n  <mtu size='9000'/>\n  <mac address='52:54:00:4e:c9:17'/>\n</network>\n";

    /// libvirt's NAT network with its netmask, dhcp and an empty-bodied `<ip>`.
    const STORED_NAT: &str = "<network>\n  <name>backup0</name>\n  <uuid>773179f6-18aa-410c-ad6d-7b0996e5f45f</uuid>\n  <forward mode='nat'>\n    <nat>\n      <port start='1024' end='65535'/>\n    </nat>\n  </forward>\n  <bridge name='virbr-bk' stp='on' delay='0'/>\n  <mac address='52:54:00:88:c4:3e'/>\n  <ip address='192.168.231.1' netmask='255.255.255.0'>\n    <dhcp>\n      <range start='192.168.231.2' end='192.168.231.254'/>\n    </dhcp>\n  </ip>\n</network>\n";

    #[test]
    fn libvirt_defaults_are_not_differences() {
        let (n, d) = nd("{ bridge: virbr-bk, forward: isolated, mtu: 9000, autostart: true }");
        let p = plan_network(&n, &d, Some(&obs(STORED_ISOLATED, true, true))).unwrap();
        assert_eq!(p, NetworkPlan::default());
    }

    #[test]
    fn a_netmask_is_its_prefix_and_forward_without_mode_is_nat() {
        let (n, d) = nd("{ forward: nat, ip: 192.168.231.1/24, bridge: virbr-bk }");
        let p = plan_network(&n, &d, Some(&obs(STORED_NAT, false, false))).unwrap();
        assert!(p.changes.is_empty(), "{p:?}");
        let no_mode = STORED_NAT.replace("<forward mode='nat'>", "<forward>");
        let p = plan_network(&n, &d, Some(&obs(&no_mode, false, false))).unwrap();
        assert!(p.changes.is_empty(), "{p:?}");
    }

    #[test]
    fn an_edit_keeps_everything_not_declared() {
        let (n, d) = nd("{ mtu: 9000 }");
        let p = plan_network(&n, &d, Some(&obs(STORED_NAT, false, false))).unwrap();
        let new = p.new_xml.unwrap();
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].field, "mtu");
        assert!(!p.changes[0].restart);
        // Only the new element was added.
        assert_eq!(
            new.replace("\n  <mtu size='9000'/>", ""),
            STORED_NAT,
            "{new}"
        );
    }

    #[test]
    fn a_running_network_waits_for_its_restart_and_autostart_is_live() {
        let (n, d) = nd("{ mtu: 1400, autostart: true, forward: route }");
        let p = plan_network(&n, &d, Some(&obs(STORED_NAT, true, false))).unwrap();
        let fields: Vec<(&str, bool)> = p.changes.iter().map(|c| (c.field, c.restart)).collect();
        assert_eq!(
            fields,
            [("forward", true), ("mtu", true), ("autostart", false)]
        );
        assert_eq!(p.autostart, Some(true));
        let m = read(p.new_xml.as_deref().unwrap()).unwrap();
        assert_eq!(m.forward, "route");
        assert_eq!(m.mtu.as_deref(), Some("1400"));
    }

    #[test]
    fn isolated_removes_forward_and_ip_replaces_the_netmask() {
        let (n, d) = nd("{ forward: isolated, ip: 10.9.0.1/16 }");
        let p = plan_network(&n, &d, Some(&obs(STORED_NAT, false, false))).unwrap();
        let new = p.new_xml.unwrap();
        assert!(!new.contains("<forward"), "{new}");
        assert!(new.contains("<ip address='10.9.0.1' prefix='16'>"), "{new}");
        assert!(new.contains("<dhcp>"), "dhcp kept: {new}");
        let again = plan_network(&n, &d, Some(&obs(&new, false, false))).unwrap();
        assert!(again.changes.is_empty(), "{again:?}");
    }

    #[test]
    fn a_new_network_has_only_the_declared_elements() {
        let (n, d) = nd("{ bridge: virbr-bk, mtu: 9000, autostart: false }");
        let p = plan_network(&n, &d, None).unwrap();
        assert_eq!(
            p.new_xml.as_deref(),
            Some("<network>\n  <name>backup0</name>\n  <bridge name='virbr-bk'/>\n  <mtu size='9000'/>\n</network>\n")
        );
        assert_eq!(p.autostart, None, "a new network does not autostart");
        let (n, d) = nd("{ forward: nat }");
        let e = plan_network(&n, &d, None).unwrap_err();
        assert_eq!(e.0.last().map(String::as_str), Some("ip"));
    }

    #[test]
    fn saved_actions_must_be_rederivable() {
        let (n, d) = nd("{ mtu: 9000, autostart: true }");
        let p = plan_network(&n, &d, Some(&obs(STORED_NAT, false, false))).unwrap();
        let new = p.new_xml.clone();
        assert!(check_action(&n, &d, Some(STORED_NAT), new.as_deref(), Some(true)).is_ok());
        let tampered = new
            .as_deref()
            .map(|x| x.replace("192.168.231.1", "10.0.0.1"));
        assert!(check_action(&n, &d, Some(STORED_NAT), tampered.as_deref(), None).is_err());
        assert!(check_action(&n, &d, Some(STORED_NAT), new.as_deref(), Some(false)).is_err());
    }

    #[test]
    fn a_vf_pool_names_its_pf() {
        let (n, d) = nd("{ forward: hostdev, pf: ens1f0 }");
        let p = plan_network(&n, &d, None).unwrap();
        let new = p.new_xml.unwrap();
        assert_eq!(
            new,
            "<network>\n  <name>backup0</name>\n  <forward mode='hostdev' managed='yes'>\n    <pf dev='ens1f0'/>\n  </forward>\n</network>\n"
        );
        let stored = new.replace(
            "<name>backup0</name>",
            "<name>backup0</name>\n  <uuid>0d1f6e8a-54b1-4c0d-9d7e-2f4c3b1a0e11</uuid>",
        );
        let again = plan_network(&n, &d, Some(&obs(&stored, false, false))).unwrap();
        assert!(again.changes.is_empty(), "{again:?}");
        let (_, d2) = nd("{ forward: hostdev, pf: ens2f0 }");
        let p = plan_network(&n, &d2, Some(&obs(&stored, false, false))).unwrap();
        assert_eq!(p.changes.len(), 1);
        assert!(p.new_xml.unwrap().contains("<pf dev='ens2f0'/>"));
        for bad in [
            "{ forward: hostdev }",
            "{ pf: ens1f0 }",
            "{ forward: hostdev, pf: ens1f0, mtu: 9000 }",
        ] {
            let raw: RawNetwork = serde_yaml::from_str(bad).unwrap();
            assert!(validate("vf0", &raw).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_are_located() {
        let raw: RawNetwork =
            serde_yaml::from_str("{ forward: bridge, mtu: 9000, ip: 1.2.3.4 }").unwrap();
        let errs = validate("bk/0", &raw).unwrap_err();
        let keys: Vec<String> = errs.iter().map(|(k, _)| k.join(".")).collect();
        assert_eq!(
            keys,
            [
                "networks.bk/0",
                "networks.bk/0.ip",
                "networks.bk/0.forward",
                "networks.bk/0.mtu",
                "networks.bk/0.ip"
            ]
        );
    }

    #[test]
    fn attached_guests_come_from_interface_sources() {
        let xml = "<domain><name>db1</name><devices><interface type='network'><source network='backup0' bridge='virbr-bk'/></interface><interface type='bridge'><source bridge='br0'/></interface></devices></domain>";
        let running = BTreeMap::from([("db1".to_string(), xml.to_string())]);
        assert_eq!(
            attached(&running),
            BTreeMap::from([("backup0".to_string(), vec!["db1".to_string()])])
        );
    }
}
