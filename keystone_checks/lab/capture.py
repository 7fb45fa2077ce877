"""Record real command outputs from lab guests as parser fixtures.

Each capture is ``tests/fixtures/captured/<variant>/<scenario>/<slug>.yaml``
with keys ``command``, ``exit_code``, ``stdout``, ``stderr``; text is written
as YAML block scalars with the exact bytes (chomping indicator chosen so the
trailing newlines survive), and every file is re-read to prove the round trip.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
from dataclasses import dataclass

import yaml

from keystone_checks.lab import faults, recipe, snapshot
from keystone_checks.lab.errors import LabError
from keystone_checks.lab.paths import CAPTURE_ROOT

LSBLK = "lsblk -J -b -o NAME,PATH,SIZE,TYPE,FSTYPE,MOUNTPOINT,PTTYPE,RO,MODEL,SERIAL"
BYID = "for l in /dev/disk/by-id/*; do printf '%s %s\\n' \"$l\" \"$(readlink -f \"$l\")\"; done"
ZPOOL_LIST = "zpool list -H -p -o name,size,allocated,free,health,altroot"
ZFS_GET = "zfs get -H -p -o name,property,value encryption,keystatus,keylocation,mounted,mountpoint -r rpool"
DISK = ["sgdisk -p /dev/vda", "wipefs -n -J /dev/vda", LSBLK]
SYSTEMD = ["systemctl list-units --failed --no-legend --plain --full", "systemctl is-system-running",
           "systemctl is-active ssh", "systemctl show -p ActiveState,SubState,UnitFileState ssh.service"]
COMMON = [
    LSBLK, BYID, "zpool status -v rpool", "zpool status -v", ZPOOL_LIST, "zpool import", ZFS_GET,
    "zfs list -H -p -t snapshot -o name,userrefs", "zfs holds -H -r rpool",
    "cat /proc/spl/kstat/zfs/arcstats", "cat /sys/module/zfs/version", "cat /proc/modules",
    "modinfo -F version zfs", "uname -r", "cryptsetup status credstore", "dmsetup ls", *SYSTEMD,
    "nix-env --list-generations -p /nix/var/nix/profiles/system",
    "readlink -f /run/current-system /nix/var/nix/profiles/system",
    "readlink /nix/var/nix/profiles/system", "stat -c '%Y %n' /nix/var/nix/profiles/system-[0-9]*-link",
    "df -B1 --output=source,fstype,size,used,avail,target /nix", "cat /proc/meminfo", "cat /proc/loadavg",
    "cat /proc/swaps", "grep -E '^(pswpin|pswpout) ' /proc/vmstat", "nproc",
    "findmnt -J -o TARGET,SOURCE,FSTYPE,OPTIONS", "nft -j list ruleset", "nft list ruleset",
    "stat -c '%n|%s|%a|%U|%F' /etc/credstore/*", "ls -1 /boot/EFI /boot/loader/entries",
    "sshd -T | head -n 50", "ssh-keygen -l -f /root/.ssh/authorized_keys", "cat /etc/os-release",
    "ls /dev/tpm* /sys/class/tpm", "fuser -vm /mnt", "lsof -n /mnt",
    "swapon --show=NAME,TYPE,SIZE,USED --bytes --noheadings", "sgdisk -p /dev/vda", "wipefs -n -J /dev/vda",
    "cat /sys/module/zfs/parameters/zfs_arc_max", "zpool get -H -p -o name,property,value health,guid rpool",
    "cat /etc/hostid | od -An -tx1", "hostid", "ls -la /etc/keystone-installer /iso",
    "systemctl list-jobs --no-legend --plain", "zfs version",
]

MIRROR = ("truncate -s 128M /var/tmp/lab-m1 /var/tmp/lab-m2 && "
          "zpool create -f labmirror mirror /var/tmp/lab-m1 /var/tmp/lab-m2 && "
          "zpool offline labmirror /var/tmp/lab-m2")
SNAPS = ("zfs snapshot -r rpool/crypt@lab-1 && zfs snapshot rpool/crypt/system@lab-2 && "
         "zfs hold keep rpool/crypt/system@lab-1 && zfs hold deploy rpool/crypt/system@lab-1")
BUSY_MNT = "systemd-run --quiet --unit=lab-cap-busy -p WorkingDirectory=/mnt /bin/sleep infinity; sleep 1"


@dataclass
class Scenario:
    name: str
    state: str
    commands: list[str]
    fault: str | None = None
    prep: str = ""  # extra shell run before capturing (after the fault)
    variants: tuple[str, ...] = ("zfs21", "zfs23")


SCENARIOS = [
    Scenario("installer-healthy", "installer", COMMON),
    Scenario("installer-leftover-pool", "installer", ["zpool import", "zpool status -v", *DISK],
             fault="leftover-pool"),
    Scenario("installer-leftover-gpt", "installer", DISK, fault="leftover-partition-table"),
    Scenario("installer-swap-active", "installer",
             ["cat /proc/swaps", "swapon --show=NAME,TYPE,SIZE,USED --bytes --noheadings",
              "grep -E '^(pswpin|pswpout) ' /proc/vmstat", *DISK], fault="swap-on-target"),
    Scenario("installer-fs-mounted", "installer",
             ["fuser -vm /mnt", "lsof -n /mnt", "findmnt -J -o TARGET,SOURCE,FSTYPE,OPTIONS", *DISK],
             fault="fs-mounted-on-target", prep=BUSY_MNT),
    Scenario("installer-zfs-unloaded", "installer",
             ["cat /sys/module/zfs/version", "cat /proc/modules", "zpool status -v", "zpool import",
              "modinfo -F version zfs", "zfs version"], fault="zfs-module-not-loaded"),
    Scenario("installer-failed-unit", "installer",
             [*SYSTEMD, "journalctl -u keystone-lab-broken.service -n 50 --no-pager -o short-iso"],
             fault="installer-failed-unit"),
    Scenario("installed-exported", "installed",
             ["zpool import", "zpool status -v", "cryptsetup status credstore", *DISK, BYID]),
    Scenario("installed-credstore-open", "installed",
             ["cryptsetup status credstore", "dmsetup ls", "zpool status -v rpool", ZPOOL_LIST, ZFS_GET,
              "fuser -vm /mnt", "findmnt -J -o TARGET,SOURCE,FSTYPE,OPTIONS",
              "stat -c '%n|%s|%a|%U|%F' /etc/credstore/*", "timeout 30 zpool export rpool"],
             fault="credstore-open-at-export", variants=("zfs21",)),
    Scenario("installed-dataset-busy", "installed",
             ["fuser -vm /mnt/srv/keystone/var", "lsof -n /mnt/srv/keystone/var", ZPOOL_LIST,
              "timeout 30 zpool export rpool"], fault="dataset-busy-under-mnt"),
    Scenario("installed-foreign-pool", "installed-foreign", ["zpool import", "zpool status -v", "hostid"],
             fault="pool-imported-other-host"),
    Scenario("installed-export-hang", "installed",
             ["systemctl status --no-pager keystone-lab-export.service", "ps -o pid,stat,wchan:32,args -C zpool",
              "cryptsetup status credstore", "timeout 10 zpool status -v rpool"],
             fault="export-hang-credstore-open", variants=("zfs23",)),
    Scenario("deployed-healthy", "deployed", COMMON),
    Scenario("deployed-snapshots", "deployed",
             ["zfs list -H -p -t snapshot -o name,userrefs", "zfs holds -H -r rpool"], prep=SNAPS),
    Scenario("deployed-degraded-mirror", "deployed",
             ["zpool status -v labmirror", "zpool status -v", ZPOOL_LIST,
              "zpool get -H -p -o name,property,value health labmirror"], prep=MIRROR),
    Scenario("deployed-scrub", "deployed", ["zpool status -v rpool", "zpool status -v"], fault="scrub-running"),
    Scenario("deployed-credstore-inactive", "deployed",
             ["cryptsetup status credstore", "dmsetup ls", "stat -c '%n|%s|%a|%U|%F' /etc/credstore/*",
              ZFS_GET, "findmnt -J -o TARGET,SOURCE,FSTYPE,OPTIONS"], fault="credstore-inactive"),
    Scenario("deployed-key-missing", "deployed",
             ["stat -c '%n|%s|%a|%U|%F' /etc/credstore/*", "ls -la /etc/credstore"],
             fault="credstore-missing-key"),
    Scenario("deployed-key-not-loaded", "deployed", [ZFS_GET, "zfs mount", "df -B1 --output=source,fstype,size,used,avail,target /nix"],
             fault="key-not-loaded"),
    Scenario("deployed-pool-not-imported", "deployed",
             ["zpool status -v rpool", "zpool status -v", ZPOOL_LIST, "zpool import", ZFS_GET],
             fault="pool-not-imported"),
    Scenario("deployed-failed-unit", "deployed",
             [*SYSTEMD, "journalctl -u keystone-lab-broken.service -n 50 --no-pager -o short-iso"],
             fault="failed-unit"),
    Scenario("deployed-nix-nearly-full", "deployed",
             ["df -B1 --output=source,fstype,size,used,avail,target /nix",
              "zfs get -H -p -o name,property,value quota,used,available rpool/crypt/system/nix"],
             fault="nix-nearly-full"),
    Scenario("deployed-not-newest", "deployed",
             ["nix-env --list-generations -p /nix/var/nix/profiles/system",
              "readlink -f /run/current-system /nix/var/nix/profiles/system"], fault="running-not-newest"),
    Scenario("deployed-single-generation", "deployed",
             ["nix-env --list-generations -p /nix/var/nix/profiles/system",
              "readlink -f /run/current-system /nix/var/nix/profiles/system"], fault="single-generation"),
    Scenario("deployed-arc-above-ram", "deployed",
             ["cat /sys/module/zfs/parameters/zfs_arc_max", "cat /proc/meminfo",
              "grep -E '^(c_max|size|c) ' /proc/spl/kstat/zfs/arcstats", "cat /etc/modprobe.d/zfs-arc.conf"],
             fault="arc-max-above-ram"),
    Scenario("deployed-starting", "deployed-starting",
             ["systemctl is-system-running", "systemctl list-jobs --no-legend --plain",
              "systemctl list-units --failed --no-legend --plain --full"], fault="system-starting"),
    Scenario("deployed-sshd-stopped", "deployed", SYSTEMD, fault="sshd-stopped"),
    Scenario("deployed-firewall-drops-ssh", "deployed", ["nft -j list ruleset", "nft list ruleset"],
             fault="firewall-drops-ssh"),
    Scenario("deployed-key-mangled", "deployed",
             ["ssh-keygen -l -f /root/.ssh/authorized_keys", "cat /root/.ssh/authorized_keys"],
             fault="root-key-mangled"),
    Scenario("deployed-key-absent", "deployed",
             ["ssh-keygen -l -f /root/.ssh/authorized_keys", "ls -la /root/.ssh"], fault="root-key-missing"),
]


def slug(command: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", command.lower()).strip("-")[:50].rstrip("-")
    return f"{s}-{hashlib.sha256(command.encode()).hexdigest()[:6]}"


def _block(key: str, text: str) -> str:
    if text == "":
        return f'{key}: ""\n'
    if re.search(r"[^\t\n\x20-\x7e\u00a0-\ud7ff\ue000-\ufffd]", text) or "\r" in text:
        return yaml.safe_dump({key: text}, allow_unicode=True, width=float("inf"))
    chomp = "-" if not text.endswith("\n") else ("+" if text.endswith("\n\n") else "")
    indent = "2" if text[0] in " \n" else ""
    body = "".join(("  " + line if line.strip("\n") else line) for line in text.splitlines(True))
    if not body.endswith("\n"):
        body += "\n"
    return f"{key}: |{indent}{chomp}\n{body}"


def to_yaml(doc: dict) -> str:
    out = f"command: {yaml.safe_dump(doc['command'], width=float('inf')).removesuffix(chr(10) + '...' + chr(10)).strip()}\n"
    out += f"exit_code: {doc['exit_code']}\n"
    for key in ("stdout", "stderr"):
        part = _block(key, doc[key])
        if yaml.safe_load(part)[key] != doc[key]:  # paranoid: fall back to quoted style
            part = yaml.safe_dump({key: doc[key]}, allow_unicode=True, width=float("inf"))
        out += part
    if yaml.safe_load(out) != doc:
        raise LabError(f"YAML round trip failed for {doc['command']!r}")
    return out


def capture_scenario(variant: recipe.Variant, sc: Scenario, say=print) -> int:
    fault = faults.get(sc.fault) if sc.fault else None
    state = fault.state if fault else sc.state
    snapshot.ensure_state(variant, state, say=say)
    g = snapshot.Clone.restore(variant, state)
    try:
        if fault:
            faults.inject(g, fault, variant)
        if sc.prep:
            rc, out, err = g.ssh(sc.prep, timeout=120, port=g.ctl_port if fault and fault.control else None)
            if rc:
                raise LabError(f"{sc.name}: prep failed: {err.strip() or out.strip()}")
        dest = CAPTURE_ROOT / variant.name / sc.name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        port = g.ctl_port if fault and fault.control else None
        g.multiplex = True
        for cmd in sc.commands:
            rc, out_b, err_b = g.ssh_bytes("sh -c " + shlex.quote(cmd), timeout=60, port=port)
            if rc == 255 and g.ssh_bytes("true", timeout=30, port=port)[0] != 0:  # ssh itself broke
                raise LabError(f"{sc.name}: ssh failed for {cmd!r}: {err_b.decode(errors='replace').strip()}")
            doc = {"command": cmd, "exit_code": rc, "stdout": out_b.decode(errors="replace"),
                   "stderr": err_b.decode(errors="replace")}
            (dest / f"{slug(cmd)}.yaml").write_text(to_yaml(doc))
        say(f"[capture] {variant.name}/{sc.name}: {len(sc.commands)} commands")
        return len(sc.commands)
    finally:
        g.destroy()


def capture_all(variant: recipe.Variant, only: list[str] | None = None, say=print) -> None:
    failures = []
    for sc in SCENARIOS:
        if variant.name not in sc.variants or (only and sc.name not in only):
            continue
        try:
            capture_scenario(variant, sc, say=say)
        except LabError as e:
            failures.append(f"{sc.name}: {e}")
            say(f"[capture] {variant.name}/{sc.name}: FAILED: {e}")
    if failures:
        raise LabError(f"{len(failures)} capture scenario(s) failed:\n  " + "\n  ".join(failures))
