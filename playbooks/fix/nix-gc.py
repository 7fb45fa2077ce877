"""Fix playbook (guide: Error: "out of disk space" / ISO Build Fails, insufficient disk space):
delete all but the newest system generations (host data ``keep_generations``, default 5) and
collect garbage, on hosts whose Nix store filesystem is short of space.

    nix-env --delete-generations +5 -p /nix/var/nix/profiles/system
    nix-collect-garbage

    pyinfra inventory/lab.py playbooks/fix/nix-gc.py --dry   # shows the commands
    pyinfra -y inventory/lab.py playbooks/fix/nix-gc.py
"""

from keystone_checks.frontends.playbook import run_fix

run_fix("nix-gc", ["nix-store-free-space"])
