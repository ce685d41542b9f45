#!/usr/bin/env bash
# Build flanneld for the lab's artifacts bundle from Go module sources (the machines have the Go
# module proxy but no GitHub releases), one directory per version:
#   $BUNDLE/flannel-$V-linux-$ARCH/flanneld
# and refresh $BUNDLE/SHA256SUMS. A version already built is skipped (the bundle is a cache).
# Usage: build-flannel.sh BUNDLE_DIR [VERSION...]   (default v0.28.10)
set -euo pipefail
bundle=$1; shift
[ $# -gt 0 ] || set -- v0.28.10
arch=$(go env GOARCH)
# The udp backend is cgo. Linked statically like upstream's release (-extldflags -static) so it
# runs on any host; netgo/osusergo keep glibc's NSS out of the static binary.
export CGO_ENABLED=1 GOFLAGS=-mod=mod
mkdir -p "$bundle"
for v in "$@"; do
  out="$bundle/flannel-$v-linux-$arch"
  if [ -x "$out/flanneld" ]; then echo "flannel $v: cached in $out"; continue; fi
  t0=$(date +%s)
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  json=$(go mod download -json "github.com/flannel-io/flannel@$v")
  src=$(sed -n 's/.*"Dir": "\(.*\)".*/\1/p' <<<"$json")
  # A wrapper module requires flannel and repeats the replace lines of flannel's go.mod (`go
  # install` refuses a module that has any; v0.28.10 has none active).
  { echo "module kinstall-flannel-build"; echo; echo "go 1.24.0"; echo
    echo "require github.com/flannel-io/flannel $v"
    sed -n 's#^\s*replace\s\+\(.* => .*\)#replace \1#p' "$src/go.mod"
    sed -n '/^replace\s*(/,/^)/{/^replace\|^)/d;/^\s*\/\//d;s/^\s*/replace /p}' "$src/go.mod"; } >"$work/go.mod"
  # flanneld's main package imports every backend, and the proxy refuses (403) the Tencent Cloud
  # SDK of the tencent-vpc backend: build a copy of that main.go without that one backend.
  grep -v '"github.com/flannel-io/flannel/pkg/backend/tencentvpc"' "$src/main.go" >"$work/main.go"
  (cd "$work" && go mod tidy >tidy.log 2>&1 || { cat tidy.log; exit 1; })
  mkdir -p "$out.tmp"
  (cd "$work" && nice -n 10 go build -trimpath -tags netgo,osusergo -o "$out.tmp/flanneld" \
    -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$v -extldflags -static" .)
  rm -rf "$out"; mv "$out.tmp" "$out"
  rm -rf "$work"; trap - EXIT
  echo "flannel $v: built in $(( $(date +%s) - t0 ))s: flanneld --version: $("$out/flanneld" --version 2>&1)"
done
bash "$(dirname "$0")/sums.sh" "$bundle"
