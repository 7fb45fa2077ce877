"""Named, scriptable fault injections for lab guests.

Each fault says which saved state it starts from (``state``; the inventory
role follows from it), what it does (``inject``, a shell script run in the
guest with lib.sh and DISK/POOL/PASSFILE preloaded), and how to prove it is
really present (``verify``, exit 0 iff the fault is there).  Some faults
change the inventory instead of (or as well as) the guest (``data``).

Faults that cut the normal ssh path (sshd stopped, port 22 dropped, root's
key gone or mangled) set ``control``: the lab first starts its own control
sshd on guest port 2222 (separate unit, separate authorized-keys copy, an nft
accept rule commented "keystone-lab control channel") and runs verify there.
Faults whose inject contains ``#@reboot`` hard-reboot the guest mid-way.
``hard_kill`` marks faults that can leave the guest wedged (ZFS 2.3 export
hang): tests must kill the clone rather than reuse it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keystone_checks.lab import recipe
from keystone_checks.lab.errors import LabError


@dataclass(frozen=True)
class Fault:
    name: str
    state: str  # saved state to start from: installer | installed | deployed | deployed-starting
    description: str
    inject: str
    verify: str
    data: dict = field(default_factory=dict)  # inventory host-data overrides
    control: bool = False  # verify via the lab control sshd (port 2222)
    hard_kill: bool = False
    variants: tuple[str, ...] = ("zfs21", "zfs23")
    guide: str = ""  # seed section the fault comes from

    @property
    def role(self) -> str:
        return recipe.STATES[self.state].role


_IMPORT_AT_MNT = 'ks_import_unlock /mnt "$PASSFILE"\nmount "$(ks_part 1)" /mnt/boot\n'
_CLOSE_CREDSTORE = "umount /etc/credstore\ncryptsetup close credstore\n"

FAULTS: list[Fault] = [
    # ---- installer (live ISO, blank target) ----------------------------------------
    Fault("zfs-module-not-loaded", "installer", "zfs kernel module unloaded on the installer",
          "modprobe -r zfs\n", "! grep -q '^zfs ' /proc/modules",
          guide='"ZFS modules not available"'),
    Fault("leftover-pool", "installer", "an exported pool 'rpool' from an earlier install on the target disk",
          "zpool create -f rpool \"$DISK\"\nzpool export rpool\n",
          "zpool import 2>/dev/null | grep -q 'pool: rpool$' && ! zpool list rpool >/dev/null 2>&1",
          guide="Disk Formatting Fails"),
    Fault("leftover-partition-table", "installer", "a GPT with two partitions left on the target disk",
          "sgdisk -n1:1M:+512M -t1:EF00 -n2:0:0 -t2:8300 \"$DISK\" >/dev/null\nudevadm settle\n",
          "sgdisk -p \"$DISK\" | grep -qE '^ +2 '", guide="Disk Formatting Fails"),
    Fault("fs-mounted-on-target", "installer", "ext4 on the target disk mounted at /mnt",
          "sgdisk -n1:1M:+256M -t1:8300 \"$DISK\" >/dev/null\nudevadm settle\n"
          "mkfs.ext4 -q -F \"$(ks_part 1)\"\nmkdir -p /mnt\nmount \"$(ks_part 1)\" /mnt\n",
          "findmnt -n -S \"$(ks_part 1)\" >/dev/null", guide="Disk Formatting Fails"),
    Fault("swap-on-target", "installer", "swap active on a partition of the target disk",
          "sgdisk -n1:1M:+256M -t1:8200 \"$DISK\" >/dev/null\nudevadm settle\n"
          "mkswap -q \"$(ks_part 1)\" >/dev/null\nswapon \"$(ks_part 1)\"\n",
          "grep -q \"^$(ks_part 1) \" /proc/swaps", guide="Disk Formatting Fails"),
    Fault("target-disk-wrong", "installer", "inventory names a disk that does not exist (/dev/sda)",
          "true\n", "! test -b /dev/sda", data={"disk": "/dev/sda"},
          guide='"disk device not found" during deployment'),
    Fault("installer-failed-unit", "installer", "a systemd unit that exited 1 (system degraded)",
          "ks_failed_unit\n", "systemctl is-failed -q keystone-lab-broken.service",
          guide="Services fail after deploy"),
    # ---- installed (installer after the install, before/at pool export) -----------------
    Fault("credstore-open-at-export", "installed",
          "pool imported at /mnt with the credstore LUKS mapping open and mounted: export fails "
          "(ZFS 2.1: pool is busy) or hangs (ZFS 2.3)",
          _IMPORT_AT_MNT,
          "cryptsetup status credstore >/dev/null && zpool list rpool >/dev/null",
          guide="Deployment Hangs at Pool Export / \"pool export failed\""),
    Fault("pool-left-imported", "installed", "install finished but the pool was never exported",
          _IMPORT_AT_MNT + _CLOSE_CREDSTORE,
          "zpool list rpool >/dev/null && ! cryptsetup status credstore >/dev/null 2>&1",
          guide='"pool export failed" Error'),
    Fault("dataset-busy-under-mnt", "installed",
          "a process keeps /mnt/srv/keystone/var busy, so export cannot unmount it",
          _IMPORT_AT_MNT + _CLOSE_CREDSTORE +
          "systemd-run --quiet --unit=keystone-lab-busy -p WorkingDirectory=/mnt/srv/keystone/var "
          "/bin/sleep infinity\nsleep 1\n",
          "fuser -m /mnt/srv/keystone/var >/dev/null 2>&1", guide='"pool export failed" Error'),
    Fault("pool-imported-other-host", "installed-foreign",
          "pool last imported by another host (hostid deadbeef) and never exported "
          "(a saved state: building it needs a hard reboot)",
          "true\n", "zpool import 2>&1 | grep -q 'another system'", guide="ZFS Pool Not Imported"),
    Fault("export-hang-credstore-open", "installed",
          "zpool export started with the credstore open: hangs in D state on ZFS 2.3",
          # as nixos-anywhere does it (umount -R /mnt, then export): with the ESP still on the root
          # dataset the export would fail at once on /mnt instead of hanging on the credstore
          _IMPORT_AT_MNT + "umount /mnt/boot\n"
          "systemd-run --quiet --unit=keystone-lab-export zpool export rpool\nsleep 5\n",
          "systemctl is-active -q keystone-lab-export.service && "
          "ps -o stat= -C zpool | grep -q D", hard_kill=True, variants=("zfs23",),
          guide="Deployment Hangs at Pool Export"),
    # ---- deployed (running Keystone server) ----------------------------------------
    Fault("pool-not-imported", "deployed", "rpool exported (credstore closed first)",
          _CLOSE_CREDSTORE + "zpool export rpool\n",
          "! zpool list rpool >/dev/null 2>&1", guide="ZFS Pool Not Imported"),
    Fault("key-not-loaded", "deployed", "rpool/crypt datasets unmounted and the key unloaded",
          "zfs unmount rpool/crypt/system/nix\nzfs unmount rpool/crypt/system/var\n"
          "zfs unmount rpool/crypt/system\nzfs unload-key rpool/crypt\n",
          "zfs get -H -o value keystatus rpool/crypt | grep -qx unavailable",
          guide="Cannot Access Encrypted Datasets"),
    # A closed credstore alone is healthy (the key is only read when it is loaded, at boot); the
    # guide's problem is a closed credstore while the key still has to be loaded.
    Fault("credstore-inactive", "deployed",
          "credstore unmounted and its LUKS mapping closed while rpool/crypt is locked",
          "zfs unmount rpool/crypt/system/nix\nzfs unmount rpool/crypt/system/var\n"
          "zfs unmount rpool/crypt/system\nzfs unload-key rpool/crypt\n" + _CLOSE_CREDSTORE,
          "! cryptsetup status credstore >/dev/null 2>&1 && "
          "zfs get -H -o value keystatus rpool/crypt | grep -qx unavailable",
          guide="ZFS Pool Not Imported / Credstore not unlocked"),
    Fault("credstore-missing-key", "deployed", "zfs-sysroot.mount missing from /etc/credstore "
          "(moved to /root/lab-backup/)",
          "mkdir -p /root/lab-backup\nmv /etc/credstore/zfs-sysroot.mount /root/lab-backup/\n",
          "! test -e /etc/credstore/zfs-sysroot.mount", guide="Cannot Access Encrypted Datasets"),
    Fault("sshd-stopped", "deployed", "ssh.service stopped (lab keeps a control sshd on 2222)",
          "ks_control_sshd\nsystemctl stop ssh.service ssh.socket\n"
          "# stopping ssh.service removes /run/sshd (its RuntimeDirectory); the control sshd needs it\n"
          "mkdir -p /run/sshd && chmod 0755 /run/sshd\n",
          "! systemctl is-active -q ssh.service", control=True, guide="Can't SSH After First Boot"),
    Fault("firewall-drops-ssh", "deployed", "nftables input no longer accepts tcp/22 (policy drop)",
          "ks_control_sshd\nh=$(nft -a list chain inet filter input | "
          "sed -n 's/.*tcp dport 22 accept # handle \\([0-9]*\\)$/\\1/p')\n"
          "nft delete rule inet filter input handle \"$h\"\n",
          "! nft list chain inet filter input | grep -q 'tcp dport 22 accept'", control=True,
          guide="Firewall blocking SSH"),
    Fault("root-key-missing", "deployed", "root's authorized_keys removed",
          "ks_control_sshd\nmkdir -p /root/lab-backup\nmv /root/.ssh/authorized_keys /root/lab-backup/\n",
          "! test -s /root/.ssh/authorized_keys", control=True, guide="SSH Access Fails After Deployment"),
    Fault("root-key-mangled", "deployed", "root's key split by a line break in the middle",
          "ks_control_sshd\nmkdir -p /root/lab-backup\ncp /root/.ssh/authorized_keys /root/lab-backup/\n"
          "python3 - <<'PY'\np = '/root/.ssh/authorized_keys'\nk = open(p).read().strip()\n"
          "open(p, 'w').write(k[:60] + '\\n' + k[60:] + '\\n')\nPY\n",
          "! ssh-keygen -l -f /root/.ssh/authorized_keys >/dev/null 2>&1", control=True,
          guide="SSH Access Fails After Deployment"),
    Fault("failed-unit", "deployed", "a systemd unit that exited 1 (system degraded)",
          "ks_failed_unit\n", "systemctl is-failed -q keystone-lab-broken.service",
          guide="Services fail after deploy"),
    Fault("scrub-running", "deployed", "a scrub in progress (held by zfs_scan_suspend_progress=1)",
          "echo 1 > /sys/module/zfs/parameters/zfs_scan_suspend_progress\nzpool scrub rpool\n",
          "zpool status rpool | grep -q 'scrub in progress'", guide="System Slow After Deployment"),
    # The garbage is a store path nothing refers to (an old build output): what
    # nix-collect-garbage frees. The lab lowers min_nix_free_bytes to 32 MiB for this
    # fault; the quota leaves 8 MiB, the garbage is 64 MiB.
    Fault("nix-nearly-full", "deployed",
          "/nix (rpool/crypt/system/nix) nearly full of unreferenced store paths (quota: 8 MiB left)",
          "mkdir -p /var/lib/lab/garbage\nhead -c 67108864 /dev/urandom > /var/lib/lab/garbage/blob\n"
          "nix-store --add /var/lib/lab/garbage >/dev/null\nrm -rf /var/lib/lab/garbage\n"
          "sync\nzpool sync rpool\n"
          "used=$(zfs get -Hp -o value used rpool/crypt/system/nix)\n"
          "zfs set quota=$((used + 8388608)) rpool/crypt/system/nix\n",
          "[ \"$(df -B1 --output=avail /nix | tail -n 1 | tr -dc 0-9)\" -lt 33554432 ]",
          data={"min_nix_free_bytes": 33554432}, guide='"out of disk space"'),
    Fault("running-not-newest", "deployed",
          "a 4th system generation exists but /run/current-system still points at the 3rd",
          # as `nixos-rebuild boot` leaves it: the new generation and its boot entry, not yet booted
          "kc_path=$(ks_new_generation 4)\n"
          "kc_k=$(ls /boot/EFI/nixos | sed -n 's/^kernel-\\(.*\\)\\.efi$/\\1/p' | head -n 1)\n"
          "printf 'title NixOS\\nversion Generation 4\\nlinux /EFI/nixos/kernel-%s.efi\\n"
          "initrd /EFI/nixos/initrd-%s.efi\\noptions init=%s/init root=fstab\\n' \"$kc_k\" \"$kc_k\" \"$kc_path\" "
          "> /boot/loader/entries/nixos-generation-4.conf\n",
          "[ \"$(readlink -f /run/current-system)\" != \"$(readlink -f /nix/var/nix/profiles/system)\" ]",
          guide="Generation not appearing"),
    Fault("single-generation", "deployed", "old system generations deleted: no rollback target",
          "nix-env -p /nix/var/nix/profiles/system --delete-generations old >/dev/null\n",
          "[ \"$(nix-env --list-generations -p /nix/var/nix/profiles/system | wc -l)\" -eq 1 ]",
          guide="Locked out (can't SSH) / boot previous generation"),
    Fault("arc-max-above-ram", "deployed", "zfs_arc_max set above MemTotal (2x RAM)",
          "mem=$(awk '/^MemTotal:/ {print $2 * 1024}' /proc/meminfo)\n"
          "echo \"options zfs zfs_arc_max=$((mem * 2))\" > /etc/modprobe.d/zfs-arc.conf\n"
          "echo $((mem * 2)) > /sys/module/zfs/parameters/zfs_arc_max\n",
          "[ \"$(cat /sys/module/zfs/parameters/zfs_arc_max)\" -gt "
          "\"$(awk '/^MemTotal:/ {print $2 * 1024}' /proc/meminfo)\" ]",
          guide="System Slow After Deployment"),
    Fault("system-starting", "deployed-starting",
          "boot not finished: keystone-lab-gate.service blocks multi-user.target",
          "true\n", "[ \"$(systemctl is-system-running)\" = starting ]",
          guide="Can't SSH After First Boot (wait for boot)"),
]

_BY_NAME = {f.name: f for f in FAULTS}


def get(name: str) -> Fault:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise LabError(f"unknown fault {name!r}; known: {', '.join(sorted(_BY_NAME))}") from None


def for_variant(variant: str) -> list[Fault]:
    return [f for f in FAULTS if variant in f.variants]


def inject(guest, fault: Fault, variant: recipe.Variant | None = None) -> dict:
    """Inject ``fault`` into a running clone, prove it is there, return the
    inventory data overrides.  Raises LabError if the fault did not take."""
    from keystone_checks.lab import snapshot

    variant = variant or getattr(guest, "variant", None) or recipe.VARIANTS["zfs21"]
    prelude = snapshot.guest_prelude(variant, guest_disk(fault), "faults.sh")
    rc, out, err = guest.run_phased(fault.inject, prelude=prelude, timeout=300)
    if rc != 0:
        raise LabError(f"injecting {fault.name} failed (exit {rc}): {(err or out).strip()[-1500:]}")
    rc, out, err = verify(guest, fault, variant)
    if rc != 0:
        raise LabError(f"fault {fault.name} injected but verify failed (exit {rc}): {(err or out).strip()}")
    return dict(fault.data)


def verify(guest, fault: Fault, variant: recipe.Variant | None = None) -> tuple[int, str, str]:
    from keystone_checks.lab import snapshot

    variant = variant or getattr(guest, "variant", None) or recipe.VARIANTS["zfs21"]
    script = snapshot.guest_prelude(variant, guest_disk(fault), "faults.sh") + "set +e\n" + fault.verify + "\n"
    port = guest.ctl_port if fault.control else None
    return guest.ssh("sh -s", timeout=60, stdin=script, port=port)


def guest_disk(fault: Fault) -> str:
    """Scripts always act on the real disk, even when the inventory lies."""
    return "/dev/vda"


# Catalog checks (checks/**.yaml ids) each fault is expected to trip: the matrix test asserts the
# phase run fails exactly these (info-severity notes aside). One fault may trip several checks when
# each states a true, separately fixable problem (an install left mounted: the credstore open AND
# the ESP still mounted at /mnt/boot); checks that only restate another's problem wait for it
# (depends_on) and are evaluated once its fix worked.
EXPECTED_CHECKS: dict[str, tuple[str, ...]] = {
    "zfs-module-not-loaded": ("zfs-module-loaded",),
    "leftover-pool": ("target-disk-no-old-signatures",),
    "leftover-partition-table": ("target-disk-no-old-signatures",),
    "fs-mounted-on-target": ("target-disk-not-mounted", "no-datasets-mounted-under-mnt"),
    "swap-on-target": ("target-disk-no-active-swap",),
    "target-disk-wrong": ("target-disk-present",),
    "installer-failed-unit": ("no-failed-units",),
    "credstore-open-at-export": ("credstore-closed-before-export", "no-datasets-mounted-under-mnt"),
    "pool-left-imported": ("no-datasets-mounted-under-mnt",),
    "dataset-busy-under-mnt": ("no-processes-using-mnt",),
    "pool-imported-other-host": ("pool-exported-cleanly",),
    # the hung export has already unmounted the datasets: only the open credstore is left to see
    "export-hang-credstore-open": ("credstore-closed-before-export",),
    "pool-not-imported": ("pool-imported",),
    "key-not-loaded": ("crypt-keys-loaded",),
    "credstore-inactive": ("credstore-unlocked",),
    "credstore-missing-key": ("key-file-present",),
    "sshd-stopped": ("target-sshd-answers",),
    "firewall-drops-ssh": ("target-ssh-not-filtered",),
    "root-key-missing": ("target-ssh-key-accepted",),
    "root-key-mangled": ("target-ssh-key-accepted",),
    "failed-unit": ("no-failed-units",),
    "scrub-running": ("no-scrub-running",),
    "nix-nearly-full": ("nix-store-free-space",),
    "running-not-newest": ("nix-running-newest-generation",),
    "single-generation": ("nix-previous-generation-exists",),
    "arc-max-above-ram": ("arc-fits-ram",),
    "system-starting": ("system-finished-booting",),
}
assert set(EXPECTED_CHECKS) == set(_BY_NAME), "every fault needs its expected checks"

# Faults of the Debian guest that the Keystone-shaped guest made obsolete: they model a state real
# Keystone hosts are never in (the pool, key and credstore handled in stage 2), or the same check
# and fix now run through a real reboot (keystone_checks/lab/reboot_faults.py). Marked `superseded`
# in the matrix: a run that includes the Keystone-shaped guest leaves them out with
# `-m "lab and not superseded"` (the table then says why), as CI does (README "CI time").
SUPERSEDED: dict[str, str] = {
    "pool-not-imported": "a running Keystone host's root is on rpool, so it never runs with the pool exported "
                         "(the Debian guest's root is not on the pool); the import is exercised through real "
                         "reboots by `next-boot-hostid-changed` and `pool-left-imported-by-installer`",
    "key-not-loaded": "a running Keystone host's root is on rpool/crypt, so it never runs with the key unloaded; "
                      "the key at the next boot is `credstore-key-file-removed`",
    "credstore-inactive": "on Keystone the credstore is closed in stage 2 (the initrd closes it before "
                          "switch-root: the Keystone-shaped guest sweeps healthy that way); unlocking in stage 2 "
                          "is the Debian guest's, not a real host's",
    "credstore-missing-key": "stage 2 of a Keystone host never has the credstore mounted; the key file lost from "
                             "the closed credstore runs through a real reboot as `credstore-key-file-removed`",
    "pool-imported-other-host": "the same check (`pool-exported-cleanly`) and fix (zfs.force_import_scrub_export) "
                                "run through real reboots of the Keystone-shaped guest (`next-boot-hostid-changed`, "
                                "`pool-left-imported-by-installer`), which then boots",
}
assert set(SUPERSEDED) <= set(_BY_NAME)
