"""What one sweep costs a deployed guest's CPU: the engine's own batch script for the guest's host
data, run by the guest's /bin/sh five times, measured with the shell's `times` (children's user +
sys). The guest runs under QEMU TCG here, so the absolute figure is inflated many times over a
real host's; the benchmark (bench/run.py, host-cpu) measures the same script natively. The figure
is appended to $KC_LAB_MEASURE_OUT (CI prints it) and every probe must have answered. With
KC_LAB_HOST_CPU_DETAIL=1 the record also holds the decomposition: the batch's framing alone (every
command replaced by `:`) and each probe's command alone (three runs each)."""

import dataclasses
import json
import os
import re

import pytest

from keystone_checks.engine import hostdata
from keystone_checks.engine.catalog import load_catalog
from keystone_checks.engine.plan import checks_for_phase, plan_host
from keystone_checks.facts.batch import new_marker, render_batch, split_batch

pytestmark = pytest.mark.lab
RUNS = 5


def _seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+)m([\d.]+)s", text)
    assert m, text
    return int(m.group(1)) * 60 + float(m.group(2))


def _guest_cpu_ms(host, script: str, runs: int) -> float:
    """Mean children CPU (ms) of `runs` runs of `script` by the guest's /bin/sh."""
    loop = " ".join(["x"] * runs)
    rc, out, err = host.clone.ssh(f"cat > /run/kc-cpu.sh; for i in {loop}; do sh /run/kc-cpu.sh >/dev/null 2>&1; done; "
                                  "times; rm -f /run/kc-cpu.sh", timeout=600, stdin=script)
    assert rc == 0, err
    user, system = out.strip().splitlines()[-1].split()
    return (_seconds(user) + _seconds(system)) * 1000 / runs


def test_host_cpu_per_sweep_on_the_deployed_guest(lab_host, lab_zfs, tmp_path):
    host = lab_host("deployed", zfs=lab_zfs)
    context = hostdata.resolve(host.name, dict(host.data))
    plan = plan_host(checks_for_phase(load_catalog(), "sweep"), ["deployed"], context)
    marker = new_marker()
    script = render_batch(list(plan.probes), marker)
    rc, out, err = host.clone.ssh(f"cat > /run/kc-bench.sh; sh /run/kc-bench.sh; for i in {' '.join(['x'] * RUNS)}; "
                                  "do sh /run/kc-bench.sh >/dev/null; done; echo KC-TIMES; times; rm -f /run/kc-bench.sh",
                                  timeout=600, stdin=script)
    assert rc == 0, err
    batch_out, _, times = out.partition("KC-TIMES\n")
    results = split_batch(batch_out.split("\n"), marker, len(plan.probes))
    assert all(r.exit_code != -1 for r in results), [(p.key, r) for p, r in zip(plan.probes, results) if r.exit_code == -1]
    children = times.strip().splitlines()[-1].split()
    cpu_ms = (_seconds(children[0]) + _seconds(children[1])) * 1000 / (RUNS + 1)
    assert cpu_ms > 0
    record = {"variant": lab_zfs, "probes": len(plan.probes), "runs": RUNS + 1, "cpu_ms_per_sweep": round(cpu_ms, 1),
              "note": "QEMU TCG guest: emulated CPU, many times a real host's cost"}
    if os.environ.get("KC_LAB_HOST_CPU_DETAIL") == "1":
        empty = [dataclasses.replace(p, command=":", requires=None) for p in plan.probes]
        record["framing_ms"] = round(_guest_cpu_ms(host, render_batch(empty, marker), 3), 1)
        shell = _guest_cpu_ms(host, ":", 3)
        record["probes_ms"] = {p.key: round(max(0.0, _guest_cpu_ms(host, p.command, 3) - shell), 1) for p in plan.probes}
    out_path = os.environ.get("KC_LAB_MEASURE_OUT") or str(tmp_path / "host-cpu.jsonl")
    with open(out_path, "a") as fh:
        fh.write(json.dumps(record) + "\n")
