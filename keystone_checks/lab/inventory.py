"""Write a pyinfra inventory (a python file) for lab guests.

Each guest becomes one host in a group named after its role, with pyinfra ssh
data pointing at the loopback port and the lab's own key and known-hosts file
(``accept-new`` is acceptable here only because the hosts are throw-away VMs on
127.0.0.1), plus the host data the checks read: ``role``, ``disk``, ``pool`` and the credstore
passphrase file (``luks_passphrase_file``, for the fixes that unlock it).
"""

from __future__ import annotations

from pathlib import Path

from keystone_checks.lab import recipe


def ssh_data(guest) -> dict:
    """How pyinfra reaches a lab guest: its loopback port, the lab key and known-hosts file."""
    return {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": guest.port,
        "ssh_user": "root",
        "ssh_key": str(guest.key),
        "ssh_known_hosts_file": str(guest.known_hosts),
        "ssh_strict_host_key_checking": "accept-new",
    }


def host_data(guest, state: str, variant: recipe.Variant, **overrides) -> dict:
    st = recipe.STATES[state]
    data = {
        **ssh_data(guest),
        "role": st.role,
        "disk": "/dev/vda",
        "lab_state": state,
        "lab_zfs": variant.name,
    }
    if st.role == "deployed" or state == "installed":
        data["pool"] = "rpool"
        # What an operator sets for fixes that open the credstore: a file on the controller, read
        # there and sent on stdin (never in argv, never in the report).
        from keystone_checks.lab import snapshot

        data["luks_passphrase_file"] = str(snapshot.passphrase_file(variant))
    data.update(overrides)
    return data


def write(path: Path, hosts: list[tuple[str, dict]]) -> Path:
    """``hosts``: (name, data) pairs; grouped by ``data['role']``."""
    groups: dict[str, list] = {}
    for name, data in hosts:
        groups.setdefault(data["role"], []).append((name, data))
    # The connect-error collector first, as README asks of every inventory: each unreachable host
    # gets its own reason, and paramiko prints no traceback for a port that never sends a banner.
    lines = ['"""pyinfra inventory written by keystone_checks.lab (throw-away lab guests)."""', "",
             "import keystone_checks.engine.connect_errors  # noqa: F401", ""]
    for role, members in sorted(groups.items()):
        lines.append(f"{role} = [")
        for name, data in members:
            lines.append(f"    ({name!r}, {data!r}),")
        lines += ["]", ""]
    path.write_text("\n".join(lines))
    return path


def guests_up() -> dict[str, list[tuple[str, dict]]]:
    """The guests ``keystone-checks lab up`` started and that still run, grouped by role: what
    ``inventory/lab.py`` hands to pyinfra."""
    import json
    import os
    import runpy

    from keystone_checks.lab.paths import run_root

    groups: dict[str, list[tuple[str, dict]]] = {}
    for guest in sorted((run_root() / "up").glob("*/guest.json")):
        pid = json.loads(guest.read_text()).get("pid")
        try:
            os.kill(int(pid), 0)
        except (OSError, TypeError, ValueError):
            continue  # gone (hard-killed, or the machine rebooted): `lab down` cleans up
        written = runpy.run_path(str(guest.parent / "inventory.py"))
        for role in ("installer", "deployed", "controller"):
            groups.setdefault(role, []).extend(written.get(role, []))
    return groups
