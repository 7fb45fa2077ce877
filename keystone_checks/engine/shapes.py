"""The shape of every fact's value: one JSON Schema (draft 2020-12) per fact, keyed by fact name.

A check's ``expect`` is a JSON Schema over the values its gather names, and JSON Schema ignores what
it does not know: a keyword typo, a missing ``properties:`` level or a field the fact never returns
makes a condition that can never fail. So ``validate`` compares each ``expect`` with these shapes
(``expect_problems``), every fixture of a fact must match its shape (tests/test_fact_shapes.py), and
``keystone-checks docs`` writes them into docs/facts.md, the reference authors write ``expect`` from.

Adding a fact: add its shape here; the tests fail until its fixtures match it. Objects are closed
(``record``: every key listed, ``optional`` for keys a value may lack); ``mapping`` is an object keyed
by names the host decides (targets, units, users).
"""

from __future__ import annotations

from typing import Any

STRING: dict[str, Any] = {"type": "string"}
INTEGER: dict[str, Any] = {"type": "integer"}
NUMBER: dict[str, Any] = {"type": "number"}
BOOLEAN: dict[str, Any] = {"type": "boolean"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null (the value is unknown or absent on this host)."""
    kind = schema["type"]
    widened = {**schema, "type": [kind, "null"] if isinstance(kind, str) else [*kind, "null"]}
    if "enum" in schema:
        widened["enum"] = [*schema["enum"], None]
    return widened


def one_of(*values: str) -> dict[str, Any]:
    """A string from a fixed set (the fact's own vocabulary): an expect naming another can never match."""
    return {"type": "string", "enum": list(values)}


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def record(properties: dict[str, dict[str, Any]], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object with exactly these keys (all present unless listed in ``optional``)."""
    return {"type": "object", "properties": properties, "additionalProperties": False,
            "required": [k for k in properties if k not in optional]}


def mapping(values: dict[str, Any]) -> dict[str, Any]:
    """An object keyed by names the host decides (e.g. one entry per target), each value ``values``."""
    return {"type": "object", "additionalProperties": values}


# network facts: how a connection to a target ended (facts/network.py classify_connect)
_CONNECT = ("ok", "invalid", "timeout", "refused", "no-route", "unreachable", "unresolved", "failed")
# zpool health / state words (zpool list health, zpool status state)
POOL_HEALTH = one_of("ONLINE", "DEGRADED", "FAULTED", "OFFLINE", "REMOVED", "UNAVAIL", "SUSPENDED")

# one step of the initrd unlock chain (luks.UnlockJournal)
_UNLOCK_STEP = record({
    "messages": array(STRING),
    "result": nullable(STRING),
    "seen": BOOLEAN,
    "stopped": BOOLEAN,
    "unit": STRING,
    "unit_result": nullable(STRING)
})

# one key line of an authorized_keys file (ssh facts)
_SSH_KEY = record({
    "bits": INTEGER,
    "comment": STRING,
    "fingerprint": STRING,
    "line": INTEGER,
    "type": STRING
})

# one pool of `zpool list` (zfs.PoolList)
_POOL_ENTRY = record({
    "allocated": INTEGER,
    "altroot": nullable(STRING),
    "free": INTEGER,
    "health": POOL_HEALTH,
    "name": STRING,
    "size": INTEGER
})

# one vdev row of `zpool status` (zfs.PoolStatus)
_VDEV = record({
    "cksum": STRING,
    "depth": INTEGER,
    "name": STRING,
    "note": nullable(STRING),
    "read": STRING,
    "state": STRING,
    "write": STRING
})

# firewall.InputFirewall: the same verdict record for each address family
_FIREWALL_FAMILY = record({
    "allowed_only": array(STRING),
    "decided_by": STRING,
    "paths": array(record({
        "allowed_only": array(STRING),
        "backend": STRING,
        "chain": STRING,
        "decided_by": STRING,
        "family": STRING,
        "table": STRING,
        "verdict": STRING
    })),
    "verdict": STRING
})

SHAPES: dict[str, dict[str, Any]] = {
    "boot.EspContents": record({
        "boot_loaders": array(STRING),
        "broken_entries": array(record({
            "entry": STRING,
            "missing": array(STRING)
        })),
        "efi_files": INTEGER,
        "empty_ukis": array(STRING),
        "entries": INTEGER,
        "exists": BOOLEAN,
        "fstype": nullable(STRING),
        "mounted": BOOLEAN,
        "ukis": INTEGER
    }),
    "boot.LiveMedia": record({
        "booted_from_iso": BOOLEAN,
        "installer_variant": BOOLEAN,
        "iso_mounted": BOOLEAN,
        "live_root": BOOLEAN,
        "marker": BOOLEAN,
        "ro_store_mounted": BOOLEAN,
        "root_fstype": STRING,
        "variant_id": nullable(STRING)
    }),
    "boot.NextBoot": record({
        "entry": nullable(STRING),
        "esp": BOOLEAN,
        "free_bytes": nullable(INTEGER),
        "generation": INTEGER,
        "loader": nullable(STRING),
        "missing_files": array(STRING),
        "needed_bytes": INTEGER,
        "profile_target": STRING,
        "room_for_next": nullable(BOOLEAN)
    }),
    "controller.Platform": record({
        "arch": STRING,
        "darwin": BOOLEAN,
        "darwin_rebuild": nullable(STRING),
        "nixos_anywhere": nullable(STRING),
        "nixos_rebuild": nullable(STRING),
        "os": STRING,
        "route_interface": STRING,
        "wireless": BOOLEAN
    }),
    "controller.PublicKeyFile": record({
        "bits": nullable(INTEGER),
        "error": nullable(STRING),
        "exists": BOOLEAN,
        "fingerprint": nullable(STRING),
        "lines": INTEGER,
        "private_key": BOOLEAN,
        "type": nullable(STRING),
        "valid": BOOLEAN
    }),
    "disks.DiskMounts": record({
        "is_block": BOOLEAN,
        "mounts": array(record({
            "device": STRING,
            "mountpoint": STRING
        })),
        "resolved": nullable(STRING)
    }),
    "disks.DisksPresent": record({
        "absent": array(STRING),
        "count": INTEGER,
        "disks": array(record({
            "path": STRING,
            "present": BOOLEAN,
            "resolved": nullable(STRING)
        }))
    }),
    "disks.Signatures": record({
        "pttype": nullable(STRING),
        "resolved": STRING,
        "signatures": array(record({
            "device": STRING,
            "label": nullable(STRING),
            "offset": STRING,
            "type": STRING,
            "uuid": nullable(STRING)
        })),
        "types": array(STRING),
        "unreadable": array(STRING)
    }),
    "disks.SwapHolders": record({
        "blocking": array(STRING),
        "on_pool_disks": array(STRING),
        "pool_disks": array(STRING),
        "swaps": array(record({
            "chain": array(STRING),
            "device": STRING,
            "disks": array(STRING),
            "type": STRING,
            "zvols": array(STRING)
        }))
    }),
    "disks.SwapOnDisk": record({
        "on_disk": array(STRING),
        "resolved": STRING,
        "swaps": array(record({
            "device": STRING,
            "size": INTEGER,
            "type": STRING,
            "used": INTEGER
        }))
    }),
    "disks.TargetDisk": record({
        "disks": array(record({
            "model": nullable(STRING),
            "path": STRING,
            "size": INTEGER
        })),
        "exists": BOOLEAN,
        "in_use": array(STRING),
        "is_disk": BOOLEAN,
        "model": nullable(STRING),
        "partitions": array(STRING),
        "pttype": nullable(STRING),
        "resolved": nullable(STRING),
        "size": nullable(INTEGER)
    }),
    "files.PathInfo": record({
        "exists": BOOLEAN,
        "mode": nullable(STRING),
        "owner": nullable(STRING),
        "size": nullable(INTEGER),
        "type": nullable(STRING)
    }),
    "firewall.InputFirewall": record({
        "allowed_only": array(STRING),
        "backends": array(STRING),
        "blocked_in": array(record({
            "backend": STRING,
            "chain": STRING,
            "family": STRING,
            "table": STRING
        })),
        "ipv4": _FIREWALL_FAMILY,
        "ipv6": _FIREWALL_FAMILY,
        "nixos_firewall": nullable(STRING),
        "port": INTEGER,
        "port_allowed": BOOLEAN
    }),
    "firewall.NftRuleset": record({
        "allowed_only": array(STRING),
        "paths": array(record({
            "allowed_only": array(STRING),
            "chain": STRING,
            "decided_by": STRING,
            "family": STRING,
            "table": STRING,
            "verdict": STRING
        })),
        "port": INTEGER,
        "port_allowed": BOOLEAN
    }),
    "flake.Configuration": record({
        "configuration": nullable(STRING),
        "error": nullable(STRING),
        "error_class": nullable(STRING),
        "evaluates": BOOLEAN,
        "flake_found": BOOLEAN,
        "missing_option": nullable(STRING),
        "names": nullable(array(STRING)),
        "names_error": nullable(STRING),
        "suggestion": nullable(STRING),
        "system_name": nullable(STRING),
        "undefined_variable": nullable(STRING)
    }),
    "flake.CrossBuild": record({
        "binfmt": array(STRING),
        "builders": array(STRING),
        "can_build": nullable(BOOLEAN),
        "emulated": BOOLEAN,
        "error": nullable(STRING),
        "local_arch": STRING,
        "same_arch": nullable(BOOLEAN),
        "target_system": nullable(STRING)
    }),
    "flake.Options": record({
        "admin_key_users": array(STRING),
        "admin_keys": nullable(array(STRING)),
        "disko_device": nullable(STRING),
        "error": nullable(STRING),
        "evaluated": BOOLEAN,
        "hostname": nullable(STRING),
        "keystone_version": nullable(STRING),
        "modules": record({
            "disko": nullable(BOOLEAN),
            "keystone_disko": nullable(BOOLEAN),
            "keystone_os": nullable(BOOLEAN)
        }),
        "operator_key": nullable(STRING),
        "operator_key_authorized": nullable(BOOLEAN),
        "operator_key_users": array(STRING),
        "root_keys": nullable(array(STRING)),
        "storage": nullable(record({
            "devices": array(STRING),
            "enable": BOOLEAN,
            "mode": STRING,
            "os_enable": BOOLEAN,
            "type": STRING
        })),
        "storage_problems": array(STRING),
        "system": nullable(STRING),
        "users_with_keys": mapping(record({
            "keys": INTEGER,
            "normal": BOOLEAN,
            "wheel": BOOLEAN
        }))
    }),
    "flake.Parse": record({
        "error": nullable(STRING),
        "flake_found": BOOLEAN,
        "parses": BOOLEAN
    }),
    "hardware.Tpm2": record({
        "present": BOOLEAN,
        "rm_device": BOOLEAN,
        "tpm2": BOOLEAN,
        "version": nullable(INTEGER)
    }),
    "luks.CredstoreKey": record({
        "closed_again": nullable(BOOLEAN),
        "in_credstore": nullable(BOOLEAN),
        "key_file_present": nullable(BOOLEAN),
        "key_path": nullable(STRING),
        "key_verified": nullable(BOOLEAN),
        "keylocation": STRING,
        "open_error": nullable(STRING),
        "opened": nullable(BOOLEAN),
        "source": nullable(one_of("opened", "mapping")),
        "verify_error": nullable(STRING)
    }),
    "luks.LuksHeader": record({
        "exists": BOOLEAN,
        "is_luks": BOOLEAN,
        "keyslots": array(record({
            "id": INTEGER,
            "pbkdf": STRING,
            "type": STRING
        })),
        "token_types": array(STRING),
        "tokens": array(record({
            "id": INTEGER,
            "keyslots": array(INTEGER),
            "type": STRING
        })),
        "tpm2_enrolled": BOOLEAN,
        "uuid": nullable(STRING),
        "version": nullable(INTEGER)
    }),
    "luks.MappingStatus": record({
        "active": BOOLEAN,
        "device": nullable(STRING),
        "in_use": BOOLEAN,
        "mode": nullable(STRING),
        "mounted_at": array(STRING),
        "name": STRING,
        "type": nullable(STRING)
    }),
    "luks.UnlockJournal": record({
        "boot": INTEGER,
        "boot_found": BOOLEAN,
        "boot_id": nullable(STRING),
        "credstore_closed_before_switch_root": nullable(BOOLEAN),
        "failed_step": nullable(STRING),
        "failure": nullable(STRING),
        "keystone_chain": BOOLEAN,
        "steps": record({
            "credstore-mount": _UNLOCK_STEP,
            "credstore-open": _UNLOCK_STEP,
            "import": _UNLOCK_STEP,
            "load-key": _UNLOCK_STEP
        }),
        "systemd_initrd": BOOLEAN
    }),
    "network.Ping": mapping(record({
        "detail": STRING,
        "status": one_of(*_CONNECT, "no-reply")
    })),
    "network.Resolve": mapping(record({
        "addresses": array(STRING),
        "detail": STRING,
        "status": one_of("ok", "invalid", "unresolved")
    })),
    "network.SshBanner": mapping(record({
        "banner": nullable(STRING),
        "detail": STRING,
        "status": one_of(*_CONNECT, "not-ssh")
    })),
    "network.SshLogin": mapping(record({
        "detail": STRING,
        "status": one_of(*_CONNECT, "host-key-changed", "host-key-unknown", "key-rejected")
    })),
    "network.TcpPort": mapping(record({
        "detail": STRING,
        "port": INTEGER,
        "status": one_of(*_CONNECT)
    })),
    "nix.BootMenu": record({
        "generation_entries": INTEGER,
        "loader_conf": BOOLEAN,
        "menu_hidden": nullable(BOOLEAN),
        "timeout": nullable(INTEGER)
    }),
    "nix.Settings": record({
        "builders": STRING,
        "cores": INTEGER,
        "extra_platforms": array(STRING),
        "jobs_memory_bytes": INTEGER,
        "max_jobs": INTEGER,
        "max_jobs_fit_memory": BOOLEAN,
        "mem_total_bytes": INTEGER,
        "substituters": array(STRING),
        "system": STRING
    }),
    "nix.SystemGenerations": record({
        "count": INTEGER,
        "current": nullable(INTEGER),
        "generations": array(record({
            "current": BOOLEAN,
            "date": STRING,
            "number": INTEGER
        })),
        "previous": nullable(INTEGER),
        "profile_system": nullable(STRING),
        "running_newest": nullable(BOOLEAN),
        "running_system": nullable(STRING)
    }),
    "nix.Version": record({
        "installed": BOOLEAN,
        "path": nullable(STRING),
        "version": nullable(STRING)
    }),
    "ssh.AuthorizedKeys": record({
        "contains_expected": nullable(BOOLEAN),
        "exists": BOOLEAN,
        "expected_fingerprint": nullable(STRING),
        "expected_key_valid": nullable(BOOLEAN),
        "invalid_lines": array(INTEGER),
        "keys": array(_SSH_KEY)
    }),
    "ssh.SshdAuthorizedKeys": record({
        "authorized_keys_command": STRING,
        "authorized_keys_file": array(STRING),
        "contains_expected": nullable(BOOLEAN),
        "expected_fingerprint": nullable(STRING),
        "expected_key_valid": nullable(BOOLEAN),
        "files": array(record({
            "exists": BOOLEAN,
            "invalid_lines": array(INTEGER),
            "keys": array(_SSH_KEY),
            "path": STRING
        })),
        "found_in": array(STRING),
        "home": nullable(STRING),
        "invalid": array(STRING),
        "keys": array(_SSH_KEY),
        "login_permitted": BOOLEAN,
        "permit_root_login": STRING,
        "pubkey_authentication": STRING,
        "user": STRING,
        "user_exists": BOOLEAN
    }),
    "system.DiskFree": record({
        "avail": INTEGER,
        "fstype": STRING,
        "size": INTEGER,
        "source": STRING,
        "target": STRING,
        "used": INTEGER
    }),
    "system.Layout": record({
        "boot_loader": nullable(STRING),
        "detected": record({
            "boot_loader": nullable(STRING),
            "firewall": nullable(STRING),
            "installer": BOOLEAN,
            "storage": nullable(STRING)
        }),
        "firewall": nullable(STRING),
        "installer": BOOLEAN,
        "loader_entries": INTEGER,
        "os_id": STRING,
        "os_version": STRING,
        "pinned": array(STRING),
        "root_fstype": STRING,
        "root_source": STRING,
        "storage": nullable(STRING),
        "ukis": INTEGER,
        "variant_id": nullable(STRING)
    }),
    "system.LoadAverage": record({
        "cpus": INTEGER,
        "load1": NUMBER,
        "load15": NUMBER,
        "load1_per_cpu": NUMBER,
        "load5": NUMBER,
        "top": array(record({
            "command": STRING,
            "cpu": NUMBER,
            "pid": INTEGER
        }))
    }),
    "system.MountsUnder": array(record({
        "fstype": STRING,
        "source": STRING,
        "target": STRING
    })),
    "system.ProcessesUsing": record({
        "count": INTEGER,
        "path": STRING,
        "processes": array(record({
            "command": STRING,
            "pid": INTEGER,
            "uses": array(STRING)
        })),
        "unreadable": array(INTEGER)
    }),
    "system.RootMount": record({
        "fstype": STRING,
        "source": STRING
    }),
    "system.SwapActivity": record({
        "mem_available": INTEGER,
        "mem_available_pct": NUMBER,
        "mem_total": INTEGER,
        "memory_exhausted": BOOLEAN,
        "memory_full_avg10": nullable(NUMBER),
        "memory_some_avg10": nullable(NUMBER),
        "source": STRING,
        "swap_free": INTEGER,
        "swap_in_per_s": nullable(NUMBER),
        "swap_out_per_s": nullable(NUMBER),
        "swap_pages_per_s": nullable(NUMBER),
        "swap_total": INTEGER,
        "swap_used_pct": NUMBER
    }),
    "systemd.FailedUnits": array(record({
        "active": STRING,
        "description": STRING,
        "journal": array(STRING),
        "load": STRING,
        "sub": STRING,
        "unit": STRING
    })),
    "systemd.ServiceActive": record({
        "active": array(STRING),
        "any_active": BOOLEAN,
        "states": mapping(STRING)
    }),
    "systemd.SystemState": record({
        "state": STRING
    }),
    "zfs.ArcSizing": record({
        "arc_max_param": nullable(INTEGER),
        "c": INTEGER,
        "c_max": INTEGER,
        "c_max_within_ram": BOOLEAN,
        "c_min": INTEGER,
        "mem_total": INTEGER,
        "size": INTEGER
    }),
    "zfs.DatasetProperties": record({
        "datasets": array(record({
            "canmount": STRING,
            "encryption": STRING,
            "encryptionroot": nullable(STRING),
            "keyformat": STRING,
            "keylocation": STRING,
            "keystatus": nullable(STRING),
            "mounted": STRING,
            "mountpoint": STRING,
            "name": STRING
        })),
        "encryption": nullable(STRING),
        "exists": BOOLEAN,
        "keyformat": nullable(STRING),
        "keylocation": nullable(STRING),
        "keystatus": nullable(STRING),
        "locked": array(STRING),
        "unmounted": array(STRING)
    }),
    "zfs.HostIds": record({
        "matches": BOOLEAN,
        "next_boot": nullable(STRING),
        "pool": STRING,
        "pool_state": INTEGER,
        "running": STRING,
        "vdev": STRING
    }),
    "zfs.ImportablePools": record({
        "names": array(STRING),
        "needing_force": array(STRING),
        "pools": array(record({
            "action": STRING,
            "id": STRING,
            "name": STRING,
            "needs_force": BOOLEAN,
            "state": STRING,
            "status": nullable(STRING),
            "vdevs": array(record({
                "cksum": nullable(STRING),
                "depth": INTEGER,
                "name": STRING,
                "note": nullable(STRING),
                "read": nullable(STRING),
                "state": STRING,
                "write": nullable(STRING)
            }))
        }))
    }),
    "zfs.PoolLabels": record({
        "active": array(STRING),
        "exported": array(STRING),
        "imported": array(STRING),
        "labels": array(record({
            "device": STRING,
            "hostid": nullable(STRING),
            "hostname": nullable(STRING),
            "pool": STRING,
            "state": nullable(INTEGER)
        }))
    }),
    "zfs.ImportedPoolsOnDisk": record({
        "pools": array(STRING),
        "resolved": STRING,
        "vdevs": array(STRING)
    }),
    "zfs.KeySource": record({
        "credstore_mount": STRING,
        "dataset": nullable(STRING),
        "encryption": STRING,
        "encryption_root": nullable(STRING),
        "exists": BOOLEAN,
        "in_credstore": BOOLEAN,
        "keyformat": nullable(STRING),
        "keylocation": nullable(STRING),
        "under_tmp": BOOLEAN
    }, optional=('dataset', 'encryption')),
    "zfs.ModuleAvailable": record({
        "available": BOOLEAN,
        "kernel": STRING,
        "version": nullable(STRING)
    }),
    "zfs.ModuleStatus": record({
        "available": nullable(BOOLEAN),
        "available_version": nullable(STRING),
        "kernel": STRING,
        "loaded": BOOLEAN,
        "version": nullable(STRING)
    }),
    "zfs.PoolList": record({
        "imported": BOOLEAN,
        "pool": nullable(_POOL_ENTRY),
        "pools": array(_POOL_ENTRY)
    }),
    "zfs.PoolStatus": record({
        "error_files": array(STRING),
        "errors": nullable(STRING),
        "found": BOOLEAN,
        "pool": nullable(STRING),
        "scan": nullable(record({
            "percent": nullable(NUMBER),
            "state": STRING,
            "text": nullable(STRING)
        })),
        "scrub_running": BOOLEAN,
        "state": nullable(POOL_HEALTH),
        "status": nullable(STRING),
        "unhealthy_vdevs": array(_VDEV),
        "vdevs": array(_VDEV)
    }),
    "zfs.SnapshotHolds": record({
        "holds": array(record({
            "since": STRING,
            "snapshot": STRING,
            "tag": STRING
        })),
        "imported": BOOLEAN,
        "snapshots": INTEGER
    }),
}
# zfs.ImportedPools is zfs.PoolList for operations (exit 1 with the module unloaded = none imported): same value
SHAPES["zfs.ImportedPools"] = SHAPES["zfs.PoolList"]


# -- expect against shapes ------------------------------------------------------------------------

# Every keyword of JSON Schema draft 2020-12 (core, applicator, validation, meta-data, format,
# content). Anything else in a schema is ignored by validators, so in ``expect`` it is a mistake.
KEYWORDS = frozenset({
    "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary", "$comment", "$defs",
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "prefixItems", "items",
    "contains", "properties", "patternProperties", "additionalProperties", "propertyNames",
    "unevaluatedItems", "unevaluatedProperties", "type", "enum", "const", "multipleOf", "maximum",
    "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems",
    "minItems", "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties", "required",
    "dependentRequired", "title", "description", "default", "deprecated", "readOnly", "writeOnly",
    "examples", "format", "contentEncoding", "contentMediaType", "contentSchema",
})

# Keywords that only constrain one JSON type: on a value of another type they are silently ignored.
_ONLY_FOR = {
    **dict.fromkeys(("multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"), "number"),
    **dict.fromkeys(("maxLength", "minLength", "pattern", "format"), "string"),
    **dict.fromkeys(("prefixItems", "items", "contains", "maxItems", "minItems", "uniqueItems",
                     "maxContains", "minContains", "unevaluatedItems"), "array"),
    **dict.fromkeys(("properties", "patternProperties", "additionalProperties", "propertyNames", "required",
                     "maxProperties", "minProperties", "dependentRequired", "dependentSchemas",
                     "unevaluatedProperties"), "object"),
}
GATHERED = "this check's gather"  # what the top level of an expect judges: {gather name: value}
_SUBSCHEMA = ("not", "if", "then", "else")
_SUBSCHEMAS = ("allOf", "anyOf", "oneOf")


def types_of(shape: dict[str, Any] | None) -> set[str]:
    """The JSON types a shape allows (``integer`` counted as a ``number`` too); empty = anything."""
    if not shape or "type" not in shape:
        return set()
    kinds = {shape["type"]} if isinstance(shape["type"], str) else set(shape["type"])
    return kinds | ({"number"} if "integer" in kinds else set())


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _fits(value: Any, allowed: set[str]) -> bool:
    kind = _json_type(value)
    return not allowed or kind in allowed or (kind == "integer" and "number" in allowed) or (
        kind == "number" and "integer" in allowed and float(value).is_integer())


def _field_shape(shape: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The shape of field ``name`` of an object shape; None when the object has no such field."""
    if name in shape.get("properties", {}):
        return shape["properties"][name]
    extra = shape.get("additionalProperties", True)
    if extra is False:
        return None
    return extra if isinstance(extra, dict) else {}


def _described(shape: dict[str, Any]) -> str:
    kinds = sorted(types_of(shape) - ({"number"} if "integer" in types_of(shape) else set()))
    return " or ".join(kinds) or "any value"


def expect_problems(schema: Any, shape: dict[str, Any] | None, path: tuple, what: str) -> list[tuple[tuple, str]]:
    """Mistakes in ``schema`` (part of an ``expect``) judged against ``shape``, the value it is applied
    to: unknown keywords, fields the value does not have, keywords and constants of another type.

    Returns (path inside the check file, message) pairs; ``what`` names the value (e.g. ``esp``,
    ``fact system.DiskFree``) in messages. A shape of None or {} means nothing is known: only the
    keywords are checked.
    """
    problems: list[tuple[tuple, str]] = []
    if isinstance(schema, bool) or not isinstance(schema, dict):
        return problems  # a non-schema is reported by the JSON Schema meta-validation
    shape = shape or {}
    allowed = types_of(shape)
    where = ".".join(map(str, path))

    for key in schema:
        if key not in KEYWORDS:
            hint = ""
            if shape.get("properties") and key in shape["properties"]:
                hint = f"; '{key}' is a field of {what}: put it under 'properties:'"
            elif "properties" in shape:
                hint = f" (fields of {what}: {', '.join(sorted(shape['properties']))})"
            problems.append((path + (key,), (f"{where}: '{key}' is not a JSON Schema keyword, so it would be "
                                            f"ignored and never fail{hint}")))

    declared = schema.get("type")
    if allowed and declared is not None:
        wanted = {declared} if isinstance(declared, str) else set(declared)
        wanted |= {"number"} if "integer" in wanted else set()
        if not wanted & allowed:
            problems.append((path + ("type",), f"{where}: type {declared} can never match: {what} is {_described(shape)}"))
    for key, kind in _ONLY_FOR.items():
        if key in schema and allowed and kind not in allowed:
            problems.append((path + (key,), (f"{where}: '{key}' applies to {kind} values but {what} is "
                                            f"{_described(shape)}, so it would never fail")))
    vocabulary = shape.get("enum")
    if "const" in schema and allowed and not _fits(schema["const"], allowed):
        problems.append((path + ("const",), f"{where}: const {schema['const']!r} can never match: {what} is {_described(shape)}"))
    elif "const" in schema and vocabulary and schema["const"] not in vocabulary:
        problems.append((path + ("const",), (f"{where}: const {schema['const']!r} can never match: {what} is one of "
                                            f"{', '.join(map(repr, vocabulary))}")))
    if isinstance(schema.get("enum"), list) and allowed:
        for i, value in enumerate(schema["enum"]):
            if not _fits(value, allowed) or (vocabulary and value not in vocabulary):
                problems.append((path + ("enum", i), f"{where}: enum value {value!r} can never match: {what} is "
                                                     + (f"one of {', '.join(map(repr, vocabulary))}" if vocabulary and _fits(value, allowed)
                                                        else _described(shape))))

    object_shape = shape if (not allowed or "object" in allowed) else None
    if isinstance(schema.get("properties"), dict):
        for name, sub in schema["properties"].items():
            field = _field_shape(object_shape, name) if object_shape else {}
            if field is None:
                known = ', '.join(sorted(shape.get('properties', {}))) or 'none'
                problems.append((path + ("properties", name), f"{where}.properties: '{name}' is not a name under this check's "
                                                              f"gather (names: {known})" if what == GATHERED else
                                 f"{where}.properties: {what} has no field '{name}' (fields: {known})"))
                continue
            problems += expect_problems(sub, field, path + ("properties", name), name if what == GATHERED else f"{what}.{name}")
    if isinstance(schema.get("required"), list) and object_shape and object_shape.get("additionalProperties") is False:
        for i, name in enumerate(schema["required"]):
            if name not in object_shape.get("properties", {}):
                problems.append((path + ("required", i), f"{where}.required: {what} has no field '{name}'"))
    if isinstance(schema.get("additionalProperties"), dict):
        extra = shape.get("additionalProperties")
        problems += expect_problems(schema["additionalProperties"], extra if isinstance(extra, dict) else {},
                                    path + ("additionalProperties",), f"{what}.*")

    item_shape = shape.get("items", {}) if (not allowed or "array" in allowed) else {}
    for key in ("items", "contains"):
        problems += expect_problems(schema.get(key), item_shape, path + (key,), f"{what}[]")
    for key in _SUBSCHEMA:
        problems += expect_problems(schema.get(key), shape, path + (key,), what)
    for key in _SUBSCHEMAS:
        if isinstance(schema.get(key), list):
            for i, sub in enumerate(schema[key]):
                problems += expect_problems(sub, shape, path + (key, i), what)
    return problems


def gathered_shape(gather: dict[str, str]) -> dict[str, Any]:
    """The shape of the data a check's ``expect`` judges: {gather name: that fact's value}."""
    return record({name: SHAPES.get(fact, {}) for name, fact in gather.items()})
