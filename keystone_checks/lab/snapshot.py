"""Saved guest states and fresh clones of them.

A state is saved once per image: boot (or clone the parent state), run the
state's set-up script, then stop the guest and stream its RAM with QMP
``migrate`` into ``ram.zst`` next to the frozen disk overlays.  A clone gets new
qcow2 overlays on top of those frozen disks and loads the RAM stream with
``-incoming``: an SSH-ready host in seconds instead of a 30 s+ TCG boot.
"""

from __future__ import annotations

import json
import secrets
import shlex
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from keystone_checks.lab import build, recipe
from keystone_checks.lab.errors import LabError
from keystone_checks.lab.paths import clone_workdir, run_root
from keystone_checks.lab.vm import Guest, overlay, qemu_img


def state_dir(variant: recipe.Variant, state: str) -> Path:
    return build.image_dir(variant) / "states" / f"{state}-{recipe.state_hash(variant, state)}"


def passphrase_file(variant: recipe.Variant | Path) -> Path:
    """The LUKS passphrase of the lab credstore: host side only, mode 0600. ``variant`` may be its
    image directory (a guest's ``image``)."""
    image = variant if isinstance(variant, Path) else build.image_dir(variant)
    path = image / "secrets" / "luks-passphrase"
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(24))
        path.chmod(0o600)
    return path


def guest_prelude(variant: recipe.Variant, disk: str = "/dev/vda", extra: str = "") -> str:
    """Variables + lib.sh for every script the lab pipes into a guest.  The
    passphrase only exists in the guest's /run while the script runs."""
    pw = passphrase_file(variant).read_text().strip()
    return (f"DISK={shlex.quote(disk)}\nPOOL=rpool\nPASSFILE=/run/lab-luks-pass\n"
            f"umask 077; printf '%s' {shlex.quote(pw)} > \"$PASSFILE\"; umask 022\n"
            "trap 'rm -f \"$PASSFILE\"' EXIT\n" + recipe.guest_script("lib.sh") + "\n"
            + (recipe.guest_script(extra) + "\n" if extra else ""))


def save(guest: Guest, dest: Path) -> float:
    """Stop ``guest``, write its RAM to ``dest/ram.zst``, move its disks there."""
    t0 = time.monotonic()
    guest.ssh("sync", timeout=60)
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    q = guest.qmp()
    try:
        q.execute("stop")
        q.execute("migrate-set-parameters", **{"max-bandwidth": 8 << 30})
        q.execute("migrate", uri=f"exec:zstd -q -3 -T1 -o {shlex.quote(str(tmp / 'ram.zst'))}")
        while True:
            st = q.execute("query-migrate").get("status")
            if st == "completed":
                break
            if st in ("failed", "cancelled"):
                raise LabError(f"saving guest RAM failed ({st}); see {guest.workdir / 'qemu.log'}")
            time.sleep(0.2)
    finally:
        q.close()
        guest.kill()
    for name, path in guest.disks.items():
        shutil.move(str(path), tmp / f"{name}.qcow2")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return time.monotonic() - t0


def resume(g: Guest, src: Path, what: str) -> None:
    """Start ``g`` (its disks already overlaid on ``src``'s) from the RAM ``save`` wrote to
    ``src/ram.zst``, until ssh answers; then set its clock, which stopped at save time."""
    g.start(incoming=f"exec:zstd -dc {shlex.quote(str(src / 'ram.zst'))}")
    q = g.qmp()
    try:
        deadline = time.monotonic() + 120
        while True:
            status = q.execute("query-status").get("status", "unknown")
            if status == "running":
                break
            if status in ("paused", "postmigrate", "prelaunch"):
                q.execute("cont")
                break
            if time.monotonic() > deadline or not g.alive():
                g.kill()
                raise LabError(f"restoring {what} stuck in '{status}'; see {g.workdir / 'qemu.log'}")
            time.sleep(0.1)
    finally:
        q.close()
    g.wait_ssh(timeout=60)
    g.sync_clock()


