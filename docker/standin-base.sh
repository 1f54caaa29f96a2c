#!/usr/bin/env bash
# A stand-in for the registry's python:3.11-slim-bookworm, for machines that reach Debian's and
# PyPI's mirrors but no container registry (air-gapped builds, this project's CI): Debian bookworm
# (debootstrap, minbase) with its Python 3.11, venv and pip, imported into podman under the
# registry image's name, so that the Dockerfile builds unchanged. The host's CA bundle goes in
# and pip is told to use it: a mirror behind a TLS-inspecting proxy then verifies as on the host.
#   sudo docker/standin-base.sh [TAG]        (needs root, debootstrap and podman)
set -euo pipefail
tag=${1:-python:3.11-slim-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /var/tmp/mucode-standin.XXXXXX)
trap 'umount "$root/proc" 2>/dev/null || true; rm -rf "$root"' EXIT

debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
mount -t proc proc "$root/proc"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-pip python-is-python3 ca-certificates >/dev/null
umount "$root/proc"
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/host-ca.crt"
printf '[global]\ncert = /etc/ssl/certs/host-ca.crt\n' >"$root/etc/pip.conf"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin

tar -C "$root" -c . | podman import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    --message "stand-in for $tag: Debian bookworm minbase + python3 (docker/standin-base.sh)" \
    - "$tag" >/dev/null
echo "$tag: $(podman image inspect --format '{{.Id}} {{.Size}}' "$tag")"
