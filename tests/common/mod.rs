//! Shared helpers for the libvirtd integration tests: the connection URI, a guest fixture that
//! defines a throw-away domain and always removes it, and thin wrappers around kvmtune's
//! library pipeline and CLI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kvmtune::apply::{apply, ApplyReport};
use kvmtune::desired::Desired;
use kvmtune::libvirt::Hypervisor;
use kvmtune::pipeline::plan;
use kvmtune::plan::Plan;
use kvmtune::xmltree::Document;

/// The libvirt URI under test: `$KVMTUNE_TEST_URI`, else `qemu:///system`.
pub fn uri() -> String {
    std::env::var("KVMTUNE_TEST_URI")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "qemu:///system".to_string())
}

fn unreachable(what: &str) -> ! {
    panic!(
        "libvirtd is not reachable at {}: {what}\n\
         These tests need a running libvirtd: run scripts/env-up.sh (as root) first.",
        uri()
    )
}

/// Opens kvmtune's connection; fails the test (never skips) when libvirtd is down.
pub fn hv(read_only: bool) -> Hypervisor {
    Hypervisor::open(&uri(), read_only).unwrap_or_else(|e| unreachable(&e.to_string()))
}

/// Runs `virsh -c URI args...`.
pub fn virsh(args: &[&str]) -> Output {
    Command::new("virsh")
        .arg("-c")
        .arg(uri())
        .args(args)
        .output()
        .unwrap_or_else(|e| unreachable(&format!("cannot run virsh: {e}")))
}

/// Runs virsh and panics with its stderr unless it succeeds; returns stdout.
pub fn virsh_ok(args: &[&str]) -> String {
    let out = virsh(args);
    assert!(
        out.status.success(),
        "virsh {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An XML document printed by virsh, as libvirt returns it (virsh adds one more newline).
fn xml_out(args: &[&str]) -> String {
    format!("{}\n", virsh_ok(args).trim_end())
}

pub fn domain_exists(name: &str) -> bool {
    virsh(&["domuuid", name]).status.success()
}

/// How the test guest looks; every field has a working default.
#[derive(Clone, Debug)]
pub struct Spec {
    pub vcpus: u32,
    /// Extra attributes of `<vcpu>`, with a leading space.
    pub vcpu_attrs: String,
    /// Elements inserted after `<vcpu>` (cputune, numatune, memoryBacking, cpu ...).
    pub tuning: String,
    /// Extra attributes of the disk's `<driver>`, with a leading space.
    pub disk_driver: String,
    pub mac: String,
    pub nic_model: String,
    pub memory_mib: u32,
    /// Domain type; `None`: `kvm` when /dev/kvm exists, else `qemu`.
    pub kind: Option<String>,
    /// Extra children of `<os>` after `<type>` (kernel, initrd, cmdline).
    pub os_extra: String,
    /// Elements inserted after `</os>` (features ...).
    pub after_os: String,
    /// Extra devices; `{serial_log}` is replaced by [`Guest::serial_log`].
    pub devices_extra: String,
}

/// The ACPI-aware test guest built by scripts/build-test-guest.sh.
pub const TEST_GUEST_DIR: &str = "/var/lib/kvmtune-test";

impl Spec {
    /// A guest that boots Debian's kernel with a busybox initramfs running `acpid`: it powers
    /// off on `virsh shutdown` (ACPI power button) and prints
    /// `kvmtune-test-guest: ready (acpid running)` on its serial console ([`Guest::serial_log`])
    /// once it listens. Software emulation (TCG): on nested KVM hosts like CI's, the kernel's
    /// decompressor makes no progress under KVM (observed), while TCG boots in about 8 s.
    pub fn acpi_linux() -> Spec {
        let dir = Path::new(TEST_GUEST_DIR);
        for f in ["vmlinuz", "initrd.img"] {
            assert!(
                dir.join(f).exists(),
                "{}/{f} is missing: run scripts/build-test-guest.sh (as root; scripts/env-up.sh does)",
                dir.display()
            );
        }
        Spec {
            vcpus: 1,
            memory_mib: 128,
            kind: Some("qemu".into()),
            os_extra: format!(
                "<kernel>{TEST_GUEST_DIR}/vmlinuz</kernel>\n    \
                 <initrd>{TEST_GUEST_DIR}/initrd.img</initrd>\n    \
                 <cmdline>console=ttyS0</cmdline>"
            ),
            after_os: "<features><acpi/></features>".into(),
            devices_extra:
                "<serial type='file'><source path='{serial_log}'/><target port='0'/></serial>"
                    .into(),
            ..Spec::default()
        }
    }
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            vcpus: 2,
            vcpu_attrs: String::new(),
            tuning: String::new(),
            disk_driver: String::new(),
            mac: "52:54:00:6b:74:01".into(),
            nic_model: "e1000".into(),
            memory_mib: 64,
            kind: None,
            os_extra: String::new(),
            after_os: String::new(),
            devices_extra: String::new(),
        }
    }
}