class Clone(Guest):
    """A fresh, running copy of a saved state (what each lab test gets)."""

    variant: recipe.Variant
    state: str
    meta: dict[str, Any]
    boot_seconds: float = 0.0
    restore_seconds: float = 0.0

    @classmethod
    def boot_blank(cls, variant: recipe.Variant, workdir: Path) -> Clone:
        """Cold boot from the base image with a blank sparse test disk."""
        image = build.image_dir(variant)
        workdir.mkdir(parents=True, exist_ok=True)
        g = cls(workdir=workdir, image=image)
        qemu_img("create", "-q", "-f", "qcow2", str(g.disks["vda"]), recipe.TEST_DISK_SIZE)
        overlay(g.disks["root"], image / "root.qcow2")
        g.start()
        g.boot_seconds = g.wait_ssh()
        return g

    @classmethod
    def restore(cls, variant: recipe.Variant, state: str, workdir: Path | None = None) -> Clone:
        src = state_dir(variant, state)
        workdir = clone_workdir(src, f"lab state '{state}' for {variant.name}", f"--zfs {variant.name}",
                                f"{variant.name}-{state}", workdir)
        g = cls(workdir=workdir, image=build.image_dir(variant))
        g.variant, g.state = variant, state
        t0 = time.monotonic()
        for name, path in g.disks.items():
            overlay(path, src / f"{name}.qcow2")
        resume(g, src, state)
        g.restore_seconds = time.monotonic() - t0
        g.meta = json.loads((src / "meta.json").read_text())
        return g

    def destroy(self) -> None:
        """Hard-kill QEMU and delete this clone's overlays."""
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _run_setup(g: Guest, variant: recipe.Variant, state: str, say) -> None:
    rc, out, err = g.run_phased(recipe.guest_script(f"setup-{state}.sh"), prelude=guest_prelude(variant))
    log = build.image_dir(variant) / "logs" / f"setup-{state}.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(f"rc={rc}\n--- stdout\n{out}\n--- stderr\n{err}\n")
    if rc != 0:
        raise LabError(f"set-up of lab state '{state}' failed (exit {rc}); see {log}:\n{err[-2000:]}")


def data_checksum(g: Guest, variant: recipe.Variant) -> str:
    """sha256 of the data files the set-up wrote (``ks_checksum`` in lib.sh)."""
    rc, out, err = g.run_script(guest_prelude(variant) + "ks_checksum\n", timeout=300)
    if rc != 0 and "previously in use from another system" in err:
        # Reading it would need `zpool import -f`, which changes the very state under test.
        return "(not read: the pool was last used by another system and needs zpool import -f)"
    if rc != 0:
        raise LabError(f"checksum failed: {err.strip() or out.strip()}")
    return out.strip()


def ensure_state(variant: recipe.Variant, state: str, say=print) -> Path:
    """Build the saved state (and its parents) unless already cached."""
    dest = state_dir(variant, state)
    if (dest / "meta.json").exists():
        return dest
    build.build(variant, say=say)
    st = recipe.STATES[state]
    workdir = run_root() / f"build-{variant.name}-{state}-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    if st.parent:
        ensure_state(variant, st.parent, say=say)
        say(f"[lab] {variant.name}: preparing '{state}' from a clone of '{st.parent}'")
        g = Clone.restore(variant, st.parent, workdir)
        boot = g.restore_seconds
    else:
        say(f"[lab] {variant.name}: cold boot for '{state}' (TCG, ≈30-60 s)")
        g = Clone.boot_blank(variant, workdir)
        boot = g.boot_seconds
    try:
        t1 = time.monotonic()
        _run_setup(g, variant, state, say)
        setup_s = time.monotonic() - t1
        checksum = (data_checksum(g, variant) if st.readable else
                    json.loads((state_dir(variant, str(st.parent)) / "meta.json").read_text())["checksum"])
        save_s = save(g, dest)
    finally:
        g.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    meta = {"state": state, "role": st.role, "variant": variant.name, "boot_seconds": round(boot, 1),
            "setup_seconds": round(setup_s, 1), "save_seconds": round(save_s, 1),
            "total_seconds": round(time.monotonic() - t0, 1), "checksum": checksum,
            "ram_zst_bytes": (dest / "ram.zst").stat().st_size,
            "disk_bytes": {n: (dest / f"{n}.qcow2").stat().st_size for n in ("vda", "root")}}
    (dest / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    say(f"[lab] {variant.name}: saved '{state}' (boot {meta['boot_seconds']} s, set-up "
        f"{meta['setup_seconds']} s, save {meta['save_seconds']} s)")
    return dest


def stale_dirs(variant: recipe.Variant) -> list[Path]:
    """Cached images/states of ``variant`` left behind by older recipes."""
    current = build.image_dir(variant)
    out = [p for p in current.parent.glob(f"{variant.name}-*") if p != current and p.is_dir()]
    wanted = {state_dir(variant, st).name for st in recipe.STATES}
    out += [p for p in (current / "states").glob("*") if p.name not in wanted]
    from keystone_checks.lab.ksboot import ksboot_dir

    out += [p for p in current.glob("ksboot-*") if p.name != ksboot_dir(variant).name]
    return out


def reap_orphans(say=print) -> int:
    """Hard-kill clones whose owning process died (e.g. a killed pytest run).
    Only guests recorded under run_root() with an 'owner' pid are touched, and
    only if the recorded pid is still a keystone-lab QEMU (pids get reused)."""
    import os
    import signal

    n = 0
    for info_path in run_root().glob("*/guest.json"):
        info = json.loads(info_path.read_text())
        owner = info.get("owner")
        if owner is None or Path(f"/proc/{owner}").exists():
            continue
        cmdline = Path(f"/proc/{info['pid']}/cmdline")
        if cmdline.exists() and b"keystone-lab" in cmdline.read_bytes():
            os.kill(info["pid"], signal.SIGKILL)
            n += 1
        shutil.rmtree(info_path.parent, ignore_errors=True)
    if n:
        say(f"[lab] killed {n} orphaned clone(s)")
    return n
