"""Phase playbook: preflight. Before an install: the operator's machine (controller) and the ISO-booted target (installer).

Run: pyinfra -y INVENTORY playbooks/preflight.py [--data fix=true] [--data report=PATH]
"""

from keystone_checks.frontends.playbook import run_phase

run_phase("preflight")
