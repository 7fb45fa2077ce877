"""Phase playbook: deployment. During/after nixos-anywhere: disk free to format, ZFS usable, credstore closed before export.

Run: pyinfra -y INVENTORY playbooks/deployment.py [--data fix=true] [--data report=PATH]
"""

from keystone_checks.frontends.playbook import run_phase

run_phase("deployment")
