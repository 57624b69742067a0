#!/usr/bin/env bash
# shared/data/phone-metadata.bin is rlibphonenumber's own metadata file, copied because the crate
# does not export it (shared/src/domain/phone.rs loads it per calling code). Without arguments:
# fails unless the copy is identical to the locked crate version's. `--update` (make
# phone-metadata) refreshes the copy after an rlibphonenumber upgrade.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
case "${1:-}" in
  "" | --update) ;;
  *) echo "usage: scripts/phone-metadata.sh [--update]" >&2; exit 2 ;;
esac
crate_dir="$(cargo metadata --format-version 1 --locked | python3 -c '
import json, os, sys
packages = json.load(sys.stdin)["packages"]
print(next(os.path.dirname(p["manifest_path"]) for p in packages if p["name"] == "rlibphonenumber"))
')"
source="$crate_dir/src/generated/metadata/metadata.bin"
copy=shared/data/phone-metadata.bin
if [ "${1:-}" = "--update" ]; then
  cp "$source" "$copy"
  echo "phone metadata: copied $source to $copy"
elif cmp -s "$source" "$copy"; then
  echo "phone metadata: $copy is identical to $source"
else
  echo "phone metadata: $copy differs from $source; run make phone-metadata" >&2
  exit 1
fi
