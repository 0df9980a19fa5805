#!/usr/bin/env bash
# Builds the container image the docker driver's tests run, offline: a rootfs of Debian's
# busybox-static (every applet linked, `httpd` to serve HTTP) imported into Podman's store as
# localhost/baton/busybox:test. Idempotent: does nothing when the image exists.
# Usage: tests/images/busybox-image.sh [image-name]
set -euo pipefail
image=${1:-localhost/baton/busybox:test}
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
tar -C "$root" -cf "$work/rootfs.tar" .
"${podman[@]}" import --change 'CMD ["sh"]' --change 'ENV PATH=/bin' "$work/rootfs.tar" "$image" >/dev/null
echo "busybox-image: built $image"
