#!/usr/bin/env bash
# Build the Kubernetes binaries of the lab's artifacts bundle from Go module sources (the machines
# reach the Go module proxy, not dl.k8s.io), one directory per version:
#   $BUNDLE/kubernetes-$V-linux-$ARCH/{kubeadm,kubelet,kubectl,kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy}
# and refresh $BUNDLE/SHA256SUMS. A version already built is skipped (the bundle is a cache).
# About 6 minutes per version on 2 cores, ~420 MiB.
# Usage: build-k8s.sh BUNDLE_DIR VERSION...
set -euo pipefail
bundle=$1; shift
arch=$(go env GOARCH)
export CGO_ENABLED=0 GOFLAGS=-mod=mod
cmds="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubeadm kubectl"
mkdir -p "$bundle"
for v in "$@"; do
  out="$bundle/kubernetes-$v-linux-$arch"
  if [ -f "$out/.complete" ]; then echo "kubernetes $v: cached in $out"; continue; fi
  t0=$(date +%s)
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/tools"
  # k8s.io/kubernetes points each k8s.io/* staging module at ./staging/..., which the module zip
  # lacks: replace each with its published twin (v1.34.4 -> v0.34.4).
  modfile=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  minor=${v#v1.}
  { echo "module kinstall-k8s-build"; echo; echo "go 1.24.0"; echo
    echo "require k8s.io/kubernetes $v"
    sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$modfile" | sort -u |
      while read -r m; do echo "replace $m => $m v0.$minor"; done; } >"$work/go.mod"
  # A tools file (never built) makes `go mod tidy` record what every command needs.
  { printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in $cmds; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done; printf ')\n'; } >"$work/tools/tools.go"
  (cd "$work" && go mod tidy >tidy.log 2>&1 || { cat tidy.log; exit 1; })
  # kubeadm reads its own version to pick image tags and to check the kubelet: stamp it.
  mnr=${minor%%.*}
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$mnr -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  mkdir -p "$out.tmp"
  for c in $cmds; do
    [ -x "$out.tmp/$c" ] && continue
    (cd "$work" && nice -n 10 go build -trimpath -ldflags "$ld" -o "$out.tmp/$c" "k8s.io/kubernetes/cmd/$c")
    echo "kubernetes $v: $c after $(( $(date +%s) - t0 ))s"
  done
  touch "$out.tmp/.complete"
  rm -rf "$out"; mv "$out.tmp" "$out"
  rm -rf "$work"; trap - EXIT
  echo "kubernetes $v: built in $(( $(date +%s) - t0 ))s: $("$out/kubeadm" version -o short)"
done
bash "$(dirname "$0")/sums.sh" "$bundle"
