#!/bin/sh
# Runs INSIDE the freshly bootstrapped guest root (mmdebstrap customize hook,
# /proc /sys /dev mounted).  Makes sure the ZFS module really got built for the
# guest kernel, enables the services a Keystone host runs, silences timers that
# would disturb tests, and strips the package archive sources (the guest is
# offline and the archive host must not leak into anything we keep).
set -eu
kver=$(ls /lib/modules | sort -V | tail -n 1)
if ! find "/lib/modules/$kver" -name 'zfs.ko*' | grep -q .; then
    dkms autoinstall -k "$kver"
fi
find "/lib/modules/$kver" -name 'zfs.ko*' | grep -q . || { echo "zfs.ko was not built for $kver" >&2; exit 1; }
depmod -a "$kver"

systemctl enable systemd-networkd.service ssh.service nftables.service
for u in nix-daemon.socket nix-daemon.service; do systemctl disable "$u" 2>/dev/null || true; done
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
         fstrim.timer man-db.timer dpkg-db-backup.timer systemd-timesyncd.service \
         zfs-scrub-monthly@rpool.timer zfs-zed.service; do
    systemctl mask "$u" 2>/dev/null || true
done
# The deployed role imports the pool itself; never auto-import at boot.
for u in zfs-import-cache.service zfs-import-scan.service zfs-mount.service zfs-share.service; do
    systemctl disable "$u" 2>/dev/null || true
done

chmod 700 /root/.ssh
chmod 600 /root/.ssh/authorized_keys
passwd -l root >/dev/null

rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
rm -f /root/customize.sh
echo "customize: kernel $kver, zfs $(modinfo -k "$kver" -F version zfs)"
