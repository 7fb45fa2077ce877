# Build the Keystone-shaped disk on /dev/vda from inside a booted lab guest
# (the zfs21/zfs23 Debian image).  Piped to `sh -s` after the lab prelude
# (lib.sh: DISK, POOL, PASSFILE = the lab credstore passphrase) with the
# ksboot files unpacked at $KS (this directory) and, at $HOST, what the
# controller built natively (lab/host/ksboot-initrd.sh): the initrd and the
# credstore's lab key slot file it carries, and the .debs of iptables (not in the
# image; the guest is offline), which the NixOS firewall (stage2/firewall-start) runs.
# Layout and names: ncrmro/keystone v0.2.0 modules/os/storage.nix (disko,
# l.180-294); boot: systemd-boot entries as NixOS writes them; initrd: dracut
# with dracut/95keystone (the units of storage.nix l.70-172).
set -eu
: "${KS:?}" "${HOST:?}"
t0=$(date +%s)
step() { echo "ksboot: $1 at $(($(date +%s) - t0)) s"; }  # the build log's time line
new=""
for d in "$HOST"/debs/*.deb; do
    p=$(dpkg-deb -f "$d" Package)
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || new="$new $d"
done
# shellcheck disable=SC2086
[ -z "$new" ] || DEBIAN_FRONTEND=noninteractive dpkg -i $new >/dev/null
step "iptables installed"

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
cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 --iter-time 100 --key-file "$PASSFILE" \
    "/dev/zvol/$POOL/credstore" "$HOST/credstore.key"
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
step "pool, credstore and datasets created"

# The system: this guest's root, without what a server does not boot with. Every file copied here
# is written through lz4 and aes-256-gcm under TCG (≈ 1.5 MB/s measured, 2026-12-02), so the
# build-time toolchain (the dkms compile's gcc, headers, sanitizer runtimes) and the drivers of
# hardware a virtio guest has none of stay behind.
mods='./usr/lib/modules/*/kernel'
set -f  # the patterns are tar's, not the shell's
tar -C / --one-file-system -cf - --exclude=./proc --exclude=./sys --exclude=./dev --exclude=./run \
    --exclude=./tmp --exclude=./mnt --exclude=./boot --exclude=./lost+found --exclude=./etc/credstore \
    --exclude=./usr/src --exclude=./var/lib/dkms --exclude=./usr/share/doc --exclude=./usr/share/man \
    --exclude=./usr/share/locale --exclude=./var/cache/apt --exclude='./usr/lib/modules/*/build' \
    --exclude='./usr/lib/modules/*/source' --exclude=./usr/lib/gcc --exclude=./usr/include \
    --exclude='./usr/lib/x86_64-linux-gnu/lib[atlu]san.so*' --exclude='./usr/lib/x86_64-linux-gnu/libhwasan.so*' \
    --exclude='./usr/lib/x86_64-linux-gnu/*.a' --exclude="$mods/sound" \
    $(for d in gpu media infiniband net/wireless net/ethernet net/usb net/can scsi usb ata iio hid hwmon \
               input platform staging mtd target video misc bluetooth isdn thunderbolt nfc mmc leds w1 \
               firewire pcmcia memstick comedi atm parport; do printf ' --exclude=%s/drivers/%s' "$mods" "$d"; done) \
    . | tar -C /mnt -xpf -
set +f
step "root copied"
mkdir -p /mnt/proc /mnt/sys /mnt/dev /mnt/run /mnt/tmp /mnt/mnt /mnt/etc/credstore
chmod 1777 /mnt/tmp
mkdir -p /mnt/usr/lib/keystone-lab /mnt/etc/keystone-lab /mnt/usr/share/keystone-lab
cp "$(ls /boot/vmlinuz-* | sort -V | tail -n 1)" /mnt/usr/lib/keystone-lab/vmlinuz
install -m 0400 "$HOST/credstore.key" /mnt/etc/keystone-lab/credstore.key
cp -r "$KS" /mnt/usr/share/keystone-lab/ksboot
# The initrd every generation shares (install-generation.sh); built on the controller.
install -D -m 0600 "$HOST/initrd" "/mnt/var/lib/keystone-lab/initrd-$(ls /lib/modules | sort -V | tail -n 1)"
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
step "generations 1-3 installed"
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
