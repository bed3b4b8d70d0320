//! Host CPU topology: NUMA nodes, sockets, cores and SMT siblings.
//!
//! Invariant: a [`HostTopology`] lists every online host CPU once, with the NUMA node, socket
//! and core it belongs to; CPUs with the same (node, socket, core) are SMT siblings. It is read
//! from libvirt's capabilities XML (works over remote URIs) or, where libvirt reports no NUMA
//! cells (the `test:///` driver with a custom host file), from sysfs below `--root`.
//! [`NodeMemory`] is each node's free memory as sysfs reports it (what is not there is
//! unknown, never zero).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::cpuset::CpuSet;
use crate::xmltree::Document;

/// One host CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostCpu {
    pub id: u32,
    pub node: u32,
    pub socket: u32,
    pub core: u32,
}

/// The host's CPUs, ascending by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostTopology {
    pub cpus: Vec<HostCpu>,
}

/// Free memory of one NUMA node: `nodeN/meminfo`'s `MemFree` and each huge page pool's
/// `nodeN/hugepages/hugepages-<size>kB/free_hugepages`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeMemory {
    pub mem_free_kib: Option<u64>,
    /// Page size in KiB → free pages.
    pub free_hugepages: BTreeMap<u64, u64>,
}

/// Reads every node's [`NodeMemory`] below `root` (`sys/devices/system/node/node*`); nodes
/// whose files are missing or unreadable as numbers have what could be read.
pub fn node_memory(root: &Path) -> std::io::Result<BTreeMap<u32, NodeMemory>> {
    use crate::host::files::{list_opt, read_opt};
    let node_dir = root.join("sys/devices/system/node");
    let mut out = BTreeMap::new();
    for name in list_opt(&node_dir)?.unwrap_or_default() {
        let Some(node) = name
            .strip_prefix("node")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = node_dir.join(&name);
        let mut m = NodeMemory {
            mem_free_kib: read_opt(&dir.join("meminfo"))?.and_then(|t| mem_free(&t)),
            ..Default::default()
        };
        let pools = dir.join("hugepages");
        for pool in list_opt(&pools)?.unwrap_or_default() {
            let Some(kib) = pool
                .strip_prefix("hugepages-")
                .and_then(|p| p.strip_suffix("kB"))
                .and_then(|p| p.parse::<u64>().ok())
            else {
                continue;
            };
            let free = read_opt(&pools.join(&pool).join("free_hugepages"))?
                .and_then(|t| t.trim().parse::<u64>().ok());
            if let Some(f) = free {
                m.free_hugepages.insert(kib, f);
            }
        }
        out.insert(node, m);
    }
    Ok(out)
}

/// `Node N MemFree:   123 kB` → 123.
fn mem_free(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let (_, rest) = l.split_once("MemFree:")?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// A physical core: its node, socket and the CPU ids of its threads (ascending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core {
    pub node: u32,
    pub socket: u32,
    pub cpus: Vec<u32>,
}

impl HostTopology {
    pub fn new(mut cpus: Vec<HostCpu>) -> HostTopology {
        cpus.sort();
        cpus.dedup_by_key(|c| c.id);
        HostTopology { cpus }
    }

    pub fn is_empty(&self) -> bool {
        self.cpus.is_empty()
    }

    pub fn cpu(&self, id: u32) -> Option<&HostCpu> {
        self.cpus
            .binary_search_by_key(&id, |c| c.id)
            .ok()
            .map(|i| &self.cpus[i])
    }

    pub fn node_of(&self, id: u32) -> Option<u32> {
        self.cpu(id).map(|c| c.node)
    }

