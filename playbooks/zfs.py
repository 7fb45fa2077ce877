"""Phase playbook: zfs. Pool imported and healthy, credstore and encryption keys, export blockers.

Run: pyinfra -y INVENTORY playbooks/zfs.py [--data fix=true] [--data report=PATH]
"""

from keystone_checks.frontends.playbook import run_phase

run_phase("zfs")
