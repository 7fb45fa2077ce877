#!/usr/bin/env python3
"""Render docs/benchmarks.md from docs/benchmarks.json (+ bench/machine.json).

    bench/.venv/bin/python bench/report.py [--json docs/benchmarks.json] [--png PATH]

Called by bench/run.py at the end of every run; safe to run alone (no fleet, no network).  The plot
is in the Markdown as Mermaid `xychart-beta` blocks (text, rendered by GitHub); a PNG (matplotlib)
is written only with --png PATH and is never committed (docs/benchmarks.png is gitignored).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TOOLS = ["baseline", "batch-ssh", "pyinfra-connect", "probes-local", "sweep", "sweep-api", "pyinfra-facts", "testinfra", "ansible"]
SWEEPS = ("sweep", "sweep-api")
OTHERS = ("pyinfra-facts", "testinfra", "ansible")
LABEL = {
    "baseline": "baseline (connect + `true`)",
    "batch-ssh": "batch-ssh: the batch by plain parallel OpenSSH (the ideal)",
    "pyinfra-connect": "pyinfra, connect only",
    "probes-local": "probes only: batch × N, local `sh`, no SSH",
    "sweep": "keystone-checks sweep",
    "sweep-api": "keystone-checks run (API)",
    "pyinfra-facts": "pyinfra, 1 fact/probe",
    "testinfra": "pytest-testinfra",
    "ansible": "ansible-playbook",
}


def fmt(x, nd=2, unit=""):
    if x is None:
        return "–"
    return f"{x:.{nd}f}{unit}"


def key(r):
    return (r["hosts"], r["rtt_ms"])


COLOR = {  # fixed per tool, so the text legends of the Mermaid charts are right
    "baseline": ("#1f77b4", "blue"),
    "batch-ssh": ("#000000", "black"),
    "pyinfra-connect": ("#7f7f7f", "grey"),
    "probes-local": ("#bcbd22", "olive"),
    "sweep": ("#2ca02c", "green"),
    "sweep-api": ("#17becf", "cyan"),
    "pyinfra-facts": ("#ff7f0e", "orange"),
    "testinfra": ("#9467bd", "purple"),
    "ansible": ("#d62728", "red"),
}


def plain(t):
    return LABEL[t].replace("`", "")


def load(path: Path):
    """-> (current fleet records, stale fleet records, cli records)."""
    recs = json.loads(path.read_text()) if path.exists() else []
    fleet = [r for r in recs if r["tool"] in TOOLS and not r.get("stale")]
    stale = [r for r in recs if r["tool"] in TOOLS and r.get("stale")]
    cli = [r for r in recs if r["tool"].startswith("cli-")]
    # the host CPU record rides along with the CLI records (no fleet, no RTT)
    cli += [r for r in recs if r["tool"] == "host-cpu" and not r.get("stale")]
    return fleet, stale, cli


def ok(r):
    return r is not None and r.get("status") == "ok" and r.get("wall_s_median") is not None


def per_config(fleet):
    configs: dict[tuple, dict[str, dict]] = {}
    for r in fleet:
        configs.setdefault(key(r), {})[r["tool"]] = r
    return dict(sorted(configs.items()))


def hosts_per_minute(r):
    if not ok(r) or r["hosts"] == 0:
        return None
    return r["hosts"] / r["wall_s_median"] * 60.0


def ratio(a, b):
    if not ok(a) or not ok(b):
        return None
    return a["wall_s_median"] / b["wall_s_median"]


def status_cell(r):
    if r is None:
        return "not run"
    if r.get("status") != "ok":
        return r.get("status", "?")
    return fmt(r["wall_s_median"], 2)


def fastest_sweep(tools):
    """The faster of the two sweep variants measured in this configuration (or None)."""
    cands = [tools.get(t) for t in SWEEPS if ok(tools.get(t))]
    return min(cands, key=lambda r: r["wall_s_median"]) if cands else None


def short(t):
    return {"sweep": "sweep (CLI)", "sweep-api": "run (API)"}.get(t, t)


def at(configs, n, rtt):
    return configs.get((n, float(rtt))) or configs.get((n, rtt)) or {}


def mermaid_chart(configs, rtt, tools, ns, title) -> list[str]:
    """One Mermaid xychart-beta block: median wall time vs hosts, one line per tool (fixed colours)."""
    series = []
    for t in tools:
        pts = [at(configs, n, rtt).get(t) for n in ns]
        if all(ok(r) for r in pts):
            series.append((t, [r["wall_s_median"] for r in pts]))
    if not series or len(ns) < 2:
        return []
    top = max(max(v) for _, v in series)
    ymax = max(1, int(top * 1.1 + 0.999))
    palette = ", ".join(COLOR[t][0] for t, _ in series)
    L = ["```mermaid",
         '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "' + palette + '"}}}}%%',
         "xychart-beta",
         f'    title "{title}"',
         '    x-axis "hosts" [' + ", ".join(f'"{n}"' for n in ns) + "]",
         f'    y-axis "wall time, s (median)" 0 --> {ymax}']
    for _tool, vals in series:
        L.append("    line [" + ", ".join(f"{v:.2f}" for v in vals) + "]")
    L.append("```")
    L.append("")
    L.append("Lines (Mermaid charts have no legend): " + "; ".join(
        f"**{COLOR[t][1]}** = {plain(t)} ({', '.join(f'{v:.2f}' for v in vals)} s)" for t, vals in series) + ".")
    L.append("")
    return L


def load_notes(fleet) -> list[str]:
    groups: dict[tuple, list] = {}
    for r in fleet:
        if r.get("status") == "skipped":
            continue
        b, e = r.get("load_avg_1m_before"), r.get("load_avg_1m_after")
        groups.setdefault((r["hosts"], r["rtt_ms"], b, e), []).append(r["tool"])
    out = []
    for (n, rtt, b, e), tools in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2]))):
        span = f"{b} → {e}" if e is not None else (f"{b} at start (end not recorded)" if b is not None else "not recorded")
        out.append(f"N = {n}, {rtt:g} ms ({', '.join(short(t) for t in tools)}): {span}")
    return out


TARGET_RATIO = 1.25  # sweep / batch-ssh, at 10, 50 and 100 hosts x 50 ms
TARGET_HOST_CPU_MS = 25.0
TARGET_500_RSS_MB = 300.0
TARGET_500_WALL_X = 4.0  # x the 100-host wall of the same tool
PEER_GUARDS = (("ansible", 20.0), ("testinfra", 8.0), ("pyinfra-facts", 2.0))


def targets_section(configs, host_cpu) -> list[str]:
    """The speed targets, each with what was measured and whether it is met; then where the time
    and the host CPU go, so a missed target comes with its decomposition."""
    L: list[str] = []
    A = L.append
    A("## Targets")
    A("")
    A("| target | measured | wall times (median) | met |")
    A("| --- | ---: | --- | --- |")
    rows = []

    def row(name, value, pred, unit, walls):
        met = "–" if value is None else ("yes" if pred(value) else "**NO**")
        rows.append(met)
        A(f"| {name} | {fmt(value, 2, unit)} | {walls} | {met} |")

    def walls(x, y):
        return (f"{x['wall_s_median']:.2f} s / {y['wall_s_median']:.2f} s" if ok(x) and ok(y) else
                f"{status_cell(x)} / {status_cell(y)}")

    for n in (10, 50, 100):
        c = at(configs, n, 50)
        ideal = c.get("batch-ssh")
        for t in SWEEPS:
            row(f"{n} hosts, 50 ms: {short(t)} ≤ {TARGET_RATIO} × batch-ssh", ratio(c.get(t), ideal),
                lambda v: v <= TARGET_RATIO, "×", walls(c.get(t), ideal))
    v = host_cpu.get("cpu_ms_per_sweep") if host_cpu else None
    row(f"host CPU per sweep ≤ {TARGET_HOST_CPU_MS:g} ms", v, lambda v: v <= TARGET_HOST_CPU_MS, " ms",
        f"{host_cpu['runs']} sequential runs of the batch" if host_cpu else "not measured")
    c500, c100 = at(configs, 500, 50), at(configs, 100, 50)
    for t in SWEEPS:
        r5 = c500.get(t)
        errs = r5.get("errors") if ok(r5) else None
        row(f"500 hosts: {short(t)} errors = 0", errs, lambda v: v == 0, "", status_cell(r5) + (" s" if ok(r5) else ""))
        rss = r5.get("peak_rss_mb") if ok(r5) else None
        row(f"500 hosts: {short(t)} controller peak RSS ≤ {TARGET_500_RSS_MB:g} MiB", rss,
            lambda v: v <= TARGET_500_RSS_MB, " MiB", f"tree {fmt(r5.get('peak_tree_rss_mb'), 0)} MiB" if ok(r5) else "–")
        row(f"500 hosts: {short(t)} wall ≤ {TARGET_500_WALL_X:g} × its 100-host wall", ratio(r5, c100.get(t)),
            lambda v: v <= TARGET_500_WALL_X, "×", walls(r5, c100.get(t)))
    c50 = at(configs, 50, 50)
    f = fastest_sweep(c50)
    for peer, x in PEER_GUARDS:
        row(f"50 hosts, 50 ms: {peer} ≥ {x:g} × the sweep (vs {short(f['tool']) if f else '–'})",
            ratio(c50.get(peer), f), lambda v, x=x: v >= x, "×", walls(c50.get(peer), f) if f else "–")
    A("")
    A(f"Verdict: {rows.count('yes')} of {len(rows)} met, {rows.count('**NO**')} not met, "
      f"{rows.count('–')} not measured.")
    A("")

    # -- where a sweep's time goes, against the ideal
    A("### Where the time goes (50 ms RTT)")
    A("")
    A("| hosts | batch-ssh | sweep (CLI) | run (API) | pyinfra connect only | baseline | probes-local | "
      "controller CPU: batch-ssh / sweep / run |")
    A("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for n in sorted({n for (n, rtt) in configs if rtt == 50}):
        c = at(configs, n, 50)
        cells = [status_cell(c.get(t)) for t in ("batch-ssh", "sweep", "sweep-api", "pyinfra-connect", "baseline",
                                                  "probes-local")]
        cpus = " / ".join(fmt(c[t].get("cpu_s")) if ok(c.get(t)) else "–" for t in ("batch-ssh", "sweep", "sweep-api"))
        A(f"| {n} | " + " | ".join(cells) + f" | {cpus} s |")
    A("")
    A("All hosts of this benchmark are processes on the controller's own 2 cores, so every tool's wall time "
      "includes every host's probe work (`probes-local`: the same batch run N times locally without SSH). "
      "batch-ssh pays that host work and one OpenSSH client per host, nothing else; a sweep also pays the "
      "Python interpreter, pyinfra and the catalog at start-up (a fixed cost: `pyinfra connect only` minus "
      "`baseline`), paramiko's key exchange in-process, and parsing and evaluating every host's answer.")
    A("")
    if host_cpu:
        probes = sorted(host_cpu.get("probes_ms", {}).items(), key=lambda kv: -kv[1])
        A("### Host CPU per sweep")
        A("")
        A(f"One sweep costs a host **{host_cpu['cpu_ms_per_sweep']:.1f} ms** of CPU (user + sys, mean of "
          f"{host_cpu['runs']} sequential runs of the engine's batch script by `/bin/sh` on this machine, load "
          f"{host_cpu.get('load_avg_1m_before')} → {host_cpu.get('load_avg_1m_after')}): the batch's own framing "
          f"(the same script with every command replaced by `:` — temp dir, one subshell and three small files "
          f"per probe, watchdogs, one `cat | base64`) **{host_cpu['framing_ms']:.1f} ms**, and the probes' own "
          f"commands **{host_cpu['probes_ms_sum']:.1f} ms** (each run alone, minus an empty `sh -c`):")
        A("")
        A("| probe | own CPU ms |")
        A("| --- | ---: |")
        for k, ms in probes:
            A(f"| `{k}` | {ms:.1f} |")
        A("")
    return L


def render_md(fleet, stale, cli, machine: dict) -> str:
    configs = per_config(fleet)
    probe_recs = [r for r in fleet if r["tool"] in SWEEPS + OTHERS and r.get("status") != "skipped"]
    probes_sources = sorted({r.get("probes_source", "?") for r in probe_recs})
    probe_counts = sorted({r["probes"] for r in probe_recs})
    sleep_s = max((r.get("probe_sleep_s") or 0 for r in probe_recs), default=0)
    sleepers = sorted({k for r in probe_recs for k in (r.get("probe_sleepers") or [])})
    L = []
    A = L.append
    A("# Fleet benchmark: one round trip per host")
    A("")
    A("Generated by `bench/report.py` from `docs/benchmarks.json` (written by `bench/run.py`). "
      "Do not edit by hand: re-run the benchmark.")
    A("")
    A("```sh")
    A("bash bench/setup.sh                      # once: openssh-server + bench/.venv (testinfra, ansible; matplotlib for --png)")
    A("bench/.venv/bin/python bench/run.py      # all of: --hosts 1,10,50,100 --rtt 0,10,50 --runs 3")
    A("# the run recorded here (2 cores; testinfra and ansible at 50 hosts only, 500 hosts for the sweeps and batch-ssh):")
    A("bench/.venv/bin/python bench/run.py --hosts 10,50,100,500 --rtt 50 --runs 3 \\")
    A("    --tools baseline,batch-ssh,pyinfra-connect,probes-local,sweep,sweep-api,pyinfra-facts,testinfra,ansible \\")
    A("    --only testinfra,ansible@50 --only baseline,pyinfra-connect,probes-local,pyinfra-facts@10,50,100")
    A("bench/.venv/bin/python bench/run.py --host-cpu-only   # host CPU per sweep, waits for an idle machine")
    A("bench/.venv/bin/python bench/run.py --hosts 10 --rtt 50 --tools baseline,sweep,sweep-api   # a subset; merges into the JSON")
    A("bench/.venv/bin/python bench/report.py --png /tmp/benchmarks.png   # optional PNG plot (never committed)")
    A("```")
    A("")
    A("Every configuration starts N real OpenSSH `sshd` hosts on this machine (`bench/fleet.py`: one sshd per "
      "host on its own loopback address 127.77.x.y, own host key, own mount+UTS namespace with its own hostname "
      "and a clean `/root`), all behind one userspace TCP delay proxy (`bench/delayproxy.py`) that adds RTT/2 per "
      "direction to every chunk. All tools run against the same fleet with the same probe commands, "
      "round-robin, and each run connects from scratch. The simulated hosts run at nice 10 (`HOST_NICE` in "
      "bench/fleet.py; probes-local alike): they share the controller's cores, and at equal priority hundreds of "
      "probe processes starve a controller's single event-loop thread, which no real fleet does.")
    A("")
    A(f"**Probes**: {', '.join(str(c) for c in probe_counts) or '–'} per host, from "
      f"{', '.join(f'`{s}`' for s in probes_sources) or '–'}. "
      "Each probe is wrapped identically for every tool as `( cmd ) 2>&1; echo \"rc=$?\"` so that a probe whose "
      "command is missing on this machine (no ZFS/Nix here) costs the same everywhere and never fails the host. "
      "Both sweep variants run the engine's own catalog (the same commands, batched into one exec per host).")
    A("")
    if sleep_s:
        A(f"> **A slow probe inside the catalog:** {', '.join(f'`{k}`' for k in sleepers)} took {sleep_s:g} s "
          "when run alone on this machine, so every tool that runs the catalog spends at least that per host on "
          "the remote side, while the baseline (`true`) does not. It is paid in parallel across hosts, once per "
          "host, by every tool alike.")
        A("")
    A("Columns: **wall** = median wall time of the runs (s); **runs** = every run's wall time; **CPU** = controller "
      "user+sys seconds of the tool's whole process tree (median; from `getrusage(RUSAGE_CHILDREN)` with the "
      "benchmark as child subreaper, so daemonised ssh ControlMaster processes are counted); **max RSS** = "
      "largest single controller process (MiB); **tree RSS** = peak sum over the tool's process tree, sampled every "
      "100 ms (MiB); **errors** = hosts that did not answer every probe (for the sweeps: hosts the report marks "
      "`error`/`unreachable` or leaves out; a failing check is a result, not an error); **hosts/min** = hosts "
      "swept per controller per minute at that N (N / wall × 60).")
    A("")

    # ---- main table
    A("## Results")
    A("")
    A("| hosts | RTT ms | tool | wall s | runs s | CPU s | max RSS MiB | tree RSS MiB | errors | hosts/min |")
    A("| ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for (n, rtt), tools in configs.items():
        for t in TOOLS:
            r = tools.get(t)
            if r is None:
                continue
            runs = ", ".join(f"{w:.2f}" for w in r.get("wall_s_all", [])) or "–"
            note = ""
            if r.get("status") != "ok":
                note = f" ({r.get('note', '')})" if r.get("note") else ""
            A(f"| {n} | {rtt:g} | {LABEL[t]} | {status_cell(r)}{note} | {runs} | {fmt(r.get('cpu_s'))} | "
              f"{fmt(r.get('peak_rss_mb'), 0)} | {fmt(r.get('peak_tree_rss_mb'), 0)} | "
              f"{r.get('errors') if r.get('errors') is not None else '–'} | {fmt(hosts_per_minute(r), 0)} |")
    A("")
    notes = load_notes(fleet)
    if notes:
        cores = machine.get("cores") or 2
        A(f"**Load average (1 min) at the start → end of each configuration** (this machine has {cores} cores; "
          "other work — a QEMU lab, test suites — may have been running; a load well above the core count means "
          "the tools competed for CPU and their absolute times are inflated):")
        A("")
        for x in notes:
            A(f"- {x}")
        A("")

    # ---- plot (text)
    rtt_plot = 50
    A(f"## Plot: wall time vs hosts at {rtt_plot} ms RTT")
    A("")
    ns_all = sorted({n for (n, rtt) in configs if rtt == rtt_plot})
    full = [t for t in TOOLS if all(ok(at(configs, n, rtt_plot).get(t)) for n in ns_all)]
    drew = False
    chart = mermaid_chart(configs, rtt_plot, full, ns_all, f"Median wall time, {rtt_plot} ms RTT (lower is better)")
    if chart:
        L.extend(chart)
        drew = True
    rest = [t for t in TOOLS if t not in full]
    ns_common = [n for n in ns_all if all(ok(at(configs, n, rtt_plot).get(t)) for t in TOOLS if any(
        ok(at(configs, m, rtt_plot).get(t)) for m in ns_all))]
    if rest and len(ns_common) >= 2:
        tools_common = [t for t in TOOLS if all(ok(at(configs, n, rtt_plot).get(t)) for n in ns_common)]
        if set(tools_common) <= set(full):
            tools_common = []
        chart = mermaid_chart(configs, rtt_plot, tools_common, ns_common,
                              f"All tools at the host counts every tool was run, {rtt_plot} ms RTT")
        if chart:
            L.extend(chart)
            drew = True
    if not drew:
        A("Not enough 50 ms data for a chart yet.")
        A("")

    # ---- ratios
    A("## Ratios (wall time)")
    A("")
    A("`sweep/baseline` and `run/baseline`: each sweep variant (pyinfra CLI `playbooks/sweep.py`, and "
      "`keystone-checks run sweep` through pyinfra's API) over connect + `true` (a floor without the probes' work; "
      "the targets below compare with batch-ssh, which does that work). `X/sweep`: how many times slower tool X is "
      "than the **faster of the two sweep variants in that configuration** (named in the `faster` column). "
      "`X/baseline` is given too.")
    A("")
    A("| hosts | RTT ms | sweep/baseline | run/baseline | faster | pyinfra-facts/sweep | testinfra/sweep | ansible/sweep "
      "| pyinfra-facts/baseline | testinfra/baseline | ansible/baseline |")
    A("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (n, rtt), tools in configs.items():
        b = tools.get("baseline")
        f = fastest_sweep(tools)
        cells = [fmt(ratio(tools.get("sweep"), b), 2, "×"), fmt(ratio(tools.get("sweep-api"), b), 2, "×"),
                 short(f["tool"]) if f else "–"]
        cells += [fmt(ratio(tools.get(t), f), 2, "×") for t in OTHERS]
        cells += [fmt(ratio(tools.get(t), b), 2, "×") for t in OTHERS]
        A(f"| {n} | {rtt:g} | " + " | ".join(cells) + " |")
    A("")

    # ---- targets
    host_cpu = next((r for r in cli if r["tool"] == "host-cpu" and r.get("status") == "ok"), None)
    cli = [r for r in cli if r["tool"] != "host-cpu"]
    L.extend(targets_section(configs, host_cpu))

    # ---- cli
    A("## CLI start-up")
    A("")
    A("| command | status | wall s (median) | runs s | CPU s | max RSS MiB |")
    A("| --- | --- | ---: | --- | ---: | ---: |")
    names = {"cli-import": "`python -c 'import keystone_checks.frontends.cli'`", "cli-help": "`keystone-checks --help`"}
    for r in cli:
        st = r.get("status", "?") + (f" ({r['note']})" if r.get("status") != "ok" and r.get("note") else "")
        A(f"| {names.get(r['tool'], r['tool'])} | {st} | {fmt(r.get('wall_s_median'), 3)} | "
          f"{', '.join(f'{w:.3f}' for w in r.get('wall_s_all', [])) or '–'} | {fmt(r.get('cpu_s'), 3)} | "
          f"{fmt(r.get('peak_rss_mb'), 0)} |")
    if not cli:
        A("| – | not measured | – | – | – | – |")
    A("")
    A("Measured the same way as the fleet tools (wall around the process, one warm-up run first), with the "
      "project's interpreter and the real `keystone-checks` executable (not the pyenv shim).")
    A("")

    # ---- settings
    A("## Settings")
    A("")
    A("- **baseline** (`bench/tools/baseline.py`): paramiko, one thread per host, TCP_NODELAY, host key checked "
      "against the fleet's known_hosts, `connect` + one `exec true` + exit status. Nothing cheaper is possible "
      "for an agentless check.")
    A("- **pyinfra-connect** (`bench/tools/pyinfra_connect_deploy.py`, an empty deploy): pyinfra's CLI start-up "
      "and its parallel connect to every host, nothing else - not one of the issue's comparisons, it splits the "
      "sweep's time into \"pyinfra itself\" and \"the checks\" (sweep − pyinfra-connect).")
    A("- **probes-local** (`bench/tools/probes_local.py`): the exact batch script the engine sends to one host "
      "(`keystone_checks.facts.batch.render_batch` for this phase and role: each probe in a subshell with its "
      "section markers, one watchdog per timeout) run N times in parallel with local `sh`, no SSH at all - a "
      "decomposition like pyinfra-connect: what the N hosts' own work costs on this machine, where they share the controller's cores.")
    A("- **sweep**: `pyinfra -y INVENTORY playbooks/sweep.py --data report=TMP` from the repo, with the project's "
      "pyinfra; the inventory sets `role` and `disk` (see `--host-data`) on every host. Reported `unavailable` "
      "while `playbooks/sweep.py` does not exist; never estimated.")
    A("- **sweep-api** (\"keystone-checks run (API)\"): `keystone-checks run sweep -i INVENTORY --report "
      "json:TMP/report.json` from the repo - the same engine through pyinfra's Python API instead of its CLI. "
      "Its exit status is the Nagios result (0-3: pass/warning/critical/unknown; failing checks on these "
      "ZFS-less hosts give 2), not a failure; errors are counted from the JSON report exactly as for `sweep`.")
    A("- `pyinfra` and `keystone-checks` are run as the real executables of the project's interpreter: a pyenv "
      "shim on PATH is resolved with `pyenv which` first (the shim is a bash script that costs 0.1-0.7 s per "
      "call, which the baseline does not pay).")
    A("- **pyinfra-facts** (`bench/tools/pyinfra_facts_deploy.py`): `pyinfra -y INVENTORY deploy.py`; one "
      "`host.get_fact(Command, cmd)` per probe inside one `python.call` operation, so hosts run in parallel "
      "(pyinfra default `--parallel`, i.e. all hosts); pyinfra's own paramiko settings (Nagle on).")
    A("- **testinfra** (`bench/tools/testinfra_probes.py`): one pytest session, `--hosts paramiko://h001,...` "
      "with `--ssh-config` (paramiko backend; note it does not verify host keys), one test per probe per host "
      "calling `host.run(cmd)`; pytest-xdist `-n min(N, 8) --dist loadgroup` with all tests of a host in one "
      "group, so one SSH connection per host (N = 1 runs without xdist). 8 workers on a 2-core controller is "
      "already past the CPU it has; more workers only add interpreter start-up.")
    A("- **ansible**: `ansible-playbook` with one `ansible.builtin.command` task per probe (`argv: [sh, -c, cmd]`, "
      "`ignore_errors: true`, `changed_when: false`), `gather_facts: false`, `forks = N`, strategy linear, "
      "`pipelining = True`, `ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s` (the default), a fresh "
      "ControlPath directory per run (every run starts cold like the other tools), `interpreter_python = "
      "/usr/bin/python3`, host key checking on.")
    A("- Wall time is measured around the tool's process (interpreter start-up included); each tool gets "
      "`--timeout` seconds per run and is recorded as `timeout` instead of hanging. A configuration not run for "
      "lack of time is recorded as `skipped` with the reason (`bench/run.py --record-skipped REASON`).")
    A("")
    A("### Method and caveats")
    A("")
    A("- No netem on this kernel: latency comes from the userspace proxy. It is a delay line, not "
      "sleep-then-forward: each direction of each connection has a FIFO of (due time, bytes) drained by a "
      "timer, so reading never waits for writing, unrelated connections never wait for each other and order is "
      "kept. The kernel answers the client's SYN at once, so the proxy opens the upstream connection 1.5 RTT "
      "after accept, which puts the TCP handshake's round trip back. The proxy's own sockets use TCP_NODELAY; a "
      "client's Nagle stalls still happen on its own socket, but the ACKs it waits for come from the local "
      "proxy (delayed-ACK bound, ~40 ms) rather than from across the RTT, so Nagle-on tools are, if anything, "
      "flattered at 50 ms.")
    A("- Controller, proxy and all sshd hosts share the same 2 cores, so at large N the hosts' CPU (sshd key "
      "exchange, the probe commands) competes with the controller: absolute numbers at N = 100 are pessimistic "
      "for every tool alike. Other work on the machine during a run shows up as noise: `load_avg_1m_before` and "
      "`load_avg_1m_after` in the JSON (and the notes under the results table) record the load at the start and "
      "end of each configuration. Tools of one configuration run round-robin, so load drift hits them alike; "
      "configurations run minutes apart (e.g. testinfra/ansible vs the rest) may not be.")
    A("- Hosts share this machine's filesystem (their own `/root` and hostname aside), so probes read this "
      "machine's /proc, /sys and /etc; commands absent here (zpool, cryptsetup, nix-env...) exit 127 quickly, "
      "which understates the remote work equally for every tool and leaves the transport cost — what is being "
      "compared — intact.")
    A("")

    # ---- stale
    if stale:
        A("## Stale records (earlier catalog, not comparable)")
        A("")
        A("Measured with a different number of probes than the current catalog, kept for the record only; "
          "they are left out of every table, chart and ratio above. Re-run these tools to replace them.")
        A("")
        A("| hosts | RTT ms | tool | probes | wall s | errors | why stale |")
        A("| ---: | ---: | --- | ---: | ---: | ---: | --- |")
        for r in sorted(stale, key=lambda r: (r["hosts"], r["rtt_ms"], TOOLS.index(r["tool"]))):
            A(f"| {r['hosts']} | {r['rtt_ms']:g} | {LABEL[r['tool']]} | {r.get('probes')} | {status_cell(r)} | "
              f"{r.get('errors') if r.get('errors') is not None else '–'} | {r['stale']} |")
        A("")

    # ---- machine
    A("## Machine")
    A("")
    if machine:
        A("| | |")
        A("| --- | --- |")
        for k, v in machine.items():
            A(f"| {k} | {v} |")
    else:
        A("(bench/machine.json missing)")
    A("")

    # ---- beyond one machine
    A("## Beyond one machine")
    A("")
    best50 = {}
    for (n, rtt), tools in configs.items():
        if rtt == 50:
            for t in TOOLS:
                h = hosts_per_minute(tools.get(t))
                if h is not None and (t not in best50 or n > best50[t][0]):
                    best50[t] = (n, h)
    sws = [(t, best50[t]) for t in SWEEPS if t in best50]
    base = best50.get("baseline")
    sw = max(sws, key=lambda x: (x[1][0], x[1][1])) if sws else None
    if sw:
        figure = (f"At 50 ms RTT this controller swept **{sw[1][1]:.0f} hosts per minute** with {plain(sw[0])} "
                  f"(measured at N = {sw[1][0]})")
        other = [x for x in sws if x[0] != sw[0]]
        if other:
            figure += f" ({plain(other[0][0])}: {other[0][1][1]:.0f}/min at N = {other[0][1][0]})"
    elif base:
        figure = (f"The sweep column is not measured yet; the floor at 50 ms RTT is **{base[1]:.0f} hosts per "
                  f"minute** (baseline, N = {base[0]}), an upper bound for the sweep")
    else:
        figure = "The 50 ms figures are not measured yet"
    extra = []
    for t in OTHERS:
        if t in best50:
            extra.append(f"{LABEL[t]} {best50[t][1]:.0f}/min (N = {best50[t][0]})")
    if extra:
        figure += "; for comparison " + ", ".join(extra)
    A(figure + ".")
    if sleep_s:
        A("")
        A(f"These per-minute figures are per run: they include start-up, the catalog's {sleep_s:g} s sampling "
          "window and the hosts' own probe work, which on this benchmark runs on the controller's cores "
          "(probes-local); on a real fleet that work runs on the hosts, so one controller has headroom beyond "
          "these figures, up to the CPU bound below.")
    A("")
    cpu_rows = []
    for (n, rtt), tools in configs.items():
        for t in SWEEPS:
            s = tools.get(t)
            if rtt == 50 and ok(s) and s.get("cpu_s") and n >= 10:
                cpu_rows.append((n, -s["cpu_s"] / n, t))
    if cpu_rows:
        n, neg, t = max(cpu_rows)
        per_host = -neg
        cores = machine.get("cores") or 2
        A(f"CPU bound: {plain(t)} spent {per_host * 1000:.0f} ms of controller CPU per host at N = {n} (start-up "
          f"included), so a {cores}-core controller saturates at roughly {cores * 60 / per_host:.0f} hosts per minute "
          "of continuous sweeping (less while the hosts' own sshd share the cores, as they do here).")
        A("")
    A("A sweep is one SSH connection and one exec per host, so one controller's capacity is bounded by its CPU "
      "(SSH key exchange and the parsing of each host's output), not by latency: latency adds a constant "
      "handful of round trips per host, paid in parallel. Capacity per run window is therefore "
      "`hosts/min × window`: with the figure above and a sweep every 5 minutes that must finish in, say, 2 "
      "minutes, one controller covers about `2 × hosts/min` hosts. Shard when the fleet is bigger than that, "
      "when one sweep must not take longer than the operator waiting for it, or when the controller's memory "
      "(max/tree RSS above, growing with N) gets near its limit.")
    A("")
    A("**Sharding.** Split the inventory, not the checks: every controller runs the same playbook on a "
      "disjoint slice of hosts.")
    A("")
    A("- By groups: put hosts in groups in the inventory (`rack_a = [...]`, `rack_b = [...]`, or generated "
      "`shard_0 ... shard_{k-1}` by a stable hash of the host name) and give each controller `--limit shard_3`.")
    A("- By globs: `--limit 'web-0*'`, `--limit 'db-*'`, or by site; `--exclude` to carve out hosts swept elsewhere.")
    A("- Each controller writes its own report: `pyinfra -y inventory.py playbooks/sweep.py --limit shard_3 "
      "--data report=/var/lib/keystone-checks/sweep-shard_3.json`, or `keystone-checks run sweep -i inventory.py "
      "--limit shard_3 --report json:/var/lib/keystone-checks/sweep-shard_3.json` (exit code = Nagios status).")
    A("")
    A("**Scheduling** with what already exists, one job per shard:")
    A("")
    A("- systemd timers: a template unit `keystone-sweep@.service` (`ExecStart=... --limit shard_%i --data "
      "report=/var/lib/keystone-checks/%i.json`) and `keystone-sweep@.timer` with `OnCalendar=*:0/5` and "
      "`RandomizedDelaySec=30`, enabled as `keystone-sweep@0.timer ... keystone-sweep@{k-1}.timer` spread over "
      "one or more controller machines.")
    A("- Kubernetes: a `CronJob` per shard (or one indexed `Job` per schedule tick with `completionMode: "
      "Indexed` and `--limit shard_$JOB_COMPLETION_INDEX`), `concurrencyPolicy: Forbid` so a slow sweep is "
      "never overlapped, the SSH key from a Secret, reports to a shared volume or object store.")
    A("- CI: a scheduled pipeline with a matrix over shards (`shard: [0, 1, 2, 3]`), each job uploading its "
      "report as an artifact; a final job merges them.")
    A("")
    A("**Merging**: `keystone-checks merge` (keystone_checks/tools/merge.py). Reports are per-host records, so "
      "merging is concatenation; a host in two shards is refused; with `-i INVENTORY` a host no shard reported "
      "is added as `unreachable` (a shard that did not run is itself a finding, the fleet summary must not look "
      "healthier than it is); the summary and the Nagios exit code are recomputed from the merged hosts exactly "
      "as one run would, never added up. Any report format can be written from the merge.")
    A("")
    A("```sh")
    A("keystone-checks merge /srv/reports/sweep-shard_*.json -i inventory/fleet.py \\")
    A("    --report json:/srv/reports/fleet.json --report html:/srv/reports/fleet.html --report nagios")
    A("```")
    A("")
    return "\n".join(L)


def render_png(fleet, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return False
    rtts = sorted({r["rtt_ms"] for r in fleet})
    if not rtts:
        return False
    fig, axes = plt.subplots(1, len(rtts), figsize=(5.2 * len(rtts), 4.4), squeeze=False, sharey=True)
    markers = {"batch-ssh": "d", "pyinfra-connect": "x", "probes-local": "*", "baseline": "o", "sweep": "s",
               "sweep-api": "P", "pyinfra-facts": "^", "testinfra": "v", "ansible": "D"}
    for ax, rtt in zip(axes[0], rtts):
        for t in TOOLS:
            pts = sorted((r["hosts"], r["wall_s_median"]) for r in fleet
                         if r["tool"] == t and r["rtt_ms"] == rtt and ok(r))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[t], color=COLOR[t][0],
                        label=plain(t))
        ax.set_title(f"RTT {rtt:g} ms")
        ax.set_xlabel("hosts")
        ax.set_xscale("log")
        ns = sorted({r["hosts"] for r in fleet if r["rtt_ms"] == rtt})
        ax.set_xticks(ns)
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("wall time, s (median, log)")
    axes[0][-1].legend(fontsize=8, loc="upper left")
    fig.suptitle("Fleet health sweep: wall time per tool (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=str(REPO / "docs" / "benchmarks.json"))
    ap.add_argument("--png", default="", metavar="PATH",
                    help="also draw the plot with matplotlib into PATH (off by default; never commit it)")
    a = ap.parse_args()
    jpath = Path(a.json)
    fleet, stale, cli = load(jpath)
    mpath = HERE / "machine.json"
    machine = json.loads(mpath.read_text()) if mpath.exists() else {}
    md = jpath.with_suffix(".md")
    md.write_text(render_md(fleet, stale, cli, machine))
    msg = f"wrote {md}"
    if a.png:
        png = Path(a.png)
        msg += f" and {png}" if render_png(fleet, png) else " (no PNG: matplotlib missing or no data)"
    print(msg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
