"""The host data keys checks may use, with types, defaults and meaning.

Check templates (``{{ disk }}``) may reference only these keys; ``keystone-checks validate`` rejects
any other name, and a key with no default that a host lacks turns the checks needing it into
``error`` outcomes naming the host and the key. This table is the reference of host data: each
key's types, default, grammar and meaning.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from dataclasses import dataclass
from typing import Any

from ..errors import HostDataError, KeystoneChecksError

ROLES = ("controller", "installer", "deployed")


@dataclass(frozen=True)
class HostKey:
    name: str
    types: tuple[type, ...]
    default: Any
    help: str
    required: bool = False  # True: no default; checks that use it error when missing
    kind: str = "text"  # the grammar the value must follow: see GRAMMARS
    limits: tuple[float, float] | None = None  # numbers: inclusive range


_G = 1000**3

KEYS: dict[str, HostKey] = {
    k.name: k
    for k in (
        HostKey("role", (str, list), None, "installer | deployed | controller, or several: a list, or one string "
                                            "separated by ',' (--data role=installer,controller)", True, "roles"),
        HostKey("disk", (str,), None, "target disk device (/dev/vda, /dev/disk/by-id/...)", True, "path"),
        HostKey("disks", (list,), [], "every disk of a multi-disk layout (keystone.os.storage.devices), e.g. "
                                     "['/dev/disk/by-id/a', '/dev/disk/by-id/b']; [] = single disk (`disk`)", kind="path"),
        HostKey("layout", (dict,), {}, "pin the detected layout: {installer: bool, storage: zfs|ext4-luks, "
                                       "boot_loader: systemd-boot|lanzaboote, firewall: iptables|nftables}; "
                                       "unset keys are detected (system.Layout)"),
        HostKey("pool", (str,), "rpool", "ZFS root pool name (\"\" = this host has no ZFS pool: checks that require it "
                "do not apply)", kind="pool"),
        HostKey("crypt_dataset", (str,), "rpool/crypt", "encrypted dataset holding the system", kind="dataset"),
        HostKey("credstore_name", (str,), "credstore", "LUKS mapping name of the credstore", kind="mapping"),
        HostKey("credstore_device", (str,), "/dev/zvol/rpool/credstore", "zvol holding the credstore LUKS volume", kind="path"),
        HostKey("credstore_mount", (str,), "/etc/credstore", "where the credstore filesystem is mounted", kind="path"),
        HostKey("key_file", (str,), "/etc/credstore/zfs-sysroot.mount", "ZFS key file inside the credstore", kind="path"),
        HostKey("boot_mount", (str,), "/boot", "ESP mount point", kind="path"),
        HostKey("nix_path", (str,), "/nix", "path whose filesystem holds the Nix store", kind="path"),
        HostKey("system_profile", (str,), "/nix/var/nix/profiles/system", "NixOS system profile", kind="path"),
        HostKey("min_disk_bytes", (int,), 20 * _G, "smallest usable target disk (guide: 20 GB)", limits=(0, 2**63 - 1)),
        HostKey("min_nix_free_bytes", (int,), 10 * _G, "free space wanted under /nix (guide: 10 GB)", limits=(0, 2**63 - 1)),
        HostKey("keep_generations", (int,), 5, "system generations kept by the garbage-collection fix", limits=(1, 10000)),
        HostKey("ssh_port_expected", (int,), 22, "port sshd must listen on and the firewall must allow", limits=(1, 65535)),
        HostKey("authorized_key", (str,), "", "public key that must be among the login user's authorized keys "
                "('' = any valid key)", kind="line"),
        HostKey("ssh_user", (str,), "root", "account the operator (and pyinfra) logs in as; Keystone v0.2+ puts keys on a "
                "normal wheel user"),
        HostKey("authorized_keys_file", (str,), "/root/.ssh/authorized_keys", "root's authorized_keys file", kind="path"),
        HostKey("min_ram_bytes", (int,), 16 * 1024**3, "RAM the guide recommends for ZFS (16 GB)", limits=(0, 2**63 - 1)),
        HostKey("max_load_per_cpu", (int, float), 2.0, "1-minute load per CPU above which the host is 'slow'", limits=(0, 10000)),
        HostKey("installer_marker", (str,), "/etc/keystone-installer",
                "optional extra installer signal for stand-ins (the lab's Debian guest); no Keystone ISO has it: "
                "real ISOs are recognised by VARIANT_ID=installer in /etc/os-release ('' = not used)", kind="optional-path"),
        # Controller side (the operator's machine, usually @local)
        HostKey("flake", (str,), ".", "flake directory holding nixosConfigurations"),
        HostKey("nixos_configuration", (str,), "", "name under nixosConfigurations.<name> to deploy"),
        HostKey("ssh_public_key_file", (str,), "~/.ssh/id_ed25519.pub", "operator's public key used for the install"),
        HostKey("targets", (list,), [], "controller: hosts to reach, [{name, address, port}]"),
        # Run control (set with --data)
        HostKey("fix", (bool,), False, "queue the fixes of failing checks (dry-run with pyinfra --dry)"),
        HostKey("allow_destructive", (bool,), False, "permit destructive fixes (also needs destructive_device naming this host "
                "and its disk)"),
        HostKey("allow_force_import", (bool,), False, "permit `zpool import -f` (can corrupt a pool in use elsewhere)"),
        HostKey("destructive_device", (str,), "", "the device the operator names for a destructive fix: "
                "HOST:DEVICE[,HOST:DEVICE...]", kind="consent"),
        HostKey("host_timeout", (int, float), None, "seconds the host gets to answer its one batched gather (default: "
                "its slowest probe's timeout + 32 s); past it the host is reported `timeout` and the run goes on",
                limits=(1, 86400)),
        HostKey("fix_timeout", (int,), 900, "seconds one fix command may run on the host before pyinfra stops "
                "waiting for it (the fix is then fix-failed; the other hosts' operations go on)", limits=(1, 86400)),
        HostKey("report", (str,), "", "JSON report path (default reports/<phase>-<time>.json)"),
        HostKey("checks", (str, list), [], "run only these check ids (and, as gates, what they depend on): a list or "
                "'id,id'; [] = every check of the phase", kind="check-ids"),
        HostKey("tags", (str, list), [], "run only checks carrying one of these tags (their domain, e.g. zfs, luks, or a "
                "`tags:` entry): a list or 'tag,tag'; [] = no tag filter", kind="tags"),
        HostKey("severity", (str,), "", "run only checks of at least this severity: critical, warning or info "
                "('' = all)", kind="severity"),
        HostKey("waivers", (str,), "", "controller-side waivers file (YAML list of {check, hosts, reason, expires}); "
                "'' = none"),
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
            raise HostDataError(host_name, key.name, f"expected {_type_names(key)}, got {type(value).__name__} {_shown(value)}")
        problem = check_value(key, value)
        if problem:
            raise HostDataError(host_name, key.name, problem)
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
    roles = split_names(role)
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


# -- grammar of values -------------------------------------------------------------------------------
#
# Checked when host data is loaded, so a value that could be read as an option or as something else
# than a name never reaches a command (commands quote every value too: see keystone_checks.engine.commands).

MAX_TEXT = 4096  # bytes of one host-data string (PATH_MAX); a longer value is refused, not truncated
MAX_POOL = 239  # OpenZFS pool_namecheck: shorter than ZFS_MAX_DATASET_NAME_LEN - 2 - 2 * len("$ORIGIN")
MAX_DATASET = 255  # ZFS_MAX_DATASET_NAME_LEN - 1
MAX_MAPPING = 127  # device-mapper DM_NAME_LEN - 1

_ZFS_CHAR = re.compile(r"[A-Za-z0-9_.: -]")  # OpenZFS zfs_namecheck.c valid_char()
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ZFS_RESERVED_PREFIXES = ("mirror", "raidz", "draid", "spare")  # zpool_name_valid() for create/import

GRAMMARS = {
    "text": "at most 4096 characters, no control characters (NUL, newline, ...)",
    "line": "one line of at most 4096 characters, no control characters",
    "pool": "a ZFS pool name: a letter, then letters, digits and _ . : - or space; not mirror*, raidz*, "
            "draid*, spare*, log or c<digit>*; at most 239 characters (OpenZFS pool_namecheck)",
    "dataset": "a ZFS dataset name: POOL/child/...: a valid pool name, then non-empty components of letters, "
               "digits and _ . : - or space; at most 255 characters (OpenZFS entity_namecheck)",
    "mapping": "a device-mapper name: 1-127 characters, no '/', not '.' or '..', not starting with '-', "
               "no control characters or spaces",
    "path": "an absolute, normalised path (no '.', '..', '//' or trailing '/'), no control characters, "
            "at most 4096 characters",
    "optional-path": "\"\" (not used) or an absolute, normalised path (no '.', '..', '//' or trailing '/')",
    "consent": "HOST:DEVICE naming an inventory host and its disk (several separated by ','), "
               "e.g. server1:/dev/disk/by-id/nvme-X",
    "roles": "one or more of controller, installer, deployed (a list, or separated by ',')",
    "check-ids": "check ids (kebab-case, as `keystone-checks list` shows them), a list or separated by ','; "
                 "at most 256 of them",
    "tags": "tags (lowercase letters, digits and '-'), a list or separated by ','; at most 256 of them",
    "severity": "one of critical, warning, info ('' = every severity)",
}

SEVERITIES = ("critical", "warning", "info")  # most severe first; --severity S keeps S and above
MAX_NAMES = 256  # entries of one name list (roles, checks, tags): a selection, not a data dump
_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")  # check ids (check.schema.json) and tags


def split_names(value: Any) -> list[str]:
    """A name list from host data: a list as it is, a string split at ',' (blanks dropped).

    **Example:** ``split_names("installer, controller") == ["installer", "controller"]``
    """
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value or [])


def check_value(key: HostKey, value: Any) -> str | None:
    """What is wrong with ``value`` for ``key`` (its grammar, or its range), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return _check_number(key, value)
    if key.kind in _NAME_KINDS and isinstance(value, (str, list)):
        return _names_problem(key.kind, value)
    if isinstance(value, list):
        problems = (check_value(HostKey(key.name, (str,), None, "", kind=key.kind), v) for v in value if isinstance(v, str))
        return next((p for p in problems if p), None)
    if not isinstance(value, str):
        return None
    if len(value) > MAX_TEXT:
        return f"is {len(value)} characters long; at most {MAX_TEXT} are accepted"
    if _CONTROL.search(value):
        return f"contains a control character ({_shown(value)}); expected {GRAMMARS[key.kind]}"
    if key.kind == "text" or key.kind == "line" or value == "" and key.kind in ("pool", "consent", "optional-path"):
        return None
    problem = _GRAMMAR_CHECKS[key.kind](value)
    return f"{_shown(value)} is not valid: {problem}; expected {GRAMMARS[key.kind]}" if problem else None


