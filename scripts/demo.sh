#!/usr/bin/env bash
# Show kvmtune's plan for the demo host, with no daemon and no real changes:
# libvirt's built-in "test" driver serves examples/demo/host.xml and
# examples/demo/root stands in for /proc and /sys.
# Extra arguments are passed on to kvmtune.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="$REPO/examples/demo"

# Build dependencies only (libvirt0 contains the test driver).
missing=()
for p in pkg-config libvirt-dev libvirt0; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] \
        || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "demo: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -q "${missing[@]}"
fi

if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

cd "$REPO"
cargo build --release -q

# "test:///" + an absolute path gives four slashes; libvirt accepts that.
exec target/release/kvmtune \
    --connect "test:///$DEMO/host.xml" \
    --root "$DEMO/root" \
    plan "$DEMO/tuning.yaml" "$@"
