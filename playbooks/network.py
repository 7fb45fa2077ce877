"""Phase playbook: network. Reachability: ping, TCP 22, SSH banner and key, firewall.

Run: pyinfra -y INVENTORY playbooks/network.py [--data fix=true] [--data report=PATH]
"""

from keystone_checks.frontends.playbook import run_phase

run_phase("network")
