"""Phase playbook: configuration. The NixOS configuration and the inventory agree with the target (disk path, keys, required options).

Run: pyinfra -y INVENTORY playbooks/configuration.py [--data fix=true] [--data report=PATH]
"""

from keystone_checks.frontends.playbook import run_phase

run_phase("configuration")