    /// NUMA node ids, ascending.
    pub fn nodes(&self) -> Vec<u32> {
        self.cpus
            .iter()
            .map(|c| c.node)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// CPU ids of a node, ascending.
    pub fn node_cpus(&self, node: u32) -> Vec<u32> {
        self.cpus
            .iter()
            .filter(|c| c.node == node)
            .map(|c| c.id)
            .collect()
    }

    /// Physical cores ordered by (node, socket, lowest CPU id).
    pub fn cores(&self) -> Vec<Core> {
        let mut m: BTreeMap<(u32, u32, u32), Vec<u32>> = BTreeMap::new();
        for c in &self.cpus {
            m.entry((c.node, c.socket, c.core)).or_default().push(c.id);
        }
        let mut v: Vec<Core> = m
            .into_iter()
            .map(|((node, socket, _), cpus)| Core { node, socket, cpus })
            .collect();
        v.sort_by_key(|c| (c.node, c.socket, c.cpus[0]));
        v
    }

    /// The SMT siblings of `id`, itself included.
    pub fn siblings(&self, id: u32) -> Vec<u32> {
        let Some(me) = self.cpu(id) else {
            return Vec::new();
        };
        self.cpus
            .iter()
            .filter(|c| (c.node, c.socket, c.core) == (me.node, me.socket, me.core))
            .map(|c| c.id)
            .collect()
    }

    /// Threads per core (the largest core's thread count).
    pub fn threads_per_core(&self) -> usize {
        self.cores().iter().map(|c| c.cpus.len()).max().unwrap_or(1)
    }

    /// The set of NUMA nodes the CPUs in `cpus` belong to.
    pub fn nodes_of(&self, cpus: impl IntoIterator<Item = u32>) -> BTreeSet<u32> {
        cpus.into_iter().filter_map(|c| self.node_of(c)).collect()
    }

    /// Parses libvirt's `<capabilities>`: `host/topology/cells/cell/cpus/cpu`. `None` when it
    /// lists no cells (or no CPUs).
    pub fn from_capabilities(xml: &str) -> Option<HostTopology> {
        let doc = Document::parse(xml).ok()?;
        let host = doc.child(doc.root(), "host")?;
        let cells = doc.child(doc.child(host, "topology")?, "cells")?;
        let mut cpus = Vec::new();
        for cell in doc.children_named(cells, "cell") {
            let node: u32 = doc.attr(cell, "id")?.trim().parse().ok()?;
            let Some(list) = doc.child(cell, "cpus") else {
                continue;
            };
            for cpu in doc.children_named(list, "cpu") {
                let id: u32 = doc.attr(cpu, "id")?.trim().parse().ok()?;
                let num = |a: &str| doc.attr(cpu, a).and_then(|v| v.trim().parse::<u32>().ok());
                // Without core ids, siblings say which CPUs share a core: the lowest id names it.
                let core = num("core_id").or_else(|| {
                    doc.attr(cpu, "siblings")
                        .and_then(|s| s.parse::<CpuSet>().ok())
                        .map(|s| s.iter().next().unwrap_or(id))
                });
                cpus.push(HostCpu {
                    id,
                    node,
                    socket: num("socket_id").unwrap_or(0),
                    core: core.unwrap_or(id),
                });
            }
        }
        (!cpus.is_empty()).then(|| HostTopology::new(cpus))
    }

    /// Reads `sys/devices/system/node/node*/cpulist` and
    /// `sys/devices/system/cpu/cpu*/topology/{physical_package_id,core_id}` below `root`.
    /// `None` when there are no node directories.
    pub fn from_sysfs(root: &Path) -> std::io::Result<Option<HostTopology>> {
        let node_dir = root.join("sys/devices/system/node");
        let Some(names) = crate::host::files::list_opt(&node_dir)? else {
            return Ok(None);
        };
        let mut cpus = Vec::new();
        for name in names {
            let Some(node) = name
                .strip_prefix("node")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Some(list) = crate::host::files::read_opt(&node_dir.join(&name).join("cpulist"))?
            else {
                continue;
            };
            let Ok(set) = list.trim().parse::<CpuSet>() else {
                continue; // a memory-only node has an empty cpulist
            };
            for id in set.iter() {
                let topo = root.join(format!("sys/devices/system/cpu/cpu{id}/topology"));
                let num = |f: &str| -> std::io::Result<Option<u32>> {
                    Ok(crate::host::files::read_opt(&topo.join(f))?
                        .and_then(|s| s.trim().parse::<i64>().ok())
                        .map(|v| v.max(0) as u32))
                };
                cpus.push(HostCpu {
                    id,
                    node,
                    socket: num("physical_package_id")?.unwrap_or(0),
                    core: num("core_id")?.unwrap_or(id),
                });
            }
        }
        Ok((!cpus.is_empty()).then(|| HostTopology::new(cpus)))
    }

    /// A synthetic topology: `nodes` nodes, each with `cores` cores of `threads` threads,
    /// numbered like Linux does (all first threads, then all second threads). For tests.
    pub fn synthetic(nodes: u32, cores: u32, threads: u32) -> HostTopology {
        let per_thread = nodes * cores;
        let mut cpus = Vec::new();
        for t in 0..threads {
            for n in 0..nodes {
                for c in 0..cores {
                    cpus.push(HostCpu {
                        id: t * per_thread + n * cores + c,
                        node: n,
                        socket: n,
                        core: c,
                    });
                }
            }
        }
        HostTopology::new(cpus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_cells_are_parsed() {
        let xml = "<capabilities><host><topology><cells num='2'>\
            <cell id='0'><cpus num='2'><cpu id='0' socket_id='0' core_id='0' siblings='0,2'/>\
            <cpu id='2' socket_id='0' core_id='0' siblings='0,2'/></cpus></cell>\
            <cell id='1'><cpus num='1'><cpu id='1' socket_id='1' core_id='0' siblings='1'/></cpus></cell>\
            </cells></topology></host></capabilities>";
        let t = HostTopology::from_capabilities(xml).unwrap();
        assert_eq!(t.nodes(), vec![0, 1]);
        assert_eq!(t.siblings(2), vec![0, 2]);
        assert_eq!(t.node_cpus(1), vec![1]);
        assert!(HostTopology::from_capabilities(
            "<capabilities><host><topology><cells num='0'></cells></topology></host></capabilities>"
        )
        .is_none());
    }

    #[test]
    fn demo_root_node_memory_is_read() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/root");
        let m = node_memory(&root).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[&0].mem_free_kib, Some(29491200));
        assert_eq!(m[&0].free_hugepages.get(&2048), Some(&0));
        assert_eq!(m[&1].free_hugepages.get(&1048576), Some(&0));
        assert_eq!(mem_free("Node 3 MemFree:  12 kB\n"), Some(12));
        assert_eq!(mem_free("Node 3 MemFree: twelve kB\n"), None);
    }

    #[test]
    fn demo_root_sysfs_is_two_nodes_of_eight() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/root");
        let t = HostTopology::from_sysfs(&root).unwrap().unwrap();
        assert_eq!(t.cpus.len(), 16);
        assert_eq!(t.node_cpus(0), vec![0, 1, 2, 3, 8, 9, 10, 11]);
        assert_eq!(t.siblings(3), vec![3, 11]);
        assert_eq!(t.threads_per_core(), 2);
        assert_eq!(t, HostTopology::synthetic(2, 4, 2));
    }
}
