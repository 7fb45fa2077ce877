"""Boot: is this the Keystone installer ISO, is the ESP (systemd-boot entries or lanzaboote UKIs)
populated and intact, and will the next boot find its generation on it."""

from __future__ import annotations

import re

from ..errors import UnparseableOutput
from .base import KeystoneFact, labelled_lines, parse_int, shell_quote

LIVE_ROOT_FSTYPES = ("tmpfs", "overlay", "squashfs", "rootfs", "iso9660")


class LiveMedia(KeystoneFact):
    """Signs that the host runs from the Keystone installer ISO:

    - ``VARIANT_ID=installer`` in ``/etc/os-release``: every NixOS installer image has it (nixpkgs
      ``nixos/modules/profiles/installation-device.nix``, imported by the
      ``installation-cd-minimal.nix`` the Keystone ISO is built from; nixos-anywhere's
      ``src/get-facts.sh`` uses the same test). This is the signal.
    - a live root (``findmnt -n -o FSTYPE /``: tmpfs, overlay or squashfs) with ``/iso`` or
      ``/nix/.ro-store`` mounted (the NixOS ISO layout);
    - the marker file (host data ``installer_marker``): an optional extra signal for stand-ins such
      as the lab's Debian guest. No Keystone ISO has it; ``""`` does not look for one.

    Arguments:
        marker: the marker file path, or ``""``

    Example: ``{"variant_id": "installer", "installer_variant": true, "marker": false,
    "root_fstype": "tmpfs", "live_root": true, "iso_mounted": true, "ro_store_mounted": true,
    "booted_from_iso": true}``
    """

    def command(self, marker):
        q = shell_quote(marker)
        return (f"if [ -n {q} ] && [ -e {q} ]; then echo 'marker yes'; else echo 'marker no'; fi; "
                "awk -F= '$1==\"VARIANT_ID\" {v=$2; gsub(/^\"|\"$/, \"\", v); print \"variant\", v}' /etc/os-release 2>/dev/null; "
                "echo \"root $(findmnt -n -o FSTYPE / 2>/dev/null || awk '$2==\"/\" {t=$3} END {print t}' /proc/mounts)\"; "
                "awk '$2==\"/iso\" {print \"iso yes\"} $2==\"/nix/.ro-store\" {print \"rostore yes\"}' /proc/mounts")

    def process(self, output):
        fields = labelled_lines(output, ("marker", "root"))
        root = fields["root"] or None
        live = root in LIVE_ROOT_FSTYPES
        iso, ro = fields.get("iso") == "yes", fields.get("rostore") == "yes"
        marker = fields["marker"] == "yes"
        variant = fields.get("variant") or None
        installer = variant == "installer"
        return {"variant_id": variant, "installer_variant": installer, "marker": marker,
                "root_fstype": root, "live_root": live, "iso_mounted": iso, "ro_store_mounted": ro,
                "booted_from_iso": installer or marker or (live and (iso or ro))}


