# State "installed" (role installer): what a clean install leaves behind, run on
# an installer clone.  Keystone layout on /dev/vda created under altroot /mnt,
# data written, then credstore closed and the pool exported.
#
# The system datasets get Keystone's real mountpoints (ncrmro/keystone
# modules/os/storage.nix@v0.2.0, the same in modules/disko-single-disk-root@v0.1.0):
# rpool/crypt/system at /, system/nix at /nix, system/var at /var.  Imported
# without an altroot on this "ISO", rpool/crypt/system would mount over the
# installer's own root: recovery must import with -R /mnt (tests/lab/test_lab_recovery.py).
# ks_layout (lib.sh) is shared with the deployed state, which keeps /srv/keystone
# (its guest boots a Debian root, not the pool), so the mountpoints are set here.
ks_layout /mnt "$PASSFILE"
# Unmounted first, children before parents: moving system onto /mnt while nix is
# mounted at /mnt/nix would hide it.
zfs unmount "$POOL/crypt/system/var"
zfs unmount "$POOL/crypt/system/nix"
zfs unmount "$POOL/crypt/system"
zfs set mountpoint=/ "$POOL/crypt/system"
zfs set mountpoint=/var "$POOL/crypt/system/var"
for ds in system system/nix system/var; do
    mountpoint -q "$(zfs get -H -o value mountpoint "$POOL/crypt/$ds")" || zfs mount "$POOL/crypt/$ds"
done
[ "$(zfs get -H -o value mountpoint "$POOL/crypt/system")" = /mnt ]
[ "$(findmnt -n -o SOURCE /mnt)" = "$POOL/crypt/system" ]
[ "$(findmnt -n -o SOURCE /mnt/nix)" = "$POOL/crypt/system/nix" ]
[ "$(findmnt -n -o SOURCE /mnt/var)" = "$POOL/crypt/system/var" ]
mkdir -p /mnt/boot
mount "$(ks_part 1)" /mnt/boot
mkdir -p /mnt/boot/EFI/BOOT /mnt/boot/loader/entries
mkdir -p /mnt/etc /mnt/usr/bin
echo "keystone-lab installed system" > /mnt/etc/keystone-lab-installed
ks_write_data /mnt
ks_clean_export /mnt
sync
