"""Reaching the targets from the controller: name resolution, ping, TCP port, SSH banner, SSH login.

Each fact takes host data ``targets`` (a list of ``{name, address, port}``; optional per target:
``user`` (default root), ``identity_file``, ``known_hosts_file``) and returns one dict per target,
keyed by the target's name (its address when it has no name). Checks use ``additionalProperties``
to hold every target to the same condition. An entry that is not usable (no address, bad port)
is reported as ``status: invalid`` for that target, never as an exception.

Failures are classified the way the guides quote them: ``refused`` ("Connection refused"),
``no-route`` ("No route to host"), ``unreachable`` ("Network is unreachable" / "Host is unreachable"),
``timeout``, ``unresolved``, and for SSH ``key-rejected`` ("Permission denied (publickey)") and
``host-key-changed`` ("REMOTE HOST IDENTIFICATION HAS CHANGED").
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ..errors import UnparseableOutput
from .base import KeystoneFact, ProbeOutput, shell_quote
from .nix import shell_path

_SAFE_NAME = re.compile(r"[^\x21-\x7e]")


def normalize_targets(targets) -> list[dict]:
    """Targets as ``{key, address, port, user, identity_file, known_hosts_file, problem}``."""
    found: list[dict] = []
    if not isinstance(targets, (list, tuple)):
        return found
    for i, raw in enumerate(targets):
        entry = raw if isinstance(raw, dict) else {}
        address = str(entry.get("address") or entry.get("name") or "").strip()
        key = _SAFE_NAME.sub("_", str(entry.get("name") or address or f"target-{i}"))[:100] or f"target-{i}"
        problem = None
        if not isinstance(raw, dict):
            problem = f"target {i} is not a mapping {{name, address, port}}: {raw!r}"[:200]
        elif not address or _SAFE_NAME.search(address) or address.startswith("-"):
            problem = f"target {key}: no usable address"
        port = entry.get("port", 22)
        try:
            port = int(port)
            if not 0 < port < 65536 or isinstance(entry.get("port"), bool):
                raise ValueError
        except (TypeError, ValueError):
            problem, port = f"target {key}: port {entry.get('port')!r} is not a TCP port", 0
        user = str(entry.get("user") or "root")
        if _SAFE_NAME.search(user) or user.startswith("-"):
            problem = problem or f"target {key}: bad user {user!r}"
        found.append({"key": key, "address": address, "port": port, "user": user, "problem": problem,
                      "identity_file": entry.get("identity_file"), "known_hosts_file": entry.get("known_hosts_file")})
    return found


def is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address.strip("[]"))
        return True
    except ValueError:
        return False


def per_target(targets, probe) -> str:
    """Shell running ``probe(target)`` for each target: ``target KEY`` / ``rc N`` / ``| output`` lines."""
    parts = []
    for t in normalize_targets(targets):
        parts.append(f"echo {shell_quote('target ' + t['key'])}")
        if t["problem"]:
            parts.append(f"echo 'rc invalid'; echo {shell_quote('| ' + t['problem'])}")
            continue
        parts.append(f"kc_o=$({probe(t)} 2>&1); echo \"rc $?\"; printf '%s\\n' \"$kc_o\" | head -n 20 | cut -c1-400 | sed 's/^/| /'")
    return "; ".join(parts) or "true"


def read_targets(output: list[str]) -> dict[str, dict]:
    """``{key: {"rc": int | "invalid", "lines": [...]}}`` from :func:`per_target` output."""
    results: dict[str, dict] = {}
    current: dict[str, Any] | None = None
    for line in output:
        if line.startswith("target "):
            current = {"rc": None, "lines": []}
            results[line[len("target "):]] = current
        elif current is None:
            if line.strip():
                raise UnparseableOutput(f"unexpected line before the first target: {line!r}")
        elif line.startswith("rc "):
            value = line[3:].strip()
            if value == "invalid":
                current["rc"] = value
            else:
                try:
                    current["rc"] = int(value)
                except ValueError:
                    raise UnparseableOutput(f"bad exit code line {line!r}") from None
        elif line.startswith("| ") or line == "|":
            current["lines"].append(line[2:])
    for key, target in results.items():
        if target["rc"] is None:
            raise UnparseableOutput(f"target {key}: output cut short (no exit code)")
    return results


def classify_connect(rc, text: str) -> str:
    lower = text.lower()
    if rc == "invalid":
        return "invalid"
    if rc == 0:
        return "ok"
    if rc == 124 or "timed out" in lower:
        return "timeout"
    if "connection refused" in lower:
        return "refused"
    if "no route to host" in lower:
        return "no-route"
    if "unreachable" in lower:
        return "unreachable"
    if "could not resolve" in lower or "name or service not known" in lower or "unknown host" in lower \
            or "temporary failure in name resolution" in lower:
        return "unresolved"
    return "failed"


class _TargetFact(KeystoneFact):
    abstract = True
    timeout = 90

    def parse(self, result: ProbeOutput):
        self.raise_for_exit(result)
        return self.process(result.stdout)

    @staticmethod
    def default():
        return {}


class Resolve(_TargetFact):
    """Does each target's address resolve (``getent hosts ADDRESS``; IP literals need no lookup)?

    Guide ("connection refused" during remote deploy: ``dig <host>``; Target Not Reachable: wrong IP).

    Arguments:
        targets: host data ``targets``

    Example: ``{"test-server": {"status": "ok", "addresses": ["192.168.122.50"], "detail": ""}}``
    """

    requires = "getent"

    def command(self, targets):
        def probe(t):
            if is_ip(t["address"]):
                return f"echo {shell_quote(t['address'].strip('[]') + ' (address literal)')}"
            return f"getent hosts {shell_quote(t['address'])}"
        return per_target(targets, probe)

    def process(self, output):
        found = {}
        for key, r in read_targets(output).items():
            addresses = [line.split()[0] for line in r["lines"] if line.split()]
            if r["rc"] == "invalid":
                status = "invalid"
            elif r["rc"] == 0 and addresses:
                status = "ok"
            else:
                status = "unresolved"
            found[key] = {"status": status, "addresses": addresses if status == "ok" else [],
                          "detail": " ".join(r["lines"])[:300]}
        return found


class Ping(_TargetFact):
    """One ICMP echo to each target (``ping -c1 -W2 ADDRESS``). ICMP may be filtered on the way:
    a failed ping alone does not mean the target is down.

    Arguments:
        targets: host data ``targets``

    Example: ``{"test-server": {"status": "ok", "detail": "1 packets transmitted, 1 received, 0% packet loss, time 0ms"}}``
    """

    requires = "ping"

    def command(self, targets):
        return per_target(targets, lambda t: f"ping -c1 -W2 {shell_quote(t['address'].strip('[]'))}")

    def process(self, output):
        found = {}
        for key, r in read_targets(output).items():
            text = " ".join(r["lines"])
            status = classify_connect(r["rc"], text)
            if status == "failed" and ("100% packet loss" in text or r["rc"] == 1):
                status = "no-reply"
            summary = next((line for line in r["lines"] if "packets transmitted" in line), text)
            found[key] = {"status": status, "detail": summary.strip()[:300]}
        return found


class TcpPort(_TargetFact):
    """Is each target's SSH port open? A TCP connect with bash's ``/dev/tcp`` under ``timeout 3``
    (no nc needed). ``refused``: host up, nothing listening (sshd down); ``timeout``: packets dropped
    (firewall, wrong network); ``no-route`` / ``unreachable``: routing or the host is off.

    Arguments:
        targets: host data ``targets``

    Example: ``{"test-server": {"status": "refused", "port": 22, "detail": "bash: connect: Connection refused"}}``
    """

    requires = "bash"

    def command(self, targets):
        ports = {t["key"]: t["port"] for t in normalize_targets(targets)}
        return per_target(targets, lambda t: (
            f"timeout 3 bash -c 'exec 3<>\"/dev/tcp/$0/$1\"' {shell_quote(t['address'].strip('[]'))} {t['port']}")
        ) + "".join(f"; echo {shell_quote('port ' + k + ' ' + str(p))}" for k, p in ports.items())

    def process(self, output):
        ports = {}
        for line in output:
            if line.startswith("port "):
                key, _, port = line[5:].rpartition(" ")
                ports[key] = int(port) if port.isdigit() else None
        found = {}
        for key, r in read_targets([line for line in output if not line.startswith("port ")]).items():
            text = " ".join(r["lines"])
            found[key] = {"status": classify_connect(r["rc"], text), "port": ports.get(key), "detail": text[:300]}
        return found


class SshBanner(_TargetFact):
    """Does an SSH server answer on each target's port? Reads the first line (``SSH-2.0-...``)
    through bash's ``/dev/tcp`` under ``timeout 5``.

    Arguments:
        targets: host data ``targets``

    Example: ``{"test-server": {"status": "ok", "banner": "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"}}``
    """

    requires = "bash"

    def command(self, targets):
        return per_target(targets, lambda t: (
            f"timeout 5 bash -c 'exec 3<>\"/dev/tcp/$0/$1\" && head -n 1 <&3' "
            f"{shell_quote(t['address'].strip('[]'))} {t['port']}"))

    def process(self, output):
        found = {}
        for key, r in read_targets(output).items():
            text = " ".join(r["lines"])
            banner = next((line.strip() for line in r["lines"] if line.startswith("SSH-")), None)
            if r["rc"] == "invalid":
                status = "invalid"
            elif banner:
                status = "ok"
            elif r["rc"] == 0:
                status = "not-ssh"
            else:
                status = classify_connect(r["rc"], text)
            found[key] = {"status": status, "banner": banner, "detail": text[:300]}
        return found


class SshLogin(_TargetFact):
    """Does each target accept our key? ``ssh -o BatchMode=yes -o ConnectTimeout=5 ... USER@ADDRESS true``.

    Host keys: with the target's ``known_hosts_file`` checking is strict; otherwise
    ``StrictHostKeyChecking=accept-new`` (first contact records the key, a changed key still fails).
    ``identity_file`` (optional) is used alone (``IdentitiesOnly=yes``).

    Status: ``ok``, ``key-rejected`` ("Permission denied (publickey)"), ``refused``, ``no-route``,
    ``unreachable``, ``timeout``, ``unresolved``, ``host-key-changed``, ``host-key-unknown``, ``failed``.

    Arguments:
        targets: host data ``targets``

    Example: ``{"test-server": {"status": "key-rejected", "detail": "root@10.0.0.5: Permission denied (publickey)."}}``
    """

    requires = "ssh"

    def command(self, targets):
        def probe(t):
            opts = ["-o BatchMode=yes", "-o ConnectTimeout=5", "-o LogLevel=ERROR"]
            if t["known_hosts_file"]:
                opts += [f"-o UserKnownHostsFile={shell_path(t['known_hosts_file'])}", "-o StrictHostKeyChecking=yes"]
            else:
                opts += ["-o StrictHostKeyChecking=accept-new"]
            if t["identity_file"]:
                opts += [f"-i {shell_path(t['identity_file'])}", "-o IdentitiesOnly=yes"]
            return (f"ssh {' '.join(opts)} -p {t['port']} -l {shell_quote(t['user'])} "
                    f"{shell_quote(t['address'].strip('[]'))} true")
        return per_target(targets, probe)

    def process(self, output):
        found = {}
        for key, r in read_targets(output).items():
            text = " ".join(r["lines"])
            lower = text.lower()
            if r["rc"] == "invalid":
                status = "invalid"
            elif r["rc"] == 0:
                status = "ok"
            elif "remote host identification has changed" in lower:
                status = "host-key-changed"
            elif "host key verification failed" in lower:
                status = "host-key-unknown"
            elif "permission denied" in lower:
                status = "key-rejected"
            else:
                status = classify_connect(r["rc"], text)
            found[key] = {"status": status, "detail": text[:300]}
        return found
