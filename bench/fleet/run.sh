#!/bin/sh
# Fleet benchmark (docs/benchmarks.md, "Fleet (Ansible)"): the kvmtune Ansible module on N
# simulated hypervisors against ansible.posix.sysctl + community.libvirt.virt and ping.
# Not part of `cargo test`. From the repository root:
#
#   bench/fleet/run.sh [--hosts 1000] [--forks 10,50,100] [--sides ping,kvmtune,stock]
#                      [--modes check,apply,noop] [--work DIR] [--out results.jsonl]
#
# Needs: target/release/kvmtune (cargo build --release -p kvmtune --bin kvmtune), virsh
# (libvirt-clients), and a venv with the full `ansible` package (it bundles ansible.posix and
# community.libvirt), libvirt-python (libvirt-dev + pkg-config + gcc + python3-dev to build) and
# lxml; created here on first use.
set -eu
cd "$(dirname "$0")/../.."
VENV=${KVMTUNE_FLEET_VENV:-target/fleet-venv}
if [ ! -x "$VENV/bin/ansible-playbook" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q ansible libvirt-python lxml
fi
[ -x target/release/kvmtune ] || { echo "build first: cargo build --release -p kvmtune --bin kvmtune" >&2; exit 1; }
exec "$VENV/bin/python" bench/fleet/fleet.py --venv "$VENV" "$@"
