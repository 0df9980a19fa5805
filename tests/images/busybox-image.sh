#!/usr/bin/env bash
# Builds the container image the docker driver's tests run, offline: a rootfs of Debian's
# busybox-static (every applet linked, `httpd` to serve HTTP) imported into Podman's store as
# localhost/baton/busybox:4 (bump the tag when the content changes). Idempotent: does nothing
# when the image exists. /www holds an index page and two CGI scripts for the tests:
# cgi-bin/whoami (the container's user, privileges and root filesystem) and cgi-bin/call (an
# HTTP/1.0 GET of $CALL_PATH on $CALL_ADDR:$CALL_PORT, with nc: how one container calls another;
# CALL_ADDR=node means the instance's node, the next hop of its routes).
# Usage: tests/images/busybox-image.sh [image-name]
set -euo pipefail
image=${1:-localhost/baton/busybox:4}
podman=(podman --runtime=runc --cgroup-manager=cgroupfs)
if "${podman[@]}" image exists "$image" 2>/dev/null; then exit 0; fi
busybox=/bin/busybox
[[ -x $busybox ]] || { echo "busybox-image: $busybox is missing (apt-get install busybox-static)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,etc,tmp,www,proc,sys,dev}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
echo "hello from a container" >"$root/www/index.html"
mkdir -p "$root/www/cgi-bin"
cat >"$root/www/cgi-bin/whoami" <<'SCRIPT'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "uid=$(id -u) gid=$(id -g)"
grep -E '^(NoNewPrivs|CapEff)' /proc/self/status
if touch /probe 2>/dev/null; then echo "root=writable"; else echo "root=read-only"; fi
if touch /tmp/probe 2>/dev/null; then echo "tmp=writable"; else echo "tmp=read-only"; fi
echo "pids.max=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max 2>/dev/null)"
SCRIPT
cat >"$root/www/cgi-bin/call" <<'SCRIPT'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
addr=$CALL_ADDR
# "node": the instance's node, the next hop of its routes (an oci instance's veth peer).
[ "$addr" = node ] && addr=$(ip route | awk '/ via / { print $3; exit }')
printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$CALL_PATH" "${CALL_HOST:-localhost}" |
  nc "$addr" "$CALL_PORT" | sed '1,/^\r*$/d'
SCRIPT
chmod 755 "$root/www/cgi-bin/whoami" "$root/www/cgi-bin/call"
tar -C "$root" -cf "$work/rootfs.tar" .
"${podman[@]}" import --change 'CMD ["sh"]' --change 'ENV PATH=/bin' "$work/rootfs.tar" "$image" \
  >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
echo "busybox-image: built $image"
