"""Boot: is this the Keystone installer ISO, and is the ESP (systemd-boot) populated and intact."""

from __future__ import annotations

from ..errors import UnparseableOutput
from .base import KeystoneFact, labelled_lines, parse_int, shell_quote

LIVE_ROOT_FSTYPES = ("tmpfs", "overlay", "squashfs", "rootfs", "iso9660")


class LiveMedia(KeystoneFact):
    """Signs that the host runs from the Keystone live ISO: the marker file (host data
    ``installer_marker``), the root filesystem type (``findmnt -n -o FSTYPE /``: tmpfs, overlay or
    squashfs on a live ISO), and ``/iso`` or ``/nix/.ro-store`` mounted (NixOS ISO layout).

    Arguments:
        marker: the marker file path

    Example: ``{"marker": true, "root_fstype": "tmpfs", "live_root": true, "iso_mounted": true,
    "ro_store_mounted": true, "booted_from_iso": true}``
    """

    def command(self, marker):
        q = shell_quote(marker)
        return (f"if [ -e {q} ]; then echo 'marker yes'; else echo 'marker no'; fi; "
                "echo \"root $(findmnt -n -o FSTYPE / 2>/dev/null || awk '$2==\"/\" {t=$3} END {print t}' /proc/mounts)\"; "
                "awk '$2==\"/iso\" {print \"iso yes\"} $2==\"/nix/.ro-store\" {print \"rostore yes\"}' /proc/mounts")

    def process(self, output):
        fields = labelled_lines(output, ("marker", "root"))
        root = fields["root"] or None
        live = root in LIVE_ROOT_FSTYPES
        iso, ro = fields.get("iso") == "yes", fields.get("rostore") == "yes"
        marker = fields["marker"] == "yes"
        return {"marker": marker, "root_fstype": root, "live_root": live, "iso_mounted": iso,
                "ro_store_mounted": ro, "booted_from_iso": marker or (live and (iso or ro))}


class EspContents(KeystoneFact):
    """The EFI system partition as systemd-boot needs it: mounted, ``EFI/`` and
    ``loader/entries/`` non-empty, and every entry's ``linux``/``initrd`` file present on the ESP.
    Reads only the small loader entry files.

    Arguments:
        path: ESP mount point (host data ``boot_mount``; ``/mnt/boot`` from the ISO)

    Example: ``{"mounted": true, "fstype": "vfat", "efi_files": 4, "entries": 3, "broken_entries":
    [{"entry": "nixos-generation-3.conf", "missing": ["/EFI/nixos/abc-initrd.efi"]}]}``
    """

    def command(self, path):
        q = shell_quote(path)
        # findmnt, find | wc and one awk over every entry (it was one awk per entry and a second pass):
        # host CPU is mostly process creation.
        return (f"cd {q} 2>/dev/null || {{ echo 'missing'; exit 0; }}; "
                f"echo \"fstype $(findmnt -n -o FSTYPE --mountpoint {q} 2>/dev/null)\"; "
                "echo \"efi $(find EFI -type f 2>/dev/null | wc -l)\"; "
                # entries: every *.conf name; references: from the regular files (or links to one)
                "kc_n=0; set --; for kc_e in loader/entries/*.conf; do [ -e \"$kc_e\" ] || [ -L \"$kc_e\" ] || continue; "
                "kc_n=$((kc_n + 1)); [ -f \"$kc_e\" ] && set -- \"$@\" \"$kc_e\"; done; echo \"entries $kc_n\"; "
                "kc_r=; [ $# -gt 0 ] && kc_r=$(awk '$1==\"linux\"||$1==\"initrd\"||$1==\"efi\" "
                "{e = FILENAME; sub(/.*\\//, \"\", e); print \"ref\", e, $2}' \"$@\"); "
                "[ -n \"$kc_r\" ] && printf '%s\\n' \"$kc_r\"; echo '--exists'; "
                # "ref ENTRY PATH" triples (a line that is not one makes the output unparseable anyway)
                "set -f; set -- $kc_r; while [ $# -ge 3 ]; do [ -e \".$3\" ] && echo \"ok $3\"; shift 3; done; exit 0")

    def process(self, output):
        if output and output[0].strip() == "missing":
            return {"exists": False, "mounted": False, "fstype": None, "efi_files": 0, "entries": 0, "broken_entries": []}
        fields, refs, present, in_exists = {}, [], set(), False
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
            else:
                fields[parts[0]] = parts[1] if len(parts) > 1 else ""
        if "efi" not in fields or "entries" not in fields:
            raise UnparseableOutput("expected 'efi' and 'entries' counts")
        broken: dict[str, list[str]] = {}
        for entry, ref in refs:
            if ref not in present:
                broken.setdefault(entry, []).append(ref)
        return {"exists": True, "mounted": bool(fields.get("fstype")), "fstype": fields.get("fstype") or None,
                "efi_files": parse_int(fields["efi"], "EFI file count"),
                "entries": parse_int(fields["entries"], "loader entry count"),
                "broken_entries": [{"entry": e, "missing": m} for e, m in sorted(broken.items())]}
