"""Nix itself: is it installed, how is it configured (substituters, max-jobs vs RAM, builders),
and, on deployed hosts, the NixOS system generations (the rollback targets).
"""

from __future__ import annotations

import datetime
import json
import re

from ..errors import UnparseableOutput
from .base import KeystoneFact, ProbeOutput, shell_quote

# Every nix invocation enables the commands the guides use, whatever the machine's nix.conf says.
NIX = "nix --extra-experimental-features 'nix-command flakes'"

# Rule of thumb for the "Out of memory" cause: a NixOS closure build job can peak near 2 GiB
# (linking, large derivations); max-jobs parallel jobs must fit in RAM.
JOB_MEMORY_BYTES = 2 * 1024**3



def shell_path(path: str) -> str:
    """A quoted path, keeping a leading ``~/`` meaningful (expanded to $HOME by the shell)."""
    path = str(path)
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shell_quote(path[2:])
    return shell_quote(path)


def sections(lines: list[str], what: str) -> dict[str, list[str]]:
    """Split output made of ``--name`` header lines followed by content lines."""
    found: dict[str, list[str]] = {}
    current = None
    for line in lines:
        if line.startswith("--") and " " not in line.strip():
            current = line.strip()[2:]
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return found


class Version(KeystoneFact):
    """Whether ``nix`` is installed on this machine, and its version (``nix --version``).

    Guide (ISO Build Fails): "Check Nix installation: nix --version". Missing nix is an answer
    (``installed: false``), not an error, so the check can fail with the install instructions.

    Example: ``{"installed": true, "path": "/usr/bin/nix", "version": "2.8.0"}``
    """

    def command(self):
        return ("if command -v nix >/dev/null 2>&1; then echo \"path $(command -v nix)\"; nix --version; "
                "else echo missing; fi")

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if lines == ["missing"]:
            return {"installed": False, "path": None, "version": None}
        if len(lines) < 2 or not lines[0].startswith("path "):
            raise UnparseableOutput(f"nix --version: unexpected output {lines[:3]!r}")
        match = re.search(r"(\d+\.\d+(?:\.\d+)?\S*)\s*$", lines[1])
        if not match or "nix" not in lines[1].lower():
            raise UnparseableOutput(f"nix --version: no version in {lines[1]!r}")
        return {"installed": True, "path": lines[0][5:], "version": match.group(1)}


