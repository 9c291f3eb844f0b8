#!/usr/bin/env bash
# Prove that minilab's kernels compile natively on ARM64 (the NEON module, minilab._kernels_neon, chosen at
# first use) and pass their tests there:
# an arm64 Debian root filesystem built with debootstrap, run under qemu-user emulation (binfmt_misc), with
# the project built inside it by its own gcc and tested with pytest. Everything comes from Debian's packages
# and PyPI. Needs root (debootstrap, chroot, binfmt_misc). Usage: tools/check_arm64.sh [WORKDIR]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp/minilab-arm64}"
root="$work/rootfs"
start=$(date +%s)

need() { command -v "$1" >/dev/null 2>&1; }
if ! need debootstrap || ! [ -x /usr/bin/qemu-aarch64-static ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static debootstrap >/dev/null
fi

# binfmt_misc: let the kernel hand aarch64 ELF files to qemu (F: the interpreter is opened now, so it also
# works inside the chroot)
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
    > /proc/sys/fs/binfmt_misc/register
fi

# the Debian mirror this machine already uses (no host is written into the project)
mirror=$( (grep -h -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null;
           grep -h -E '^deb ' /etc/apt/sources.list 2>/dev/null) | grep -o -E 'https?://[^ ]+' \
         | grep -v security | head -n 1 || true)
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
if [ ! -x "$root/usr/bin/python3" ]; then
  # a root left half-built by an interrupted run makes debootstrap fail ("File exists"): start it again
  for d in proc dev; do mountpoint -q "$root/$d" && umount "$root/$d"; done
  rm -rf --one-file-system "$root"
  echo "== debootstrap arm64 $suite (a few minutes under emulation)"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,python3-dev,gcc,libc6-dev,ca-certificates "$suite" "$root" "$mirror" >/dev/null
fi

echo "== copy the project and build it natively inside the arm64 root"
rm -rf "$root/src" && mkdir -p "$root/src"
(cd "$here" && git ls-files -z | xargs -0 tar -cf - --) | tar -xf - -C "$root/src"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# this machine's CA bundle, so that pip inside the root trusts the same TLS chain as pip outside it
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/host-ca-bundle.crt"
for d in proc dev; do mountpoint -q "$root/$d" || mount --bind "/$d" "$root/$d"; done
trap 'umount "$root/proc" "$root/dev" 2>/dev/null || true' EXIT
chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root \
  PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt SSL_CERT_FILE=/etc/ssl/certs/host-ca-bundle.crt /bin/sh -ec '
  cd /src
  uname -m
  [ -x /venv/bin/python ] || python3 -m venv /venv
  /venv/bin/pip install --quiet --disable-pip-version-check -e ".[test]"
  /venv/bin/python -c "import minilab; r = minilab.info(); assert r[\"kernels\"] == \"neon\", r[\"kernels\"]"
  /venv/bin/python -m pytest -q -p no:cacheprovider tests/test_kernels_*.py tests/test_engine.py
'
echo "== arm64 check passed in $(( $(date +%s) - start )) s"
