#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: (c) 2025, kvmtune developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0

"""Ansible module wrapping the kvmtune binary."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kvmtune
short_description: Declarative KVM hypervisor tuning with kvmtune
version_added: "0.1.0"
description:
  - Plans with C(kvmtune plan --format json --detailed-exitcode --out FILE) on the managed host and,
    when there are changes and not in check mode, applies exactly that saved plan with
    C(kvmtune apply FILE). A plan that went stale between the two steps fails the task instead
    of applying something else.
  - The task fails on configuration errors, plan errors (for example a guest that is not defined
    on this hypervisor) and failed changes; C(msg) names each problem with its file, key and cause.
  - A task that failed without changing anything (a lock timeout, a stale plan) reports
    C(changed=false).
options:
  config:
    description:
      - kvmtune configuration files or directories of C(*.yaml) files on the managed host (they merge).
      - Required unless O(host_config) is given.
    type: list
    elements: path
  host_config:
    description:
      - A fleet directory (C(--host-config)) on the managed host. Its C(*.yaml) files are shared by
        every host, C(groups/<group>.yaml) adds the settings of each group in O(groups), and
        C(hosts/<hostname>.yaml) this host's own. Files of other hosts and groups are not opened.
    type: path
  hostname:
    description:
      - This machine's name for C(hosts:) selectors, C(hosts/<hostname>.yaml) and saved plans
        (C(--hostname)). Default the kernel's hostname; pass C({{ inventory_hostname }}) to use the
        inventory's names.
    type: str
  groups:
    description:
      - Groups this host is in (C(--group)), for C(groups/<group>.yaml) under O(host_config); for
        example C({{ group_names }}). Groups without a file are ignored.
    type: list
    elements: str
    default: []
  strict:
    description:
      - Fail when the configuration selects files per host and none selects this one (no
        C(hosts/<hostname>.yaml) or groups file, no C(hosts:) naming it). Without it, a warning.
    type: bool
    default: false
  connect:
    description: libvirt URI (C(--connect)). Default C(qemu:///system).
    type: str
  root:
    description: Host root (C(--root)) below which /proc, /sys and /etc are read and written.
    type: path
  lock_file:
    description:
      - Lock file of automatic pinning (C(--lock-file)), read when it exists and written by apply.
    type: path
  lock_timeout:
    description:
      - Seconds to wait for another apply's lock before failing (C(--lock-timeout)).
    type: int
    default: 60
  keep_backups:
    description: Apply records (backups) kept in /var/lib/kvmtune (C(--keep-backups)).
    type: int
    default: 20
  restart_guests:
    description:
      - Restart running guests whose changes wait for a restart (graceful shutdown, then start;
        a guest that does not shut down in time is left running). Use C(serial:) in the play to
        restart a fleet's guests host by host.
    type: bool
    default: false
  shutdown_timeout:
    description: Seconds a guest may take to shut down with O(restart_guests) (C(--shutdown-timeout)).
    type: int
    default: 120
  binary:
    description: Path to the kvmtune binary; default C(kvmtune) from PATH.
    type: path
attributes:
  check_mode:
    description: Plans only; nothing is changed and the plan is returned.
    support: full
  diff_mode:
    description:
      - One before/after pair per setting, in the words of C(kvmtune plan) (C((absent)),
        C((unset))), headed with the setting and its effect (C((restart needed)),
        C((reboot needed))); and each guest's defined and planned domain XML.
    support: full
  platform:
    description: Linux KVM hypervisors with libvirt; the kvmtune binary on the managed host.
    support: full
    platforms: posix
requirements:
  - The C(kvmtune) binary on the managed host (see O(binary)); the C(kvmtune) role installs it.
  - libvirt on the managed host when the configuration declares guests.
notes:
  - Run C(kvmtune validate) over the whole repository once on the controller (the C(kvmtune) role
    does, with C(run_once)); a broken file meant for one host then fails validation before any host
    is touched, and at run time it fails only the hosts it selects.
  - Applying needs root on the managed host (C(become)), unless O(root) points at a writable tree.
  - The module never edits anything kvmtune does not own; see the kvmtune README.
author:
  - kvmtune developers (@kvmtune)
"""

