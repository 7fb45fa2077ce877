# Build the Keystone-shaped disk on /dev/vda from inside a booted lab guest
# (the zfs21/zfs23 Debian image).  Piped to `sh -s` after the lab prelude
# (lib.sh: DISK, POOL, PASSFILE = the lab credstore passphrase) with the
# ksboot files unpacked at $KS (this directory) and the extra .debs at $DEBS.
# Layout and names: ncrmro/keystone v0.2.0 modules/os/storage.nix (disko,
# l.180-294); boot: systemd-boot entries as NixOS writes them; initrd: dracut
# with dracut/95keystone (the units of storage.nix l.70-172).
set -eu
: "${KS:?}" "${DEBS:?}"

# dracut-core (and what it needs) are not in the base image; the guest is offline.
cd "$DEBS"
new=""
for d in *.deb; do
    p=$(dpkg-deb -f "$d" Package)
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || new="$new $d"
done
# shellcheck disable=SC2086
[ -z "$new" ] || dpkg -i $new >/dev/null
cd /

# disko: GPT "disk-disk0-ESP" + "disk-disk0-zfs", pool options of storage.nix l.224-237.
dev=/dev/disk/by-id/virtio-kctest0
modprobe zfs
wipefs -a -q "$DISK"
sgdisk -Z "$DISK" >/dev/null
sgdisk -n1:1M:+512M -t1:EF00 -c1:disk-disk0-ESP -n2:0:0 -t2:BF00 -c2:disk-disk0-zfs "$DISK" >/dev/null
ks_settle
ks_wait_dev "$dev-part2"
mkfs.vfat -F 32 -n ESP "$dev-part1" >/dev/null
zpool create -f -R /mnt -o ashift=12 -O mountpoint=none -O compression=lz4 -O acltype=posixacl \
    -O xattr=sa -O atime=off -O com.sun:auto-snapshot=false "$POOL" "$dev-part2"
zfs create -V 64M "$POOL/credstore"
ks_wait_dev "/dev/zvol/$POOL/credstore"
cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --iter-time 100 \
    --key-file "$PASSFILE" "/dev/zvol/$POOL/credstore"
# Lab deviation (no TPM, no console): a second key slot whose key file lives in the initrd only.
mkdir -p /run/ksboot
head -c 32 /dev/urandom > /run/ksboot/credstore.key
cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 --iter-time 100 --key-file "$PASSFILE" \
    "/dev/zvol/$POOL/credstore" /run/ksboot/credstore.key
cryptsetup open --key-file "$PASSFILE" "/dev/zvol/$POOL/credstore" credstore
mkfs.ext4 -q /dev/mapper/credstore
mount -o X-mount.mkdir /dev/mapper/credstore /etc/credstore
head -c 32 /dev/urandom > "/etc/credstore/$KEYFILE"
zfs create -o mountpoint=none -o encryption=aes-256-gcm -o keyformat=raw \
    -o "keylocation=file:///etc/credstore/$KEYFILE" "$POOL/crypt"
umount /etc/credstore
cryptsetup luksClose credstore
zfs create -o mountpoint=/ "$POOL/crypt/system"
zfs create -o mountpoint=/nix -o com.sun:auto-snapshot=false "$POOL/crypt/system/nix"
zfs create -o mountpoint=/var "$POOL/crypt/system/var"
mkdir -p /mnt/boot
mount -o umask=0077 "$dev-part1" /mnt/boot

# The system: this guest's root, without what a server does not boot with.
tar -C / --one-file-system -cf - --exclude=./proc --exclude=./sys --exclude=./dev --exclude=./run \
    --exclude=./tmp --exclude=./mnt --exclude=./boot --exclude=./lost+found --exclude=./etc/credstore \
    --exclude=./usr/src --exclude=./var/lib/dkms --exclude=./usr/share/doc --exclude=./usr/share/man \
    --exclude=./usr/share/locale --exclude=./var/cache/apt --exclude='./usr/lib/modules/*/build' \
    --exclude='./usr/lib/modules/*/source' --exclude='./usr/lib/modules/*/kernel/drivers/gpu' \
    --exclude='./usr/lib/modules/*/kernel/drivers/net/wireless' --exclude='./usr/lib/modules/*/kernel/sound' \
    --exclude='./usr/lib/modules/*/kernel/drivers/media' --exclude='./usr/lib/modules/*/kernel/drivers/infiniband' \
    . | tar -C /mnt -xpf -
mkdir -p /mnt/proc /mnt/sys /mnt/dev /mnt/run /mnt/tmp /mnt/mnt /mnt/etc/credstore
chmod 1777 /mnt/tmp
mkdir -p /mnt/usr/lib/keystone-lab /mnt/etc/keystone-lab /mnt/usr/share/keystone-lab
cp "$(ls /boot/vmlinuz-* | sort -V | tail -n 1)" /mnt/usr/lib/keystone-lab/vmlinuz
install -m 0400 /run/ksboot/credstore.key /mnt/etc/keystone-lab/credstore.key
rm -f /run/ksboot/credstore.key
cp -r "$KS" /mnt/usr/share/keystone-lab/ksboot
cp -r "$KS/dracut/95keystone" /mnt/usr/lib/dracut/modules.d/
mkdir -p /mnt/etc/dracut.conf.d
cp "$KS/dracut.conf" /mnt/etc/dracut.conf.d/keystone.conf
cp "$KS/fstab" /mnt/etc/fstab
rm -f /mnt/etc/crypttab        # stage 2 never opens the credstore (storage.nix l.141-150)
cp "$KS/os-release" /mnt/etc/os-release
# NixOS user space where the checks look: the iptables nixos-fw firewall instead of Debian's
# nftables.service, and root's key in /etc/ssh/authorized_keys.d/root (stage2/*: sources there).
install -D -m 0755 "$KS/stage2/firewall-start" /mnt/usr/libexec/keystone-lab/firewall-start
cp "$KS/stage2/firewall.service" /mnt/etc/systemd/system/firewall.service
chroot /mnt systemctl disable --quiet nftables.service
chroot /mnt systemctl enable --quiet firewall.service
cp "$KS/stage2/sshd-nixos.conf" /mnt/etc/ssh/sshd_config.d/nixos.conf
install -D -m 0444 /mnt/root/.ssh/authorized_keys /mnt/etc/ssh/authorized_keys.d/root
rm /mnt/root/.ssh/authorized_keys

# Three generations, the last one booted (as the Debian "deployed" state has).
for m in proc sys dev; do mount --rbind "/$m" "/mnt/$m"; done
for n in 1 2 3; do chroot /mnt sh /usr/share/keystone-lab/ksboot/install-generation.sh "$n"; done
chroot /mnt bootctl install --esp-path=/boot --no-variables --graceful >/dev/null 2>&1
for m in proc sys dev; do umount -R -l "/mnt/$m"; done
ks_write_data_ksboot() {
    for f in /mnt/var/lib/lab-data.bin /mnt/boot/lab-data.bin /mnt/root/lab-data.bin; do
        head -c 4194304 /dev/urandom > "$f"
    done
}
ks_write_data_ksboot
sync
umount /mnt/boot
zpool export "$POOL"
echo "ksboot: built"
