"""The scheduled-sweep units (deploy/systemd/) installed unchanged and run by the systemd of a lab guest.

tests/test_units.py checks the unit files statically on this machine; here they run for real, in the
deployed lab state (Debian bookworm, systemd 252, no network, no pip):

1. ``systemd-analyze verify`` of the installed units says nothing about them;
2. ``systemctl start`` runs one sweep of the guest itself (``@local``): the unit succeeds (Nagios exit
   codes 0-3 are not failures), the JSON report is schema-valid, the Prometheus textfile parses, both
   were written by rename (new inode, no temporary file left next to them), and the unit's sandbox
   (PATH, ProtectSystem=strict, ...) changes no check's outcome compared with a run from a root shell;
3. runs never overlap: while someone else holds the unit's flock, a start exits 0 at once and leaves
   the reports untouched;
4. the timer enables and has a next elapse time.

keystone-checks gets into the offline guest as a wheelhouse of the exact dependency versions installed
on this machine (built once with ``pip wheel``, cached under the lab cache dir keyed by the pins), the
wheels unzipped into /opt/keystone-checks/lib next to the repository's package, checks and playbooks.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from kc_helpers import REPO

from keystone_checks.lab.paths import cache_root

pytestmark = pytest.mark.lab

SERVICE = "keystone-checks-sweep.service"
TIMER = "keystone-checks-sweep.timer"
UNITS = REPO / "deploy" / "systemd"
PREFIX = "/opt/keystone-checks"
JSON_REPORT = "/var/lib/keystone-checks/sweep.json"
PROM_DIR = "/var/lib/node_exporter/textfile_collector"
PROM_REPORT = f"{PROM_DIR}/keystone.prom"
LOCK = "/run/keystone-checks/sweep.lock"
SCHEMA = json.loads((REPO / "keystone_checks" / "schema" / "report.schema.json").read_text())
RUNTIME_ROOTS = ("pyinfra", "PyYAML", "jsonschema")  # pyproject.toml [project] dependencies

# The lab guests have 1 GB of RAM and an emulated (TCG) CPU whose load is always high (as in
# tests/lab/test_matrix.py LAB_DATA).
INVENTORY = '''"""keystone-checks sweep inventory (lab guest): the machine itself."""

deployed = [
    ("@local", {"role": "deployed", "min_ram_bytes": 268435456, "max_load_per_cpu": 1000}),
]
'''

WRAPPER = f'''#!/bin/sh
PYTHONPATH={PREFIX}:{PREFIX}/lib exec python3 -m keystone_checks.frontends.cli "$@"
'''


# -- host side: the wheelhouse ---------------------------------------------------------------------


def _canon(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def runtime_pins() -> dict[str, str]:
    """The installed dependency closure of the runtime requirements: {distribution: version}."""
    from packaging.requirements import Requirement

    pins: dict[str, str] = {}
    todo = list(RUNTIME_ROOTS)
    while todo:
        name = todo.pop()
        if _canon(name) in pins:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            pytest.fail(f"{name} is not installed on this machine: pip install -e . first")
        pins[_canon(name)] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return dict(sorted(pins.items()))


def wheelhouse() -> list[Path]:
    """Wheels of exactly the installed versions (the guest has the same Python 3.11 ABI), cached by pins."""
    pins = runtime_pins()
    key = hashlib.sha256(json.dumps(pins).encode()).hexdigest()[:16]
    dest = cache_root() / "wheelhouse" / f"py{sys.version_info[0]}{sys.version_info[1]}-{key}"
    if not (dest / "pins.json").exists():
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
                               "-q", "-w", str(tmp), *(f"{n}=={v}" for n, v in pins.items())],
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            pytest.fail(f"pip wheel of the runtime dependencies failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
        (tmp / "pins.json").write_text(json.dumps(pins, indent=2) + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    wheels = sorted(dest.glob("*.whl"))
    names = {_canon(w.name.split("-")[0]) for w in wheels}
    assert names == set(pins), f"wheelhouse {dest} does not match the pins: {sorted(names ^ set(pins))}"
    return wheels


def payload(wheels: list[Path]) -> bytes:
    """A tar.gz (paths relative to /) of everything the guest needs."""
    buf = io.BytesIO()

    def skip_cache(info: tarfile.TarInfo):
        return None if "__pycache__" in info.name or info.name.endswith(".pyc") else info

    def add_text(tar: tarfile.TarFile, path: str, text: str, mode: int = 0o644) -> None:
        data = text.encode()
        info = tarfile.TarInfo(path)
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for wheel in wheels:
            tar.add(wheel, f"tmp/kc-wheels/{wheel.name}")
        for part in ("keystone_checks", "checks", "playbooks"):
            tar.add(REPO / part, f"{PREFIX.lstrip('/')}/{part}", filter=skip_cache)
        for unit in (SERVICE, TIMER):
            tar.add(UNITS / unit, f"etc/systemd/system/{unit}")  # unchanged
        add_text(tar, "usr/local/bin/keystone-checks", WRAPPER, 0o755)
        add_text(tar, "etc/keystone-checks/inventory.py", INVENTORY)
    return buf.getvalue()


# -- guest side -------------------------------------------------------------------------------------


def sh(host, cmd: str, timeout: float = 120) -> tuple[int, str, str]:
    return host.ssh(cmd, timeout=timeout)


def journal(host) -> str:
    _, out, err = sh(host, f"journalctl -u {SERVICE} --no-pager | tail -50", timeout=60)
    return f"\n--- journalctl -u {SERVICE} (last 50 lines)\n{out}{err}"


def ok(host, cmd: str, timeout: float = 120) -> str:
    rc, out, err = sh(host, cmd, timeout)
    assert rc == 0, f"`{cmd}` exited {rc}:\n{out}\n{err}"
    return out


def unit_props(host, unit: str, *props: str) -> dict[str, str]:
    out = ok(host, f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def stats(host, *paths: str) -> dict[str, str]:
    """path -> 'inode mtime' (mtime with nanoseconds)."""
    out = ok(host, "stat -c '%n|%i %y' " + " ".join(map(shlex.quote, paths)))
    return dict(line.split("|", 1) for line in out.splitlines())


def listing(host, directory: str) -> list[str]:
    return sorted(ok(host, f"ls -A {shlex.quote(directory)}").split())


def pin(host) -> None:
    """Keep the service loaded between runs: systemd garbage-collects an inactive unit that nothing
    references, and a freshly loaded unit shows Result=success and ExecMainStatus=0 whatever its last run
    did. An active unit ordered after it holds a reference (After= adds one) and starts nothing."""
    ok(host, f"systemd-run --unit=kc-test-pin --collect -p After={SERVICE} sleep infinity")


def outcomes(report: dict) -> dict[str, str]:
    (entry,) = report["hosts"]
    return {r["check"]: r["outcome"] for r in entry["results"]}


def install(host, wheels: list[Path]) -> None:
    rc, out, err = host.clone.ssh_bytes("tar -C / -xzf - --no-same-owner", timeout=300, stdin=payload(wheels))
    assert rc == 0, f"copying keystone-checks into the guest failed ({rc}): {err.decode(errors='replace')}"
    ok(host, f"mkdir -p {PREFIX}/lib && for w in /tmp/kc-wheels/*.whl; do "
             f"python3 -m zipfile -e \"$w\" {PREFIX}/lib || exit 1; done && rm -rf /tmp/kc-wheels", timeout=600)
    # What pip would do at install time: the service runs with a read-only /opt (ProtectSystem=strict).
    ok(host, f"python3 -m compileall -q -j0 {PREFIX} >/dev/null", timeout=900)
    out = ok(host, "keystone-checks list --role deployed --phase sweep", timeout=300)
    assert out.rstrip().endswith("check(s)") and not out.rstrip().endswith(" 0 check(s)"), out
    ok(host, f"mkdir -p {PROM_DIR} && systemctl daemon-reload")


# -- the test ---------------------------------------------------------------------------------------


def test_sweep_units_in_deployed_guest(lab_host):
    wheels = wheelhouse()
    host = lab_host("deployed")
    install(host, wheels)
    pin(host)

    # 1. systemd-analyze verify: silent about our units, exit 0.
    rc, out, err = sh(host, f"systemd-analyze verify /etc/systemd/system/{SERVICE} /etc/systemd/system/{TIMER}")
    ours = [line for line in (out + err).splitlines() if "keystone-checks" in line]
    assert rc == 0 and not ours, f"systemd-analyze verify exited {rc}:\n{out}{err}"

    # 2. one sweep.  Placeholder reports first: a rename gives the path a new inode, an in-place
    # rewrite (what node_exporter could read half of) keeps it.
    ok(host, f"mkdir -p {os.path.dirname(JSON_REPORT)} && echo placeholder > {JSON_REPORT} "
             f"&& echo '# placeholder' > {PROM_REPORT}")
    before = stats(host, JSON_REPORT, PROM_REPORT)
    t0 = time.monotonic()
    rc, out, err = sh(host, f"systemctl start {SERVICE}", timeout=900)
    sweep_s = time.monotonic() - t0
    assert rc == 0, f"systemctl start {SERVICE} exited {rc} after {sweep_s:.0f} s: {out}{err}{journal(host)}"
    props = unit_props(host, SERVICE, "Result", "ExecMainStatus", "ActiveState", "ExecMainExitTimestamp")
    assert props["ExecMainExitTimestamp"], f"the unit forgot its run (garbage-collected?): {props}"
    assert props["Result"] == "success" and props["ExecMainStatus"] in {"0", "1", "2", "3"}, \
        f"{props}{journal(host)}"
    assert props["ActiveState"] == "inactive", f"a oneshot without RemainAfterExit: {props}{journal(host)}"

    text = ok(host, f"cat {JSON_REPORT}")
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        pytest.fail(f"{JSON_REPORT} is not JSON ({exc}):\n{text[:2000]}{journal(host)}")
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}"
              for e in Draft202012Validator(SCHEMA, format_checker=FormatChecker()).iter_errors(report)]
    assert not errors, "\n".join(errors[:20]) + journal(host)
    assert report["phase"] == "sweep", report["phase"]
    (entry,) = report["hosts"]
    assert entry["name"] == "@local" and entry["status"] == "ok", f"{entry}{journal(host)}"
    assert entry["results"], f"no results for @local{journal(host)}"
    assert int(props["ExecMainStatus"]) == report["summary"]["exit_code"], (props, report["summary"])
    errors = {r["check"]: r["message"] for r in entry["results"] if r["outcome"] == "error"}
    assert not errors, f"checks could not gather their facts inside the unit: {errors}{journal(host)}"

    from prometheus_client.parser import text_string_to_metric_families

    prom = ok(host, f"cat {PROM_REPORT}")
    families = {f.name: f for f in text_string_to_metric_families(prom)}
    assert "keystone_check_outcome" in families, f"{prom[:2000]}{journal(host)}"
    samples = [s for s in families["keystone_check_outcome"].samples if s.labels.get("host") == "@local"]
    assert {s.labels["check"] for s in samples} == {r["check"] for r in entry["results"]}, prom[:3000]

    after = stats(host, JSON_REPORT, PROM_REPORT)
    for path in (JSON_REPORT, PROM_REPORT):
        assert after[path].split()[0] != before[path].split()[0], \
            f"{path} was rewritten in place (same inode), not written then renamed: {before[path]} -> {after[path]}"
    assert listing(host, os.path.dirname(JSON_REPORT)) == ["sweep.json"], journal(host)
    assert listing(host, PROM_DIR) == ["keystone.prom"], "temporary files left next to the report"

    # The same sweep from a root login shell: the unit's environment and sandbox change nothing.
    rc, out, err = sh(host, "keystone-checks run sweep -i /etc/keystone-checks/inventory.py "
                            "--report json:/root/manual.json", timeout=900)
    manual = json.loads(ok(host, "cat /root/manual.json"))
    assert rc == manual["summary"]["exit_code"] == report["summary"]["exit_code"], (rc, out, err)
    assert outcomes(report) == outcomes(manual), \
        {c: (o, outcomes(manual).get(c)) for c, o in outcomes(report).items() if outcomes(manual).get(c) != o}

    # 3. never overlapping: a run that finds the lock taken exits 0 at once and touches nothing.
    ok(host, f"systemd-run --unit=kc-test-hold-lock --collect flock {LOCK} sleep 120")
    deadline = time.monotonic() + 60
    while sh(host, f"flock --nonblock {LOCK} true")[0] == 0:
        assert time.monotonic() < deadline, "the test's lock holder never got the lock"
        time.sleep(0.5)
    t0 = time.monotonic()
    rc, out, err = sh(host, f"systemctl start {SERVICE}", timeout=900)
    blocked_s = time.monotonic() - t0
    assert rc == 0, f"systemctl start (lock held) exited {rc}: {out}{err}{journal(host)}"
    first_exit = props["ExecMainExitTimestamp"]
    props = unit_props(host, SERVICE, "Result", "ExecMainStatus", "ExecMainExitTimestamp")
    assert props["ExecMainExitTimestamp"] not in ("", first_exit), f"the second start did not run: {props}"
    assert (props["Result"], props["ExecMainStatus"]) == ("success", "0"), f"{props}{journal(host)}"
    assert blocked_s < max(30.0, sweep_s / 3), \
        f"with the lock held the start took {blocked_s:.0f} s (a full sweep: {sweep_s:.0f} s){journal(host)}"
    assert stats(host, JSON_REPORT, PROM_REPORT) == after, f"reports changed while the lock was held{journal(host)}"
    assert sh(host, "systemctl is-active kc-test-hold-lock.service")[1].strip() == "active", \
        "the lock holder ended before the blocked start was checked"
    ok(host, "systemctl stop kc-test-hold-lock.service")
    assert sh(host, f"flock --nonblock {LOCK} true")[0] == 0, "lock still held after the holder stopped"

    # 4. the timer.
    ok(host, f"systemctl enable --now {TIMER}")
    assert ok(host, f"systemctl is-enabled {TIMER}").strip() == "enabled"
    assert ok(host, f"systemctl is-active {TIMER}").strip() == "active"
    timers = ok(host, f"systemctl list-timers {TIMER} --all --no-pager")
    rows = [line for line in timers.splitlines() if TIMER in line]
    assert len(rows) == 1 and not rows[0].startswith("n/a"), f"no next elapse time:\n{timers}"
    nxt = unit_props(host, TIMER, "NextElapseUSecRealtime")["NextElapseUSecRealtime"]
    assert nxt and nxt != "n/a", f"NextElapseUSecRealtime={nxt!r}\n{timers}"
    print(f"\nsweep unit: full run {sweep_s:.1f} s, run with the lock held {blocked_s:.1f} s; next timer run: {nxt}")
