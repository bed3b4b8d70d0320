//! The ACPI-aware test guest (scripts/build-test-guest.sh, [`common::Spec::acpi_linux`]):
//! it boots to `acpid` and `virsh shutdown` powers it off. Restart tests rely on this.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn acpi_test_guest_shuts_down_on_virsh_shutdown() {
    let g = Guest::define("acpi", Spec::acpi_linux());
    let boot = Instant::now();
    g.start();
    assert!(
        g.wait_for_serial("kvmtune-test-guest: ready", Duration::from_secs(90)),
        "the guest did not boot to acpid within 90 s; serial log:\n{}",
        std::fs::read_to_string(g.serial_log()).unwrap_or_default()
    );
    eprintln!(
        "acpi test guest: booted in {:.1} s",
        boot.elapsed().as_secs_f64()
    );
    virsh_ok(&["shutdown", g.name()]);
    let took = g.wait_shut_off(Duration::from_secs(60));
    let log = std::fs::read_to_string(g.serial_log()).unwrap_or_default();
    let took = took.unwrap_or_else(|| panic!("not shut off 60 s after virsh shutdown:\n{log}"));
    eprintln!(
        "acpi test guest: shut off {:.1} s after virsh shutdown",
        took.as_secs_f64()
    );
    assert!(log.contains("power button, powering off"), "{log}");
}
