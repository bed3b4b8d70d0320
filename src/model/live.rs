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
    /// One `virDomainSetSchedulerParametersFlags` parameter (CFS shares, period, quota).
    Scheduler {
        param: SchedParam,
        value: i64,
    },
}

/// A CFS scheduler parameter of a guest: a `<cputune>` child and the libvirt scheduler
/// parameter that changes it on a running guest (ordered as the YAML lists them).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SchedParam {
    Shares,
    Period,
    Quota,
    EmulatorPeriod,
    EmulatorQuota,
}

impl SchedParam {
    pub const ALL: [SchedParam; 5] = [
        SchedParam::Shares,
        SchedParam::Period,
        SchedParam::Quota,
        SchedParam::EmulatorPeriod,
        SchedParam::EmulatorQuota,
    ];

    /// The `<cputune>` child element (also the YAML key under `cputune`).
    pub fn elem(self) -> &'static str {
        match self {
            SchedParam::Shares => "shares",
            SchedParam::Period => "period",
            SchedParam::Quota => "quota",
            SchedParam::EmulatorPeriod => "emulator_period",
            SchedParam::EmulatorQuota => "emulator_quota",
        }
    }

    /// The libvirt scheduler parameter name.
    pub fn libvirt_name(self) -> &'static str {
        match self {
            SchedParam::Shares => "cpu_shares",
            SchedParam::Period => "vcpu_period",
            SchedParam::Quota => "vcpu_quota",
            SchedParam::EmulatorPeriod => "emulator_period",
            SchedParam::EmulatorQuota => "emulator_quota",
        }
    }

    /// Quotas are signed (-1: unlimited); shares and periods unsigned.
    pub fn signed(self) -> bool {
        matches!(self, SchedParam::Quota | SchedParam::EmulatorQuota)
    }

    /// The values libvirt accepts (cgroup v1 shares reach 262144, v2 weights 10000; a quota
    /// is -1 or 1000 µs up to libvirt's maximum).
    pub fn valid(self, v: i64) -> bool {
        const QUOTA_MAX: i64 = 17_592_186_044_415;
        match self {
            SchedParam::Shares => (1..=262_144).contains(&v),
            SchedParam::Period | SchedParam::EmulatorPeriod => (1000..=1_000_000).contains(&v),
            SchedParam::Quota | SchedParam::EmulatorQuota => {
                v == -1 || (1000..=QUOTA_MAX).contains(&v)
            }
        }
    }

    /// What [`SchedParam::valid`] accepts, for error messages.
    pub fn range(self) -> &'static str {
        match self {
            SchedParam::Shares => "1-262144",
            SchedParam::Period | SchedParam::EmulatorPeriod => "1000-1000000 (µs)",
            SchedParam::Quota | SchedParam::EmulatorQuota => {
                "-1 (unlimited) or 1000-17592186044415 (µs)"
            }
        }
    }
}

/// The host's CPU count and NUMA node count as libvirt reports them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct NodeInfo {
    pub cpus: u32,
    pub nodes: u32,
}
