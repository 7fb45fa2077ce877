# Shell helpers shared by the role set-up scripts and the fault injections.
# Sourced (prepended) by the lab before each script is piped to `sh -s` in the
# guest.  The layout mirrors a Keystone server: ESP + ZFS partition on the
# target disk, rpool, LUKS credstore zvol, natively encrypted rpool/crypt.
set -eu
DISK=${DISK:-/dev/vda}
POOL=${POOL:-rpool}
KEYFILE=zfs-sysroot.mount

ks_settle() { udevadm settle -t 30 2>/dev/null || true; }

ks_wait_dev() {  # wait for a device node to appear (zvols show up asynchronously)
    i=0
    while [ ! -e "$1" ] && [ $i -lt 60 ]; do ks_settle; sleep 0.5; i=$((i + 1)); done
    [ -e "$1" ] || { echo "device $1 never appeared" >&2; return 1; }
}

ks_part() { echo "${DISK}$1"; }

# ks_layout ALTROOT PASSFILE: partition $DISK and create the whole Keystone
# pool.  ALTROOT is "" on the deployed host and /mnt on the installer.
ks_layout() {
    altroot=$1 passfile=$2
    modprobe zfs
    wipefs -a -q "$DISK"
    sgdisk -Z "$DISK" >/dev/null
    sgdisk -n1:1M:+512M -t1:EF00 -c1:ESP -n2:0:0 -t2:BF00 -c2:zfs "$DISK" >/dev/null
    ks_settle
    ks_wait_dev "$(ks_part 2)"
    mkfs.vfat -F 32 -n ESP "$(ks_part 1)" >/dev/null
    zpool create -f ${altroot:+-R "$altroot"} -o ashift=12 -o autotrim=on \
        -O acltype=posixacl -O xattr=sa -O compression=lz4 -O atime=off \
        -O mountpoint=none -O canmount=off "$POOL" "/dev/disk/by-id/virtio-kctest0-part2"
    zfs create -V 64M "$POOL/credstore"
    ks_wait_dev "/dev/zvol/$POOL/credstore"
    cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --iter-time 100 \
        --key-file "$passfile" "/dev/zvol/$POOL/credstore"
    cryptsetup open --key-file "$passfile" "/dev/zvol/$POOL/credstore" credstore
    mkfs.ext4 -q -L credstore /dev/mapper/credstore
    mkdir -p /etc/credstore
    mount /dev/mapper/credstore /etc/credstore
    head -c 32 /dev/urandom > "/etc/credstore/$KEYFILE"
    chmod 0400 "/etc/credstore/$KEYFILE"
    zfs create -o encryption=aes-256-gcm -o keyformat=raw \
        -o "keylocation=file:///etc/credstore/$KEYFILE" \
        -o mountpoint=none -o canmount=off "$POOL/crypt"
    zfs create -o mountpoint=/srv/keystone "$POOL/crypt/system"
    if [ -z "$altroot" ]; then
        # deployed host: move the guest's real nix store onto the dataset
        zfs create -o mountpoint=/srv/keystone/.nix-move "$POOL/crypt/system/nix"
        mkdir -p /nix
        cp -a /nix/. /srv/keystone/.nix-move/
        zfs set mountpoint=/nix "$POOL/crypt/system/nix"
        rmdir /srv/keystone/.nix-move 2>/dev/null || true
    else
        zfs create -o mountpoint=/nix "$POOL/crypt/system/nix"
    fi
    zfs create -o mountpoint=/srv/keystone/var "$POOL/crypt/system/var"
}

# Known data written before any fault; .checksum() in the tests re-reads it.
KS_DATA_FILES="/srv/keystone/lab-data.bin /srv/keystone/var/lab-data.bin /boot/lab-data.bin"

ks_write_data() {
    prefix=$1
    for f in $KS_DATA_FILES; do
        mkdir -p "$(dirname "$prefix$f")"
        head -c 4194304 /dev/urandom > "$prefix$f"
    done
    sync
}

# Close everything and export: the correct end of an install.
ks_clean_export() {
    altroot=$1
    mountpoint -q "$altroot/boot" && umount "$altroot/boot"
    mountpoint -q /etc/credstore && umount /etc/credstore
    cryptsetup status credstore >/dev/null 2>&1 && cryptsetup close credstore
    zpool export "$POOL"
}

# Import + unlock as a Keystone host does at boot (credstore first, then key).
ks_import_unlock() {
    altroot=$1 passfile=$2
    zpool import -N ${altroot:+-R "$altroot"} "$POOL"
    ks_wait_dev "/dev/zvol/$POOL/credstore"
    cryptsetup open --key-file "$passfile" "/dev/zvol/$POOL/credstore" credstore
    mkdir -p /etc/credstore
    mount /dev/mapper/credstore /etc/credstore
    zfs load-key "$POOL/crypt"
    zfs mount -a
}

# Print "sha256 path" for every lab data file.  On an installer whose pool is
# exported, import+unlock under /mnt, read, and export cleanly again.
ks_sum_files() {
    for f in $KS_DATA_FILES; do
        [ -e "$1$f" ] && printf '%s %s\n' "$(sha256sum < "$1$f" | cut -d' ' -f1)" "$f"
    done
    return 0
}
ks_checksum() {
    if [ -e /srv/keystone/lab-data.bin ]; then ks_sum_files ""
    elif [ -e /mnt/srv/keystone/lab-data.bin ]; then ks_sum_files /mnt
    elif zpool import 2>/dev/null | grep -q "pool: $POOL\$"; then
        # A pool of that name without the lab layout (a fault's leftover pool) holds no lab data.
        zpool import -N "$POOL" || return 1
        if ! zfs list -H -o name "$POOL/credstore" >/dev/null 2>&1; then zpool export "$POOL"; return 0; fi
        zpool export "$POOL"
        ks_import_unlock /mnt "$PASSFILE" >/dev/null
        mkdir -p /mnt/boot && mount "$(ks_part 1)" /mnt/boot
        ks_sum_files /mnt
        ks_clean_export /mnt
    fi
}

# ks_new_generation N: add system generation N to the profile (no switch).
ks_new_generation() {
    src=/var/lib/lab/gen/nixos-system-keystone-lab-24.11.$1
    mkdir -p "$src"
    echo "24.11.$1" > "$src/nixos-version"
    printf '#!/bin/sh\necho "activating keystone-lab generation %s"\n' "$1" > "$src/activate"
    chmod +x "$src/activate"
    uname -r > "$src/kernel-version"
    path=$(nix-store --add "$src")
    nix-env -p /nix/var/nix/profiles/system --set "$path" >/dev/null
    echo "$path"
}
