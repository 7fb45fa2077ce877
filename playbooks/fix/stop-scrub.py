"""Fix playbook (guide: System Slow After Deployment, cause "ZFS scrub running"):
stop a running scrub on the root pool (zpool scrub -s). Disruptive: the scrub's verification is
abandoned; the guide's first choice is to wait for it. Start it again at a quiet time.

    pyinfra inventory/lab.py playbooks/fix/stop-scrub.py --dry   # shows the commands
    pyinfra -y inventory/lab.py playbooks/fix/stop-scrub.py
"""

from keystone_checks.frontends.playbook import run_fix

run_fix("stop-scrub", ["no-scrub-running"])
