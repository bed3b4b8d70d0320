#!/usr/bin/env bash
# Regenerates data/osinfo-ids.tsv (libosinfo short id -> OS id URL) from the osinfo-db package:
#   apt-get install osinfo-db && bash scripts/gen-osinfo-ids.sh
# kvmtune takes `os_variant` ids from this table; short ids newer than the table fall back to
# the family's URL pattern (src: osinfo_id).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
db=/usr/share/osinfo/os
[ -d "$db" ] || { echo "no $db: install the osinfo-db package" >&2; exit 1; }
{
    echo "# libosinfo short id -> id URL, generated from osinfo-db by scripts/gen-osinfo-ids.sh"
    echo "# osinfo-db $(dpkg-query -W -f='${Version}' osinfo-db)"
    for f in "$db"/*/*.xml; do
        id=$(sed -n 's/.*<os id="\([^"]*\)".*/\1/p' "$f" | head -n 1)
        [ -n "$id" ] || continue
        sed -n 's/.*<short-id>\([^<]*\)<\/short-id>.*/\1/p' "$f" | while read -r s; do
            printf '%s\t%s\n' "$s" "$id"
        done
    done | sort -u -t "$(printf '\t')" -k1,1
} > data/osinfo-ids.tsv
echo "data/osinfo-ids.tsv: $(grep -vc '^#' data/osinfo-ids.tsv) ids"
