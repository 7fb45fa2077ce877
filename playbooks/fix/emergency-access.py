"""Fix playbook (guide: Emergency Access via ISO), on a host booted from the Keystone ISO
(role installer):

1. import the pool (zpool import -N; -f ONLY with --data allow_force_import=true),
2. open the credstore (luks.open_mapping: the passphrase is read on the controller from
   --data luks_passphrase_file=PATH or luks_passphrase_env=VAR and sent on stdin; without one the
   fix is REFUSED and nothing runs),
3. mount the credstore at credstore_mount,
4. load the key of rpool/crypt (zfs load-key -L file://...),
5. mount the datasets under /mnt, the root dataset first (then nix, var, home, ...).

Then mount the ESP at /mnt/boot and `nixos-enter --root /mnt` by hand. The recovery checks
(recovery-pool-importable, recovery-credstore-device-present, recovery-key-file-present,
installed-esp-populated) report the state before and after.

    pyinfra inventory/rescue.py playbooks/fix/emergency-access.py --dry
    pyinfra -y inventory/rescue.py playbooks/fix/emergency-access.py --data allow_force_import=true \
        --data luks_passphrase_file=~/.keystone/credstore.pass
"""

from keystone_checks.runner import run_fix

run_fix("emergency-access", ["recovery-system-mounted"])
