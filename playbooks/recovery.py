"""Phase playbook: recovery. State an operator needs before a recovery procedure (emergency access, rollback targets).

Run: pyinfra -y INVENTORY playbooks/recovery.py [--data fix=true] [--data report=PATH]
"""

from keystone_checks.frontends.playbook import run_phase

run_phase("recovery")