EXAMPLES = r"""
- name: Tune the hypervisor from one directory of YAML
  kvmtune.kvmtune.kvmtune:
    config: /etc/kvmtune/
  register: tuning

- name: Tune a fleet from a repository laid out like host_vars/group_vars
  kvmtune.kvmtune.kvmtune:
    host_config: /etc/kvmtune/fleet
    hostname: "{{ inventory_hostname }}"
    groups: "{{ group_names }}"
    strict: true
    lock_timeout: 10
  register: tuning

- name: Show what waits for a guest restart
  ansible.builtin.debug:
    var: tuning.pending_restart
  when: tuning.pending_restart | length > 0

- name: Restart guests with pending changes, one hypervisor at a time
  hosts: hypervisors
  serial: 1
  tasks:
    - name: Apply and restart the guests that need it
      kvmtune.kvmtune.kvmtune:
        host_config: /etc/kvmtune/fleet
        hostname: "{{ inventory_hostname }}"
        restart_guests: true
        shutdown_timeout: 300

- name: Plan only, and fail the play when a host drifts
  kvmtune.kvmtune.kvmtune:
    config: /etc/kvmtune/
  check_mode: true
  register: drift
  failed_when: drift.changes | length > 0
"""

RETURN = r"""
plan:
  description:
    - The plan as C(kvmtune plan --format json) prints it, with every list present (empty when
      there is nothing). On configuration or read errors, when no plan could be made, the empty
      plan (no changes, no errors, zero counts); the problems are in RV(errors).
  returned: always
  type: dict
  contains:
    format_version:
      description: Version of the plan format.
      type: int
      sample: 1
    changes:
      description: Same as RV(changes).
      type: list
      elements: dict
    errors:
      description: Plan errors (the targets they name get no change); same keys as RV(errors).
      type: list
      elements: dict
    pending_restart:
      description: Settings already defined on running guests that wait for their restart.
      type: list
      elements: dict
    restarts:
      description: Guests O(restart_guests) restarts, as C(guest/<name>).
      type: list
      elements: str
      sample: ["guest/db1"]
    notes:
      description: Facts that are not changes (for example where hugetlbfs is mounted).
      type: list
      elements: str
    summary:
      description: Counts of changes, changed targets and errors.
      type: dict
      sample: {"changes": 1, "targets": 1, "errors": 0}
  sample:
    format_version: 1
    changes:
      - {"target": "host", "path": "sysctl.vm.swappiness", "before": "60", "after": "10", "effect": "live"}
    errors: []
    pending_restart: []
    restarts: []
    notes: []
    summary: {"changes": 1, "targets": 1, "errors": 0}
changes:
  description:
    - The planned changes, one per setting. C(target) is C(host) or C(guest/<name>); C(path) the
      setting; C(before)/C(after) the values (null when absent); C(effect) is C(live), C(restart)
      (at the guest's next restart) or C(reboot) (at the host's next boot).
  returned: always
  type: list
  elements: dict
  sample:
    - {"target": "host", "path": "sysctl.vm.swappiness", "before": "60", "after": "10", "effect": "live"}
    - {"target": "guest/db1", "path": "vcpu.count", "before": "2", "after": "4", "effect": "restart"}
pending_restart:
  description:
    - Settings defined on running guests that take effect at their next restart, including those
      this run wrote (unless O(restart_guests) restarted them). C(running) is the value in effect,
      C(defined) the one that waits.
  returned: always
  type: list
  elements: dict
  sample:
    - {"target": "guest/db1", "path": "vcpu.count", "running": "2", "defined": "4"}
errors:
  description:
    - Every problem, each with C(message) and where known C(location) (C(file:line:column) in the
      configuration), C(key) (the setting) and C(target) (C(host) or C(guest/<name>)). Empty on
      success.
  returned: always
  type: list
  elements: dict
  sample:
    - {"target": "guest/db9", "key": "guests.db9", "location": "/etc/kvmtune/hosts/hv-1.yaml:3:3",
       "message": "no guest named `db9` is defined on this hypervisor"}
report:
  description:
    - The apply report (C(kvmtune apply --format json)); C(results) has one entry per target with
      C(outcome) (C(applied) or C(failed)), C(applied) and C(failed) ([path, cause]) changes.
  returned: when an apply ran
  type: dict
  sample:
    results:
      - {"target": "host", "outcome": "applied", "applied": ["sysctl.vm.swappiness"], "failed": []}
    defines: 0
    host_writes: 1
    live_changes: 0
    restarts: 0
    host_commands: 0
"""

