//! The guide's advice for a VM-exit profile, as data: [`RULES`].
//!
//! Invariant: [`advise`] is a pure function of the exit summary and the guest's context; a
//! rule fires only when its exit reasons together reach both its share of all exits and its
//! rate per vCPU, and its guest condition holds. Every rule names where its advice comes
//! from: a section of the RHEL 6 Virtualization Tuning and Optimization Guide, or "not in
//! the guide" with the source it does come from.

use serde::Serialize;

use super::summary::ExitSummary;
use super::GuestContext;

/// When a rule applies, beyond its exit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// The guest's memory is not backed by huge pages (`<memoryBacking><hugepages/>`).
    WithoutHugepages,
    /// Every vCPU is pinned (`<cputune><vcpupin>`).
    Pinned,
    NotPinned,
}

impl When {
    fn holds(self, c: &GuestContext) -> bool {
        match self {
            When::Always => true,
            When::WithoutHugepages => !c.hugepages,
            When::Pinned => c.pinned,
            When::NotPinned => !c.pinned,
        }
    }
}

/// One piece of advice and when it applies.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: &'static str,
    /// perf's names for the exit reasons: Intel VMX (upper case) and AMD SVM (lower case).
    pub reasons: &'static [&'static str],
    /// Their share of all exits, percent, at least.
    pub min_share_pct: f64,
    /// Their exits per second per vCPU, at least.
    pub min_per_vcpu_sec: f64,
    pub when: When,
    pub advice: &'static str,
    pub source: &'static str,
}

pub const RULES: &[Rule] = &[
    Rule {
        id: "halt-pinned",
        reasons: &["HLT", "hlt"],
        min_share_pct: 30.0,
        min_per_vcpu_sec: 100.0,
        when: When::Pinned,
        advice: "the pinned vCPUs halt often (an idle guest on dedicated CPUs): every wake-up \
                 is an exit and a host reschedule; with dedicated CPUs, halt polling avoids it \
                 (raise kvm's halt_poll_ns in /sys/module/kvm/parameters, or load the guest's \
                 cpuidle-haltpoll driver)",
        source: "not in the guide (halt polling is newer than RHEL 6): Linux \
                 Documentation/virt/kvm/halt-polling.rst",
    },
    Rule {
        id: "halt-idle",
        reasons: &["HLT", "hlt"],
        min_share_pct: 30.0,
        min_per_vcpu_sec: 100.0,
        when: When::NotPinned,
        advice: "the guest is mostly idle (its vCPUs halt): nothing to tune for throughput; \
                 when wake-up latency matters, pin its vCPUs to dedicated CPUs \
                 (cputune.vcpupin) and then use halt polling",
        source: "guide §7.2.1 (vCPU pinning)",
    },
    Rule {
        id: "ept-hugepages",
        reasons: &["EPT_VIOLATION", "npf"],
        min_share_pct: 10.0,
        min_per_vcpu_sec: 50.0,
        when: When::WithoutHugepages,
        advice: "guest memory faults (EPT violations / nested page faults) and the guest is \
                 not backed by huge pages: back it with huge pages \
                 (memory_backing.hugepages) so each fault maps 2 MiB or 1 GiB instead of 4 KiB \
                 and the TLB covers more of its memory",
        source: "guide §5.2 (huge pages)",
    },
    Rule {
        id: "mmio-emulated",
        reasons: &["EPT_MISCONFIG"],
        min_share_pct: 10.0,
        min_per_vcpu_sec: 50.0,
        when: When::Always,
        advice: "emulated MMIO (KVM traps device MMIO through EPT misconfigurations): use \
                 virtio devices (disks on bus virtio, interfaces.*.model: virtio) with vhost-net",
        source: "guide §4.3 (virtio and vhost_net)",
    },
    Rule {
        id: "pio-emulated",
        reasons: &["IO_INSTRUCTION", "io"],
        min_share_pct: 10.0,
        min_per_vcpu_sec: 50.0,
        when: When::Always,
        advice: "port I/O to emulated devices (IDE, e1000, rtl8139, PIT/RTC timers): use virtio \
                 devices (disks on bus virtio, interfaces.*.model: virtio) with vhost-net",
        source: "guide §4.3 (virtio and vhost_net)",
    },
    Rule {
        id: "external-interrupts",
        reasons: &["EXTERNAL_INTERRUPT", "interrupt"],
        min_share_pct: 20.0,
        min_per_vcpu_sec: 1000.0,
        when: When::Always,
        advice: "host interrupts arrive on the CPUs the vCPUs run on: pin the vCPUs \
                 (cputune.vcpupin) to CPUs the host's IRQs are kept away from \
                 (host.cpu_pool.isolate.irqs)",
        source: "guide §7.2 (vCPU pinning); IRQ isolation is not in the guide",
    },
    Rule {
        id: "pause-spin",
        reasons: &["PAUSE_INSTRUCTION", "pause"],
        min_share_pct: 10.0,
        min_per_vcpu_sec: 50.0,
        when: When::Always,
        advice: "pause-loop exits: guest spinlocks spin while the vCPU holding the lock is \
                 preempted, a sign of overcommitted or shared CPUs; do not overcommit vCPUs and \
                 pin each vCPU to its own CPU (cputune.vcpupin)",
        source: "guide §2.3.1 (overcommit) and §7.2 (vCPU pinning)",
    },
    Rule {
        id: "apic-access",
        reasons: &["APIC_ACCESS"],
        min_share_pct: 20.0,
        min_per_vcpu_sec: 50.0,
        when: When::Always,
        advice: "the guest programs its interrupt controller through xAPIC MMIO: give it the \
                 host's CPU model (cpu.mode: host-passthrough or host-model) so it can use \
                 x2APIC, whose MSR accesses are cheaper to handle",
        source: "guide §2.3.2 (copy the host CPU configuration)",
    },
    Rule {
        id: "msr-timer",
        reasons: &["MSR_WRITE", "MSR_READ", "msr"],
        min_share_pct: 30.0,
        min_per_vcpu_sec: 1000.0,
        when: When::Always,
        advice: "MSR exits, mostly the guest's APIC timer and IPIs through x2APIC: expected on \
                 an active guest; a tickless guest kernel arms fewer timers, and no host \
                 setting removes them",
        source: "not in the guide: Intel SDM vol. 3C (VMX MSR exiting)",
    },
];

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    pub rule: &'static str,
    /// The exit reasons that made it fire, as perf named them.
    pub reasons: Vec<String>,
    pub share_pct: f64,
    pub per_vcpu_sec: f64,
    pub advice: &'static str,
    pub source: &'static str,
}

