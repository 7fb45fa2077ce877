"""Fix playbook (guide: Emergency Access via ISO), on a host booted from the Keystone ISO
(role installer):

1. import the pool under the altroot /mnt (zpool import -N -R /mnt; -f ONLY with
   --data allow_force_import=true): on Keystone rpool/crypt/system has mountpoint=/ and
   system/nix /nix, which without an altroot would mount over the ISO's own root,
2. open the credstore (luks.open_mapping: the passphrase is read on the controller from
   --data luks_passphrase_file=PATH or luks_passphrase_env=VAR and sent on stdin; without one the
   fix is REFUSED and nothing runs),
3. mount the credstore at credstore_mount,
4. load the key of rpool/crypt (zfs load-key -L file://...),
5. close the credstore again (umount; cryptsetup close): the key stays loaded, the raw key file
   is not left readable,
6. mount the datasets by their own mountpoints under /mnt, shallowest first (/mnt, /mnt/nix,
   /mnt/var, ...). Refused before anything is mounted unless the pool's altroot is /mnt and every
   target is /mnt or below it.

Then mount the ESP at /mnt/boot and `nixos-enter --root /mnt` by hand. When done: umount -R /mnt
and zpool export rpool (the zfs phase checks both). The recovery checks (recovery-pool-importable,
recovery-credstore-device-present, recovery-key-file-present, recovery-system-mounted,
installed-esp-populated) report the state before and after.

    pyinfra inventory/rescue.py playbooks/fix/emergency-access.py --dry
    pyinfra -y inventory/rescue.py playbooks/fix/emergency-access.py --data allow_force_import=true \
        --data luks_passphrase_file=~/.keystone/credstore.pass
"""

from keystone_checks.frontends.playbook import run_fix

run_fix("emergency-access", ["recovery-system-mounted"])