pub const LIBOSINFO_ID: &str = "http://debian.org/debian/12";

/// A defined test guest. Dropping it destroys (if running) and undefines the domain and removes
/// its disk image, also while a failing test unwinds.
pub struct Guest {
    name: String,
    image: PathBuf,
}

impl Guest {
    /// The domain name for a test: `kvmtune-it-<test>-<pid>`.
    pub fn name_for(test: &str) -> String {
        format!("kvmtune-it-{test}-{}", std::process::id())
    }

    pub fn define(test: &str, spec: Spec) -> Guest {
        // Fail (not skip) with a clear message when libvirtd is down.
        drop(hv(true));
        let name = Guest::name_for(test);
        if domain_exists(&name) {
            // A leftover from a crashed run with the same pid.
            let _ = virsh(&["destroy", &name]);
            let _ = virsh(&["undefine", &name]);
        }
        let image = std::env::temp_dir().join(format!("{name}.qcow2"));
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&image)
            .arg("16M")
            .output()
            .expect("running qemu-img");
        assert!(
            out.status.success(),
            "qemu-img create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // From here on, Drop cleans up.
        let guest = Guest {
            name: name.clone(),
            image: image.clone(),
        };
        let xml = domain_xml(&name, &image, &spec);
        let file = std::env::temp_dir().join(format!("{name}.xml"));
        std::fs::write(&file, &xml).unwrap();
        let out = virsh(&["define", file.to_str().unwrap(), "--validate"]);
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "defining {name} failed: {}\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        );
        guest
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The persistent definition (`dumpxml --inactive`).
    pub fn inactive_xml(&self) -> String {
        xml_out(&["dumpxml", "--inactive", &self.name])
    }

    /// The running (live) definition.
    pub fn live_xml(&self) -> String {
        xml_out(&["dumpxml", &self.name])
    }

    pub fn start(&self) {
        virsh_ok(&["start", &self.name]);
        assert!(self.is_running());
    }

    pub fn destroy(&self) {
        virsh_ok(&["destroy", &self.name]);
    }

    pub fn is_running(&self) -> bool {
        virsh_ok(&["domstate", &self.name]).trim() == "running"
    }

    pub fn state(&self) -> String {
        virsh_ok(&["domstate", &self.name]).trim().to_string()
    }

    /// Where a `<serial type='file'>` with `{serial_log}` writes (removed on drop).
    pub fn serial_log(&self) -> PathBuf {
        serial_log_path(&self.name)
    }

    /// Waits until the serial log contains `needle`; false on timeout.
    pub fn wait_for_serial(&self, needle: &str, timeout: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if std::fs::read_to_string(self.serial_log()).is_ok_and(|s| s.contains(needle)) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        false
    }

    /// Waits until the guest is `shut off`; returns how long that took, `None` on timeout.
    pub fn wait_shut_off(&self, timeout: std::time::Duration) -> Option<std::time::Duration> {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if self.state() == "shut off" {
                return Some(start.elapsed());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        None
    }
}

fn serial_log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{name}.serial.log"))
}

impl Drop for Guest {
    fn drop(&mut self) {
        // Never panic here: this also runs while a failed test unwinds.
        let _ = virsh(&["destroy", &self.name]);
        let out = virsh(&["undefine", &self.name]);
        if !out.status.success() {
            eprintln!(
                "warning: could not undefine test guest {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_file(&self.image);
        let _ = std::fs::remove_file(self.serial_log());
    }
}

fn domain_xml(name: &str, image: &Path, s: &Spec) -> String {
    let kind = match &s.kind {
        Some(k) => k.as_str(),
        None if Path::new("/dev/kvm").exists() => "kvm",
        None => "qemu",
    };
    format!(
        "<domain type='{kind}'>
  <name>{name}</name>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo=\"http://libosinfo.org/xmlns/libvirt/domain/1.0\">
      <libosinfo:os id=\"{LIBOSINFO_ID}\"/>
    </libosinfo:libosinfo>
  </metadata>
  <memory unit='MiB'>{mem}</memory>
  <vcpu{vattrs}>{vcpus}</vcpu>
  {tuning}
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    {os_extra}
  </os>
  {after_os}
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'{drv}/>
      <source file='{img}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'>
      <mac address='{mac}'/>
      <model type='{nic}'/>
    </interface>
    <graphics type='vnc' listen='127.0.0.1'/>
    {devices_extra}
  </devices>
</domain>
",
        vattrs = s.vcpu_attrs,
        vcpus = s.vcpus,
        tuning = s.tuning,
        drv = s.disk_driver,
        img = image.display(),
        mac = s.mac,
        nic = s.nic_model,
        mem = s.memory_mib,
        os_extra = s.os_extra,
        after_os = s.after_os,
        devices_extra = s
            .devices_extra
            .replace("{serial_log}", &serial_log_path(name).display().to_string()),
    )
}

// ---------------------------------------------------------------- library pipeline --

pub fn load(yaml: &str) -> Desired {
    kvmtune::desired::load_str("it.yaml", yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// An empty directory used as the host root: guest-only configs must never need host files.
pub fn empty_root() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Observes and plans `d` through a read-only connection (what `kvmtune plan` does).
pub fn plan_desired(d: &Desired) -> Plan {
    let root = empty_root();
    let hv = hv(true);
    let obs = kvmtune::observe::observe(d, root.path(), Some(&hv)).expect("observe");
    plan(d, &obs)
}

pub fn plan_yaml(yaml: &str) -> Plan {
    plan_desired(&load(yaml))
}

/// Plans and applies `d` through a read-write connection (what `kvmtune apply` does).
pub fn apply_desired(d: &Desired) -> (Plan, ApplyReport) {
    let root = empty_root();
    let hv = hv(false);
    let obs = kvmtune::observe::observe(d, root.path(), Some(&hv)).expect("observe");
    let p = plan(d, &obs);
    assert!(!p.has_errors(), "plan has errors: {:?}", p.errors);
    let report = apply(&p, d, root.path(), Some(&hv));
    (p, report)
}

/// Apply, then: the plan is empty, and a second apply performs zero writes.
pub fn assert_converges(yaml: &str) -> (Plan, ApplyReport) {
    let d = load(yaml);
    let (p, report) = apply_desired(&d);
    assert!(report.ok(), "apply failed: {report:#?}\nplan: {p:#?}");
    let after = plan_desired(&d);
    assert!(
        after.is_empty() && !after.has_errors(),
        "plan after apply is not empty: {:#?}",
        after.changes
    );
    let (p2, again) = apply_desired(&d);
    assert!(p2.is_empty(), "second plan not empty: {:#?}", p2.changes);
    assert_eq!(
        (again.defines, again.host_writes),
        (0, 0),
        "second apply wrote: {again:#?}"
    );
    assert!(again.results.is_empty());
    (p, report)
}

/// Whether `xml` already has every owned setting `yaml` declares for guest `name` (planning
/// it again is empty): the guest is wholly in the new state.
pub fn matches_new(yaml: &str, name: &str, xml: &str) -> bool {
    let d = load(yaml);
    let gd = d
        .guests
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .unwrap_or_else(|| panic!("{name} is not in\n{yaml}"))
        .1;
    kvmtune::domain::plan_guest(gd, xml, None)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
        .changes
        .is_empty()
}

// ---------------------------------------------------------------- CLI --

pub fn kvmtune(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env("NO_COLOR", "1")
        .arg("--connect")
        .arg(uri())
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("running kvmtune")
}

/// Fails the test (never skips) when the fault-injection hook is compiled out: without it
/// `KVMTUNE_FAULT` is ignored and a kill test would test nothing.
pub fn require_fault_hook() {
    if !cfg!(feature = "fault-injection") {
        panic!(
            "this test needs kvmtune's fault-injection hook (src/faults.rs): build and run the \
             tests with `--features fault-injection`, as scripts/test.sh does"
        );
    }
}

/// [`kvmtune`] with `KVMTUNE_FAULT=<point>:<k>`: the hook SIGKILLs the process right after the
/// k-th pass of `point`.
pub fn kvmtune_fault(root: &Path, args: &[&str], point: &str, k: usize) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env("NO_COLOR", "1")
        .env("KVMTUNE_FAULT", format!("{point}:{k}"))
        .arg("--connect")
        .arg(uri())
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("running kvmtune")
}

/// The run ended by SIGKILL, so execution really reached the k-th pass of `point`.
pub fn assert_killed_at(o: &Output, point: &str, k: usize) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGKILL),
        "KVMTUNE_FAULT={point}:{k}: kvmtune was not killed there, so the point was never \
         reached (or the binary lacks `--features fault-injection`): {}",
        describe(o)
    );
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

// ---------------------------------------------------------------- XML --

/// Values of attribute `attr` on every element named `name` (document order).
pub fn attr_values(xml: &str, name: &str, attr: &str) -> Vec<String> {
    let doc = Document::parse(xml).unwrap();
    let mut out = Vec::new();
    let mut stack = vec![doc.root()];
    while let Some(n) = stack.pop() {
        if doc.name(n) == name {
            if let Some(v) = doc.attr(n, attr) {
                out.push(v);
            }
        }
        let mut kids = doc.elements(n);
        kids.reverse();
        stack.extend(kids);
    }
    out
}

/// `(vcpu, cpuset)` of every `<cputune><vcpupin>`.
pub fn vcpupins(xml: &str) -> Vec<(String, String)> {
    let doc = Document::parse(xml).unwrap();
    let Some(ct) = doc.child(doc.root(), "cputune") else {
        return Vec::new();
    };
    doc.children_named(ct, "vcpupin")
        .into_iter()
        .map(|p| {
            (
                doc.attr(p, "vcpu").unwrap_or_default(),
                doc.attr(p, "cpuset").unwrap_or_default(),
            )
        })
        .collect()
}

/// The domain XML with everything kvmtune owns removed, whitespace-normalized: what must not
/// change when kvmtune applies.
pub fn strip_owned(xml: &str) -> String {
    let mut doc = Document::parse(xml).unwrap();
    let root = doc.root();
    for name in ["vcpu", "cputune", "numatune", "memoryBacking", "cpu"] {
        if let Some(n) = doc.child(root, name) {
            doc.remove(n);
        }
    }
    if let Some(devs) = doc.child(root, "devices") {
        for disk in doc.children_named(devs, "disk") {
            if let Some(drv) = doc.child(disk, "driver") {
                doc.remove_attr(drv, "cache");
                doc.remove_attr(drv, "io");
            }
        }
        for nic in doc.children_named(devs, "interface") {
            if let Some(m) = doc.child(nic, "model") {
                doc.remove(m);
            }
            if let Some(drv) = doc.child(nic, "driver") {
                doc.remove_attr(drv, "name");
                doc.remove_attr(drv, "queues");
                if doc.attrs(drv).is_empty() && doc.elements(drv).is_empty() {
                    doc.remove(drv);
                }
            }
        }
    }
    doc.to_xml()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}
