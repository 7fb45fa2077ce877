#!/bin/bash
# Build the Keystone-shaped guest's initrd on the controller, natively: dracut chrooted into a
# private copy of the lab image's root (the guest's own kernel, modules, zfs and systemd), with
# dracut-core added from $DEBS and the keystone module (guest/ksboot/dracut/95keystone). Run by
# keystone_checks.lab.ksboot; the same dracut run inside the TCG build guest took ≈ 9 min
# (2026-12-02), here about a minute.
#
# Usage: ksboot-initrd.sh ROOT_QCOW2 KS_DIR DEBS_DIR KEY_FILE OUT WORK
#   ROOT_QCOW2  the lab image's root disk (read only: converted to a private raw copy in WORK)
#   KS_DIR      guest/ksboot (dracut.conf, dracut/95keystone and the unit files it installs)
#   KEY_FILE    the credstore's lab key slot file, baked into the initrd (lab deviation, build.sh)
#   OUT         where the initrd is written; WORK an empty directory, removed at the end
# Needs root, loop devices, qemu-img, chroot.
set -euo pipefail
root_qcow2=$1 ks=$2 debs=$3 key=$4 out=$5 work=$6
raw=$work/root.raw
mnt=$work/root
mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true
    done
    # Only files are removed, never a tree that could still hold a bind mount of /dev or /proc.
    rm -f "$raw"
    rmdir "$mnt" "$work" 2>/dev/null || true
}
trap cleanup EXIT
mkdir -p "$mnt"
qemu-img convert -O raw "$root_qcow2" "$raw"
mount -o loop "$raw" "$mnt"
mounted+=("$mnt")
for m in dev proc sys; do
    mount --bind "/$m" "$mnt/$m"
    mounted+=("$mnt/$m")
done

# dracut-core and what it needs beyond the image (only the packages not installed yet).
mkdir -p "$mnt/tmp/ksboot-debs"
new=()
for d in "$debs"/*.deb; do
    p=$(dpkg-deb -f "$d" Package)
    if ! chroot "$mnt" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        cp "$d" "$mnt/tmp/ksboot-debs/"
        new+=("/tmp/ksboot-debs/${d##*/}")
    fi
done
if ((${#new[@]})); then
    DEBIAN_FRONTEND=noninteractive chroot "$mnt" dpkg -i "${new[@]}" >/dev/null
fi

mkdir -p "$mnt/usr/share/keystone-lab" "$mnt/etc/keystone-lab" "$mnt/etc/dracut.conf.d"
cp -r "$ks" "$mnt/usr/share/keystone-lab/ksboot"
cp -r "$ks/dracut/95keystone" "$mnt/usr/lib/dracut/modules.d/"
cp "$ks/dracut.conf" "$mnt/etc/dracut.conf.d/keystone.conf"
install -m 0400 "$key" "$mnt/etc/keystone-lab/credstore.key"
kver=$(ls "$mnt/lib/modules" | sort -V | tail -n 1)
chroot "$mnt" dracut -q -f --kver "$kver" /tmp/ksboot-initrd
install -m 0600 "$mnt/tmp/ksboot-initrd" "$out"
echo "$kver"
