# Role "deployed": a running Keystone server.  Pool imported (no altroot), key
# loaded from the credstore, ESP at /boot, nix store on rpool/crypt/system/nix,
# three system generations, /run/current-system at the newest.
zgenhostid -f 4b440001
ks_layout "" "$PASSFILE"
kernel=$(ls /lib/modules | sort -V | tail -n 1)
mkdir -p /var/lib/lab
cp "/boot/vmlinuz-$kernel" /var/lib/lab/kernel.efi
mount "$(ks_part 1)" /boot
bootctl install --esp-path=/boot --no-variables --graceful >/dev/null 2>&1 || true
mkdir -p /boot/EFI/BOOT /boot/EFI/nixos /boot/loader/entries
for n in 1 2 3; do
    path=$(ks_new_generation "$n")
    cat > "/boot/loader/entries/nixos-generation-$n.conf" <<ENTRY
title NixOS
version Generation $n 24.11.$n (Linux $kernel)
linux /EFI/nixos/kernel-$kernel.efi
initrd /EFI/nixos/initrd-$kernel.efi
options init=$path/init root=fstab
machine-id keystonelab
ENTRY
done
cp /var/lib/lab/kernel.efi "/boot/EFI/nixos/kernel-$kernel.efi"
head -c 1024 /dev/zero > "/boot/EFI/nixos/initrd-$kernel.efi"
printf 'timeout 3\ndefault nixos-generation-3.conf\n' > /boot/loader/loader.conf
ln -sfn "$(readlink -f /nix/var/nix/profiles/system)" /run/current-system
ks_write_data ""
sync
