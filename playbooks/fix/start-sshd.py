"""Fix playbook (guide: Can't SSH After First Boot): start the SSH service (sshd on NixOS, ssh on
Debian) and admit tcp port 22 in the nftables input chains that drop it. Run it over the console
or any working path to the host (for example a serial/VM console with pyinfra's @local connector).

    pyinfra inventory/lab.py playbooks/fix/start-sshd.py --dry
    pyinfra -y inventory/lab.py playbooks/fix/start-sshd.py
"""

from keystone_checks.frontends.playbook import run_fix

run_fix("start-sshd", ["sshd-running", "firewall-allows-ssh"])
