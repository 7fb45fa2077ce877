"""Phase playbook: before-reboot. The gate between nixos-anywhere's install and the first reboot.

nixos-anywhere's reboot phase runs `umount -R /mnt; swapoff -a; zpool export -a || true` and reboots
whatever happened: a pool left imported or a credstore left open is found only when the new system
fails to boot. Install with `nixos-anywhere --phases kexec,disko,install` (no reboot), run this
against the installer, then reboot (docs/before-reboot.md): nothing busy under /mnt, nothing
mounted there, the credstore closed, no swap on a zvol, the pool exported, cleanly.

Run: pyinfra -y INVENTORY playbooks/before-reboot.py --data fix=true [--data report=PATH]
     (--dry --data fix=true first to see the commands)
"""

from keystone_checks.frontends.playbook import run_phase

run_phase("before-reboot")