/// The rules that fire for this profile, in [`RULES`] order.
pub fn advise(exits: &ExitSummary, ctx: &GuestContext) -> Vec<Advice> {
    let vcpus = f64::from(ctx.vcpus.max(1));
    let mut out = Vec::new();
    for r in RULES {
        if !r.when.holds(ctx) {
            continue;
        }
        let hits: Vec<_> = exits
            .by_reason
            .iter()
            .filter(|e| r.reasons.contains(&e.reason.as_str()))
            .collect();
        if hits.is_empty() {
            continue;
        }
        let share: f64 = hits.iter().map(|e| e.share_pct).sum();
        let per_vcpu_sec = hits.iter().map(|e| e.per_sec).sum::<f64>() / vcpus;
        if share >= r.min_share_pct && per_vcpu_sec >= r.min_per_vcpu_sec {
            out.push(Advice {
                rule: r.id,
                reasons: hits.iter().map(|e| e.reason.clone()).collect(),
                share_pct: share,
                per_vcpu_sec,
                advice: r.advice,
                source: r.source,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::summary::ReasonLine;
    use super::*;

    fn exits(rows: &[(&str, f64, f64)]) -> ExitSummary {
        ExitSummary {
            total: 0,
            per_sec: 0.0,
            by_reason: rows
                .iter()
                .map(|(r, share, rate)| ReasonLine {
                    reason: r.to_string(),
                    samples: 0,
                    share_pct: *share,
                    per_sec: *rate,
                    time_pct: None,
                    avg_us: None,
                    max_us: None,
                })
                .collect(),
            lost_events: None,
        }
    }

    fn ctx(pinned: bool, hugepages: bool) -> GuestContext {
        GuestContext {
            domain_type: "kvm".into(),
            vcpus: 2,
            pinned,
            hugepages,
        }
    }

    fn ids(a: &[Advice]) -> Vec<&str> {
        a.iter().map(|a| a.rule).collect()
    }

    #[test]
    fn halts_advise_polling_only_on_pinned_guests() {
        let e = exits(&[("HLT", 70.0, 800.0), ("MSR_WRITE", 30.0, 300.0)]);
        assert_eq!(ids(&advise(&e, &ctx(true, false))), ["halt-pinned"]);
        assert_eq!(ids(&advise(&e, &ctx(false, false))), ["halt-idle"]);
        // 800 exits/s over 2 vCPUs is 400 per vCPU; 150/s is below the rate.
        let slow = exits(&[("HLT", 70.0, 150.0)]);
        assert!(advise(&slow, &ctx(true, false)).is_empty());
        assert_eq!(advise(&e, &ctx(true, false))[0].per_vcpu_sec, 400.0);
    }

    #[test]
    fn ept_violations_advise_huge_pages_only_without_them() {
        let e = exits(&[("EPT_VIOLATION", 40.0, 1000.0), ("npf", 0.0, 0.0)]);
        let a = advise(&e, &ctx(false, false));
        assert_eq!(ids(&a), ["ept-hugepages"]);
        assert!(a[0].source.contains("§5.2"));
        assert!(advise(&e, &ctx(false, true)).is_empty());
    }

    #[test]
    fn reasons_of_one_rule_add_up_and_amd_names_count() {
        let e = exits(&[("MSR_WRITE", 20.0, 2000.0), ("MSR_READ", 15.0, 1000.0)]);
        let a = advise(&e, &ctx(false, false));
        assert_eq!(ids(&a), ["msr-timer"]);
        assert_eq!(a[0].reasons, ["MSR_WRITE", "MSR_READ"]);
        assert_eq!(a[0].share_pct, 35.0);
        let amd = exits(&[("io", 50.0, 500.0), ("interrupt", 25.0, 5000.0)]);
        assert_eq!(
            ids(&advise(&amd, &ctx(false, false))),
            ["pio-emulated", "external-interrupts"]
        );
    }

    #[test]
    fn every_rule_fires_on_its_own_reasons_and_names_a_source() {
        for r in RULES {
            let e = exits(&[(r.reasons[0], 100.0, 1e6)]);
            let c = ctx(r.when == When::Pinned, false);
            assert!(
                ids(&advise(&e, &c)).contains(&r.id),
                "{} did not fire",
                r.id
            );
            assert!(
                r.source.starts_with("guide §") || r.source.starts_with("not in the guide"),
                "{}: {}",
                r.id,
                r.source
            );
        }
    }
}
