"""Small offline flakes (no inputs) for the controller-side tests, and the Nix environment they need.

Debian's nix-bin (Nix 2.8) evaluates them without a daemon, build users or network when
``build-users-group =`` and ``sandbox = false`` are set; the facts pass
``--extra-experimental-features 'nix-command flakes'`` themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NIX_CONFIG = "build-users-group =\nsandbox = false\nexperimental-features = nix-command flakes\n"

# One flake, one nixosConfiguration per documented cause. The configurations imitate the shape
# the checks read (config.networking.hostName, config.keystone.disko.device, ...) without nixpkgs.
FLAKE = """{
  description = "keystone-checks test flake (no inputs: evaluates offline)";
  outputs = { self }:
    let
      key = "@KEY@";
      base = name: {
        system.name = name;
        networking.hostName = name;
        keystone.disko.device = "/dev/vda";
        disko.devices = { };
        users.users.root.openssh.authorizedKeys.keys = [ key ];
        nixpkgs.hostPlatform.system = "@SYSTEM@";
      };
    in {
      nixosConfigurations = {
        test-server = { config = base "test-server"; };
        loop = let c = { config = c.config // { a = 1; }; }; in c;
        undef = import ./undef.nix;
        nohostname = { config = builtins.removeAttrs (base "nohostname") [ "networking" ]; };
        nomodules = { config = builtins.removeAttrs (base "nomodules") [ "disko" "keystone" ]; };
        aarch = { config = base "aarch" // { nixpkgs.hostPlatform.system = "@OTHER@"; }; };
      };
    };
}
"""
# Keystone v0.2+ (ncrmro/keystone tag v0.2.0, still so in v0.12.0): flake output
# nixosModules.operating-system imports disko + lanzaboote + ./modules/os, which declares
# keystone.os.{enable, storage.{enable,type,devices,mode}, users.<u>} (modules/os/default.nix) and turns
# keystone.os.users.<u>.authorizedKeys into users.users.<u>.openssh.authorizedKeys.keys on a normal user
# (modules/os/users.nix); root gets no key and sshd has PermitRootLogin prohibit-password (modules/os/ssh.nix).
# These configurations imitate the evaluated config of such a host, without nixpkgs.
FLAKE_V02 = """{
  description = "keystone-checks test flake, Keystone v0.2+ shape (no inputs: evaluates offline)";
  outputs = { self }:
    let
      key = "@KEY@";
      os = storage: { enable = true; storage = { enable = true; type = "zfs"; mode = "single"; } // storage; };
      base = name: storage: groups: {
        system.name = name;
        networking.hostName = name;
        keystone.os = os storage;
        disko.devices = { };
        users.users.root = { };
        users.users.alice = { isNormalUser = true; extraGroups = groups; openssh.authorizedKeys.keys = [ key ]; };
        nixpkgs.hostPlatform.system = "@SYSTEM@";
      };
    in {
      nixosConfigurations = {
        v02-server = { config = base "v02-server" { devices = [ "/dev/vda" ]; } [ "wheel" ]; };
        v02-nowheel = { config = base "v02-nowheel" { devices = [ "/dev/vda" ]; } [ ]; };
        v02-nodevices = { config = base "v02-nodevices" { devices = [ ]; } [ "wheel" ]; };
        v02-mirror-one-disk = { config = base "v02-mirror-one-disk" { devices = [ "/dev/vda" ]; mode = "mirror"; } [ "wheel" ]; };
      };
    };
}
"""
UNDEF = "{ config = { system.name = config.networking.hostName; }; }\n"
BAD_SYNTAX = "{\n  outputs = { self }: {\n    nixosConfigurations.x = ;\n  };\n}\n"


def require_nix() -> None:
    """Fail (not skip) with the fix when nix is missing: these tests are the controller checks' proof."""
    missing = [b for b in ("nix", "nix-instantiate") if not shutil.which(b)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: the controller-side tests need Nix "
                    "(`apt-get install nix-bin`, which .ci/run installs)")


def nix_env() -> dict[str, str]:
    return {"NIX_CONFIG": NIX_CONFIG}


def local_system() -> tuple[str, str]:
    machine = os.uname().machine
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    other = "aarch64-linux" if arch != "aarch64" else "x86_64-linux"
    return f"{arch}-linux", other


def make_keypair(directory: Path, name: str = "id_ed25519") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "op@laptop", "-f", str(key)], check=True)
    return key.with_suffix(".pub")


def make_flake(directory: Path, public_key: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    system, other = local_system()
    (directory / "flake.nix").write_text(FLAKE.replace("@KEY@", public_key.strip()).replace("@SYSTEM@", system)
                                         .replace("@OTHER@", other))
    (directory / "undef.nix").write_text(UNDEF)
    return directory


def make_bad_flake(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "flake.nix").write_text(BAD_SYNTAX)
    return directory


def make_flake_v02(directory: Path, public_key: str) -> Path:
    """An offline flake shaped like a Keystone v0.2+ configuration (keys on a wheel user, not root)."""
    directory.mkdir(parents=True, exist_ok=True)
    system, _ = local_system()
    (directory / "flake.nix").write_text(FLAKE_V02.replace("@KEY@", public_key.strip()).replace("@SYSTEM@", system))
    return directory
