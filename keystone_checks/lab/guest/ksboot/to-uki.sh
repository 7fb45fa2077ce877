#!/bin/sh
# to-uki: turn the systemd-boot flavour into the lanzaboote-style flavour on a
# running deployed guest.  Every generation's entry becomes one UKI,
# EFI/Linux/nixos-generation-N-<hash>.efi (lanzaboote v0.4's name, whose hash is
# the base32 SHA-256 of the stub's inputs; here of the UKI), and the entries and EFI/nixos files
# go: systemd-boot finds Type #2 entries in EFI/Linux/ by itself and, with no
# `default` in loader.conf (lanzaboote's settings set none), boots the newest.
# Lab deviation: lanzaboote's stub carries only the kernel's and initrd's paths
# and hashes (sections .linux/.linuxh/.initrd/.initrdh) and loads them from
# EFI/nixos; this UKI embeds them (systemd 252's linuxx64.efi.stub + objcopy,
# the offsets systemd 252's documentation gives), so it boots without signing.
set -eu
esp=/boot
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
work=$(mktemp -d)
mkdir -p "$esp/EFI/Linux"
for e in "$esp"/loader/entries/nixos-generation-*.conf; do
    [ -f "$e" ] || continue
    n=${e##*/nixos-generation-}; n=${n%.conf}
    linux=$(awk '$1=="linux" {print $2}' "$e")
    initrd=$(awk '$1=="initrd" {print $2}' "$e")
    awk '$1=="options" {sub(/^options[ \t]+/, ""); printf "%s", $0}' "$e" > "$work/cmdline"
    printf 'ID=nixos\nNAME=NixOS\nPRETTY_NAME="NixOS 24.11 (Generation %s)"\nVERSION_ID="%s"\n' "$n" "$n" > "$work/osrel"
    objcopy --add-section .osrel="$work/osrel" --change-section-vma .osrel=0x20000 \
        --add-section .cmdline="$work/cmdline" --change-section-vma .cmdline=0x30000 \
        --add-section .linux="$esp$linux" --change-section-vma .linux=0x2000000 \
        --add-section .initrd="$esp$initrd" --change-section-vma .initrd=0x3000000 \
        "$stub" "$work/uki.efi"
    h=$(nix-hash --type sha256 --base32 --flat "$work/uki.efi")
    mv "$work/uki.efi" "$esp/EFI/Linux/nixos-generation-$n-$h.efi"
done
ls "$esp"/EFI/Linux/nixos-generation-*.efi >/dev/null
rm -f "$esp"/loader/entries/nixos-generation-*.conf
rm -rf "$esp/EFI/nixos"
printf 'timeout 5\nconsole-mode keep\n' > "$esp/loader/loader.conf"
rm -rf "$work"
sync
