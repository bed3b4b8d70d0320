#!/usr/bin/env bash
# Draw `kvmtune map` of the demo host: examples/demo/map.yaml against libvirt's built-in
# "test" driver (examples/demo/host.xml) and the demo's /proc + /sys tree. No daemon, and
# nothing is changed (map is read-only). Extra arguments go to `kvmtune map`:
#
#   scripts/demo-map.sh                  # the text map, as the plan leaves the host
#   scripts/demo-map.sh --current        # as it is now
#   scripts/demo-map.sh --format svg     # docs/map-demo.svg is exactly this
#
# Builds kvmtune (needs pkg-config and libvirt-dev, see scripts/demo.sh), unless
# KVMTUNE=/path/to/kvmtune names a binary to use.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="$REPO/examples/demo"

if [ -z "${KVMTUNE:-}" ]; then
    if [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    (cd "$REPO" && cargo build --release -q)
    KVMTUNE="$REPO/target/release/kvmtune"
fi

# "test:///" + an absolute path gives four slashes; libvirt accepts that.
exec "$KVMTUNE" \
    --connect "test:///$DEMO/host.xml" \
    --root "$DEMO/root" \
    --hostname demo \
    map "$DEMO/map.yaml" "$@"
