"""Fix playbook (guide: "Complete System Rebuild"): erase the target disk so it can be deployed again.

DESTRUCTIVE. Refused unless the run opts in AND names the inventory's disk:

    pyinfra inventory/lab.py playbooks/fix/rebuild.py --dry \\
        --data allow_destructive=true --data destructive_device=HOST:/dev/disk/by-id/...   # lists the command
    pyinfra -y inventory/lab.py playbooks/fix/rebuild.py \\
        --data allow_destructive=true --data destructive_device=HOST:/dev/disk/by-id/...

Even then the wipe is one guarded shell command that re-verifies on the host, right before
wiping, that the device resolves to the inventory's disk and that nothing on it is mounted,
imported in a ZFS pool, swapped on or held open; otherwise it prints "refusing: <reason>".
"""

from keystone_checks.frontends.playbook import run_fix

run_fix("rebuild", ["target-disk-no-old-signatures"])