def _check_number(key: HostKey, value: float) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if key.limits is not None:
        low, high = key.limits
        if not low <= value <= high:
            return f"{value!r} is out of range: expected {low} to {high}"
    return None


def pool_problem(name: str) -> str | None:
    """Why ``name`` is not a pool name OpenZFS would create or import (zfs_namecheck.c), or None."""
    if not name:
        return "empty"
    if len(name) > MAX_POOL:
        return f"longer than {MAX_POOL} characters"
    bad = next((c for c in name if not _ZFS_CHAR.fullmatch(c)), None)
    if bad is not None:
        return f"character {bad!r} is not allowed"
    if not name[0].isascii() or not name[0].isalpha():
        return "must begin with a letter"
    if name.startswith(_ZFS_RESERVED_PREFIXES) or name == "log":
        return "the name is reserved by ZFS"
    if re.match(r"c[0-9]", name):
        return "names like c0... are reserved (they look like disks)"
    return None


def dataset_problem(name: str) -> str | None:
    """Why ``name`` is not a ZFS filesystem or volume name (entity_namecheck, no snapshots), or None."""
    if len(name) > MAX_DATASET:
        return f"longer than {MAX_DATASET} characters"
    pool, _, rest = name.partition("/")
    problem = pool_problem(pool)
    if problem:
        return f"pool part {pool!r}: {problem}"
    for component in rest.split("/") if rest else ():
        if not component:
            return "empty component (// or trailing /)"
        bad = next((c for c in component if not _ZFS_CHAR.fullmatch(c)), None)
        if bad is not None:
            return f"character {bad!r} is not allowed"
    return None


