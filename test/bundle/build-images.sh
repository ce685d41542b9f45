#!/usr/bin/env bash
# Build the container images kubeadm needs (imagePullPolicy Never: there is no registry) for the
# lab's artifacts bundle, with `docker build` and no base image pulled, and save them as
# docker-archive tars for `ctr -n k8s.io images import`:
#   $BUNDLE/kube-images-$V-linux-$ARCH/control-plane.tar  kube-apiserver, kube-controller-manager, kube-scheduler
#   $BUNDLE/kube-images-$V-linux-$ARCH/node.tar           kube-proxy, pause, coredns, kinstall.local/probe:v1
#   $BUNDLE/kube-images-$V-linux-$ARCH/images.txt         "REF TAR" per image
# Tags are the ones `kubeadm config images list` prints. Binaries come from
# $BUNDLE/kubernetes-$V-linux-$ARCH (build-k8s.sh); CoreDNS is built from the Go module proxy.
# Refreshes $BUNDLE/SHA256SUMS. Skipped when already built (the bundle is a cache).
# Usage: build-images.sh BUNDLE_DIR VERSION   (WAIT_K8S=SECONDS waits for a running build-k8s.sh)
set -euo pipefail
bundle=$1 v=$2
lab=${LAB_IMAGE:-kinstall-lab:bookworm}
repo=$(cd "$(dirname "$0")/../.." && pwd)
arch=$(go env GOARCH)
k8s="$bundle/kubernetes-$v-linux-$arch"
out="$bundle/kube-images-$v-linux-$arch"
sums() { bash "$(dirname "$0")/sums.sh" "$bundle"; }
if [ -f "$out/images.txt" ]; then echo "images $v: cached in $out"; sums; exit 0; fi
for ((i = 0; i < ${WAIT_K8S:-0}; i += 30)); do [ -f "$k8s/.complete" ] && break; sleep 30; done
[ -f "$k8s/.complete" ] || { echo "images $v: $k8s is not complete (no .complete): run test/bundle/build-k8s.sh $bundle $v first" >&2; exit 1; }
t0=$(date +%s)
export CGO_ENABLED=0
list=$("$k8s/kubeadm" config images list --kubernetes-version "$v")
ref() { grep -m1 "/$1:" <<<"$list" || { echo "images $v: kubeadm lists no $1 image:"$'\n'"$list" >&2; exit 1; }; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# build REF: `docker build` of $work/ctx with the Dockerfile on stdin; ctx is emptied for the next.
build() {
  cat >"$work/ctx/Dockerfile"; docker build -q -t "$1" "$work/ctx" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; return 1; }
  rm -rf "$work/ctx"; mkdir "$work/ctx"
}
mkdir "$work/ctx"
path='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# Control plane: FROM scratch + the static binary at upstream's path. kubeadm's static pods run
# `command: [kube-apiserver, ...]` by name, so PATH must find it.
cp_refs=""
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  r=$(ref "$c"); cp "$k8s/$c" "$work/ctx/"
  printf 'FROM scratch\nCOPY %s /usr/local/bin/%s\n%s\nENTRYPOINT ["/usr/local/bin/%s"]\n' "$c" "$c" "$path" "$c" | build "$r"
  cp_refs="$cp_refs $r"
done

