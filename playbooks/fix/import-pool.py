"""Fix playbook (guide: ZFS Pool Not Imported, cause "Pool needs manual import"):
zpool import -N rpool. A pool last used by another system needs -f, which is refused unless
--data allow_force_import=true (forcing a pool another running system uses corrupts it).

    pyinfra inventory/lab.py playbooks/fix/import-pool.py --dry
    pyinfra -y inventory/lab.py playbooks/fix/import-pool.py [--data allow_force_import=true]
"""

from keystone_checks.frontends.playbook import run_fix

run_fix("import-pool", ["pool-imported"])
