#!/usr/bin/env bash
# Refresh BUNDLE/SHA256SUMS: every file of the bundle but hidden ones and unfinished *.tmp
# directories. Files listed already and not changed since the last refresh keep their line,
# so a cached bundle is not hashed again (1.6 GiB otherwise).
# Usage: sums.sh BUNDLE_DIR
set -euo pipefail
cd "$1"
list() { find . -type f ! -name 'SHA256SUMS*' ! -name '.*' ! -path './*.tmp/*' ! -name '*.tmp' -printf '%P\n' | sort; }
new=SHA256SUMS.new.$$
trap 'rm -f "$new"' EXIT
if [ -f SHA256SUMS ]; then
  list | while read -r f; do
    line=$(awk -v f="$f" '$2 == f {print; exit}' SHA256SUMS)
    if [ -n "$line" ] && [ ! "$f" -nt SHA256SUMS ]; then echo "$line"; else sha256sum "$f"; fi
  done >"$new"
else
  list | xargs -r sha256sum >"$new"
fi
mv "$new" SHA256SUMS; trap - EXIT