# kube-proxy (iptables mode) runs iptables*, ip6tables* and conntrack: copy them, their ldd
# libraries and the xtables modules (dlopened, so ldd of the binaries misses them) out of the lab
# image. Both variants are there; the unsuffixed names point where the lab image's alternatives
# do (nft, as on the Debian 12 hosts), iptables-legacy* are next to them. /run: iptables' lock.
proxy=$(ref kube-proxy); cp "$k8s/kube-proxy" "$work/ctx/"
build "$proxy" <<EOF
FROM $lab AS src
LABEL kinstall.build-stage=kube-proxy
RUN set -e; mkdir -p /out/usr/sbin /out/etc /out/run /out/tmp; \\
  bins="/usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/sbin/conntrack"; \\
  for f in \$(ldd \$bins /usr/lib/*/xtables/*.so | grep -o '/[^ :]*' | sort -u); do cp -L --parents "\$f" /out; done; \\
  cp -P /usr/sbin/ip*tables-nft* /usr/sbin/ip*tables-legacy* /out/usr/sbin/; \\
  for n in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do \\
    ln -s "\$(basename "\$(readlink /etc/alternatives/\$n)")" /out/usr/sbin/\$n; done; \\
  cp /etc/protocols /etc/services /out/etc/
FROM scratch
COPY --from=src /out/ /
COPY kube-proxy /usr/local/bin/kube-proxy
$path
ENTRYPOINT ["/usr/local/bin/kube-proxy"]
EOF
docker image prune -f --filter label=kinstall.build-stage >/dev/null

# pause: a static Go stand-in for upstream's C program: exit 0 on SIGINT/SIGTERM, reap orphans
# (a pod may share its PID namespace with the sandbox); -v prints a version and exits, as
# upstream's does (kubeadm upgrade's health-check Job runs exactly that).
pause=$(ref pause)
mkdir "$work/pause"
cat >"$work/pause/main.go" <<'EOF'
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (kinstall)")
		return
	}
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", s)
			os.Exit(0)
		}
		for {
			if pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
EOF
printf 'module pause\n\ngo 1.24.0\n' >"$work/pause/go.mod"
(cd "$work/pause" && go build -trimpath -ldflags "-s -w" -o "$work/ctx/pause" .)
printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' | build "$pause"

# CoreDNS from the module proxy: the version kubeadm expects, else (not served, or it does not
# build) the lowest served one above it, or the highest below; tagged as kubeadm expects either way.
coredns=$(ref coredns); want=${coredns##*:}
served=$(go list -m -versions github.com/coredns/coredns | cut -d' ' -f2-)
near=$(printf '%s\n' $served "$want" | sort -uV | sed -n "/^$want\$/{n;p;q}")
[ -n "$near" ] || near=$(printf '%s\n' $served | sort -V | tail -1)
built=""
for cv in $want $near; do
  w="$work/coredns-$cv"; mkdir -p "$w/tools"
  # A wrapper module (its main package is the module root; no replace lines in its go.mod).
  printf 'module kinstall-coredns-build\n\ngo 1.24.0\n\nrequire github.com/coredns/coredns %s\n' "$cv" >"$w/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/coredns/coredns"\n' >"$w/tools/tools.go"
  if (cd "$w" && GOFLAGS=-mod=mod go mod tidy >tidy.log 2>&1 || { tail -5 tidy.log >&2; exit 1; }
      GOFLAGS=-mod=mod nice -n 10 go build -trimpath -ldflags "-s -w" -o "$work/ctx/coredns" github.com/coredns/coredns); then
    built=$cv; break
  fi
  echo "images $v: coredns $cv did not build" >&2
done
[ -n "$built" ] || exit 1
[ "$built" = "$want" ] || echo "NOTE: kubeadm $v expects coredns $want; built $built (served: $served) and tagged it $coredns"
# CA bundle for forwarding over TLS, as upstream. Root, unlike upstream's nonroot: that needs
# `setcap cap_net_bind_service` on /coredns (containerd's added caps do not survive exec for a
# non-root user), and docker build's COPY drops the xattr. kubeadm's Deployment drops ALL but
# NET_BIND_SERVICE either way.
printf 'FROM scratch\nCOPY --from=%s /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/\nCOPY coredns /coredns\nEXPOSE 53 53/udp\nENTRYPOINT ["/coredns"]\n' "$lab" | build "$coredns"

probe=kinstall.local/probe:v1
(cd "$repo" && go build -buildvcs=false -trimpath -ldflags "-s -w" -o "$work/ctx/probe" ./images/probe)
printf 'FROM scratch\nCOPY probe /probe\nENTRYPOINT ["/probe"]\nCMD ["serve"]\n' | build "$probe"

rm -rf "$out.tmp"; mkdir -p "$out.tmp"
# shellcheck disable=SC2086 # cp_refs is a list
docker save -o "$out.tmp/control-plane.tar" $cp_refs
docker save -o "$out.tmp/node.tar" "$proxy" "$pause" "$coredns" "$probe"
chmod 644 "$out.tmp"/*.tar  # docker save writes 0600
{ for r in $cp_refs; do echo "$r control-plane.tar"; done
  for r in "$proxy" "$pause" "$coredns" "$probe"; do echo "$r node.tar"; done; } >"$out.tmp/images.txt"
rm -rf "$out"; mv "$out.tmp" "$out"
rm -rf "$work"; trap - EXIT
echo "images $v: built in $(( $(date +%s) - t0 ))s (coredns $built): $(cd "$out" && du -h -- *.tar | tr "\t\n" " ,")"
sums
