# State "installed" (role installer): what a clean install leaves behind, run on
# an installer clone.  Keystone layout on /dev/vda created under altroot /mnt,
# data written, then credstore closed and the pool exported.
ks_layout /mnt "$PASSFILE"
mkdir -p /mnt/boot
mount "$(ks_part 1)" /mnt/boot
mkdir -p /mnt/boot/EFI/BOOT /mnt/boot/loader/entries
ks_write_data /mnt
ks_clean_export /mnt
sync
