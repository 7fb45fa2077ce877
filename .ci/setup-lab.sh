#!/bin/sh
# Install the host-side tools the keystone-checks lab needs (QEMU, qemu-img,
# mmdebstrap, zstd, e2fsprogs for mkfs.ext4 -d, an ssh client; ovmf: the UEFI firmware the
# Keystone-shaped guest boots through).
# Idempotent and non-interactive; safe to run on every CI start.
set -eu
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo -E"; fi
$SUDO apt-get -o DPkg::Lock::Timeout=900 update -q
$SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends \
    qemu-system-x86 qemu-utils mmdebstrap zstd e2fsprogs ovmf \
    openssh-client ca-certificates debian-archive-keyring
echo "lab host tools installed: $(qemu-system-x86_64 --version | head -n1)"
