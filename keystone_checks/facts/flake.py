"""The operator's flake, evaluated on the controller with the guides' own commands:
``nix-instantiate --parse flake.nix``, ``nix eval .#nixosConfigurations.NAME.config.system.name``,
``nix eval --json .#nixosConfigurations --apply builtins.attrNames``.

Evaluation errors are classified by cause (Configuration Validation Fails): missing configuration
(typo in the name), no nixosConfigurations output, infinite recursion, undefined variable,
missing module import (disko / keystone options that do not exist), option used but not defined.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import UnparseableOutput
from .base import KeystoneFact, ProbeOutput, shell_quote
from .nix import NIX, sections, shell_path

ERROR_LINES = 6  # error text kept for the report


def _installable(configuration: str, attr: str = "") -> str:
    name = str(configuration).replace("\\", "\\\\").replace('"', '\\"')
    return shell_quote(f'.#nixosConfigurations."{name}"' + (f".{attr}" if attr else ""))


def _enter(flake) -> str:
    """cd into the flake; say why not when it cannot."""
    d = shell_path(flake)
    return (f"cd {d} 2>/dev/null || {{ echo 'status no-flake-dir'; exit 0; }}; "
            "[ -f flake.nix ] || { echo 'status no-flake-nix'; exit 0; }; ")


def _captured(label: str, command: str) -> str:
    """Run ``command``; print ``label-rc N``, then its stdout lines as ``label| ...``, then its stderr
    lines as ``label! ...``.

    The streams are kept apart because nix writes to stderr while it succeeds: two evaluations of
    one flake at once (the batch runs its probes concurrently) make one print ``error (ignored):
    error: SQLite database '.../eval-cache-v2/....sqlite' is busy`` (or ``warning: ... is busy`` for
    the store's database), and a nix.conf setting this nix does not know ``warning: unknown
    setting``; mixed into the JSON on stdout, either made a correct answer unparseable. Each stream
    is held in a variable (stderr reaches its own through fd 3, the printed lines leave through
    fd 4; the command itself gets neither descriptor), so the output needs no temporary file.
    """
    return ("{ kc_e=$( { kc_o=$( { " + command + "; } 2>&3 3>&- 4>&- ); kc_r=$?; "
            f"echo \"{label}-rc $kc_r\" >&4; "
            f"[ -z \"$kc_o\" ] || printf '%s\\n' \"$kc_o\" | head -n 200 | sed 's/^/{label}| /' >&4; }} 3>&1 ); "
            f"[ -z \"$kc_e\" ] || printf '%s\\n' \"$kc_e\" | head -n 200 | sed 's/^/{label}! /'; }} 4>&1; ")


def _read_captured(output: list[str], label: str) -> tuple[int | None, list[str], list[str]]:
    """Exit code, stdout lines and stderr lines of a :func:`_captured` command (None: not run)."""
    rc = None
    out: list[str] = []
    err: list[str] = []
    for line in output:
        if line.startswith(f"{label}-rc "):
            try:
                rc = int(line.split()[1])
            except (ValueError, IndexError):
                raise UnparseableOutput(f"bad exit code line {line!r}") from None
        elif line.startswith(f"{label}| ") or line == f"{label}|":
            out.append(line[len(label) + 2:])
        elif line.startswith(f"{label}! ") or line == f"{label}!":
            err.append(line[len(label) + 2:])
    return rc, out, err


def _status(output: list[str]) -> str | None:
    for line in output:
        if line.startswith("status "):
            return line[len("status "):].strip()
    return None


# Lines nix prints without failing (a warning, an error it ignored such as a busy eval cache): never
# the cause of a failed evaluation, so not part of its error text.
_NIX_NOT_FATAL = ("warning: ", "error (ignored): ")


def _error_text(lines: list[str]) -> str:
    useful = [line.rstrip() for line in lines if line.strip() and not line.startswith(_NIX_NOT_FATAL)]
    start = next((i for i, line in enumerate(useful) if line.lstrip().startswith("error")), 0)
    return "\n".join(useful[start:start + ERROR_LINES])


_MISSING_MODULE = re.compile(r"option [`'‘]?(keystone\.disko|keystone\.os|disko)[.\w-]*['’]? does not exist"
                             r"|attribute '(disko|keystone)' missing|undefined variable 'disko'")


def classify(text: str, configuration: str, names: list[str] | None) -> dict:
    """Cause of a failed ``nix eval`` (Configuration Validation Fails), from its error text."""
    found = {"error_class": "other", "undefined_variable": None, "missing_option": None, "suggestion": None}
    suggestion = re.search(r"Did you mean (.+?)\?", text)
    if suggestion:
        found["suggestion"] = suggestion.group(1).strip()
    if "infinite recursion encountered" in text:
        found["error_class"] = "infinite-recursion"
    elif (names is not None and configuration not in names) or re.search(
            r"does not provide attribute '[^']*nixosConfigurations\.\"?" + re.escape(configuration), text) \
            or f"attribute 'nixosConfigurations.{configuration}' missing" in text:
        found["error_class"] = "missing-configuration"
    elif _MISSING_MODULE.search(text):
        found["error_class"] = "missing-module"
    elif m := re.search(r"undefined variable '([^']+)'", text):
        found["error_class"], found["undefined_variable"] = "undefined-variable", m.group(1)
    elif m := re.search(r"option [`'‘]([^'’`]+)['’] is used but not defined", text):
        found["error_class"], found["missing_option"] = "missing-option", m.group(1)
    elif "syntax error" in text:
        found["error_class"] = "syntax-error"
    return found


class Parse(KeystoneFact):
    """Does ``flake.nix`` parse? (``nix-instantiate --parse flake.nix`` in the flake directory).

    Guide (Configuration Validation Fails / ISO Build Fails): "Check for syntax errors".

    Arguments:
        flake: flake directory (host data ``flake``)

    Example: ``{"flake_found": true, "parses": false, "error": "error: syntax error, unexpected ';' ... at /x/flake.nix:3:9"}``
    """

    requires = "nix-instantiate"
    writes_files = True  # nix evaluates: store database, eval cache

    def command(self, flake):
        return _enter(flake) + _captured("parse", "nix-instantiate --parse flake.nix >/dev/null")

    def process(self, output):
        status = _status(output)
        if status in ("no-flake-dir", "no-flake-nix"):
            return {"flake_found": False, "parses": False, "error": f"{status}: no flake.nix in the flake directory"}
        rc, out, err = _read_captured(output, "parse")
        if rc is None:
            raise UnparseableOutput(f"nix-instantiate --parse: output cut short {output[:3]!r}")
        return {"flake_found": True, "parses": rc == 0, "error": None if rc == 0 else _error_text(err + out)}


class Configuration(KeystoneFact):
    """The named nixosConfiguration: which names the flake defines, and whether NAME evaluates.

    Runs ``nix eval --json .#nixosConfigurations --apply builtins.attrNames`` and
    ``nix eval --raw .#nixosConfigurations.NAME.config.system.name`` (the guide's diagnostic) and
    classifies a failure: ``missing-configuration`` (typo in the name; ``names`` lists what exists),
    ``infinite-recursion``, ``undefined-variable``, ``missing-module`` (disko / keystone.disko
    options do not exist: module not imported), ``missing-option``, ``syntax-error``, ``other``.

    Arguments:
        flake: flake directory (host data ``flake``)
        configuration: name under nixosConfigurations (host data ``nixos_configuration``)

    Example: ``{"flake_found": true, "configuration": "test-server", "names": ["test-server"],
    "evaluates": true, "system_name": "test-server", "error": null, "error_class": null, ...}``
    """

    requires = "nix"
    writes_files = True  # nix evaluates: store database, eval cache
    timeout = 120

    def command(self, flake, configuration):
        if not str(configuration):
            return "echo 'status no-configuration-name'"
        return (_enter(flake)
                + _captured("names", f"{NIX} eval --json .#nixosConfigurations --apply builtins.attrNames")
                + _captured("eval", f"{NIX} eval --raw {_installable(configuration, 'config.system.name')}")
                + f"echo {shell_quote('configuration ' + str(configuration).replace(chr(10), ' '))}")

    def process(self, output):
        status = _status(output)
        base = {"flake_found": True, "configuration": None, "names": None, "names_error": None, "evaluates": False,
                "system_name": None, "error": None, "error_class": None, "undefined_variable": None,
                "missing_option": None, "suggestion": None}
        if status == "no-configuration-name":
            return {**base, "error_class": "no-configuration-name",
                    "error": "host data 'nixos_configuration' is empty: name the configuration to deploy"}
        if status in ("no-flake-dir", "no-flake-nix"):
            return {**base, "flake_found": False, "error_class": "no-flake", "error": f"{status}: no flake.nix in the flake directory"}
        names_rc, names_lines, names_err = _read_captured(output, "names")
        eval_rc, eval_lines, eval_err = _read_captured(output, "eval")
        configuration = next((line[len("configuration "):] for line in output if line.startswith("configuration ")), None)
        if names_rc is None or eval_rc is None or configuration is None:
            raise UnparseableOutput(f"nix eval: output cut short {output[:3]!r}")
        names = None
        if names_rc == 0:
            try:
                names = json.loads("\n".join(names_lines))
            except json.JSONDecodeError:
                raise UnparseableOutput(f"nix eval --json printed invalid JSON: {names_lines[:2]!r}") from None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise UnparseableOutput(f"nix eval attrNames: expected a list of names, got {names!r}")
        result = {**base, "configuration": configuration, "names": names,
                  "names_error": None if names_rc == 0 else _error_text(names_err + names_lines)}
        if eval_rc == 0:
            return {**result, "evaluates": True, "system_name": "\n".join(eval_lines).strip()}
        text = "\n".join(eval_err + eval_lines)
        found = classify(text, configuration, names)
        if names is None and re.search(r"does not provide attribute|attribute 'nixosConfigurations' missing", result["names_error"]):
            found["error_class"] = "no-nixos-configurations"
        return {**result, "error": _error_text(eval_err + eval_lines), **found}


_OPTIONS_APPLY = """c: let
  t = v: let r = builtins.tryEval (builtins.deepSeq v v); in if r.success then r.value else null;
  os = c.keystone.os or null;
  all = c.users.users or { };
  withKeys = n: let u = all.${n}; keys = t (u.openssh.authorizedKeys.keys or [ ]); in
    if keys == null || keys == [ ] then [ ] else [ {
      name = n;
      value = { inherit keys; wheel = t (builtins.elem "wheel" (u.extraGroups or [ ])); normal = t (u.isNormalUser or false); };
    } ];
in {
  hostname = t (c.networking.hostName or null);
  disko_device = t (c.keystone.disko.device or null);
  storage = t (if os == null then null else {
    os_enable = os.enable or null;
    enable = os.storage.enable or null;
    type = os.storage.type or null;
    devices = os.storage.devices or null;
    mode = os.storage.mode or null;
  });
  root_keys = t (c.users.users.root.openssh.authorizedKeys.keys or null);
  users = t (builtins.listToAttrs (builtins.concatMap withKeys (builtins.attrNames all)));
  system = t (c.nixpkgs.hostPlatform.system or c.nixpkgs.system or null);
  modules = {
    disko = t (c ? disko);
    keystone_disko = t (c ? keystone && c.keystone ? disko);
    keystone_os = t (c ? keystone && c.keystone ? os);
  };
}"""

# keystone.os.storage assertions, ncrmro/keystone modules/os/default.nix@v0.2.0 (still there in v0.12.0).
_MIN_DEVICES = {"single": 1, "mirror": 2, "stripe": 2, "raidz1": 3, "raidz2": 4, "raidz3": 5}


def keystone_version(modules: dict) -> str | None:
    """Which Keystone the configuration uses: ``v0.2+`` (``keystone.os``, flake output
    ``nixosModules.operating-system``), ``v0.1`` (``keystone.disko``, ``./modules/disko-single-disk-root``)
    or None (neither module imported)."""
    if modules.get("keystone_os") is True:
        return "v0.2+"
    if modules.get("keystone_disko") is True:
        return "v0.1"
    return None


def storage_problems(storage) -> list[str]:
    """What keystone.os.storage (v0.2+) gets wrong, by the module's own assertions (which only fire
    when the system is built, after the disk may already be formatted)."""
    if not isinstance(storage, dict):
        return ["keystone.os.storage could not be read"]
    problems = []
    if storage.get("os_enable") is not True:
        problems.append("keystone.os.enable is not true: the Keystone OS module configures nothing")
    if storage.get("enable") is False:
        problems.append("keystone.os.storage.enable = false: disko lays out no disk")
        return problems
    listed = storage.get("devices")
    devices: list[Any] = listed if isinstance(listed, list) else []
    mode, kind = str(storage.get("mode")), storage.get("type")
    if not devices:
        problems.append("keystone.os.storage.devices must contain at least one disk device")
    bad = [d for d in devices if not (isinstance(d, str) and d.startswith("/dev/"))]
    if bad:
        problems.append(f"keystone.os.storage.devices: not a /dev/... path: {bad[:3]}")
    if kind == "ext4" and mode != "single":
        problems.append("ext4 only supports single-disk mode")
    elif kind == "zfs" and devices and len(devices) < _MIN_DEVICES.get(mode, 1):
        problems.append(f"mode {mode} needs at least {_MIN_DEVICES[mode]} devices, {len(devices)} given")
    return problems


_KEY_TYPES = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-[\w@.-]+)$")


def key_id(line: str) -> str | None:
    """``type base64`` of an OpenSSH public key line (comment dropped), None if it is not one."""
    parts = str(line).split()
    for i, part in enumerate(parts[:-1]):
        if _KEY_TYPES.match(part) and re.fullmatch(r"[A-Za-z0-9+/]+={0,3}", parts[i + 1]):
            return f"{part} {parts[i + 1]}"
    return None


class Options(KeystoneFact):
    """The options a Keystone deployment needs, read from the evaluated configuration.

    One ``nix eval --json .#nixosConfigurations.NAME.config --apply ...`` reading
    ``networking.hostName``, the Keystone storage options of either version (v0.1
    ``keystone.disko.device``; v0.2+ ``keystone.os.{enable,storage.{enable,type,devices,mode}}``),
    ``users.users.*.openssh.authorizedKeys.keys`` (with ``wheel`` / ``isNormalUser``),
    ``nixpkgs.hostPlatform.system`` and which modules are imported (each via ``builtins.tryEval``:
    an option that throws reads as null). ``keystone_version`` says which Keystone the configuration
    uses (``keystone.os`` present: v0.2+, ``keystone.disko``: v0.1). ``admin_keys`` are the keys an
    operator can administer the host with: root's (v0.1), root's or a normal wheel user's (v0.2+).
    The operator's public key file (host data ``ssh_public_key_file``; a public key, never the
    private one) is compared with them: ``operator_key_authorized``, ``operator_key_users``.

    Arguments:
        flake: flake directory
        configuration: nixosConfigurations name
        public_key_file: the operator's public key file

    Example: ``{"evaluated": true, "keystone_version": "v0.2+", "hostname": "server",
    "storage": {"os_enable": true, "enable": true, "type": "zfs", "devices": ["/dev/vda"], "mode": "single"},
    "storage_problems": [], "root_keys": [], "admin_key_users": ["alice"], "admin_keys": ["ssh-ed25519 AAAA... op@laptop"],
    "modules": {"disko": true, "keystone_disko": false, "keystone_os": true}, "operator_key_authorized": true,
    "operator_key_users": ["alice"], ...}``
    """

    requires = "nix"
    writes_files = True  # nix evaluates: store database, eval cache
    timeout = 120

    def command(self, flake, configuration, public_key_file):
        key = shell_path(public_key_file)
        return (f"if [ -f {key} ]; then head -n 1 {key} | cut -c1-2000 | sed 's/^/key| /'; else echo 'key-missing'; fi; "
                + _enter(flake)
                + _captured("options", f"{NIX} eval --json {_installable(configuration, 'config')} --apply {shell_quote(_OPTIONS_APPLY)}"))

    def process(self, output):
        status = _status(output)
        key_line = next((line[5:] for line in output if line.startswith("key| ")), None)
        operator_key = key_id(key_line) if key_line is not None else None
        empty = {"evaluated": False, "error": None, "keystone_version": None, "hostname": None, "disko_device": None,
                 "storage": None, "storage_problems": [], "root_keys": None, "users_with_keys": {},
                 "admin_key_users": [], "admin_keys": None, "system": None,
                 "modules": {"disko": None, "keystone_disko": None, "keystone_os": None},
                 "operator_key": operator_key, "operator_key_authorized": None, "operator_key_users": []}
        if status in ("no-flake-dir", "no-flake-nix"):
            return {**empty, "error": f"{status}: no flake.nix in the flake directory"}
        rc, lines, err = _read_captured(output, "options")
        if rc is None:
            raise UnparseableOutput(f"nix eval: output cut short {output[:3]!r}")
        if rc != 0:
            return {**empty, "error": _error_text(err + lines)}
        try:
            data = json.loads("\n".join(lines))
        except json.JSONDecodeError:
            raise UnparseableOutput(f"nix eval --json printed invalid JSON: {lines[:2]!r}") from None
        if not isinstance(data, dict):
            raise UnparseableOutput(f"nix eval --json: expected an object, got {data!r}")
        keys = data.get("root_keys")
        if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
            raise UnparseableOutput(f"root authorized keys: expected a list of strings, got {keys!r}")
        users = data.get("users") if isinstance(data.get("users"), dict) else {}
        for name, user in users.items():
            if not (isinstance(user, dict) and isinstance(user.get("keys"), list)
                    and all(isinstance(k, str) for k in user["keys"])):
                raise UnparseableOutput(f"users.users.{name}: expected {{keys: [strings], ...}}, got {user!r}"[:200])
        modules = data.get("modules") if isinstance(data.get("modules"), dict) else {}
        modules = {k: modules.get(k) is True for k in ("disko", "keystone_disko", "keystone_os")}
        version = keystone_version(modules)
        # Who may hold the admin's key: root (v0.1, the guides); v0.2+ also normal users in wheel
        # (modules/os/users.nix puts keystone.os.users.<u>.authorizedKeys there; root login is prohibit-password).
        holders = {"root": keys or []} if keys else {}
        if version == "v0.2+":
            holders.update({n: u["keys"] for n, u in sorted(users.items())
                            if n != "root" and u.get("wheel") is True and u.get("normal") is True})
        admin_keys = [k for ks in holders.values() for k in ks]
        authorized, key_users = None, []
        if operator_key is not None:
            key_users = [n for n, ks in holders.items() if operator_key in {key_id(k) for k in ks}]
            authorized = bool(key_users)
        storage = data.get("storage") if version == "v0.2+" else None
        def text(value):
            return value if isinstance(value, str) else None
        return {
            "evaluated": True,
            "error": None,
            "keystone_version": version,
            "hostname": text(data.get("hostname")),
            "disko_device": text(data.get("disko_device")),
            "storage": storage,
            "storage_problems": storage_problems(storage) if version == "v0.2+" else [],
            "root_keys": keys,
            "users_with_keys": {n: {"keys": len(u["keys"]), "wheel": u.get("wheel"), "normal": u.get("normal")}
                                for n, u in sorted(users.items())},
            "admin_key_users": list(holders),
            "admin_keys": admin_keys,
            "system": text(data.get("system")),
            "modules": modules,
            "operator_key": operator_key,
            "operator_key_authorized": authorized,
            "operator_key_users": key_users,
        }


_ARCH_ALIASES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64",
                 "armv7l": "armv7l", "i686": "i686", "riscv64": "riscv64"}


class CrossBuild(KeystoneFact):
    """Can this machine build the configuration's architecture?

    The target's system from ``nixpkgs.hostPlatform.system`` (``nix eval``), this machine's
    ``uname -m``, binfmt_misc emulators (``/proc/sys/fs/binfmt_misc``), Nix ``extra-platforms`` and
    remote ``builders`` (including ``/etc/nix/machines``). Guide (Cross-architecture builds):
    ``boot.binfmt.emulatedSystems = [ "aarch64-linux" ];`` or ``--builders "ssh://aarch64-builder"``.

    Arguments:
        flake: flake directory
        configuration: nixosConfigurations name

    Example: ``{"target_system": "aarch64-linux", "local_arch": "x86_64", "same_arch": false,
    "binfmt": ["aarch64-linux"], "emulated": true, "builders": [], "can_build": true}``
    """

    requires = "nix"
    writes_files = True  # nix evaluates: store database, eval cache
    timeout = 120

    def command(self, flake, configuration):
        apply = "c: c.nixpkgs.hostPlatform.system or c.nixpkgs.system or null"
        return ("echo \"arch $(uname -m)\"; echo '--binfmt'; "
                "for f in /proc/sys/fs/binfmt_misc/*; do [ -f \"$f\" ] || continue; n=${f##*/}; "
                "case $n in register|status) continue;; esac; grep -q '^enabled' \"$f\" && echo \"$n\"; done; "
                "echo '--machines'; grep -v '^[[:space:]]*#' /etc/nix/machines 2>/dev/null; "
                f"echo '--builders'; {NIX} show-config 2>/dev/null | sed -n -e 's/^builders = /builders /p' "
                "-e 's/^extra-platforms = /extra-platforms /p'; "
                "echo '--eval'; " + _enter(flake)
                + _captured("system", f"{NIX} eval --json {_installable(configuration, 'config')} --apply {shell_quote(apply)}"))

    def process(self, output):
        arch_line = next((line for line in output if line.startswith("arch ")), None)
        if arch_line is None:
            raise UnparseableOutput(f"uname -m: no architecture in {output[:2]!r}")
        local_arch = _ARCH_ALIASES.get(arch_line[5:].strip(), arch_line[5:].strip())
        parts = sections(output, "cross build")
        binfmt = [line.strip() for line in parts.get("binfmt", []) if line.strip()]
        machines = [line.strip() for line in parts.get("machines", []) if line.strip()]
        builder_lines = [line.strip() for line in parts.get("builders", []) if line.strip()]
        builders = list(machines)
        extra_platforms: list[str] = []
        for line in builder_lines:
            key, _, value = line.partition(" ")
            if key == "builders":
                builders += [b.strip() for b in value.split(";") if b.strip() and not b.strip().startswith("@")]
            elif key == "extra-platforms":
                extra_platforms += value.split()
        status = _status(output)
        rc, lines, err = _read_captured(output, "system")
        target = None
        error = None
        if status in ("no-flake-dir", "no-flake-nix"):
            error = f"{status}: no flake.nix in the flake directory"
        elif rc is None:
            raise UnparseableOutput(f"nix eval: output cut short {output[-3:]!r}")
        elif rc != 0:
            error = _error_text(err + lines)
        else:
            try:
                target = json.loads("\n".join(lines))
            except json.JSONDecodeError:
                raise UnparseableOutput(f"nix eval --json printed invalid JSON: {lines[:2]!r}") from None
            if target is not None and not isinstance(target, str):
                raise UnparseableOutput(f"nixpkgs.hostPlatform.system: expected a string, got {target!r}")
        target_arch = target.split("-")[0] if target else None
        same = None if target is None else _ARCH_ALIASES.get(target_arch, target_arch) == local_arch
        emulated = bool(target_arch) and (
            any(target_arch in name for name in binfmt) or target in extra_platforms)
        if target is None:
            can_build = None if error else True  # no platform set: nixpkgs builds for this machine
        else:
            can_build = bool(same or emulated or builders)
        return {"target_system": target, "local_arch": local_arch, "same_arch": same, "binfmt": binfmt,
                "emulated": emulated, "builders": builders, "can_build": can_build, "error": error}

    def parse(self, result: ProbeOutput):
        self.raise_for_exit(result)
        return self.process(result.stdout)
