#!/usr/bin/env bash
# Build etcd, etcdctl and etcdutl for the lab's artifacts bundle from Go module sources (the
# machines have the Go module proxy but no GitHub releases), one directory per version:
#   $BUNDLE/etcd-$V-linux-$ARCH/{etcd,etcdctl,etcdutl}
# and refresh $BUNDLE/SHA256SUMS. A version already built is skipped (the bundle is a cache).
# Usage: build-etcd.sh BUNDLE_DIR VERSION...
set -euo pipefail
bundle=$1; shift
arch=$(go env GOARCH)
export CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$bundle"
for v in "$@"; do
  out="$bundle/etcd-$v-linux-$arch"
  if [ -x "$out/etcd" ] && [ -x "$out/etcdctl" ] && [ -x "$out/etcdutl" ]; then
    echo "etcd $v: cached in $out"; continue
  fi
  t0=$(date +%s)
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/tools"
  # `go install go.etcd.io/etcd/server/v3@V` is refused (its go.mod has replace directives), so a
  # wrapper module pins every etcd module of the release to the same version.
  { echo "module kinstall-etcd-build"; echo; echo "go 1.24.0"; echo
    echo "require go.etcd.io/etcd/server/v3 $v"
    for m in api client/pkg client/v3 pkg etcdctl etcdutl server; do
      echo "replace go.etcd.io/etcd/$m/v3 => go.etcd.io/etcd/$m/v3 $v"
    done; } >"$work/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "go.etcd.io/etcd/server/v3"\n\t_ "go.etcd.io/etcd/etcdctl/v3"\n\t_ "go.etcd.io/etcd/etcdutl/v3"\n)\n' >"$work/tools/tools.go"
  (cd "$work" && go mod tidy >/dev/null 2>&1 || { go mod tidy; exit 1; })
  mkdir -p "$out.tmp"
  for b in server:etcd etcdctl:etcdctl etcdutl:etcdutl; do
    (cd "$work" && nice -n 10 go build -trimpath -ldflags "-s -w" -o "$out.tmp/${b#*:}" "go.etcd.io/etcd/${b%%:*}/v3")
  done
  rm -rf "$out"; mv "$out.tmp" "$out"
  rm -rf "$work"; trap - EXIT
  echo "etcd $v: built in $(( $(date +%s) - t0 ))s: $("$out/etcd" --version | head -1)"
done
bash "$(dirname "$0")/sums.sh" "$bundle"
