#!/usr/bin/env python3
"""Fleet benchmark: the kvmtune Ansible module on N simulated hypervisors against the stock
modules doing the same work and against Ansible's own per-host overhead (ping).

Not part of `cargo test`: run with bench/fleet/run.sh (see docs/benchmarks.md, "Fleet (Ansible)").

Each simulated hypervisor has its own --root tree (a copy of examples/demo/root plus an empty
etc/sysctl.d) and its own copy of the test:/// host file examples/demo/host.xml; every host is
`ansible_connection: local`. The work declared for every host:

  - 3 sysctls: vm.swappiness=10 and net.ipv4.conf.all.arp_filter=1 (the shared file),
    vm.dirty_ratio=<5 + i % 30> (hosts/<name>.yaml, per host);
  - guest web1 declared as it is on the host file (observed and compared, no define needed):
    the test driver keeps guest definitions per connection only, so a guest change would never
    converge across runs.

Sides:
  ping     ansible.builtin.ping (Ansible's own per-host cost, one module run per host)
  kvmtune  kvmtune.kvmtune.kvmtune with host_config (one module run per host: kvmtune plan,
           and when there are changes and not in check mode, kvmtune apply of the saved plan);
           writes the 3 values below <root>/proc/sys and <root>/etc/sysctl.d/90-kvmtune.conf
  stock    ansible.posix.sysctl (loop over the 3 keys, sysctl_file=<root>/etc/sysctl.d/
           90-kvmtune.conf, reload=false, sysctl_set=false: the file only; it cannot write
           /proc/sys below a fake root) + community.libvirt.virt command=define with web1's
           inactive XML (uri test:///<host file>): 4 module runs per host

Modes: check (--check; first state), apply (first apply), noop (second apply).
Each run's wall time is the ansible-playbook process; the load average is read before and
after. kvmtune's own time per host comes from a wrapper around the binary (the module's
`binary:`) that logs start, end and CPU (bash `times`) of each kvmtune process.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SYSCTL_FILE = "etc/sysctl.d/90-kvmtune.conf"
SHARED = {"vm.swappiness": "10", "net.ipv4.conf.all.arp_filter": "1"}


def dirty_ratio(i):
    return str(5 + i % 30)


def sysctl_path(root, key):
    return root / "proc/sys" / key.replace(".", "/")


class Fleet:
    def __init__(self, work, n, kvmtune, venv, ssh_hosts):
        self.work = work
        self.n = n
        self.venv = venv
        self.kvmtune = kvmtune
        self.template = REPO / "examples/demo/root"
        self.names = ["hv-%04d" % i for i in range(1, n + 1)]
        self.ssh_hosts = ssh_hosts  # [(name, port, root, uri)] real libvirtd over SSH
        self.roots = {h: work / "roots" / h for h in self.names}
        self.repo = work / "repo"
        self.wrapper = work / "kvmtune-timed"
        self.timelog = work / "kvmtune-times.log"

    def keys(self, i):
        k = dict(SHARED)
        k["vm.dirty_ratio"] = dirty_ratio(i)
        return k

    def build(self):
        w = self.work
        (self.repo / "hosts").mkdir(parents=True, exist_ok=True)
        (w / "libvirt").mkdir(parents=True, exist_ok=True)
        xml = (REPO / "examples/demo/host.xml").read_text()
        web1 = subprocess.run(
            ["virsh", "-c", "test://%s" % (REPO / "examples/demo/host.xml"), "dumpxml", "--inactive", "web1"],
            check=True, capture_output=True, text=True).stdout
        (w / "web1.xml").write_text(web1)
        (self.repo / "shared.yaml").write_text(
            "host:\n  sysctl: { vm.swappiness: 10, net.ipv4.conf.all.arp_filter: 1 }\n"
            + ("guests:\n  web1: { vcpu: { count: 2 } }\n" if self.n else ""))
        lines = ["all:", "  children:", "    fleet:", "      hosts:"]
        for i, h in enumerate(self.names, 1):
            root = self.roots[h]
            if not root.exists():
                shutil.copytree(self.template, root, symlinks=True)
            (root / "etc/sysctl.d").mkdir(parents=True, exist_ok=True)
            hx = w / "libvirt" / ("%s.xml" % h)
            hx.write_text(xml)
            (self.repo / "hosts" / ("%s.yaml" % h)).write_text(
                "host:\n  sysctl: { vm.dirty_ratio: %s }\n" % dirty_ratio(i))
            lines.append("        %s: { kt_root: %s, kt_uri: \"test://%s\", kt_sysctl_ratio: \"%s\" }"
                         % (h, root, hx, dirty_ratio(i)))
        lines += ["      vars:", "        ansible_connection: local",
                  "        ansible_python_interpreter: %s" % (self.venv / "bin/python")]
        if self.ssh_hosts:
            lines += ["    real:", "      hosts:"]
            for (h, port, root, uri, i) in self.ssh_hosts:
                if not root.exists():
                    shutil.copytree(self.template, root, symlinks=True)
                (root / "etc/sysctl.d").mkdir(parents=True, exist_ok=True)
                (self.repo / "hosts" / ("%s.yaml" % h)).write_text(
                    "host:\n  sysctl: { vm.dirty_ratio: %s }\n" % dirty_ratio(i))
                lines.append("        %s: { ansible_host: 127.0.0.1, ansible_port: %d, kt_root: %s, kt_uri: \"%s\", kt_sysctl_ratio: \"%s\" }"
                             % (h, port, root, uri, dirty_ratio(i)))
            lines += ["      vars:", "        ansible_connection: ssh", "        ansible_user: root",
                      "        ansible_ssh_private_key_file: %s" % (self.work / "ssh/id"),
                      "        ansible_python_interpreter: %s" % (self.venv / "bin/python")]
        lines += ["  vars:", "    kt_bin: %s" % self.wrapper, "    repo: %s" % self.repo,
                  "    web1_xml_file: %s" % (w / "web1.xml")]
        (w / "inventory.yml").write_text("\n".join(lines) + "\n")
        self.wrapper.write_text(
            "#!/bin/bash\n# Runs kvmtune and logs: hostname subcommand start end, then the CPU times (bash `times`).\n"
            "h=-; for ((i=1;i<=$#;i++)); do [ \"${!i}\" = --hostname ] && { j=$((i+1)); h=${!j}; }; done\n"
            "sub=-; for a in \"$@\"; do case $a in plan|apply) sub=$a; break;; esac; done\n"
            "s=$EPOCHREALTIME\n\"%s\" \"$@\"\nrc=$?\ne=$EPOCHREALTIME\n"
            "tf=%s.$$; times > \"$tf\"; c=$(tail -n 1 \"$tf\"); rm -f \"$tf\"\n"
            "printf '%%s %%s %%s %%s %%s\\n' \"$h\" \"$sub\" \"$s\" \"$e\" \"$c\" >> %s\n"
            "exit $rc\n" % (self.kvmtune, self.timelog, self.timelog))
        self.wrapper.chmod(0o755)
        pb = {
            "ping": "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: ping\n      ansible.builtin.ping:\n",
            "kvmtune": "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: tune\n      kvmtune.kvmtune.kvmtune:\n"
                       "        host_config: \"{{ repo }}\"\n        hostname: \"{{ inventory_hostname }}\"\n"
                       "        root: \"{{ kt_root }}\"\n        connect: \"{{ kt_uri }}\"\n        binary: \"{{ kt_bin }}\"\n"
                       "        lock_timeout: 5\n",
            "stock": "- hosts: all\n  gather_facts: false\n  vars:\n    web1_xml: \"{{ lookup('file', web1_xml_file) }}\"\n"
                     "    kt_sysctl:\n      vm.swappiness: \"10\"\n      net.ipv4.conf.all.arp_filter: \"1\"\n"
                     "      vm.dirty_ratio: \"{{ kt_sysctl_ratio }}\"\n  tasks:\n"
                     "    - name: sysctl.d file\n      ansible.posix.sysctl:\n        name: \"{{ item.key }}\"\n"
                     "        value: \"{{ item.value }}\"\n        sysctl_file: \"{{ kt_root }}/" + SYSCTL_FILE + "\"\n"
                     "        reload: false\n        sysctl_set: false\n      loop: \"{{ kt_sysctl | dict2items }}\"\n"
                     "    - name: guest XML\n      community.libvirt.virt:\n        command: define\n"
                     "        xml: \"{{ web1_xml }}\"\n        uri: \"{{ kt_uri }}\"\n",
        }
        if not self.n:
            # Real hosts only: no web1 there, so the stock side is the sysctl.d task alone.
            pb["stock"] = pb["stock"].split("    - name: guest XML")[0]
        for side, text in pb.items():
            (w / ("%s.yml" % side)).write_text(text)
        coll = w / "collections/ansible_collections/kvmtune"
        coll.mkdir(parents=True, exist_ok=True)
        if not (coll / "kvmtune").exists():
            (coll / "kvmtune").symlink_to(REPO / "ansible")

    def reset(self):
        """Every root back to the template state for the declared keys (untimed)."""
        for i, h in enumerate(self.names, 1):
            root = self.roots[h]
            for k in self.keys(i):
                shutil.copyfile(sysctl_path(self.template, k), sysctl_path(root, k))
            shutil.rmtree(root / "var/lib/kvmtune", ignore_errors=True)
            f = root / SYSCTL_FILE
            if f.exists():
                f.unlink()
        for (h, port, root, uri, i) in self.ssh_hosts:
            subprocess.run(["rm", "-rf", str(root / "var/lib/kvmtune"), str(root / SYSCTL_FILE)], check=True)
            for k in self.keys(i):
                shutil.copyfile(sysctl_path(self.template, k), sysctl_path(root, k))

    def all_hosts(self):
        return [(h, self.roots[h], i) for i, h in enumerate(self.names, 1)] + \
               [(h, root, i) for (h, port, root, uri, i) in self.ssh_hosts]

    def check_state(self, side, mode):
        """After a run: what the hosts' files say (untimed). Returns a list of problems."""
        bad = []
        for h, root, i in self.all_hosts():
            f = root / SYSCTL_FILE
            want_file = mode != "check" and side in ("kvmtune", "stock")
            if want_file:
                text = f.read_text() if f.exists() else ""
                got = dict((a.strip(), b.strip()) for a, b in
                           (l.split("=", 1) for l in text.splitlines() if "=" in l and not l.startswith("#")))
                for k, v in self.keys(i).items():
                    if got.get(k) != v:
                        bad.append("%s: %s in %s is %r" % (h, k, f, got.get(k)))
            elif f.exists() and side != "ping":
                bad.append("%s: %s written in %s mode" % (h, f, mode))
            for k, v in self.keys(i).items():
                cur = sysctl_path(root, k).read_text().strip()
                want = v if (side == "kvmtune" and mode != "check") else sysctl_path(self.template, k).read_text().strip()
                if cur != want:
                    bad.append("%s: %s is %s, want %s" % (h, k, cur, want))
        return bad[:10] + (["... %d more" % (len(bad) - 10)] if len(bad) > 10 else [])

    def env(self, forks):
        e = dict(os.environ)
        e.pop("LIBVIRT_DEFAULT_URI", None)
        e.update({
            "ANSIBLE_COLLECTIONS_PATH": str(self.work / "collections"),
            "ANSIBLE_HOME": str(self.work / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(self.work / "ansible-tmp"),
            "ANSIBLE_REMOTE_TMP": str(self.work / "ansible-remote-tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.work / "ansible-cp"),
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null -o IdentityFile=%s" % (self.work / "ssh/id"),
            "ANSIBLE_FORKS": str(forks),
        })
        return e


def loadavg():
    return float(open("/proc/loadavg").read().split()[0])


def recap(out):
    rc = {}
    part = out.split("PLAY RECAP", 1)
    if len(part) < 2:
        return rc
    for l in part[1].splitlines():
        m = re.match(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", l)
        if m:
            rc[m.group(1)] = tuple(int(x) for x in m.groups()[1:])
    return rc


def kvmtune_times(log):
    """Per host: (wall s, CPU s) summed over its kvmtune processes in this run."""
    per = {}
    if not log.exists():
        return per
    for l in log.read_text().splitlines():
        f = l.split()
        if len(f) < 6:
            continue
        def secs(t):
            m = re.match(r"(\d+)m([\d.]+)s", t)
            return int(m.group(1)) * 60 + float(m.group(2))
        w, cpu = float(f[3]) - float(f[2]), secs(f[4]) + secs(f[5])
        a = per.setdefault(f[0], [0.0, 0.0, 0])
        a[0] += w
        a[1] += cpu
        a[2] += 1
    return per


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else None


def run(fleet, side, mode, forks, limit=None):
    pb = fleet.work / ("%s.yml" % side)
    cmd = [str(fleet.venv / "bin/ansible-playbook"), "-i", str(fleet.work / "inventory.yml"), str(pb)]
    if mode == "check":
        cmd.append("--check")
    if limit:
        cmd += ["--limit", limit]
    if fleet.timelog.exists():
        fleet.timelog.unlink()
    la0 = loadavg()
    t = time.monotonic()
    p = subprocess.run(cmd, env=fleet.env(forks), capture_output=True, text=True)
    wall = time.monotonic() - t
    la1 = loadavg()
    out = p.stdout + p.stderr
    r = recap(out)
    hosts = len(r)
    failed = sorted(h for h, v in r.items() if v[3] or v[2])
    changed = sum(1 for v in r.values() if v[1])
    res = {"side": side, "mode": mode, "forks": forks, "hosts": hosts, "wall_s": round(wall, 2),
           "s_per_host": round(wall / max(hosts, 1), 4), "load_before": la0, "load_after": la1,
           "changed_hosts": changed, "failed": failed[:5], "n_failed": len(failed), "rc": p.returncode}
    if side == "kvmtune":
        per = kvmtune_times(fleet.timelog)
        walls = [v[0] for v in per.values()]
        cpus = [v[1] for v in per.values()]
        res["kvmtune"] = {"hosts": len(per), "procs": sum(v[2] for v in per.values()),
                          "wall_median": pct(walls, 50), "wall_p95": pct(walls, 95), "wall_max": max(walls) if walls else None,
                          "cpu_median": pct(cpus, 50), "cpu_max": max(cpus) if cpus else None}
    if p.returncode not in (0, 2) or failed:
        (fleet.work / ("failed-%s-%s-%d.log" % (side, mode, forks))).write_text(out)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--forks", default="10,50,100")
    ap.add_argument("--sides", default="ping,kvmtune,stock")
    ap.add_argument("--modes", default="check,apply,noop")
    ap.add_argument("--work", type=Path, default=Path("/tmp/kvmtune-fleet"))
    ap.add_argument("--kvmtune", type=Path, default=REPO / "target/release/kvmtune")
    ap.add_argument("--venv", type=Path, default=REPO / "target/fleet-venv")
    ap.add_argument("--ssh", default="", help="real hosts over SSH: name:port:root:uri,... with the"
                    " client key at WORK/ssh/id (docs/benchmarks.md); use with --hosts 0")
    ap.add_argument("--out", type=Path, default=None, help="append results (JSON lines) here")
    a = ap.parse_args()
    ssh = []
    for i, s in enumerate(filter(None, a.ssh.split(",")), 1):
        name, port, root, uri = s.split(":", 3)
        ssh.append((name, int(port), Path(root), uri, 9000 + i))
    a.work.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(a.work, a.hosts, a.kvmtune.resolve(), a.venv.resolve(), ssh)
    t = time.monotonic()
    fleet.build()
    print("built %d hosts in %.1f s under %s" % (a.hosts, time.monotonic() - t, a.work), file=sys.stderr)
    out = open(a.out, "a") if a.out else None
    for forks in [int(f) for f in a.forks.split(",")]:
        for side in a.sides.split(","):
            modes = ["apply"] if side == "ping" else a.modes.split(",")
            fleet.reset()
            for mode in modes:
                res = run(fleet, side, mode, forks)
                res["state_problems"] = fleet.check_state(side, mode)
                res["n"] = a.hosts + len(ssh)
                line = json.dumps(res)
                print(line, flush=True)
                if out:
                    out.write(line + "\n")
                    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
