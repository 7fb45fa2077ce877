"""Phase playbook: sweep. Scheduled health sweep: every check that applies to a deployed host.

Run: pyinfra -y INVENTORY playbooks/sweep.py [--data fix=true] [--data report=PATH]
"""

from keystone_checks.frontends.playbook import run_phase

run_phase("sweep")