class EspContents(KeystoneFact):
    """The EFI system partition as the boot loader needs it: mounted, ``EFI/`` non-empty, and

    - systemd-boot (nixpkgs ``systemd-boot-builder.py``): ``loader/entries/*.conf`` Type 1
      entries, each entry's ``linux``/``initrd`` file present (kernels under ``EFI/nixos/``);
    - lanzaboote (nix-community/lanzaboote ``rust/tool/systemd/src/install.rs``): signed UKIs
      ``EFI/Linux/nixos-generation-N[-specialisation-X].efi`` (v0.3) or ``...-<hash>.efi``
      (v0.4 and later), each non-empty (``empty_ukis`` lists those that are not).

    And the boot loader the firmware starts: systemd-boot as ``bootctl install`` (or lanzaboote)
    puts it, ``EFI/systemd/systemd-boot<arch>.efi`` and the removable-media fallback
    ``EFI/BOOT/BOOT<ARCH>.EFI``, non-empty (``boot_loaders``): entries and kernels without it do not
    boot.

    Reads only the small loader entry files and the files' sizes.

    Arguments:
        path: ESP mount point (host data ``boot_mount``; ``/mnt/boot`` from the ISO)

    Example: ``{"mounted": true, "fstype": "vfat", "efi_files": 4, "boot_loaders":
    ["EFI/BOOT/BOOTX64.EFI", "EFI/systemd/systemd-bootx64.efi"], "entries": 3, "broken_entries":
    [{"entry": "nixos-generation-3.conf", "missing": ["/EFI/nixos/abc-initrd.efi"]}], "ukis": 0,
    "empty_ukis": []}``
    """

    def command(self, path):
        q = shell_quote(path)
        # findmnt, find | wc and one awk over every entry (it was one awk per entry and a second pass):
        # host CPU is mostly process creation.
        return (f"cd {q} 2>/dev/null || {{ echo 'missing'; exit 0; }}; "
                f"echo \"fstype $(findmnt -n -o FSTYPE --mountpoint {q} 2>/dev/null)\"; "
                "echo \"efi $(find EFI -type f 2>/dev/null | wc -l)\"; "
                # the boot loader itself, as bootctl (and lanzaboote) installs it: non-empty, any case (vfat)
                "find EFI -maxdepth 2 -type f -size +0 \\( -ipath 'EFI/systemd/systemd-boot*.efi' "
                "-o -ipath 'EFI/boot/boot*.efi' \\) 2>/dev/null | sed 's/^/loader /'; "
                # entries: every *.conf name; references: from the regular files (or links to one)
                "kc_n=0; set --; for kc_e in loader/entries/*.conf; do [ -e \"$kc_e\" ] || [ -L \"$kc_e\" ] || continue; "
                "kc_n=$((kc_n + 1)); [ -f \"$kc_e\" ] && set -- \"$@\" \"$kc_e\"; done; echo \"entries $kc_n\"; "
                "kc_r=; [ $# -gt 0 ] && kc_r=$(awk '$1==\"linux\"||$1==\"initrd\"||$1==\"efi\" "
                "{e = FILENAME; sub(/.*\\//, \"\", e); print \"ref\", e, $2}' \"$@\"); "
                "[ -n \"$kc_r\" ] && printf '%s\\n' \"$kc_r\"; "
                # lanzaboote's UKIs: count them, name the empty ones
                "kc_k=0; for kc_u in EFI/Linux/nixos-generation-*.efi; do [ -e \"$kc_u\" ] || continue; "
                "kc_k=$((kc_k + 1)); [ -s \"$kc_u\" ] || echo \"emptyuki ${kc_u#EFI/Linux/}\"; done; "
                "echo \"ukis $kc_k\"; echo '--exists'; "
                # "ref ENTRY PATH" triples (a line that is not one makes the output unparseable anyway)
                "set -f; set -- $kc_r; while [ $# -ge 3 ]; do [ -e \".$3\" ] && echo \"ok $3\"; shift 3; done; exit 0")

    def process(self, output):
        if output and output[0].strip() == "missing":
            return {"exists": False, "mounted": False, "fstype": None, "efi_files": 0, "boot_loaders": [],
                    "entries": 0, "broken_entries": [], "ukis": 0, "empty_ukis": []}
        fields, refs, present, in_exists, empty_ukis, loaders = {}, [], set(), False, [], []
        for line in output:
            if line == "--exists":
                in_exists = True
                continue
            parts = line.split()
            if not parts:
                continue
            if in_exists:
                if parts[0] == "ok" and len(parts) == 2:
                    present.add(parts[1])
            elif parts[0] == "ref":
                if len(parts) != 3:
                    raise UnparseableOutput(f"loader entry reference unparseable: {line!r}")
                refs.append((parts[1], parts[2]))
            elif parts[0] == "emptyuki":
                empty_ukis.append(line[len("emptyuki "):])
            elif parts[0] == "loader":
                loaders.append(line[len("loader "):])
            else:
                fields[parts[0]] = parts[1] if len(parts) > 1 else ""
        if "efi" not in fields or "entries" not in fields or "ukis" not in fields:
            raise UnparseableOutput("expected 'efi', 'entries' and 'ukis' counts")
        broken: dict[str, list[str]] = {}
        for entry, ref in refs:
            if ref not in present:
                broken.setdefault(entry, []).append(ref)
        return {"exists": True, "mounted": bool(fields.get("fstype")), "fstype": fields.get("fstype") or None,
                "efi_files": parse_int(fields["efi"], "EFI file count"), "boot_loaders": sorted(loaders),
                "entries": parse_int(fields["entries"], "loader entry count"),
                "broken_entries": [{"entry": e, "missing": m} for e, m in sorted(broken.items())],
                "ukis": parse_int(fields["ukis"], "UKI count"), "empty_ukis": sorted(empty_ukis)}


_UKI = re.compile(r"nixos-generation-(\d+)(-specialisation-[^.]+?)?(-[A-Za-z0-9]+)?(\+\d+(-\d+)?)?\.efi")


