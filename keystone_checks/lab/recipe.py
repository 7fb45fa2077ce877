"""The guest image recipe: packages, config files and scripts, and its hash.

Everything that changes the built root disk is listed here (or in
``guest/`` files read from here) so that :func:`base_hash` changes exactly when
a rebuild is needed.  Role set-up scripts get their own hash
(:func:`role_hash`) so editing the deployed layout does not rebuild the 5-minute
root image.  No archive host name is ever written here: the mirror comes from
the build machine's apt configuration at build time (see ``build.mirrors``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

GUEST_DIR = Path(__file__).resolve().parent / "guest"
SUITE = "bookworm"
ROOT_LABEL = "kcroot"
ROOT_SIZE = "6G"
GUEST_MEM_MB = 1024
TEST_DISK_SIZE = "20G"

PACKAGES = [
    # boot + init
    "linux-image-amd64", "linux-headers-amd64", "initramfs-tools", "systemd", "systemd-sysv",
    "udev", "dbus", "kmod", "systemd-boot",
    # storage
    "zfs-dkms", "zfsutils-linux", "cryptsetup", "cryptsetup-bin", "gdisk", "dosfstools",
    "e2fsprogs", "util-linux", "squashfs-tools",
    # remote access + firewall
    "openssh-server", "nftables", "iproute2", "netbase",
    # inspection tools the checks call
    "lsof", "psmisc", "procps", "coreutils", "python3", "less",
    # nix (offline, see etc/nix/nix.conf)
    "nix-bin",
]

# ZFS 2.3 comes from backports; these packages must be pinned to it.
BACKPORTS_PIN = """\
Package: *zfs* *zpool* libnvpair3linux libuutil3linux
Pin: release n=bookworm-backports
Pin-Priority: 990
"""


@dataclass(frozen=True)
class Variant:
    """One ZFS flavour of the image."""

    name: str  # "zfs21" / "zfs23": used in paths and fixture directories
    label: str  # human name
    backports: bool
    extra: dict = field(default_factory=dict)


VARIANTS = {
    "zfs21": Variant("zfs21", "ZFS 2.1 (bookworm contrib)", backports=False),
    "zfs23": Variant("zfs23", "ZFS 2.3 (bookworm-backports)", backports=True),
}


def config_files() -> dict[str, str]:
    """Guest path -> content for every file the image ships in addition to packages."""
    files = {}
    root = GUEST_DIR / "rootfs"
    for p in sorted(root.rglob("*")):
        if p.is_file():
            files["/" + str(p.relative_to(root))] = p.read_text()
    return files


def guest_script(name: str) -> str:
    return (GUEST_DIR / name).read_text()


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def base_hash(variant: Variant) -> str:
    return _digest({
        "suite": SUITE, "packages": PACKAGES, "pin": BACKPORTS_PIN if variant.backports else "",
        "variant": variant.name, "files": config_files(), "customize": guest_script("customize.sh"),
        "root": [ROOT_LABEL, ROOT_SIZE], "format": 1,
    })


@dataclass(frozen=True)
class State:
    """A saved guest state.  ``role`` is what the inventory says; ``parent`` is
    the state it is derived from (None: cold boot with a blank test disk)."""

    name: str
    role: str
    parent: str | None
    description: str
    # False when the lab data cannot be read without changing the state (a
    # foreign pool needs `import -f`): its checksum is inherited from the parent.
    readable: bool = True


STATES = {
    "installer": State("installer", "installer", None,
                       "installer ISO stand-in: /etc/keystone-installer, /iso mounted, blank /dev/vda"),
    "installed": State("installed", "installer", "installer",
                       "installer after a clean install: Keystone layout on /dev/vda, pool exported, "
                       "credstore closed"),
    "installed-foreign": State("installed-foreign", "installer", "installed",
                               "installed, but the pool was last imported by another host "
                               "(hostid deadbeef) and never exported", readable=False),
    "deployed": State("deployed", "deployed", None,
                      "running Keystone server: rpool imported, credstore open at /etc/credstore, "
                      "key loaded, ESP at /boot, /nix on ZFS, 3 system generations"),
    "deployed-starting": State("deployed-starting", "deployed", "deployed",
                               "deployed host rebooted with a boot job that never finishes: "
                               "systemctl is-system-running says 'starting'"),
}


def state_hash(variant: Variant, state: str) -> str:
    st = STATES[state]
    return _digest({"base": base_hash(variant), "state": state, "role": st.role,
                    "parent": state_hash(variant, st.parent) if st.parent else None,
                    "setup": guest_script(f"setup-{state}.sh"), "common": guest_script("lib.sh"),
                    "mem": GUEST_MEM_MB, "disk": TEST_DISK_SIZE})
