"""Guarantee: a hostile inventory runs nothing of its own, end to end.

A real pyinfra run of the real fix playbook ``playbooks/fix/close-credstore-export.py`` (the check
``credstore-closed-before-export``: close the credstore, then export the pool) against a real
sshd, whose sessions find fake ``zpool`` and ``cryptsetup`` first on PATH (they record their argv;
the pool is "imported", the mapping "open", so the export refuses and prints why). Two hosts:

- ``bad-pool``: ``pool`` is ``x'; touch MARK; '``. The old code pasted the pool into the export's
  ``echo 'refusing to export POOL: ...'``; now the pool name's grammar refuses it when host data is
  loaded: the host is reported ``error`` naming the key, and nothing runs on it.
- ``odd-mapping``: ``credstore_name`` is ``cs';touch${IFS}kc-mark;'``, which the device-mapper
  grammar admits (no '/', no space): quoting alone must stop it. The old code pasted it into
  the same ``echo``; now the message is ``printf '%s\\n' 'quoted'`` and the fakes receive it as one
  argument after ``--``.

The marks are files the payloads would create (MARK by absolute path, kc-mark in the session's
working directory): neither may exist after the run.
"""

from __future__ import annotations

import pytest
from kc_helpers import Sshd, read_report, run_pyinfra, write_inventory

FAKE_ZPOOL = r"""#!/bin/sh
printf 'zpool' >> "$KC_STATE/argv.log"; for a in "$@"; do printf ' [%s]' "$a" >> "$KC_STATE/argv.log"; done; echo >> "$KC_STATE/argv.log"
if [ "$1" = list ]; then
  case "$*" in
    *-p*) while IFS= read -r p; do printf '%s\t1000\t500\t500\tONLINE\t-\n' "$p"; done < "$KC_STATE/pools" ;;
    *) cat "$KC_STATE/pools" ;;
  esac
fi
exit 0
"""

FAKE_CRYPTSETUP = r"""#!/bin/sh
printf 'cryptsetup' >> "$KC_STATE/argv.log"; for a in "$@"; do printf ' [%s]' "$a" >> "$KC_STATE/argv.log"; done; echo >> "$KC_STATE/argv.log"
if [ "$1" = status ]; then
  echo "/dev/mapper/credstore is active and is in use."
  echo "  type:    LUKS2"
  echo "  device:  /dev/zd0"
fi
exit 0
"""  # noqa: E501 - a shell script


@pytest.mark.sshd
def test_hostile_pool_and_mapping_names_run_nothing(tmp_path, request):
    state = tmp_path / "state"
    state.mkdir()
    mark = state / "MARK"
    bad_pool = f"x'; touch {mark}; '"
    odd_mapping = "cs';touch${IFS}kc-mark;'"
    (state / "pools").write_text(f"rpool\n{bad_pool}\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("zpool", FAKE_ZPOOL), ("cryptsetup", FAKE_CRYPTSETUP)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)

    server = Sshd(tmp_path / "sshd")
    server.root.mkdir()
    server.start()
    request.addfinalizer(server.stop)
    wrapper = server.root / "logexec.sh"  # each session: fakes first on PATH, working directory = state
    wrapper.write_text(wrapper.read_text().replace(
        "exec /bin/sh", f"cd {state} || exit 1; KC_STATE={state}; PATH={bin_dir}:$PATH; export KC_STATE PATH; exec /bin/sh"))

    inventory = write_inventory(tmp_path / "inv.py", {
        "bad-pool": {**server.host_data(), "role": "installer", "pool": bad_pool},
        "odd-mapping": {**server.host_data(), "role": "installer", "pool": "rpool", "credstore_name": odd_mapping},
    })
    report_path = tmp_path / "report.json"
    done = run_pyinfra(inventory, "fix/close-credstore-export.py", "--data", "fix=true", "--data", f"report={report_path}")
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out[-3000:]
    assert not mark.exists(), f"the pool name ran a command:\n{out[-3000:]}"
    assert not (state / "kc-mark").exists(), f"the mapping name ran a command:\n{out[-3000:]}"

    report = read_report(report_path)
    hosts = {h["name"]: h for h in report["hosts"]}
    bad = hosts["bad-pool"]
    assert bad["status"] == "error", bad
    assert "host data 'pool'" in bad["error"] and "is not valid" in bad["error"], bad["error"]

    results = {r["check"]: r for r in hosts["odd-mapping"]["results"]}
    result = results["credstore-closed-before-export"]
    # The fix ran (close, then the export that refuses while the fake mapping stays open) and failed.
    assert result["outcome"] == "fix-failed", result
    argv = (state / "argv.log").read_text()
    assert f"cryptsetup [close] [--] [{odd_mapping}]" in argv, argv
    assert f"cryptsetup [status] [--] [{odd_mapping}]" in argv, argv
    assert f"refusing to export rpool: LUKS mapping {odd_mapping} is still open" in out, out[-3000:]
    assert "zpool [export]" not in argv, argv
