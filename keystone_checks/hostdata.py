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
        HostKey("authorized_key", (str,), "", "public key that must be in root's authorized_keys ('' = any valid key)"),
        HostKey("authorized_keys_file", (str,), "/root/.ssh/authorized_keys", "root's authorized_keys file"),
        HostKey("min_ram_bytes", (int,), 16 * 1024**3, "RAM the guide recommends for ZFS (16 GB)"),
        HostKey("max_load_per_cpu", (int, float), 2.0, "1-minute load per CPU above which the host is 'slow'"),
        HostKey("installer_marker", (str,), "/etc/keystone-installer", "file present only on the Keystone ISO"),
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
    # Defaults that follow the pool name when only the pool was overridden.
    pool = context["pool"]
    if _get(data, "crypt_dataset") is None:
        context["crypt_dataset"] = f"{pool}/crypt"
    if _get(data, "credstore_device") is None:
        context["credstore_device"] = f"/dev/zvol/{pool}/credstore"
    context["host"] = host_name
    return context


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