class Settings(KeystoneFact):
    """The effective Nix settings that decide build speed and memory use, with the machine's RAM.

    ``nix config show --json`` (Nix >= 2.20; ``nix show-config --json`` before), plus MemTotal from
    /proc/meminfo (``sysctl hw.memsize`` on macOS). ``max_jobs_fit_memory`` applies the rule
    max-jobs x 2 GiB <= RAM (guide: "Out of memory ... Reduce concurrent builds: nix.settings.max-jobs").

    Example: ``{"substituters": ["https://cache.nixos.org/"], "max_jobs": 1, "cores": 2, "builders": "@/etc/nix/machines",
    "system": "x86_64-linux", "extra_platforms": [], "mem_total_bytes": 25275543552,
    "jobs_memory_bytes": 2147483648, "max_jobs_fit_memory": true}``
    """

    requires = "nix"
    writes_files = True  # nix may create its cache and state files

    def command(self):
        return (f"{{ {NIX} config show --json 2>/dev/null || {NIX} show-config --json; }} || exit $?; echo; "
                "echo '--memory'; if [ -r /proc/meminfo ]; then awk '$1 == \"MemTotal:\" { print \"kB\", $2 }' /proc/meminfo; "
                "else echo \"bytes $(sysctl -n hw.memsize 2>/dev/null)\"; fi")

    def process(self, output):
        if "--memory" not in [line.strip() for line in output]:
            raise UnparseableOutput("nix show-config: output cut short (no memory section)")
        cut = [line.strip() for line in output].index("--memory")
        try:
            config = json.loads("\n".join(output[:cut]))
        except json.JSONDecodeError as exc:
            raise UnparseableOutput(f"nix show-config --json printed invalid JSON: {exc}") from None
        if not isinstance(config, dict):
            raise UnparseableOutput("nix show-config --json: expected a JSON object")

        def value(key, default=None):
            entry = config.get(key)
            return entry.get("value", default) if isinstance(entry, dict) else default

        def as_list(raw):
            if isinstance(raw, str):
                return raw.split()
            if isinstance(raw, list):
                return [str(x) for x in raw]
            return []

        max_jobs = value("max-jobs", 1)
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int):
            try:
                max_jobs = int(str(max_jobs))
            except ValueError:
                raise UnparseableOutput(f"nix show-config: max-jobs is not a number: {max_jobs!r}") from None
        cores = value("cores")
        memory = [line.strip() for line in output[cut + 1:] if line.strip()]
        mem_total = None
        if memory:
            unit, _, number = memory[0].partition(" ")
            if unit not in ("kB", "bytes") or not number.strip().isdigit():
                raise UnparseableOutput(f"memory size: unexpected line {memory[0]!r}")
            mem_total = int(number) * (1024 if unit == "kB" else 1)
        builders = value("builders", "")
        jobs_memory = max_jobs * JOB_MEMORY_BYTES
        return {
            "substituters": as_list(value("substituters", [])),
            "max_jobs": max_jobs,
            "cores": cores if isinstance(cores, int) and not isinstance(cores, bool) else None,
            "builders": builders if isinstance(builders, str) else str(builders),
            "system": str(value("system", "")) or None,
            "extra_platforms": as_list(value("extra-platforms", [])),
            "mem_total_bytes": mem_total,
            "jobs_memory_bytes": jobs_memory,
            "max_jobs_fit_memory": None if mem_total is None else jobs_memory <= mem_total,
        }


