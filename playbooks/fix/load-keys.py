"""Fix playbook (guide: Cannot Access Encrypted Datasets; ZFS Pool Not Imported, "Credstore not
unlocked"): open the credstore when it is locked (passphrase from --data luks_passphrase_file or
luks_passphrase_env on the controller; refused without one), mount it, load the key of rpool/crypt
from its keylocation (or host data key_file) and mount the datasets (zfs load-key -L ...; zfs mount
-a). The key is never printed.

A check whose dependency fails is skipped, so one run fixes the first broken layer (pool ->
credstore mount -> keys -> mounts); rerun until every check passes.

    pyinfra inventory/lab.py playbooks/fix/load-keys.py --dry
    pyinfra -y inventory/lab.py playbooks/fix/load-keys.py
"""

from keystone_checks.runner import run_fix

run_fix("load-keys", ["credstore-unlocked", "credstore-mounted", "crypt-keys-loaded", "crypt-datasets-mounted"])
