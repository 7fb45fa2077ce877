"""Fix playbook (guide: Services fail after deploy, "Rollback if critical"):
on deployed hosts with failed units after a deploy, switch back to the previous generation
(``nixos-rebuild switch --rollback``). Runs only where a previous generation exists
(check nix-previous-generation-exists); hosts without failed units are left alone.

    pyinfra inventory/lab.py playbooks/fix/rollback.py --dry   # shows the commands
    pyinfra -y inventory/lab.py playbooks/fix/rollback.py
"""

from keystone_checks.frontends.playbook import run_fix

run_fix("rollback", ["services-rollback-if-failed"])
