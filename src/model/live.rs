//! What planning says about running guests and the host's size: the live operations a plan
//! carries and the node counts it was made against.
//!
//! Invariant: plain typed data (no I/O): a live operation names its guest setting's value,
//! never a command; the executor ([`crate::libvirt`]) turns each into one libvirt call.

/// A change made on a running guest only (`VIR_DOMAIN_AFFECT_LIVE`).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum LiveOp {
    PinVcpu {
        vcpu: u32,
        cpuset: String,
    },
    PinEmulator {
        cpuset: String,
    },
    NumaNodeset {
        nodeset: String,
    },
    SetVcpus {
        count: u32,
    },
    PinIothread {
        iothread: u32,
        cpuset: String,
    },
    /// One `virDomainSetBlkioParameters` field (`weight`, `device_weight` = "/dev/sda,300", ...).
    Blkio {
        field: String,
        value: String,
    },
    /// One `<memtune>` limit in KiB.
    Memtune {
        field: String,
        kib: u64,
    },
    /// One `virDomainSetBlockIoTune` field of a disk (by target dev).
    BlockIotune {
        disk: String,
        field: String,
        value: u64,
    },
    /// The libosinfo metadata element.
    OsMetadata {
        id: String,
    },
    /// Re-point the interface with this MAC to a libvirt network (`virDomainUpdateDeviceFlags`
    /// with the running interface, its type `network` and its source that network).
    InterfaceNetwork {
        mac: crate::model::MacAddr,
        network: crate::model::NetworkName,
    },
}

/// The host's CPU count and NUMA node count as libvirt reports them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct NodeInfo {
    pub cpus: u32,
    pub nodes: u32,
}
