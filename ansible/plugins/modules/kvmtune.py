#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Ansible module wrapping the kvmtune binary."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kvmtune
short_description: Declarative KVM hypervisor tuning with kvmtune
description:
  - Plans with C(kvmtune plan --format json --detailed-exitcode --out FILE) and, when there are
    changes and not in check mode, applies exactly that saved plan with C(kvmtune apply FILE).
  - Supports check mode (plan only) and diff mode.
options:
  config:
    description: A kvmtune configuration file or a directory of *.yaml files on the managed host.
    type: path
    required: true
  connect:
    description: libvirt URI (C(--connect)).
    type: str
  root:
    description: Host root (C(--root)) where /proc, /sys and /etc are read and written.
    type: path
  restart_guests:
    description: Restart running guests whose changes wait for a restart (graceful shutdown, then start).
    type: bool
    default: false
  binary:
    description: Path to the kvmtune binary; default C(kvmtune) from PATH.
    type: path
author:
  - kvmtune developers
"""

EXAMPLES = r"""
- name: Tune the hypervisor
  kvmtune.kvmtune.kvmtune:
    config: /etc/kvmtune/
    connect: qemu:///system
"""

RETURN = r"""
plan:
  description: The plan as C(kvmtune plan --format json) prints it.
  returned: always
  type: dict
pending_restart:
  description: Settings written to running guests' definitions that take effect at their next restart.
  returned: always
  type: list
report:
  description: The apply report (C(kvmtune apply --format json)).
  returned: when applied
  type: dict
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule


def _show(v):
    return "(unset)" if v is None else str(v)


def _diff(plan):
    before, after = [], []
    for c in plan.get("changes", []):
        before.append("%s %s: %s" % (c["target"], c["path"], _show(c.get("before"))))
        after.append("%s %s: %s" % (c["target"], c["path"], _show(c.get("after"))))
    return {
        "before": "\n".join(before) + ("\n" if before else ""),
        "after": "\n".join(after) + ("\n" if after else ""),
        "before_header": "current state",
        "after_header": "kvmtune plan",
    }


def _pending(plan, restart_guests, applied):
    """What waits for a guest restart: already pending, plus what this apply writes for restart."""
    pending = list(plan.get("pending_restart", []))
    if applied and not restart_guests:
        for c in plan.get("changes", []):
            if c.get("effect") == "restart":
                pending.append(
                    {"target": c["target"], "path": c["path"], "running": c.get("before"), "defined": c.get("after")}
                )
    return pending


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type="path", required=True),
            connect=dict(type="str"),
            root=dict(type="path"),
            restart_guests=dict(type="bool", default=False),
            binary=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    binary = p["binary"] or module.get_bin_path("kvmtune", required=True)
    base = [binary]
    if p["connect"]:
        base += ["--connect", p["connect"]]
    if p["root"]:
        base += ["--root", p["root"]]
    saved = os.path.join(module.tmpdir, "kvmtune-plan.json")
    cmd = base + ["plan", p["config"], "--format", "json", "--detailed-exitcode", "--out", saved]
    if p["restart_guests"]:
        cmd.append("--restart-guests")
    rc, out, err = module.run_command(cmd)
    try:
        plan = json.loads(out) if out.strip() else {}
    except ValueError:
        plan = {}
    if rc not in (0, 2):
        module.fail_json(msg="kvmtune plan failed: %s" % (err.strip() or out.strip()), rc=rc, plan=plan, stderr=err)
    changed = rc == 2
    result = dict(changed=changed, plan=plan)
    if module._diff:
        result["diff"] = _diff(plan)
    if not changed or module.check_mode:
        result["pending_restart"] = _pending(plan, p["restart_guests"], False)
        module.exit_json(**result)
    rc, out, err = module.run_command(base + ["apply", saved, "--format", "json"])
    try:
        report = json.loads(out) if out.strip() else {}
    except ValueError:
        report = {}
    result["report"] = report
    result["pending_restart"] = _pending(plan, p["restart_guests"], True)
    if rc != 0:
        module.fail_json(msg="kvmtune apply failed: %s" % (err.strip() or out.strip()), rc=rc, stderr=err, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
