//! kvmtune: declarative KVM hypervisor tuning.
//!
//! Pipeline: [`config`] (YAML → validated [`desired::Desired`]) → [`observe`] (libvirt + host
//! files → [`plan::Observed`]) → [`plan::plan`] (pure) → [`apply`] (executes the plan) →
//! [`render`] (text / JSON). [`offline`] renders one guest's XML file without a hypervisor;
//! [`verify`] compares running guests with the desired state; [`perf`] measures one guest's VM
//! exits with `perf kvm` (the guide's chapter 8).
pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod cpuset;
pub mod desired;
pub mod domain;
pub mod faults;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod import;
pub mod libvirt;
pub mod lint;
pub mod metrics;
pub mod model;
pub mod network;
pub mod observe;
pub mod offline;
pub mod perf;
pub mod pinning;
pub mod pipeline;
pub mod plan;
pub mod render;
pub mod rollback;
pub mod saved;
pub mod schema;
pub mod state;
pub mod topology;
pub mod units;
pub mod verify;
pub mod xmltree;
