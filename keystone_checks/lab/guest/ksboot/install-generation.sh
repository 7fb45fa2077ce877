#!/bin/sh
# install-generation N: make system generation N the way NixOS does, and write
# its systemd-boot entry (nixpkgs nixos/modules/system/boot/loader/systemd-boot/
# systemd-boot-builder.py): the kernel and initrd copied to
# /EFI/nixos/<store dir>-<file>.efi, loader/entries/nixos-generation-N.conf
# with init=<toplevel>/init, loader.conf's default set to it.  Runs on the
# deployed system (or chrooted into it) with the ESP at /boot.
#
# HOSTID=<8 hex digits>: the generation a changed networking.hostId builds.
# NixOS writes the value to the generation's etc/hostid (environment.etc.hostid)
# and into its initrd; here the initrd is the cached one with a cpio archive
# (gzip) appended that replaces /etc/hostid (the kernel unpacks concatenated archives
# in order), instead of a second dracut run.
set -eu
n=$1
hostid=${HOSTID:-}
kver=$(ls /lib/modules | sort -V | tail -n 1)
kshort=${kver%-amd64}
work=$(mktemp -d)
mkdir -p "$work/linux-$kshort" "$work/initrd-linux-$kshort"
cp /usr/lib/keystone-lab/vmlinuz "$work/linux-$kshort/bzImage"
# One initrd for every generation, as NixOS reuses an unchanged initrd's store path; dracut
# built it on the controller (lab/host/ksboot-initrd.sh), not in this TCG guest.
cache=/var/lib/keystone-lab/initrd-$kver
[ -s "$cache" ] || { echo "install-generation: no initrd at $cache (the disk build puts it there)" >&2; exit 1; }
cp "$cache" "$work/initrd-linux-$kshort/initrd"
mkdir -p "$work/etc"
if [ -n "$hostid" ]; then
    zgenhostid -f -o "$work/etc/hostid" "$hostid"   # native byte order, as NixOS writes it
    # Compressed, so the kernel finds it by its magic at any offset (a bare cpio must start 4-byte aligned).
    (cd "$work" && echo etc/hostid | cpio -o -H newc --quiet | gzip -n) >> "$work/initrd-linux-$kshort/initrd"
else
    cp /etc/hostid "$work/etc/hostid"
fi
kernel=$(nix-store --add "$work/linux-$kshort")
initrd=$(nix-store --add "$work/initrd-linux-$kshort")
top=$work/nixos-system-keystone-lab-24.11.$n
mkdir -p "$top"
echo "24.11.$n" > "$top/nixos-version"
mkdir -p "$top/etc"
cp "$work/etc/hostid" "$top/etc/hostid"
printf '#!/bin/sh\necho "activating keystone-lab generation %s"\n' "$n" > "$top/activate"
# NixOS stage-2 init (nixpkgs nixos/modules/system/boot/stage-2-init.sh): record the
# booted and current system under /run (kept across switch-root), then become systemd.
cat > "$top/init" <<INIT
#!/bin/sh
systemConfig=\$(dirname "\$(readlink -f "\$0")")
ln -sfn "\$systemConfig" /run/booted-system
ln -sfn "\$systemConfig" /run/current-system
exec /lib/systemd/systemd "\$@"
INIT
chmod +x "$top/activate" "$top/init"
echo "$kver" > "$top/kernel-version"
params="zfs.zfs_arc_max=268435456 console=ttyS0 loglevel=4"
echo "$params" > "$top/kernel-params"
ln -s "$kernel/bzImage" "$top/kernel"
ln -s "$initrd/initrd" "$top/initrd"
toplevel=$(nix-store --add "$top")
nix-env -p /nix/var/nix/profiles/system --set "$toplevel" >/dev/null
rm -rf "$work"

efi_k="/EFI/nixos/$(basename "$kernel")-bzImage.efi"
efi_i="/EFI/nixos/$(basename "$initrd")-initrd.efi"
mkdir -p /boot/EFI/nixos /boot/loader/entries
cp "$kernel/bzImage" "/boot$efi_k"
cp "$initrd/initrd" "/boot$efi_i"
cat > "/boot/loader/entries/nixos-generation-$n.conf" <<ENTRY
title NixOS
version Generation $n NixOS 24.11.$n (Linux $kshort), built on $(date -u +%F)
linux $efi_k
initrd $efi_i
options init=$toplevel/init $params
machine-id $(cat /etc/machine-id)
sort-key nixos
ENTRY
printf 'timeout 5\ndefault nixos-generation-%s.conf\nconsole-mode keep\n' "$n" > /boot/loader/loader.conf
echo "$toplevel"