def mapping_problem(name: str) -> str | None:
    """Why ``name`` is not a usable device-mapper (LUKS) mapping name, or None."""
    if not name or len(name) > MAX_MAPPING:
        return f"must be 1 to {MAX_MAPPING} characters"
    if "/" in name or name in (".", ".."):
        return "it names a path, not a mapping"
    if name.startswith("-"):
        return "it would be read as an option"
    if " " in name:
        return "spaces are not allowed"
    return None


def path_problem(path: str) -> str | None:
    """Why ``path`` is not an absolute, normalised path, or None."""
    if not path.startswith("/"):
        return "not an absolute path"
    if path != "/" and posixpath.normpath(path) != path:
        return "not normalised (has '.', '..', '//' or a trailing '/')"
    return None


def consent_problem(value: str) -> str | None:
    """Why ``value`` is not a list of HOST:DEVICE consents, or None."""
    for entry in value.split(","):
        host, device = split_consent(entry)
        if not host or device is None:
            return f"{entry.strip()!r} does not name a host: write HOST:DEVICE (e.g. server1:/dev/vda)"
        problem = path_problem(device)
        if problem:
            return f"device {device!r}: {problem}"
    return None


def split_consent(entry: str) -> tuple[str, str | None]:
    """``"server1:/dev/disk/by-path/pci-0000:00:1f.2"`` -> ``("server1", "/dev/disk/by-path/pci-0000:00:1f.2")``
    (split at the first ``:/``: device names may contain ``:``)."""
    host, sep, device = entry.strip().partition(":/")
    return host, ("/" + device if sep else None)


