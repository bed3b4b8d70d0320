//! The registry: every lint, one file each.
//!
//! Invariant: [`RULES`] is the only list of lints; its order is the order of `check`'s output
//! and of the generated docs, and ids are unique (tests/lints.rs checks that, and that every
//! entry has a firing and a quiet fixture). Adding a lint is its file plus its `mod` line and
//! its entry here.

use super::LintRule;

mod arp_filter_off;
mod cache_blocks_migration;
mod cpu_model_not_host;
mod emulator_overlaps_vcpus;
mod hugepage_demand;
mod hugetlbfs_missing;
mod ksm_with_pinned_hugepages;
mod nic_not_virtio;
mod numa_spread;
mod pinning_does_not_fit;
mod queues_above_vcpus;
mod realtime_without_isolation;
mod shared_pin;
mod thp_always_with_hugepages;
mod topology_sockets;
mod tuned_not_virtual_host;
mod tuned_override;
mod unmanaged_on_dedicated;
mod vcpu_on_reserved;
mod vcpu_overcommit;
mod vhost_net_missing;
mod writethrough_many;

/// Every lint, in output order.
pub static RULES: &[&dyn LintRule] = &[
    &vcpu_on_reserved::Rule,
    &emulator_overlaps_vcpus::Rule,
    &hugepage_demand::Rule,
    &vcpu_overcommit::Rule,
    &shared_pin::Rule,
    &numa_spread::Rule,
    &hugetlbfs_missing::Rule,
    &topology_sockets::Rule,
    &cpu_model_not_host::Rule,
    &nic_not_virtio::Rule,
    &queues_above_vcpus::Rule,
    &vhost_net_missing::Rule,
    &writethrough_many::Rule,
    &cache_blocks_migration::Rule,
    &ksm_with_pinned_hugepages::Rule,
    &thp_always_with_hugepages::Rule,
    &arp_filter_off::Rule,
    &tuned_not_virtual_host::Rule,
    &tuned_override::Rule,
    &pinning_does_not_fit::Rule,
    &unmanaged_on_dedicated::Rule,
    &realtime_without_isolation::Rule,
];
