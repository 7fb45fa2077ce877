"""Fix playbook (guide: Cannot Access Encrypted Datasets; ZFS Pool Not Imported, "Credstore not
unlocked"), on a deployed host whose keys are not loaded: load the key of rpool/crypt and mount the
datasets (zfs load-key; zfs mount -a). The key is never printed.

Where the credstore has to be opened for that (a host that loads its key in the running system),
one command opens it (passphrase from --data luks_passphrase_file or luks_passphrase_env on the
controller, sent on stdin; refused without one), mounts it read-only, loads the key and closes it
again: the credstore is never left open. On a Keystone host the initrd loads the key and the
credstore stays closed in the running system by design: the fix is REFUSED there (reboot, or
recover from the ISO with playbooks/fix/emergency-access.py).

    pyinfra inventory/lab.py playbooks/fix/load-keys.py --dry
    pyinfra -y inventory/lab.py playbooks/fix/load-keys.py --data luks_passphrase_file=PATH
"""

from keystone_checks.frontends.playbook import run_fix

run_fix("load-keys", ["credstore-unlocked", "credstore-mounted", "crypt-keys-loaded", "crypt-datasets-mounted"])
