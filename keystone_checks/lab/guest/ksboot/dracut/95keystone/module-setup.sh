#!/bin/bash
# dracut module: the Keystone initrd (ncrmro/keystone modules/os/storage.nix
# v0.2.0) on a Debian systemd initrd.  Only what Keystone's stage 1 has: zfs,
# systemd-cryptsetup for the credstore, its units, /etc/hostid.

check() { return 0; }

depends() { echo systemd systemd-initrd dm udev-rules; }

installkernel() { # dm-crypt and the kernel crypto API libcryptsetup uses (AF_ALG) for LUKS2 aes-xts.
    instmods zfs dm_crypt ext4 vfat virtio_blk virtio_pci af_alg algif_skcipher algif_hash xts aes_generic aesni_intel sha256_generic cbc ecb essiv; }

install() {
    src=/usr/share/keystone-lab/ksboot
    inst_multiple zpool zfs mount.zfs /lib/udev/zvol_id /etc/hostid \
        "$systemdutildir/systemd-cryptsetup" \
        "$systemdutildir/system-generators/systemd-cryptsetup-generator" \
        "$systemdsystemunitdir/modprobe@.service" \
        "$systemdsystemunitdir/cryptsetup.target" "$systemdsystemunitdir/cryptsetup-pre.target" \
        "$systemdsystemunitdir/systemd-cryptsetup@.service" 2>/dev/null || true
    inst_rules 60-zvol.rules
    inst_simple "$src/import-rpool-bare" /usr/libexec/keystone/import-rpool-bare
    chmod 0755 "$initdir/usr/libexec/keystone/import-rpool-bare"
    for u in import-rpool-bare.service rpool-load-key.service; do
        inst_simple "$src/units/$u" "$systemdsystemunitdir/$u"
    done
    for d in initrd-switch-root.target.d systemd-udevd.service.d; do
        inst_simple "$src/units/$d/keystone-credstore.conf" "$systemdsystemunitdir/$d/keystone-credstore.conf"
    done
    inst_simple "$src/units/lab-zvol-links.service" "$systemdsystemunitdir/lab-zvol-links.service"
    mkdir -p "$initdir$systemdsystemunitdir/initrd.target.wants"
    ln_r "$systemdsystemunitdir/lab-zvol-links.service" \
        "$systemdsystemunitdir/initrd.target.wants/lab-zvol-links.service"
    inst_simple "$src/units/systemd-cryptsetup@credstore.service.d/lab-console.conf" \
        "$systemdsystemunitdir/systemd-cryptsetup@credstore.service.d/lab-console.conf"
    # Lab: unit names, not descriptions, in the initrd's console status lines (an 80-column
    # serial console cuts "Failed to start <name> - <description>" in the middle of the name).
    mkdir -p "$initdir/etc/systemd/system.conf.d"
    printf '[Manager]\nStatusUnitFormat=name\n' > "$initdir/etc/systemd/system.conf.d/lab-console.conf"
    mkdir -p "$initdir$systemdsystemunitdir/initrd.target.requires"
    ln_r "$systemdsystemunitdir/rpool-load-key.service" \
        "$systemdsystemunitdir/initrd.target.requires/rpool-load-key.service"
    # Root comes from the initrd fstab (/sysroot), as in NixOS's systemd stage 1; the
    # GPT auto-root generator would otherwise wait 90 s for a /dev/gpt-auto-root.
    rm -f "$initdir$systemdutildir/system-generators/systemd-gpt-auto-generator"
    inst_simple "$src/initrd-fstab" /etc/fstab
    inst_simple "$src/initrd-crypttab" /etc/crypttab
    inst_simple /etc/keystone-lab/credstore.key
}
