"""Build the guest root disk with mmdebstrap (no network in the guest, ever).

The result, under ``cache_root()/<base-hash>/``:
``root.qcow2`` (ext4, label kcroot), ``vmlinuz``, ``initrd.img``, the lab ssh
key pair ``ssh/id_ed25519`` (its public half is baked in as root's key) and
``manifest.json`` (written last: its presence means the build is complete).
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from keystone_checks.lab import recipe
from keystone_checks.lab.errors import SETUP_HINT, LabError
from keystone_checks.lab.paths import build_lock, cache_root

RUN_TOOLS = ["qemu-system-x86_64", "qemu-img", "zstd", "ssh"]
HOST_TOOLS = RUN_TOOLS + ["mmdebstrap", "mkfs.ext4", "ssh-keygen"]


def require_tools(tools=HOST_TOOLS) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise LabError(f"missing host tools: {', '.join(missing)}; {SETUP_HINT}")


def image_dir(variant: recipe.Variant) -> Path:
    return cache_root() / f"{variant.name}-{recipe.base_hash(variant)}"


def manifest(variant: recipe.Variant) -> dict | None:
    path = image_dir(variant) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


def _sources_entries() -> list[tuple[str, str]]:
    """(uri, suite) pairs from this machine's apt configuration (deb822 + legacy)."""
    out = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", Path(path).read_text()):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.split()
            if "deb" not in fields.get("types", []) or fields.get("enabled", ["yes"])[0] == "no":
                continue
            out += [(u, s) for u in fields.get("uris", []) for s in fields.get("suites", [])]
    legacy = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    for path in legacy:
        if not os.path.exists(path):
            continue
        for line in Path(path).read_text().splitlines():
            parts = re.sub(r"\[[^]]*\]", "", line).split()
            if len(parts) >= 3 and parts[0] == "deb":
                out.append((parts[1], parts[2]))
    return out


def mirrors() -> tuple[str, str | None]:
    """The Debian archive URI and the security URI configured on this machine."""
    main = sec = None
    for uri, suite in _sources_entries():
        if suite == recipe.SUITE and main is None:
            main = uri
        if suite == f"{recipe.SUITE}-security" and sec is None:
            sec = uri
    if main is None:
        raise LabError(f"no '{recipe.SUITE}' archive found in this machine's apt sources")
    return main, sec


def ensure_keypair(dest: Path) -> Path:
    key = dest / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "keystone-lab",
                        "-f", str(key)], check=True)
    return key


def _staging_tar(path: Path, pubkey: str) -> None:
    files = dict(recipe.config_files())
    files["/root/.ssh/authorized_keys"] = pubkey
    files["/root/customize.sh"] = recipe.guest_script("customize.sh")
    with tarfile.open(path, "w") as tar:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo("." + name)
            info.size, info.mode = len(data), 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))


def _run_logged(cmd: list[str], log: Path, what: str) -> None:
    with log.open("a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "".join(log.read_text().splitlines(True)[-15:])
        raise LabError(f"{what} failed (exit {rc}); last lines of {log}:\n{tail}")


def build(variant: recipe.Variant, force: bool = False, say=print) -> dict:
    """Build (or reuse) the image for ``variant``; returns its manifest. Under the variant's
    image lock: a background `lab build` and the lab tests' workers may ask at the same time."""
    if not force and (m := manifest(variant)):
        return m
    with build_lock(f"image-{variant.name}"):
        if not force and (m := manifest(variant)):  # the builder we waited for finished it
            return m
        return _build(variant, say)


def _build(variant: recipe.Variant, say) -> dict:
    require_tools()
    dest = image_dir(variant)
    dest.mkdir(parents=True, exist_ok=True)
    work = dest / "build"
    rootdir = work / "root"
    done_marker = work / "mmdebstrap.done"  # lets an interrupted build resume after mmdebstrap
    if work.exists() and not done_marker.exists():
        shutil.rmtree(work)
    work.mkdir(exist_ok=True)
    log = dest / "build.log"
    if not done_marker.exists():
        log.write_text("")
    key = ensure_keypair(dest)
    main_uri, sec_uri = mirrors()
    comps = "main contrib"
    sources = [f"deb {main_uri} {recipe.SUITE} {comps}", f"deb {main_uri} {recipe.SUITE}-updates {comps}"]
    if sec_uri:
        sources.append(f"deb {sec_uri} {recipe.SUITE}-security {comps}")
    setup_hooks = []
    if variant.backports:
        sources.append(f"deb {main_uri} {recipe.SUITE}-backports {comps}")
        pin = work / "zfs-backports.pref"
        pin.write_text(recipe.BACKPORTS_PIN)
        setup_hooks.append(f'mkdir -p "$1/etc/apt/preferences.d" && cp {pin} "$1/etc/apt/preferences.d/zfs-backports"')
    staging = work / "staging.tar"
    _staging_tar(staging, (key.with_suffix(".pub")).read_text())
    cmd = ["nice", "-n", "10", "mmdebstrap", "--variant=apt", "--components=main,contrib",
           "--include=" + ",".join(recipe.PACKAGES),
           *[f"--setup-hook={h}" for h in setup_hooks],
           f'--customize-hook=tar -C "$1" -xf {staging}',
           '--customize-hook=chroot "$1" sh /root/customize.sh',
           recipe.SUITE, str(rootdir), *sources]
    t0 = time.monotonic()
    if not done_marker.exists():
        say(f"[lab] building {variant.label} root with mmdebstrap (≈6 min; log: {log})")
        _run_logged(cmd, log, "mmdebstrap")
        done_marker.write_text(f"{round(time.monotonic() - t0)}\n")
    kernels = sorted(glob.glob(str(rootdir / "boot" / "vmlinuz-*")))
    initrds = sorted(glob.glob(str(rootdir / "boot" / "initrd.img-*")))
    if not kernels or not initrds:
        raise LabError(f"no kernel/initrd in {rootdir}/boot; see {log}")
    shutil.copy(kernels[-1], dest / "vmlinuz")
    shutil.copy(initrds[-1], dest / "initrd.img")
    kver = Path(kernels[-1]).name.removeprefix("vmlinuz-")
    zfs_ver = subprocess.run(["chroot", str(rootdir), "modinfo", "-k", kver, "-F", "version", "zfs"],
                             capture_output=True, text=True).stdout.strip()
    raw = work / "root.img"
    say("[lab] making ext4 root disk")
    _run_logged(["mkfs.ext4", "-q", "-F", "-L", recipe.ROOT_LABEL, "-d", str(rootdir), str(raw),
                 recipe.ROOT_SIZE], log, "mkfs.ext4")
    _run_logged(["qemu-img", "convert", "-O", "qcow2", str(raw), str(dest / "root.qcow2")], log,
                "qemu-img convert")
    m = {"variant": variant.name, "hash": recipe.base_hash(variant), "kernel": kver,
         "zfs_version": zfs_ver, "mmdebstrap_seconds": int(done_marker.read_text()),
         "total_seconds": round(time.monotonic() - t0),
         "root_qcow2_bytes": (dest / "root.qcow2").stat().st_size, "built_at": int(time.time())}
    shutil.rmtree(work)
    (dest / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    say(f"[lab] built {variant.name} in {m['total_seconds']} s: kernel {kver}, zfs {zfs_ver}")
    return m
