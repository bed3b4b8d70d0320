#!/usr/bin/env bash
# Run kvmtune's test suite against the local libvirtd (qemu:///system).
# Exit code = the test suite's exit code.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/env-up.sh

# env-up.sh runs in a child shell, so pick up rustup's PATH here too.
if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

export KVMTUNE_TEST_URI=qemu:///system

# The fault-injection feature compiles in the test-only kill points (src/faults.rs) that
# tests/faults.rs and tests/gitops_libvirtd.rs need; without it those tests fail.
cargo build --all-targets --features fault-injection

# --all-targets covers lib, bins, tests, examples, benches (not doc tests).
cargo test --all-targets --features fault-injection -- --test-threads=2