class NextBoot(KeystoneFact):
    """Will the next boot find its generation: the generation the system profile points at (what
    systemd-boot/lanzaboote make the default entry), its boot files on the ESP, and room on the ESP
    for one more generation.

    - systemd-boot: ``loader/entries/nixos-generation-N.conf`` and every ``linux``/``initrd`` file it
      names (nixpkgs ``systemd-boot-builder.py``); a generation's size is the sum of its files.
    - lanzaboote: a non-empty UKI ``EFI/Linux/nixos-generation-N.efi`` (v0.3) or
      ``nixos-generation-N-<hash>.efi`` (v0.4+; boot counting may add ``+T[-D]``); specialisations
      do not count. A UKI's size is its file size.

    ``needed_bytes`` is the largest generation on the ESP (what the next ``nixos-rebuild`` may write
    in the worst case: a new kernel and initrd, or a new UKI); ``room_for_next`` is ``free_bytes >=
    needed_bytes``.

    Arguments:
        boot_mount: ESP mount point (host data ``boot_mount``)
        profile: system profile (host data ``system_profile``)

    Example: ``{"esp": true, "generation": 42, "loader": "systemd-boot", "entry":
    "nixos-generation-42.conf", "missing_files": [], "free_bytes": 400000000, "needed_bytes":
    62000000, "room_for_next": true}``
    """

    requires = "df"

    def command(self, boot_mount, profile):
        q, p = shell_quote(boot_mount), shell_quote(profile)
        return (f"echo \"target $(readlink {p})\"; "
                f"cd {q} 2>/dev/null || {{ echo 'esp no'; exit 0; }}; echo 'esp yes'; "
                "echo \"free $(df -B1 --output=avail . | tail -n 1)\"; "
                "set --; for kc_e in loader/entries/*.conf; do [ -f \"$kc_e\" ] && set -- \"$@\" \"$kc_e\"; done; "
                "for kc_e in \"$@\"; do echo \"entry ${kc_e#loader/entries/}\"; done; "
                "kc_r=; [ $# -gt 0 ] && kc_r=$(awk '$1==\"linux\"||$1==\"initrd\" "
                "{e = FILENAME; sub(/.*\\//, \"\", e); print \"ref\", e, $2}' \"$@\"); "
                "[ -n \"$kc_r\" ] && printf '%s\\n' \"$kc_r\"; "
                "set -f; set -- $kc_r; while [ $# -ge 3 ]; do "
                "if [ -f \".$3\" ]; then echo \"size $3 $(stat -c %s \".$3\")\"; fi; shift 3; done; set +f; "
                "for kc_u in EFI/Linux/nixos-generation-*.efi; do [ -f \"$kc_u\" ] && "
                "echo \"uki ${kc_u#EFI/Linux/} $(stat -c %s \"$kc_u\")\"; done; exit 0")

    def process(self, output):
        fields: dict[str, str] = {}
        entries: list[str] = []
        refs: dict[str, list[str]] = {}
        sizes: dict[str, int] = {}
        ukis: dict[str, int] = {}
        for line in output:
            tag, _, rest = line.partition(" ")
            parts = rest.split()
            if tag in ("target", "esp", "free"):
                fields[tag] = rest.strip()
            elif tag == "entry" and rest:
                entries.append(rest)
            elif tag == "ref" and len(parts) == 2:
                refs.setdefault(parts[0], []).append(parts[1])
            elif tag in ("size", "uki") and len(parts) == 2:
                (sizes if tag == "size" else ukis)[parts[0]] = parse_int(parts[1], f"size of {parts[0]}")
            elif line.strip():
                raise UnparseableOutput(f"next boot probe: unexpected line {line[:120]!r}")
        if "target" not in fields or "esp" not in fields:
            raise UnparseableOutput(f"next boot probe: expected 'target' and 'esp' lines, got {output[:3]!r}")
        match = re.search(r"-(\d+)-link$", fields["target"])
        generation = int(match.group(1)) if match else None
        result = {"esp": fields["esp"] == "yes", "profile_target": fields["target"] or None,
                  "generation": generation, "loader": None, "entry": None, "missing_files": [],
                  "free_bytes": None, "needed_bytes": 0, "room_for_next": None}
        if not result["esp"]:
            return result
        result["free_bytes"] = parse_int(fields.get("free", ""), "ESP free bytes")
        generation_sizes = [sum(sizes.get(f, 0) for f in refs.get(e, [])) for e in entries]
        generation_sizes += list(ukis.values())
        result["needed_bytes"] = max(generation_sizes, default=0)
        result["room_for_next"] = result["free_bytes"] >= result["needed_bytes"]
        if generation is None:
            return result
        conf = f"nixos-generation-{generation}.conf"
        own_ukis = sorted(name for name in ukis if (m := _UKI.fullmatch(name))
                          and int(m.group(1)) == generation and not m.group(2))
        if conf in entries:
            result.update(loader="systemd-boot", entry=conf,
                          missing_files=[f for f in refs.get(conf, []) if f not in sizes])
            if not refs.get(conf):
                result["missing_files"] = ["(the entry names no linux/initrd file)"]
        elif own_ukis:
            good = [name for name in own_ukis if ukis[name] > 0]
            result.update(loader="lanzaboote", entry=(good or own_ukis)[-1],
                          missing_files=[] if good else [f"/EFI/Linux/{own_ukis[-1]} (empty)"])
        return result
