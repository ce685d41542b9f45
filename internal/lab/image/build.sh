#!/usr/bin/env bash
# Build kinstall's lab host image: Debian bookworm booting systemd + sshd as PID 1 in a container.
# No container registry is reachable, so the root filesystem comes from debootstrap and the
# Debian mirror this machine's apt already uses.
#   stage 1 (slow, ~70-85 s, cached): debootstrap -> `docker import` -> $BASE
#   stage 2 (fast, ~2 s): `docker build` FROM $BASE adding the lab's boot files -> $IMAGE
# Cached: stage 2 is skipped when $IMAGE carries this script's hash; REBUILD=1 redoes both stages.
set -euo pipefail
IMAGE=${IMAGE:-kinstall-lab:bookworm}
BASE=${BASE:-kinstall-lab-base:bookworm}
PACKAGES=systemd,systemd-sysv,dbus,openssh-server,sudo,iproute2,iptables,procps,ca-certificates,curl,kmod,less,iputils-ping,netcat-openbsd,python3,conntrack,socat
HASH=${RECIPE_HASH:-$(sha256sum "$0" | cut -c1-16)}

if [ "${REBUILD:-0}" != 1 ] &&
   [ "$(docker image inspect -f '{{index .Config.Labels "kinstall-lab.recipe"}}' "$IMAGE" 2>/dev/null)" = "$HASH" ]; then
  echo "image $IMAGE is up to date (REBUILD=1 to rebuild)"; exit 0
fi

# --- Stage 1: root filesystem ---------------------------------------------------------------------
if [ "${REBUILD:-0}" = 1 ] || ! docker image inspect "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null ||
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null
  # The first Debian URI of this machine's apt sources (deb822 *.sources or one-line sources.list).
  MIRROR=$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2; exit}')
  [ -n "$MIRROR" ] || MIRROR=$(grep -hoE '^deb +(\[[^]]*\] +)?\S+' /etc/apt/sources.list | awk '{print $NF; exit}')
  echo "debootstrap bookworm from $MIRROR"
  ROOTFS=$(mktemp -d /var/tmp/kinstall-rootfs.XXXXXX)
  trap 'rm -rf "$ROOTFS" "$ROOTFS.log"' EXIT
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 ||
    { tail -20 "$ROOTFS.log"; exit 1; }
  # Same apt sources as this machine (bookworm-updates and -security too), so lab hosts install
  # the same package versions the taskbox sees.
  if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    rm -f "$ROOTFS/etc/apt/sources.list"; cp /etc/apt/sources.list.d/*.sources "$ROOTFS/etc/apt/sources.list.d/"
  fi
  [ -s /etc/apt/sources.list ] && cp /etc/apt/sources.list "$ROOTFS/etc/apt/sources.list"
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb
  tar -C "$ROOTFS" --numeric-owner -c . | docker import - "$BASE" >/dev/null
  rm -rf "$ROOTFS" "$ROOTFS.log"; trap - EXIT
fi

# --- Stage 2: boot files --------------------------------------------------------------------------
CTX=$(mktemp -d /var/tmp/kinstall-imgctx.XXXXXX)
trap 'rm -rf "$CTX"' EXIT

# PID 1 wrapper. The container runs in its own cgroup namespace; Docker mounts that cgroup tree
# read-only. Mount it again read-write, so systemd (and later kubelet/containerd) manage cgroups
# *below this container*: each lab host gets its own /kubepods, never the taskbox's.
cat >"$CTX/lab-init" <<'EOF'
#!/bin/sh
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then          # cgroup v2 host
  umount /sys/fs/cgroup && mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
else                                                      # cgroup v1 or hybrid host
  for m in $(findmnt -rn -o TARGET | grep '^/sys/fs/cgroup/' | sort -r); do umount "$m"; done
  # One mount per hierarchy, grouped exactly as the kernel has them (/proc/self/cgroup).
  for ctrls in $(grep -v '^0::' /proc/self/cgroup | cut -d: -f2); do
    dir=${ctrls#name=}; opts=$ctrls
    case $ctrls in name=*) opts=none,$ctrls ;; esac
    mkdir -p "/sys/fs/cgroup/$dir" && mount -t cgroup -o "$opts" cgroup "/sys/fs/cgroup/$dir"
    case $dir in *,*) for c in $(echo "$dir" | tr , ' '); do ln -sfn "$dir" "/sys/fs/cgroup/$c"; done ;; esac
  done
  if grep -q '^0::' /proc/self/cgroup; then mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified; fi
fi
exec /lib/systemd/systemd "$@"
EOF

# Docker bind-mounts /etc/hosts, /etc/hostname, /etc/resolv.conf. An installer must edit
# /etc/hosts (e.g. the API load balancer's name) and rename files atomically, which fails on a
# bind mount, so turn them into plain files. Docker also gives no /dev/kmsg; kubelet needs it.
# First boot: take Docker's content. Later boots (docker start): keep what the host had written,
# as a real disk would (Docker mounts its original files again at every start).
cat >"$CTX/lab-fixups" <<'EOF'
#!/bin/sh
for f in /etc/hosts /etc/hostname /etc/resolv.conf; do
  mountpoint -q "$f" || continue
  if [ -e "/var/lib/lab-fixups/${f##*/}" ]; then umount "$f"
  else cp "$f" "$f.lab" && umount "$f" && mv "$f.lab" "$f" && mkdir -p /var/lib/lab-fixups && touch "/var/lib/lab-fixups/${f##*/}"
  fi
done
[ -e /dev/kmsg ] || mknod -m 600 /dev/kmsg c 1 11
exit 0
EOF
cat >"$CTX/lab-fixups.service" <<'EOF'
[Unit]
Description=Lab host fixups (editable /etc/hosts etc., /dev/kmsg)
DefaultDependencies=no
Before=sysinit.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/lab-fixups
[Install]
WantedBy=sysinit.target
EOF
# Each host generates its own SSH host keys at first boot, so host-key checking is meaningful.
# (Debian's unit runs `sshd -t` first, which fails without keys: reset the list, keygen first.)
printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' >"$CTX/ssh-hostkeys.conf"

# Units that make no sense in a container (no udev, no ttys, no clock) or only slow the boot.
MASK="systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket
  systemd-udev-trigger.service getty@tty1.service console-getty.service systemd-timesyncd.service
  apt-daily.timer apt-daily-upgrade.timer systemd-modules-load.service sys-kernel-config.mount
  sys-kernel-debug.mount"
cat >"$CTX/Dockerfile" <<EOF
FROM $BASE
COPY lab-init lab-fixups /usr/local/sbin/
COPY lab-fixups.service /etc/systemd/system/
COPY ssh-hostkeys.conf /etc/systemd/system/ssh.service.d/hostkeys.conf
RUN chmod 755 /usr/local/sbin/lab-init /usr/local/sbin/lab-fixups \\
 && ln -sf ../lab-fixups.service /etc/systemd/system/sysinit.target.wants/lab-fixups.service \\
 && for u in $(echo $MASK); do ln -sf /dev/null /etc/systemd/system/\$u; done \\
 && rm -f /etc/ssh/ssh_host_* \\
 && echo 'PasswordAuthentication yes' >/etc/ssh/sshd_config.d/lab.conf
LABEL kinstall-lab.recipe=$HASH
# container=docker tells systemd it runs in a container; SIGRTMIN+3 makes it shut down cleanly.
# (Set here because \`docker import -c\` rejects STOPSIGNAL.)
ENV container=docker
STOPSIGNAL SIGRTMIN+3
CMD ["/usr/local/sbin/lab-init"]
EOF
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$CTX" >/dev/null
echo "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