import json
import os
import re

from ansible.module_utils.basic import AnsibleModule

# `file:line:col: [key: ]message`, as kvmtune prints configuration errors.
LOCATED = re.compile(r"^(?P<location>[^\s:][^:]*:\d+:\d+): (?P<message>.*)$")
HOST_KEY = re.compile(r" \((host\.[^\s()]+)\)")
KEYED = re.compile(r"^(?P<key>[^\s:]+): (?P<message>.*)$")

PLAN_LISTS = ("changes", "errors", "pending_restart", "restarts", "notes")


def empty_plan():
    plan = dict((k, []) for k in PLAN_LISTS)
    plan["format_version"] = 1
    plan["summary"] = {"changes": 0, "targets": 0, "errors": 0}
    return plan


def parse_json(text):
    try:
        v = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return v if isinstance(v, dict) else None


def complete_plan(v):
    """The CLI's plan with every list present; the empty plan when there is none."""
    plan = empty_plan()
    if v:
        plan.update(dict((k, val) for k, val in v.items() if k != "diff"))
        for k in PLAN_LISTS:
            plan[k] = plan.get(k) or []
    return plan


def stderr_problems(err):
    """(warnings, errors) from kvmtune's stderr lines."""
    warnings, errors = [], []
    for line in err.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("warning: "):
            warnings.append(line[len("warning: "):])
            continue
        if line.startswith("error: "):
            line = line[len("error: "):]
        m = LOCATED.match(line)
        if not m:
            # A host read error names the file and the declared key: `/proc/... (host.x): cause`.
            k = HOST_KEY.search(line)
            errors.append({"key": k.group(1), "message": line} if k else {"message": line})
            continue
        e = m.groupdict()
        k = KEYED.match(e["message"])
        if k:
            e.update(k.groupdict())
        errors.append(e)
    return warnings, errors


def describe(e):
    parts = [e[k] for k in ("target", "location", "key") if e.get(k)]
    # A plan error's target is also the start of its key (`guest/db9` and `guests.db9`).
    if e.get("target") and e.get("location"):
        parts = parts[1:]
    return ": ".join(parts + [e.get("message", "")])


def failed_entries(report):
    out = []
    for r in report.get("results", []):
        for path, why in r.get("failed", []):
            out.append({"target": r.get("target"), "key": path, "message": why})
    return out


def made_changes(report):
    if not report:
        return False
    counts = ("defines", "host_writes", "live_changes", "restarts", "host_commands")
    if any(report.get(k, 0) for k in counts):
        return True
    return any(r.get("applied") for r in report.get("results", []))


def diff_entries(v):
    """One before/after pair per setting, then each guest's XML."""
    d = (v or {}).get("diff") or {}
    out = []
    for c in d.get("changes", []):
        title = "%s %s" % (c["heading"], c["path"])
        marker = (" " + c["marker"]) if c.get("marker") else ""
        out.append(
            {
                "before_header": title,
                "after_header": title + marker,
                "before": c["before"] + "\n",
                "after": c["after"] + "\n",
            }
        )
    for g in d.get("guests", []):
        out.append(
            {
                "before_header": "%s (defined)" % g["name"],
                "after_header": "%s (planned)" % g["name"],
                "before": g["defined"],
                "after": g["planned"],
            }
        )
    return out