def consented_device(value: str, host_name: str) -> str | None:
    """The device ``destructive_device`` names for ``host_name``, or None when it names none."""
    for entry in str(value or "").split(","):
        host, device = split_consent(entry)
        if host == host_name and device is not None:
            return device
    return None


def _names_problem(kind: str, value: Any) -> str | None:
    """What is wrong with a roles / check ids / tags / severity value, or None (catalog membership of
    check ids and tags is judged where the catalog is known: keystone_checks/engine/selection.py)."""
    if isinstance(value, str) and (len(value) > MAX_TEXT or _CONTROL.search(value)):
        return f"{_shown(value)} is not valid; expected {GRAMMARS[kind]}"
    names = split_names(value)
    if kind == "severity":
        return None if value == "" or value in SEVERITIES else \
            f"{_shown(value)} is not a severity; expected {GRAMMARS[kind]}"
    if len(names) > MAX_NAMES:
        return f"names {len(names)} entries; at most {MAX_NAMES} are accepted"
    for name in names:
        if not isinstance(name, str):
            return f"{_shown(name)} is not a name; expected {GRAMMARS[kind]}"
        if kind == "roles" and name not in ROLES:
            return f"{_shown(name)} is not one of {', '.join(ROLES)} (several: a list, or separated by ',')"
        if kind != "roles" and not _NAME.fullmatch(name):
            return f"{_shown(name)} is not valid; expected {GRAMMARS[kind]}"
    if kind == "roles" and not names:
        return f"names no role; expected {GRAMMARS[kind]}"
    return None


_NAME_KINDS = ("roles", "check-ids", "tags", "severity")

_GRAMMAR_CHECKS = {"pool": pool_problem, "dataset": dataset_problem, "mapping": mapping_problem,
                   "path": path_problem, "optional-path": path_problem, "consent": consent_problem}


def _shown(value: Any) -> str:
    """A value for an error message: repr, cut to 80 characters (a 200 KB value is not echoed)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_cli_value(key: str, text: str) -> Any:
    """A ``--data KEY=VALUE`` value, typed by the key's declared types (``max_load_per_cpu=2.5`` is a
    float), else as pyinfra's ``--data`` parses it (true/false, integer, JSON, text).

    **Example:** ``parse_cli_value("max_load_per_cpu", "2.5") == 2.5``
    """
    types = KEYS[key].types if key in KEYS else ()
    lowered = text.strip().lower()
    if bool in types or not types:
        if lowered in ("true", "false"):
            return lowered == "true"
    if int in types or not types:
        try:
            return int(text)
        except ValueError:
            pass
    if float in types:
        try:
            return float(text)
        except ValueError:
            pass
    if str in types and not ({list, dict} & set(types) and text.strip()[:1] in ("[", "{")):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_data_pairs(items: list[str]) -> dict[str, Any]:
    """``--data KEY=VALUE`` options -> host data, each value typed by :func:`parse_cli_value`. The one
    parser of both front-ends: ``keystone-checks run --data`` and, re-read from the command line,
    ``pyinfra --data`` (whose own parser would make ``pool=123`` an int)."""
    data: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise KeystoneChecksError(f"--data {item}: expected KEY=VALUE")
        data[key] = parse_cli_value(key, value)
    return data


def data_options(argv: list[str]) -> list[str]:
    """The ``--data`` values of a command line (``--data K=V`` or ``--data=K=V``), in order."""
    found: list[str] = []
    for index, arg in enumerate(argv):
        if arg == "--data" and index + 1 < len(argv):
            found.append(argv[index + 1])
        elif arg.startswith("--data="):
            found.append(arg.removeprefix("--data="))
    return found

