"""``python -m keystone_checks.lab build|up|down|status|ssh|capture``.

Expected failures (missing QEMU, image not built, guest gone) print one line
and exit 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from keystone_checks.lab import build, recipe, snapshot
from keystone_checks.lab.errors import LabError
from keystone_checks.lab.paths import run_root


def _variants(name: str) -> list[recipe.Variant]:
    return list(recipe.VARIANTS.values()) if name == "all" else [recipe.VARIANTS[name]]


def cmd_build(a) -> int:
    build.require_tools()
    for v in _variants(a.zfs):
        build.build(v, force=a.force)
        for st in [] if a.no_states else a.state or list(recipe.STATES):
            snapshot.ensure_state(v, st)
        if a.ksboot:
            from keystone_checks.lab import ksboot

            ksboot.ensure_running(v)
        if not a.keep_stale and not _running():
            for path in snapshot.stale_dirs(v):
                print(f"[lab] removing stale {path}")
                import shutil

                shutil.rmtree(path, ignore_errors=True)
    return 0


def _up_dir() -> Path:
    return run_root() / "up"


def cmd_up(a) -> int:
    from keystone_checks.lab import faults, inventory

    build.require_tools(build.RUN_TOOLS if build.manifest(recipe.VARIANTS[a.zfs]) else build.HOST_TOOLS)
    v = recipe.VARIANTS[a.zfs]
    fault = faults.get(a.fault) if a.fault else None
    state = fault.state if fault else a.state
    snapshot.ensure_state(v, state)
    name = a.name or f"{v.name}-{state}" + (f"-{fault.name}" if fault else "")
    g = snapshot.Clone.restore(v, state, _up_dir() / name)
    data = inventory.host_data(g, state, v)
    if fault:
        data.update(faults.inject(g, fault))
    inv = inventory.write(g.workdir / "inventory.py", [(name, data)])
    print(f"{name}: up in {g.restore_seconds:.1f} s (pid {g.pid})\n  inventory: {inv}\n"
          f"  ssh: {g.describe()}")
    return 0


def _running() -> list[tuple[str, dict]]:
    out = []
    for p in sorted(_up_dir().glob("*/guest.json")):
        out.append((p.parent.name, json.loads(p.read_text())))
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def cmd_down(a) -> int:
    import shutil

    found = False
    for name, info in _running():
        if a.name not in (None, name):
            continue
        found = True
        cmdline = Path(f"/proc/{info['pid']}/cmdline")
        # Only kill the PID if it is still our QEMU (PIDs get reused).
        if cmdline.exists() and b"keystone-lab" in cmdline.read_bytes():
            os.kill(info["pid"], signal.SIGKILL)
        shutil.rmtree(_up_dir() / name, ignore_errors=True)
        print(f"{name}: down")
    if not found:
        print("no lab guests up" if a.name is None else f"no lab guest named {a.name}")
    return 0


def cmd_status(a) -> int:
    for v in recipe.VARIANTS.values():
        m = build.manifest(v)
        if not m:
            print(f"{v.name}: image not built ({build.image_dir(v)})")
            continue
        print(f"{v.name}: image {m['hash']} kernel {m['kernel']} zfs {m['zfs_version']} "
              f"(built in {m['total_seconds']} s)")
        for st in recipe.STATES:
            d = snapshot.state_dir(v, st)
            ok = (d / "meta.json").exists()
            print(f"  state {st:18} {'ready' if ok else 'not built'}")
    for name, info in _running():
        print(f"up: {name} pid {info['pid']} port {info['port']} "
              f"{'running' if _pid_alive(info['pid']) else 'DEAD'}")
    return 0


def _guest(name: str):
    from keystone_checks.lab.vm import Guest

    p = _up_dir() / name / "guest.json"
    if not p.exists():
        raise LabError(f"no lab guest named {name}; see: python -m keystone_checks.lab status")
    info = json.loads(p.read_text())
    return Guest(workdir=p.parent, image=Path(info["image"]), port=info["port"],
                 ctl_port=info.get("ctl_port", 0), pid=info["pid"])


def cmd_ssh(a) -> int:
    g = _guest(a.name)
    if not a.command:
        os.execvp("ssh", g.ssh_argv() + ["-t"])
    rc, out, err = g.ssh_bytes(" ".join(a.command), timeout=a.timeout)
    sys.stdout.buffer.write(out)
    sys.stderr.buffer.write(err)
    return rc


def cmd_table(a) -> int:
    from keystone_checks.lab import matrix_table

    try:
        text = matrix_table.render(matrix_table.load_rows(a.rows))
    except (OSError, ValueError) as exc:
        raise LabError(f"table: {exc}") from None
    if a.check:
        if not a.out.exists() or a.out.read_text() != text:
            print(f"{a.out} is stale: regenerate with `python -m keystone_checks.lab table {' '.join(map(str, a.rows))}`")
            return 1
        print(f"{a.out}: up to date")
        return 0
    a.out.write_text(text)
    print(f"wrote {a.out}")
    return 0


def cmd_capture(a) -> int:
    from keystone_checks.lab import capture

    build.require_tools()
    for v in _variants(a.zfs):
        capture.capture_all(v, only=a.scenario)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keystone-checks lab", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    zfs: dict[str, Any] = dict(choices=[*recipe.VARIANTS, "all"], default="zfs21")
    b = sub.add_parser("build", help="build image + saved states (cache hit: instant)")
    b.add_argument("--zfs", **zfs)
    b.add_argument("--state", action="append", choices=list(recipe.STATES))
    b.add_argument("--no-states", action="store_true",
                   help="no saved states (tests build the ones they need with KC_LAB_BUILD=1)")
    b.add_argument("--force", action="store_true", help="rebuild the image even if cached")
    b.add_argument("--ksboot", action="store_true",
                   help="also build the Keystone-shaped disk (UEFI + systemd initrd; ≈ 11 min: its initrd "
                        "natively, the disk under TCG) and its running state (≈ 3 min)")
    b.add_argument("--keep-stale", action="store_true",
                   help="keep images/states whose recipe hash is no longer current")
    u = sub.add_parser("up", help="start a fresh clone and write its inventory")
    u.add_argument("--zfs", choices=list(recipe.VARIANTS), default="zfs21")
    u.add_argument("--state", choices=list(recipe.STATES), default="deployed")
    u.add_argument("--fault", help="inject this fault (see docs/lab.md)")
    u.add_argument("--name")
    d = sub.add_parser("down", help="hard-kill clones started with 'up'")
    d.add_argument("name", nargs="?")
    sub.add_parser("status", help="images, states and running clones")
    s = sub.add_parser("ssh", help="ssh into a clone (or run a command)")
    s.add_argument("name")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.add_argument("--timeout", type=float, default=120)
    t = sub.add_parser("table", help="docs/lab-matrix.md from the matrix test's KC_MATRIX_OUT rows")
    t.add_argument("rows", nargs="+", type=Path, help="JSON-lines files written by tests/lab/test_matrix.py")
    t.add_argument("--out", type=Path, default=Path("docs/lab-matrix.md"))
    t.add_argument("--check", action="store_true", help="exit 1 if --out differs (CI)")
    c = sub.add_parser("capture", help="record real command outputs into tests/fixtures/captured")
    c.add_argument("--zfs", **zfs)
    c.add_argument("--scenario", action="append", help="only these capture scenarios")
    return p


COMMANDS = {"build": cmd_build, "up": cmd_up, "down": cmd_down, "status": cmd_status,
            "ssh": cmd_ssh, "table": cmd_table, "capture": cmd_capture}


def main(argv: list[str]) -> int:
    a = parser().parse_args(argv)
    try:
        return COMMANDS[a.cmd](a)
    except LabError as e:
        print(f"lab: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
