"""The operator's machine (role ``controller``, usually ``@local``): platform, deploy tools,
network link, and the public key used for the install.
"""

from __future__ import annotations

import re

from ..errors import UnparseableOutput
from .base import KeystoneFact, parse_int
from .nix import shell_path


class Platform(KeystoneFact):
    """OS, architecture, deploy tools on PATH, and the link carrying the default route.

    ``uname -s`` / ``uname -m``; ``command -v darwin-rebuild nixos-rebuild nixos-anywhere``;
    the default route's interface from /proc/net/route and whether it is wireless
    (``/sys/class/net/IF/wireless``). ``wireless`` is null where it cannot be told (macOS).

    Example: ``{"os": "Linux", "arch": "x86_64", "darwin": false, "darwin_rebuild": null,
    "nixos_rebuild": "/run/current-system/sw/bin/nixos-rebuild", "nixos_anywhere": null,
    "route_interface": "eth0", "wireless": false}``
    """

    def command(self):
        return ("echo \"os $(uname -s)\"; echo \"arch $(uname -m)\"; "
                "for c in darwin-rebuild nixos-rebuild nixos-anywhere; do echo \"tool $c $(command -v $c 2>/dev/null)\"; done; "
                "if [ -r /proc/net/route ]; then d=$(awk '$2 == \"00000000\" { print $1; exit }' /proc/net/route); "
                "echo \"route ${d}\"; if [ -n \"$d\" ]; then "
                "if [ -d \"/sys/class/net/$d/wireless\" ] || [ -L \"/sys/class/net/$d/phy80211\" ]; "
                "then echo 'wireless yes'; else echo 'wireless no'; fi; fi; fi")

    def process(self, output):
        fields: dict[str, str] = {}
        tools: dict[str, str | None] = {}
        for line in output:
            key, _, value = line.partition(" ")
            if key == "tool":
                name, _, path = value.partition(" ")
                tools[name] = path.strip() or None
            elif key in ("os", "arch", "route", "wireless"):
                fields[key] = value.strip()
        if not fields.get("os") or not fields.get("arch"):
            raise UnparseableOutput(f"uname: unexpected output {output[:2]!r}")
        wireless = fields.get("wireless")
        return {
            "os": fields["os"],
            "arch": fields["arch"],
            "darwin": fields["os"] == "Darwin",
            "darwin_rebuild": tools.get("darwin-rebuild"),
            "nixos_rebuild": tools.get("nixos-rebuild"),
            "nixos_anywhere": tools.get("nixos-anywhere"),
            "route_interface": fields.get("route") or None,
            "wireless": None if wireless is None else wireless == "yes",
        }


class PublicKeyFile(KeystoneFact):
    """The operator's SSH public key file: present, one line, accepted by ``ssh-keygen -l -f``.

    Guide (SSH Access Fails After Deployment, "Wrong SSH key format"): "Key has line breaks or is
    truncated ... Ensure key is single line, complete string". Reads a public key only.

    Arguments:
        path: public key file (host data ``ssh_public_key_file``; ``~/`` is the controller's $HOME)

    Example: ``{"exists": true, "lines": 1, "private_key": false, "valid": true, "bits": 256,
    "fingerprint": "SHA256:...", "type": "ED25519", "error": null}``
    """

    requires = "ssh-keygen"

    def command(self, path):
        q = shell_path(path)
        return (f"if [ ! -f {q} ]; then echo missing; exit 0; fi; "
                f"echo \"lines $(grep -c . {q})\"; "
                f"if head -c 40 {q} | grep -q 'PRIVATE KEY'; then echo 'private yes'; echo 'rc 1'; "
                "echo '| a private key file: name the .pub file'; exit 0; fi; "
                f"kc_o=$(ssh-keygen -l -f {q} 2>&1); echo \"rc $?\"; printf '%s\\n' \"$kc_o\" | head -n 3 | sed 's/^/| /'")

    def process(self, output):
        lines = [line for line in output if line.strip()]
        if lines == ["missing"]:
            return {"exists": False, "lines": 0, "private_key": False, "valid": False, "bits": None,
                    "fingerprint": None, "type": None, "error": "file not found"}
        fields = {}
        text = []
        for line in lines:
            if line.startswith("| "):
                text.append(line[2:])
            else:
                key, _, value = line.partition(" ")
                fields[key] = value.strip()
        if "lines" not in fields or "rc" not in fields:
            raise UnparseableOutput(f"ssh-keygen -l: unexpected output {lines[:3]!r}")
        count = parse_int(fields["lines"], "line count")
        rc = parse_int(fields["rc"], "ssh-keygen exit code")
        bits = fingerprint = key_type = None
        if rc == 0:
            match = re.match(r"^(\d+)\s+(\S+)\s+.*\((\S+)\)\s*$", text[0] if text else "")
            if not match:
                raise UnparseableOutput(f"ssh-keygen -l: unexpected line {text[:1]!r}")
            bits, fingerprint, key_type = int(match.group(1)), match.group(2), match.group(3)
        return {"exists": True, "lines": count, "private_key": fields.get("private") == "yes",
                "valid": rc == 0 and count == 1 and fields.get("private") != "yes",
                "bits": bits, "fingerprint": fingerprint, "type": key_type,
                "error": None if rc == 0 else (" ".join(text)[:300] or f"ssh-keygen exited {rc}")}
