"""Faults that bite at the next boot, for the Keystone-shaped guest (ksboot.py).

Stage 2 of a Keystone host never reads what its next boot needs: the key file in the closed
credstore, the hostid baked into the next generation's initrd, the boot entry or UKI on the
ESP, the pool's export state. Each fault here is injected where it happens in real life (on the
running deployed host, or on the installer an operator booted), then the guest reboots for real
and the lab records, in order (tests/lab/test_lab_ksboot_reboot.py):

1. ``before``: what the product's sweep said BEFORE the reboot (the goal: the ``next-boot``
   checks catch every fault here while the host still runs),
2. ``stop``: how the boot ended, read from the guest's serial console (the initrd's or the boot
   loader's own line), or that it reached stage 2 anyway (``stop=None``: a fallback),
3. ``after``: what ``keystone-checks run`` said about the host after the reboot,
4. ``recovery``: the recovery from the installer booted with the disk, and whether the guest
   then boots healthy with the data written before the fault intact.

A fault's expectations are what the catalog should say; a gap is written down here (``gap``), never
hidden by an empty expectation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The lab's credstore key slot (lab deviation, guest/ksboot/build.sh) opens the credstore here.
_OPEN_CREDSTORE = """cryptsetup open --key-file /etc/keystone-lab/credstore.key /dev/zvol/rpool/credstore kc-fault
mkdir -p /run/kc-fault-credstore
mount /dev/mapper/kc-fault /run/kc-fault-credstore
"""
_CLOSE_CREDSTORE = """umount /run/kc-fault-credstore
cryptsetup close kc-fault
"""


@dataclass(frozen=True)
class RebootFault:
    name: str
    description: str
    guide: str
    # Shell run as root on the running deployed guest (empty when the fault happens on the installer).
    inject: str = ""
    # Shell run on the installer booted with the healthy disk; the installer is then reset without
    # an export, as `reboot` on the ISO does.
    inject_on_installer: str = ""
    # "uki": the guest is first turned into the lanzaboote-style flavour (guest/ksboot/to-uki.sh).
    flavour: str = "entries"
    # The playbook run BEFORE the reboot: the sweep on a deployed host, before-reboot on an installer.
    before_playbook: str = "sweep.py"
    # Checks that must fail BEFORE the reboot. Empty only with `gap` saying why nothing can.
    caught_before: tuple[str, ...] = ()
    gap: str = ""
    # Regex of the line the boot stops with (serial console); None: the boot reaches stage 2.
    stop: str | None = None
    # After the reboot, a stopped boot is "unreachable"; a fallback boot is reachable and these fail.
    caught_after: tuple[str, ...] = ()
    # Recovery from the installer: playbook + data, the expected outcome per check, a text the
    # report must contain. None: no recovery playbook applies (the guide's remedy is manual).
    recovery: str | None = None
    recovery_data: tuple[str, ...] = ()
    recovery_outcomes: dict[str, str] = field(default_factory=dict)
    recovery_says: str = ""
    # The guest boots healthy after the recovery (a fix exists and ran).
    repaired: bool = False


def _refused_by_the_bare_import_then_exported() -> dict[str, Any]:
    """The initrd's import without -f refuses the pool; from the installer the boot phase exports
    it cleanly (force import, scrub, export), and an exported pool imports under any hostid."""
    return {"stop": r"Failed to start import-rpool-bare\.service", "recovery": "boot.py",
            "recovery_data": ("fix=true", "allow_force_import=true"),
            "recovery_outcomes": {"pool-exported-cleanly": "fixed"}, "repaired": True}


def _emergency_access_refuses(says: str) -> dict[str, Any]:
    """No fix exists (the guide's remedy is manual): from the installer, the emergency-access
    playbook imports the pool, cannot unlock the system, names why (``says``) and mounts nothing."""
    return {"recovery": "fix/emergency-access.py", "recovery_data": ("allow_force_import=true",),
            "recovery_outcomes": {"recovery-system-mounted": "fix-failed"}, "recovery_says": says}


REBOOT_FAULTS: list[RebootFault] = [
    RebootFault(
        name="next-boot-hostid-changed",
        description="networking.hostId changed and the next generation installed (nixos-rebuild boot): "
                    "its initrd and etc/hostid carry 4b4400ff, the pool recorded the old hostid",
        guide="ZFS Pool Not Imported",
        inject="HOSTID=4b4400ff sh /usr/share/keystone-lab/ksboot/install-generation.sh 4 >/dev/null\nsync\n",
        caught_before=("next-boot-hostid-matches-pool",),
        **_refused_by_the_bare_import_then_exported(),
    ),
    RebootFault(
        name="pool-left-imported-by-installer",
        description="the installer imported rpool (zpool import -f -N -R /mnt) and rebooted without "
                    "exporting it: the pool records the installer's hostid",
        guide="System Won't Boot After Deployment (ZFS pool not exported cleanly)",
        inject_on_installer="zpool import -f -N -R /mnt rpool\nsync\n",
        before_playbook="before-reboot.py",
        caught_before=("target-disk-no-imported-pool",),
        # The same ISO booted again sees its own hostid on the pool: `zpool import` shows no
        # warning; the label's state (active) is what says it was never exported.
        **_refused_by_the_bare_import_then_exported(),
    ),
    RebootFault(
        name="next-boot-initrd-missing",
        description="the initrd of the entry systemd-boot boots by default is gone from the ESP's EFI/nixos/",
        guide="System Won't Boot After Deployment (Corrupted boot files)",
        # the default entry, not a fixed generation: a chain's earlier fault may have added one
        inject="entry=/boot/loader/entries/$(awk '$1==\"default\" {print $2}' /boot/loader/loader.conf)\n"
               "rm \"/boot$(awk '$1==\"initrd\" {print $2}' \"$entry\")\"\nsync\n",
        caught_before=("next-boot-generation-on-esp",),
        stop=r"^Error preparing initrd: Not Found$",  # systemd-boot 252; OVMF then tries PXE
    ),
    RebootFault(
        name="next-boot-uki-missing",
        description="lanzaboote-style ESP: the UKI of the generation the profile points at is gone",
        guide="System Won't Boot After Deployment (Corrupted boot files)",
        flavour="uki",
        inject="rm \"$(ls /boot/EFI/Linux/nixos-generation-*.efi | sort -V | tail -n 1)\"\nsync\n",
        caught_before=("next-boot-generation-on-esp",),
        stop=None,  # systemd-boot boots the newest UKI left (generation 2 on a fresh guest)
        caught_after=("nix-running-newest-generation",),
    ),
    RebootFault(
        name="esp-emptied",
        description="the ESP lost its boot loader and entries (EFI/ and loader/ removed)",
        guide="System Won't Boot After Deployment (Corrupted boot files)",
        inject="rm -rf /boot/EFI /boot/loader\nsync\n",
        caught_before=("esp-populated",),
        stop=r'BdsDxe: failed to (load|start) Boot\d+ "UEFI Misc Device"',
    ),
    RebootFault(
        name="credstore-key-file-removed",
        description="the pool's key file zfs-sysroot.mount removed from the (closed) credstore",
        guide="Cannot Access Encrypted Datasets",
        inject="set -eu\n" + _OPEN_CREDSTORE + "rm /run/kc-fault-credstore/zfs-sysroot.mount\n" + _CLOSE_CREDSTORE
               + "sync\n",
        # Stage 2 never opens the credstore: only the opt-in check with the operator's passphrase
        # (the lab inventory sets luks_passphrase_file) can look inside while the host runs.
        caught_before=("next-boot-credstore-key",),
        stop=r"Failed to start rpool-load-key\.service",
        **_emergency_access_refuses("key file /etc/credstore/zfs-sysroot.mount is missing"),
    ),
    RebootFault(
        name="credstore-header-wiped",
        description="the credstore volume's LUKS header wiped (wipefs -a on the closed zvol rpool/credstore)",
        guide="ZFS Pool Not Imported (Credstore not unlocked)",
        inject="wipefs -a -q /dev/zvol/rpool/credstore\nsync\n",
        caught_before=("credstore-luks-header",),
        stop=r"Failed to start systemd-cryptsetup@credstore\.service",
        **_emergency_access_refuses("not a valid LUKS device"),
    ),
]


# The lanzaboote-style flavour's own test (tests/lab/test_lab_ksboot_reboot.py) converts a guest
# and reboots it into its UKIs; the faults of that flavour run after it on the same guest (one
# conversion, ≈ 4 min under TCG, for all of them): the lab's scheduler keeps them on one worker
# (tests/conftest.py). Every other fault starts from the saved running state (≈ 10 s) or the
# healthy guest a repair left, so it needs no particular worker.
UKI_CHAIN = "ks-uki"


def get(name: str) -> RebootFault:
    for f in REBOOT_FAULTS:
        if f.name == name:
            return f
    raise KeyError(name)
