# State "installed-foreign" (role installer): the pool on /dev/vda was last
# imported by another host (hostid deadbeef) and never exported: import under
# a foreign hostid, hard-reboot (sysrq), restore the installer's hostid and
# its ISO mount.  `zpool import` then says "last accessed by another system".
zgenhostid -f deadbeef
zpool import -N rpool
zpool sync rpool
zgenhostid -f 4b490001
sync
#@reboot
modprobe zfs
mkdir -p /iso
mountpoint -q /iso || mount -o loop,ro -t squashfs /var/lib/lab/iso.squashfs /iso
zpool import 2>&1 | grep -q 'another system'
