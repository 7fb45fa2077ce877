"""Phase playbook: next-boot. Will the next boot come up, judged without opening the credstore:
hostid the initrd uses vs the pool's, the encryption root's key location, the profile's generation
on the ESP and room for one more, / mounted from the system dataset, every disk present.

Run: pyinfra -y INVENTORY playbooks/next-boot.py [--data report=PATH]
"""

from keystone_checks.frontends.playbook import run_phase

run_phase("next-boot")
