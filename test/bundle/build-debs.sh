#!/usr/bin/env bash
# Add the distribution packages the roles install (haproxy, keepalived, containerd, runc, CNI
# plugins, conntrack, socat, iptables) to the lab's bundle, for
# hosts without a package mirror: $BUNDLE/debs/debian-12-$ARCH/*.deb, with everything a minimal
# Debian 12 host (the lab image) lacks, resolved by apt inside a throw-away lab container.
# Refreshes $BUNDLE/SHA256SUMS. Skipped when already there.
# Usage: build-debs.sh BUNDLE_DIR [IMAGE]
set -euo pipefail
bundle=$1
image=${2:-kinstall-lab:bookworm}
arch=$(dpkg --print-architecture)
out="$bundle/debs/debian-12-$arch"
pkgs="haproxy keepalived containerd runc containernetworking-plugins conntrack socat iptables"
if [ -f "$out/.packages" ] && [ "$(cat "$out/.packages")" = "$pkgs" ]; then
  echo "debs ($pkgs): cached in $out"; exit 0
fi
t0=$(date +%s)
rm -rf "$out.tmp"; mkdir -p "$out.tmp"
docker run --rm --network bridge -v "$(realpath "$out.tmp")":/out --entrypoint /bin/bash "$image" -c \
  "set -e; apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --download-only $pkgs >/dev/null; cp /var/cache/apt/archives/*.deb /out/"
echo "$pkgs" >"$out.tmp/.packages"
rm -rf "$out"; mv "$out.tmp" "$out"
echo "debs ($pkgs): $(ls "$out"/*.deb | wc -l) packages in $(( $(date +%s) - t0 ))s"
bash "$(dirname "$0")/sums.sh" "$bundle"
