//! kvmtune: declarative KVM hypervisor tuning.
//!
//! Pipeline: [`config`] (YAML → validated [`desired::Desired`]) → [`observe`] (libvirt + host
//! files → [`plan::Observed`]) → [`plan::plan`] (pure) → [`apply`] (executes the plan) →
//! [`render`] (text / JSON).
pub mod apply;
pub mod cli;
pub mod config;
pub mod cpuset;
pub mod desired;
pub mod domain;
pub mod host;
pub mod import;
pub mod libvirt;
pub mod observe;
pub mod plan;
pub mod render;
pub mod rollback;
pub mod saved;
pub mod schema;
pub mod state;
pub mod units;
pub mod xmltree;
