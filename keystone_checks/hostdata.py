"""The host data keys checks may use, with types, defaults and meaning.

Check templates (``{{ disk }}``) may reference only these keys; ``keystone-checks validate`` rejects
any other name, and a key with no default that a host lacks turns the checks needing it into
``error`` outcomes naming the host and the key. This table is the documentation of host data
(the README's table is generated from it by ``keystone-checks docs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import HostDataError

ROLES = ("controller", "installer", "deployed")


@dataclass(frozen=True)
class HostKey:
    name: str
    types: tuple[type, ...]
    default: Any
    help: str
    required: bool = False  # True: no default; checks that use it error when missing


_G = 1000**3

KEYS: dict[str, HostKey] = {
    k.name: k
    for k in (
        HostKey("role", (str, list), None, "installer | deployed | controller (or a list of them)", True),
        HostKey("disk", (str,), None, "target disk device (/dev/vda, /dev/disk/by-id/...)", True),
        HostKey("disks", (list,), [], "every disk of a multi-disk layout (keystone.os.storage.devices), e.g. "
                                     "['/dev/disk/by-id/a', '/dev/disk/by-id/b']; [] = single disk (`disk`)"),
        HostKey("layout", (dict,), {}, "pin the detected layout: {installer: bool, storage: zfs|ext4-luks, "
                                       "boot_loader: systemd-boot|lanzaboote, firewall: iptables|nftables}; "
                                       "unset keys are detected (system.Layout)"),
        HostKey("pool", (str,), "rpool", "ZFS root pool name (\"\" = this host has no ZFS pool: checks that require it do not apply)"),
        HostKey("crypt_dataset", (str,), "rpool/crypt", "encrypted dataset holding the system"),
        HostKey("credstore_name", (str,), "credstore", "LUKS mapping name of the credstore"),
        HostKey("credstore_device", (str,), "/dev/zvol/rpool/credstore", "zvol holding the credstore LUKS volume"),
        HostKey("credstore_mount", (str,), "/etc/credstore", "where the credstore filesystem is mounted"),
        HostKey("key_file", (str,), "/etc/credstore/zfs-sysroot.mount", "ZFS key file inside the credstore"),
        HostKey("boot_mount", (str,), "/boot", "ESP mount point"),
        HostKey("nix_path", (str,), "/nix", "path whose filesystem holds the Nix store"),
        HostKey("system_profile", (str,), "/nix/var/nix/profiles/system", "NixOS system profile"),
        HostKey("min_disk_bytes", (int,), 20 * _G, "smallest usable target disk (guide: 20 GB)"),
        HostKey("min_nix_free_bytes", (int,), 10 * _G, "free space wanted under /nix (guide: 10 GB)"),
        HostKey("keep_generations", (int,), 5, "system generations kept by the garbage-collection fix"),
        HostKey("ssh_port_expected", (int,), 22, "port sshd must listen on and the firewall must allow"),
        HostKey("authorized_key", (str,), "", "public key that must be among the login user's authorized keys ('' = any valid key)"),
        HostKey("ssh_user", (str,), "root", "account the operator (and pyinfra) logs in as; Keystone v0.2+ puts keys on a normal wheel user"),
        HostKey("authorized_keys_file", (str,), "/root/.ssh/authorized_keys", "root's authorized_keys file"),
        HostKey("min_ram_bytes", (int,), 16 * 1024**3, "RAM the guide recommends for ZFS (16 GB)"),
        HostKey("max_load_per_cpu", (int, float), 2.0, "1-minute load per CPU above which the host is 'slow'"),
        HostKey("installer_marker", (str,), "/etc/keystone-installer",
                "optional extra installer signal for stand-ins (the lab's Debian guest); no Keystone ISO has it: "
                "real ISOs are recognised by VARIANT_ID=installer in /etc/os-release ('' = not used)"),
        # Controller side (the operator's machine, usually @local)
        HostKey("flake", (str,), ".", "flake directory holding nixosConfigurations"),
        HostKey("nixos_configuration", (str,), "", "name under nixosConfigurations.<name> to deploy"),
        HostKey("ssh_public_key_file", (str,), "~/.ssh/id_ed25519.pub", "operator's public key used for the install"),
        HostKey("targets", (list,), [], "controller: hosts to reach, [{name, address, port}]"),
        # Run control (set with --data)
        HostKey("fix", (bool,), False, "queue the fixes of failing checks (dry-run with pyinfra --dry)"),
        HostKey("allow_destructive", (bool,), False, "permit destructive fixes (also needs destructive_device)"),
        HostKey("allow_force_import", (bool,), False, "permit `zpool import -f` (can corrupt a pool in use elsewhere)"),
        HostKey("destructive_device", (str,), "", "the device the operator names for a destructive fix"),
        HostKey("host_timeout", (int, float), None, "seconds the host gets to answer its one batched gather (default: "
                "its slowest probe's timeout + 32 s); past it the host is reported `timeout` and the run goes on"),
        HostKey("fix_timeout", (int,), 900, "seconds one fix command may run on the host before pyinfra stops "
                "waiting for it (the fix is then fix-failed; the other hosts' operations go on)"),
        HostKey("report", (str,), "", "JSON report path (default reports/<phase>-<time>.json)"),
        HostKey("reports", (str,), "", "extra reports FORMAT:PATH[,...] (junit, prometheus, nagios, html, console)"),
        HostKey("luks_passphrase_file", (str,), "", "controller-side file holding the credstore passphrase"),
        HostKey("luks_passphrase_env", (str,), "", "controller-side environment variable holding it"),
    )
}


def resolve(host_name: str, data: Any) -> dict[str, Any]:
    """The template context for a host: every known key, its value or default.

    Wrong types raise ``HostDataError`` naming host and key. Missing required keys are left out,
    so a template that needs one fails with an undefined-key error, turned into an ``error`` outcome.
    """
    context: dict[str, Any] = {}
    for key in KEYS.values():
        value = _get(data, key.name)
        if value is None:
            if key.default is not None:
                context[key.name] = key.default
            continue
        if isinstance(value, bool) and bool not in key.types:
            raise HostDataError(host_name, key.name, f"expected {_type_names(key)}, got {value!r}")
        if not isinstance(value, key.types):
            raise HostDataError(host_name, key.name, f"expected {_type_names(key)}, got {type(value).__name__} {value!r}")
        context[key.name] = value
    _check_layout(host_name, context.get("layout") or {})
    _check_disks(host_name, context.get("disks") or [])
    # Defaults that follow the pool name when only the pool was overridden.
    pool = context["pool"]
    if _get(data, "crypt_dataset") is None:
        context["crypt_dataset"] = f"{pool}/crypt"
    if _get(data, "credstore_device") is None:
        context["credstore_device"] = f"/dev/zvol/{pool}/credstore"
    context["host"] = host_name
    return context


# What host data ``layout`` may pin, and to what (system.Layout reports the same keys).
LAYOUT_VALUES: dict[str, tuple] = {
    "installer": (True, False),
    "storage": ("zfs", "ext4-luks"),
    "boot_loader": ("systemd-boot", "lanzaboote"),
    "firewall": ("iptables", "nftables"),
}


def _check_layout(host_name: str, layout: dict) -> None:
    for key, value in layout.items():
        if key not in LAYOUT_VALUES:
            raise HostDataError(host_name, "layout", f"unknown key {key!r}; pin one of {', '.join(LAYOUT_VALUES)}")
        allowed = LAYOUT_VALUES[key]
        if isinstance(value, bool) != isinstance(allowed[0], bool) or value not in allowed:
            raise HostDataError(host_name, "layout", f"{key}: {value!r} is not one of "
                                                     f"{', '.join(map(repr, allowed))}")


def _check_disks(host_name: str, disks: list) -> None:
    for item in disks:
        if not isinstance(item, str) or not item.startswith("/"):
            raise HostDataError(host_name, "disks", f"expected absolute device paths, got {item!r}")


def roles_of(host_name: str, context: dict[str, Any]) -> list[str]:
    role = context.get("role")
    if role is None:
        raise HostDataError(host_name, "role", "missing; set it to one of " + ", ".join(ROLES))
    roles = [role] if isinstance(role, str) else list(role)
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise HostDataError(host_name, "role", f"{role!r} is not one of {', '.join(ROLES)}")
    return roles


def _get(data: Any, name: str) -> Any:
    if isinstance(data, dict):
        return data.get(name)
    return getattr(data, name, None)


def _type_names(key: HostKey) -> str:
    return " or ".join(t.__name__ for t in key.types)