def pending(plan, restart_guests, applied):
    """What waits for a guest restart: already pending, plus what this apply wrote for restart."""
    out = list(plan.get("pending_restart", []))
    if applied and not restart_guests:
        for c in plan.get("changes", []):
            if c.get("effect") == "restart":
                out.append({"target": c["target"], "path": c["path"], "running": c.get("before"), "defined": c.get("after")})
    return out


def base_command(module, p):
    binary = p["binary"] or module.get_bin_path("kvmtune", required=True)
    cmd = [binary]
    for opt, flag in (("connect", "--connect"), ("root", "--root"), ("lock_file", "--lock-file"), ("hostname", "--hostname")):
        if p[opt]:
            cmd += [flag, p[opt]]
    return cmd


def plan_command(base, p, saved, diff):
    cmd = base + ["plan"] + list(p["config"] or [])
    if p["host_config"]:
        cmd += ["--host-config", p["host_config"]]
        for g in p["groups"]:
            cmd += ["--group", g]
    if p["strict"]:
        cmd.append("--strict")
    cmd += ["--format", "json", "--detailed-exitcode", "--out", saved]
    if diff:
        cmd.append("--diff")
    if p["restart_guests"]:
        cmd += ["--restart-guests", "--shutdown-timeout", str(p["shutdown_timeout"])]
    return cmd


def fail(module, what, errors, result):
    msg = "kvmtune %s failed: %s" % (what, "; ".join(describe(e) for e in errors) or "no reason given")
    result["errors"] = errors
    module.fail_json(msg=msg, **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type="list", elements="path"),
            host_config=dict(type="path"),
            hostname=dict(type="str"),
            groups=dict(type="list", elements="str", default=[]),
            strict=dict(type="bool", default=False),
            connect=dict(type="str"),
            root=dict(type="path"),
            lock_file=dict(type="path"),
            lock_timeout=dict(type="int", default=60),
            keep_backups=dict(type="int", default=20),
            restart_guests=dict(type="bool", default=False),
            shutdown_timeout=dict(type="int", default=120),
            binary=dict(type="path"),
        ),
        required_one_of=[("config", "host_config")],
        supports_check_mode=True,
    )
    p = module.params
    base = base_command(module, p)
    saved = os.path.join(module.tmpdir, "kvmtune-plan.json")
    rc, out, err = module.run_command(plan_command(base, p, saved, module._diff))
    printed = parse_json(out)
    plan = complete_plan(printed)
    warnings, problems = stderr_problems(err)
    for w in warnings:
        module.warn(w)
    result = dict(changed=False, plan=plan, changes=plan["changes"], errors=[], pending_restart=pending(plan, p["restart_guests"], False))
    if module._diff:
        result["diff"] = diff_entries(printed)
    if rc not in (0, 2):
        # Plan errors are in the plan; anything else (configuration, reading the host) on stderr.
        fail(module, "plan", plan["errors"] or problems, result)
    if rc == 0 or module.check_mode:
        result["changed"] = rc == 2
        module.exit_json(**result)
    cmd = base + ["apply", saved, "--format", "json", "--lock-timeout", str(p["lock_timeout"]), "--keep-backups", str(p["keep_backups"])]
    rc, out, err = module.run_command(cmd)
    report = parse_json(out) or {}
    result["changed"] = made_changes(report)
    if report:
        result["report"] = report
        result["pending_restart"] = pending(plan, p["restart_guests"], result["changed"])
    if rc != 0:
        fail(module, "apply", failed_entries(report) or stderr_problems(err)[1], result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
