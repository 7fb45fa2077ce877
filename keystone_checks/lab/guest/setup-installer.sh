# Role "installer": looks like the booted NixOS ISO; /dev/vda is blank.
zgenhostid -f 4b490001
modprobe zfs
echo "keystone-checks lab installer (stands in for the NixOS installer ISO)" > /etc/keystone-installer
mkdir -p /var/lib/lab/iso-src/boot /iso
echo "nixos-keystone-installer-24.11-lab" > /var/lib/lab/iso-src/version
rm -f /var/lib/lab/iso.squashfs
mksquashfs /var/lib/lab/iso-src /var/lib/lab/iso.squashfs -quiet -no-progress >/dev/null
mount -o loop,ro -t squashfs /var/lib/lab/iso.squashfs /iso
wipefs -a -q "$DISK"
sync