class SystemGenerations(KeystoneFact):
    """NixOS system generations and which one is running.

    A profile's generations are its ``PROFILE-N-link`` symlinks and the current one is where
    ``PROFILE`` points: that is all ``nix-env --list-generations -p PROFILE`` reads, so the probe
    reads the links itself (one ``stat`` for their dates, UTC) instead of starting nix-env, which
    costs more CPU than any other sweep probe and needs a working Nix installation (root's nix-env
    may try to open the store itself). Also ``readlink -f /run/current-system`` (what is running)
    and ``readlink -f PROFILE`` (what the current generation points at). ``running_newest`` is
    false after ``nixos-rebuild test`` (no generation added) or ``nixos-rebuild boot`` before the
    reboot.

    Arguments:
        profile: system profile (host data ``system_profile``)

    Example: ``{"generations": [{"number": 41, "date": "2026-11-20 10:00:00", "current": false},
    {"number": 42, "date": "2026-11-22 04:00:00", "current": true}], "count": 2, "current": 42,
    "previous": 41, "running_system": "/nix/store/...-nixos-system-x", "profile_system": "/nix/store/...-nixos-system-x",
    "running_newest": true}``
    """

    def command(self, profile):
        q = shell_quote(profile)
        return ("if [ -e /run/current-system ]; then echo \"running $(readlink -f /run/current-system)\"; else echo running; fi; "
                f"if [ -e {q} ]; then echo \"profile $(readlink -f {q})\"; echo \"current $(readlink {q})\"; "
                "else echo profile; echo current; fi; "
                f"echo '--generations' {q}; set -- {q}-[0-9]*-link; if [ -L \"$1\" ]; then stat -c '%Y %n' \"$@\"; fi")

    def process(self, output):
        if len(output) < 4 or not output[0].startswith("running") or not output[1].startswith("profile") \
                or not output[2].startswith("current") or not output[3].startswith("--generations "):
            raise UnparseableOutput(f"system generations: unexpected output {output[:4]!r}")
        running = output[0][len("running"):].strip() or None
        profile = output[1][len("profile"):].strip() or None
        current_link = output[2][len("current"):].strip().rsplit("/", 1)[-1]  # PROFILE points at it
        link = re.compile(re.escape(output[3][len("--generations "):]) + r"-(\d+)-link$")
        generations = []
        for line in output[4:]:
            if not line.strip():
                continue
            stamp, _, path = line.strip().partition(" ")
            if not stamp.isdigit():
                raise UnparseableOutput(f"system generations: unexpected line {line!r}")
            match = link.fullmatch(path)
            if not match:
                continue  # not PROFILE-<number>-link: nix-env does not list it either
            date = datetime.datetime.fromtimestamp(int(stamp), datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
            generations.append({"number": int(match.group(1)), "date": date,
                                "current": bool(current_link) and path.rsplit("/", 1)[-1] == current_link})
        generations.sort(key=lambda g: g["number"])
        numbers = [g["number"] for g in generations]
        current = next((g["number"] for g in generations if g["current"]), None)
        older = [n for n in numbers if current is None or n < current]
        return {
            "generations": generations,
            "count": len(generations),
            "current": current,
            "previous": older[-1] if older else None,
            "running_system": running,
            "profile_system": profile,
            "running_newest": None if not running or not profile else running == profile,
        }

    def parse(self, result: ProbeOutput):
        self.raise_for_exit(result)
        return self.process(result.stdout)


# systemd-boot-builder.py: nixos-generation-N[-specialisation-X].conf; lanzaboote:
# nixos-generation-N[-specialisation-X][-<hash>][+tries].efi
_GENERATION_FILE = re.compile(r"nixos-generation-(\d+)(-specialisation-[^.]+?)?(-[A-Za-z0-9]+)?(\+\d+(-\d+)?)?\.(conf|efi)")


class BootMenu(KeystoneFact):
    """What an operator at the console sees in systemd-boot: the menu timeout and how many NixOS
    generations it offers (``loader/loader.conf``; generations from systemd-boot's
    ``loader/entries/nixos-generation-N.conf`` or lanzaboote's UKIs
    ``EFI/Linux/nixos-generation-N[-<hash>].efi``, specialisations not counted). Reads only names
    and the loader configuration.

    Arguments:
        boot_mount: ESP mount point (host data ``boot_mount``)

    Example: ``{"loader_conf": true, "timeout": 5, "menu_hidden": false, "generation_entries": 3}``
    """

    def command(self, boot_mount):
        q = shell_quote(boot_mount)
        return (f"cd {q} 2>/dev/null || {{ echo 'status no-esp'; exit 0; }}; "
                "if [ -f loader/loader.conf ]; then echo 'loader yes'; "
                "awk '$1 == \"timeout\" { print \"timeout\", $2 }' loader/loader.conf; else echo 'loader no'; fi; "
                "for kc_f in loader/entries/nixos-generation-*.conf EFI/Linux/nixos-generation-*.efi; do "
                "[ -e \"$kc_f\" ] && echo \"gen ${kc_f##*/}\"; done; echo 'entries'")

    def process(self, output):
        fields: dict[str, str] = {}
        generations: set[int] = set()
        for line in output:
            key, _, value = line.strip().partition(" ")
            if key in ("status", "loader", "timeout", "entries"):
                fields[key] = value.strip()
            elif key == "gen":
                match = _GENERATION_FILE.fullmatch(value.strip())
                if match and not match.group(2):
                    generations.add(int(match.group(1)))
        if fields.get("status") == "no-esp":
            return {"loader_conf": False, "timeout": None, "menu_hidden": None, "generation_entries": 0}
        if "loader" not in fields or "entries" not in fields:
            raise UnparseableOutput(f"loader.conf: unexpected output {output[:3]!r}")
        entries = len(generations)
        timeout = fields.get("timeout")
        if timeout is not None and timeout.isdigit():
            timeout_value: int | str | None = int(timeout)
        else:
            timeout_value = timeout or None  # menu-force / menu-hidden / absent
        hidden = timeout_value in (0, "menu-hidden") or (timeout_value is None and fields["loader"] == "yes")
        return {"loader_conf": fields["loader"] == "yes", "timeout": timeout_value,
                "menu_hidden": hidden, "generation_entries": entries}
