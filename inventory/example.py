"""Example inventory: a host booted from the Keystone ISO and two deployed servers.

Copy it, replace addresses and keys, then e.g.:

    pyinfra -y inventory/example.py playbooks/preflight.py --limit installer
    pyinfra -y inventory/example.py playbooks/sweep.py --limit deployed

Host data keys are documented in README.md and keystone_checks/engine/hostdata.py.
Host keys: the ISO regenerates its SSH host key on every boot, so installer hosts use a separate
known_hosts file with accept-new; deployed servers require the recorded key ("yes"): a changed
key on a deployed server is refused (it may be an attack).
"""

# Imported before pyinfra connects, so each unreachable host is reported with its reason
# (refused, timed out, key rejected, host key changed, ...), not a generic failure.
import keystone_checks.engine.connect_errors  # noqa: F401

_key = "~/.ssh/id_ed25519"

installer = [
    ("10.0.0.50", {
        "role": "installer",
        "disk": "/dev/disk/by-id/nvme-Samsung_SSD_980_PRO_1TB_S5GXNX0T000000",
        "ssh_user": "root",
        "ssh_key": _key,
        "ssh_known_hosts_file": "~/.ssh/known_hosts.keystone-installer",
        "ssh_strict_host_key_checking": "accept-new",
    }),
]

deployed = [
    (name, {
        "role": "deployed",
        "disk": "/dev/vda",
        "pool": "rpool",
        "authorized_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample operator@laptop",
        "ssh_user": "root",
        "ssh_key": _key,
        "ssh_strict_host_key_checking": "yes",
    })
    for name in ("keystone-01.example.internal", "keystone-02.example.internal")
]
