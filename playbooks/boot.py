"""Phase playbook: boot. After the first boot: ESP contents, pool imported, sshd up, system finished starting.

Run: pyinfra -y INVENTORY playbooks/boot.py [--data fix=true] [--data report=PATH]
"""

from keystone_checks.frontends.playbook import run_phase

run_phase("boot")
