"""Fix playbook (guide: Deployment Hangs at Pool Export / "pool export failed"):
close the credstore LUKS mapping (unmounting it first), then export the pool.

    pyinfra inventory/lab.py playbooks/fix/close-credstore-export.py --dry   # shows the commands
    pyinfra -y inventory/lab.py playbooks/fix/close-credstore-export.py
"""

from keystone_checks.frontends.playbook import run_fix

run_fix("close-credstore-export", ["credstore-closed-before-export"])
