#!/usr/bin/env python3
"""keystone-checks fleet benchmark - one command:

    bench/.venv/bin/python bench/run.py [--hosts 1,10,50,100] [--rtt 0,10,50] [--runs 3]
                                        [--tools baseline,sweep,pyinfra-facts,testinfra,ansible]

(run bench/setup.sh once first).  For each host count N it starts a fleet of N real sshd hosts
(bench/fleet.py), and for each RTT it sets the delay proxy, then runs every tool on the same fleet
with the same probes, round-robin, `--runs` times, and records wall time (median), controller CPU
seconds and peak controller memory.  Results are merged into docs/benchmarks.json (a record with the
same tool/hosts/rtt is replaced) and docs/benchmarks.md is regenerated
(bench/report.py; the PNG plot only with --png PATH).

Tools (see docs/benchmarks.md "Settings" for the exact flags):
  baseline       connect + one exec of `true` per host, in parallel (paramiko, one thread per host)
  batch-ssh      the ideal: the sweep's very batch script by plain parallel OpenSSH (one ssh process per
                 host: connect, one exec, read), no pyinfra, no parsing (bench/tools/batch_ssh.py)
  pyinfra-connect  pyinfra with an empty deploy: CLI start-up + connecting to every host (decomposition)
  probes-local   the engine's per-host batch script run N times in parallel locally, no SSH (decomposition)
  sweep          keystone-checks: pyinfra -y INVENTORY playbooks/sweep.py --data report=TMP
                 ("unavailable" until playbooks/sweep.py exists in the repo)
  sweep-api      keystone-checks run sweep -i INVENTORY --report json:TMP/report.json (the same engine
                 through pyinfra's Python API; exit codes 0-3 are the Nagios result, not a failure)
  pyinfra-facts  plain pyinfra, one Command fact per probe (bench/tools/pyinfra_facts_deploy.py)
  testinfra      pytest-testinfra, paramiko backend, host.run(cmd) per probe, pytest-xdist
  ansible        ansible-playbook, one command task per probe, pipelining, ControlMaster default
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from fleet import Fleet, proc_start  # noqa: E402

VENV = HERE / ".venv"
VENV_PY = VENV / "bin" / "python"
DOCS = REPO / "docs"
ALL_TOOLS = ["baseline", "batch-ssh", "pyinfra-connect", "probes-local", "sweep", "sweep-api", "pyinfra-facts", "testinfra", "ansible"]
# tools whose records depend on the probe catalog: a record measured with other probe commands is stale
PROBE_TOOLS = {"sweep", "sweep-api", "pyinfra-facts", "testinfra", "ansible", "probes-local", "batch-ssh", "host-cpu"}
SWEEPS = ("sweep", "sweep-api")
TESTINFRA_MAX_WORKERS = 8
PHASE_ROLE = ["sweep", "deployed"]  # set from --phase/--role in main()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------- probes
def wrap(cmd: str) -> str:
    """Same wrapping for every tool: never fail, keep stderr, report the exit status."""
    return f'( {cmd}\n) 2>&1; echo "rc=$?"'


def project_env() -> dict:
    env = dict(os.environ)
    paths = [str(REPO / "src"), str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # the project's tools come from the project's environment, not from bench/.venv
    venv_bin = str(VENV / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.pop("VIRTUAL_ENV", None)
    return env


def resolve_exe(name: str, env: dict | None = None) -> str | None:
    """`name` on the project's PATH; a pyenv shim (a bash script that runs `pyenv exec`, 0.1-0.7 s per
    call here) is resolved to the real executable, so no tool pays a start-up cost the baseline does not."""
    exe = shutil.which(name, path=(env or project_env())["PATH"])
    if exe and "/.pyenv/shims/" in exe and shutil.which("pyenv"):
        r = subprocess.run(["pyenv", "which", name], capture_output=True, text=True, timeout=30)
        real = r.stdout.strip()
        if r.returncode == 0 and real and os.access(real, os.X_OK):
            return real
    return exe


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def project_python() -> str:
    """The interpreter of the project's environment (the one pyinfra is installed in)."""
    pyinfra = resolve_exe("pyinfra")
    if pyinfra:
        with open(pyinfra, "rb") as f:
            first = f.readline().decode(errors="replace")
        if first.startswith("#!") and "python" in first and "env" not in first.split()[0]:
            return first[2:].strip().split()[0]
    return shutil.which("python3", path=project_env()["PATH"]) or "python3"


def load_probes(phase: str, role: str, host_data: dict, mode: str = "auto") -> tuple[list[tuple[str, str]], str]:
    """The sweep playbook's host-side catalog from the engine, else the marked fallback list."""
    why = "--probes fallback"
    if mode != "fallback":
        data = {k: v for k, v in host_data.items() if k != "role"}
        code = (
            "import json,sys\n"
            "from keystone_checks.engine.plan import host_probes\n"
            f"print(json.dumps(host_probes({phase!r}, {role!r}, {data!r})))\n"
        )
        r = subprocess.run([project_python(), "-c", code], capture_output=True, text=True, env=project_env(),
                           cwd=REPO, timeout=60)
        why = (r.stderr.strip().splitlines() or [f"exit {r.returncode}, no output"])[-1]
        if r.returncode == 0:
            try:
                probes = [(str(k), str(c)) for k, c in json.loads(r.stdout.strip().splitlines()[-1])]
                if probes:
                    return probes, f"engine:keystone_checks.engine.plan.host_probes({phase!r}, {role!r}, {data!r})"
                why = "host_probes returned no probes"
            except (ValueError, IndexError):
                why = "unparseable host_probes output"
        if mode == "engine":
            raise SystemExit(f"--probes engine: {why}")
    from probes_fallback import FALLBACK_PROBES

    print(f"WARNING: keystone_checks.engine.plan.host_probes unavailable ({why}); "
          f"using the FALLBACK probe list bench/probes_fallback.py ({len(FALLBACK_PROBES)} probes)",
          file=sys.stderr, flush=True)
    return list(FALLBACK_PROBES), "fallback:bench/probes_fallback.py"


def _plan_code(phase: str, role: str, host_data: dict) -> str:
    """Python source, run by the project's interpreter, that leaves the engine's plan for one host of
    `role` in `plan` (json, sys, dataclasses and render_batch imported)."""
    data = {k: v for k, v in host_data.items() if k != "role"}
    return ("import dataclasses, json, sys\n"
            "from keystone_checks.engine import hostdata\n"
            "from keystone_checks.engine.plan import checks_for_phase, load_catalog, plan_host\n"
            "from keystone_checks.facts.batch import render_batch\n"
            f"ctx = hostdata.resolve('bench', {{'role': {role!r}, **{data!r}}})\n"
            f"plan = plan_host(checks_for_phase(load_catalog(), {phase!r}), [{role!r}], ctx)\n")


def engine_batch_script(phase: str, role: str, host_data: dict, path: Path) -> str:
    """Write the exact batch script the sweep sends to one host (keystone_checks.facts.batch) to `path`.
    -> "" on success, else why not (probes-local is then unavailable)."""
    code = _plan_code(phase, role, host_data) + "sys.stdout.write(render_batch(list(plan.probes), 'KCBENCH0000'))\n"
    try:
        r = subprocess.run([project_python(), "-c", code], capture_output=True, text=True, env=project_env(),
                           cwd=REPO, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if r.returncode != 0 or not r.stdout.strip():
        return (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    path.write_text(r.stdout)
    return ""


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _cpu_ms(argv: list[str], runs: int, stdin: bytes | None = None) -> float:
    """Mean CPU (user+sys, ms) of `runs` sequential runs of argv, after one warm-up."""
    subprocess.run(argv, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = _children_cpu()
    for _ in range(runs):
        subprocess.run(argv, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (_children_cpu() - before) / runs * 1000


def measure_host_cpu(phase: str, role: str, host_data: dict, runs: int = 20) -> dict:
    """What one sweep costs a host's CPU: the engine's batch script run `runs` times, one after the
    other, by /bin/sh on this machine (a bench host is this machine), decomposed into the batch's
    own framing (the same script with every probe's command replaced by `:`) and each probe's
    commands alone (`sh -c CMD` minus `sh -c :`)."""
    code = _plan_code(phase, role, host_data) + (
        "probes = list(plan.probes)\n"
        "empty = [dataclasses.replace(p, command=':', requires=None) for p in probes]\n"
        "print(json.dumps({'batch': render_batch(probes, 'KCBENCH0000'), 'framing': render_batch(empty, 'KCBENCH0000'),\n"
        "                  'probes': [[p.key, p.command, p.requires] for p in probes]}))\n"
    )
    rec = {"tool": "host-cpu", "hosts": 1, "rtt_ms": 0.0, "runs": runs, "status": "ok"}
    r = subprocess.run([project_python(), "-c", code], capture_output=True, text=True, env=project_env(), cwd=REPO,
                       timeout=120)
    if r.returncode != 0:
        return {**rec, "status": "unavailable", "note": (r.stderr.strip().splitlines() or ["?"])[-1]}
    spec = json.loads(r.stdout)
    load_before = load1()
    rec["cpu_ms_per_sweep"] = round(_cpu_ms(["sh", "-s"], runs, spec["batch"].encode()), 1)
    rec["framing_ms"] = round(_cpu_ms(["sh", "-s"], runs, spec["framing"].encode()), 1)
    shell = _cpu_ms(["sh", "-c", ":"], runs)
    per_probe = {}
    for key, cmd, requires in spec["probes"]:
        if requires:
            cmd = f"command -v {shlex.quote(requires)} >/dev/null 2>&1 || exit 127\n{cmd}"
        per_probe[key] = round(max(0.0, _cpu_ms(["sh", "-c", cmd], max(5, runs // 2)) - shell), 1)
    rec["probes_ms"] = per_probe
    rec["probes_ms_sum"] = round(sum(per_probe.values()), 1)
    rec["probes"] = len(per_probe)
    rec["load_avg_1m_before"], rec["load_avg_1m_after"] = load_before, load1()
    log(f"host CPU per sweep: {rec['cpu_ms_per_sweep']} ms (framing {rec['framing_ms']} ms, "
        f"probes' own commands {rec['probes_ms_sum']} ms)")
    return rec


# ------------------------------------------------------------------------------ measured process
def _set_subreaper() -> None:
    """Orphans of a tool (e.g. ssh ControlPersist masters) are re-parented to us, so we can end
    them and their CPU time is counted in RUSAGE_CHILDREN."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
    except OSError:
        pass


class Measured:
    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.maxrss_mb = 0.0
        self.tree_rss_mb = 0.0
        self.rc: int | None = None
        self.timed_out = False


def _tree(pid: int):
    import psutil

    try:
        p = psutil.Process(pid)
        return [p] + p.children(recursive=True)
    except psutil.Error:
        return []


def _reap_orphans(keep: set[int]) -> None:
    """End and reap our children that are not the fleet's (tool leftovers re-parented to us)."""
    import psutil

    me = psutil.Process()
    leftovers = [c for c in me.children() if c.pid not in keep]
    for c in leftovers:
        try:
            c.terminate()
        except psutil.Error:
            pass
    gone, alive = psutil.wait_procs(leftovers, timeout=3)
    for c in alive:
        try:
            c.kill()
        except psutil.Error:
            pass
    # psutil.wait_procs reaps our own children; make sure nothing zombie is left
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break


def run_measured(argv: list[str], *, env: dict, cwd: Path, timeout: float, logfile: Path,
                 keep: set[int]) -> Measured:
    import psutil

    m = Measured()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(logfile, "wb") as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             cwd=cwd, env=env, start_new_session=True)
    pstart = proc_start(p.pid)
    done = threading.Event()

    def sampler() -> None:
        peak = 0
        while not done.is_set():
            total = 0
            for q in _tree(p.pid):
                try:
                    total += q.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, total)
            done.wait(0.1)
        m.tree_rss_mb = peak / 2**20

    def killer() -> None:
        if not done.wait(timeout):
            m.timed_out = True
            for q in reversed(_tree(p.pid)):
                try:
                    q.kill()
                except psutil.Error:
                    pass
            if proc_start(p.pid) == pstart:
                try:
                    os.killpg(p.pid, signal.SIGKILL)  # the tool's own process group (new session)
                except (ProcessLookupError, PermissionError):
                    pass

    ts = threading.Thread(target=sampler, daemon=True)
    tk = threading.Thread(target=killer, daemon=True)
    ts.start()
    tk.start()
    try:
        _, status, ru = os.wait4(p.pid, 0)
    except BaseException:
        # Ctrl-C: end the tool (its process group and its tree) before propagating
        for q in reversed(_tree(p.pid)):
            try:
                q.kill()
            except psutil.Error:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.waitpid(p.pid, 0)
        except ChildProcessError:
            pass
        p.returncode = -9
        done.set()
        _reap_orphans(keep)
        raise
    m.wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    ts.join()
    _reap_orphans(keep)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    m.maxrss_mb = ru.ru_maxrss / 1024.0  # KiB -> MiB: largest single process of the tool's tree
    m.rc = p.returncode
    return m


# ----------------------------------------------------------------------------------------- tools
class Ctx:
    def __init__(self, fleet: Fleet, work: Path, probes: list[tuple[str, str]], host_data: dict) -> None:
        self.fleet = fleet
        self.work = work
        self.probes = probes
        self.n = len(fleet.hosts)
        self.probes_file = work / "probes.json"
        self.probes_file.write_text(json.dumps([[k, wrap(c)] for k, c in probes]))
        self.inventory = fleet.write_pyinfra_inventory(work / "inventory.py", host_data=host_data)
        self.ssh_config = fleet.write_ssh_config(work / "ssh_config")
        self.ansible_inventory = fleet.write_ansible_inventory(work / "ansible_hosts.ini")
        self.hosts_json = work / "hosts.json"
        self.hosts_json.write_text(json.dumps({"hosts": fleet.hosts, "client_key": fleet.client_key,
                                               "known_hosts": fleet.known_hosts}))
        self._write_ansible()
        self.batch_script = work / "batch.sh"
        self.batch_why = engine_batch_script(PHASE_ROLE[0], PHASE_ROLE[1], host_data, self.batch_script)

    def _write_ansible(self) -> None:
        tasks = []
        for key, cmd in self.probes:
            tasks.append({"name": key, "ansible.builtin.command": {"argv": ["sh", "-c", wrap(cmd)]},
                          "ignore_errors": True, "changed_when": False})
        play = [{"name": "keystone-checks probes", "hosts": "fleet", "gather_facts": False, "tasks": tasks}]
        # JSON is valid YAML
        (self.work / "ansible_probes.yml").write_text(json.dumps(play, indent=1))


def ansible_cfg(ctx: Ctx, run_dir: Path) -> Path:
    cfg = run_dir / "ansible.cfg"
    cfg.write_text(f"""[defaults]
forks = {ctx.n}
host_key_checking = True
gathering = explicit
retry_files_enabled = False
interpreter_python = /usr/bin/python3
local_tmp = {run_dir}/ansible-local
remote_tmp = /tmp/.kc-bench-ansible-remote
timeout = 60
[ssh_connection]
pipelining = True
ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s
control_path_dir = {run_dir}/cp
""")
    return cfg


def sweep_available() -> tuple[bool, str]:
    if not (REPO / "playbooks" / "sweep.py").exists():
        return False, "playbooks/sweep.py does not exist yet (engine not written)"
    if not shutil.which("pyinfra", path=project_env()["PATH"]):
        return False, "pyinfra not found in the project's environment"
    return True, ""


def sweep_api_available() -> tuple[bool, str]:
    if not resolve_exe("keystone-checks"):
        return False, "keystone-checks executable not installed in the project's environment"
    return True, ""


def tool_command(tool: str, ctx: Ctx, run_dir: Path) -> tuple[list[str], dict, Path]:
    env = project_env()
    pyinfra = resolve_exe("pyinfra", env) or "pyinfra"
    if tool == "baseline":
        return [str(VENV_PY), str(HERE / "tools" / "baseline.py"), str(ctx.hosts_json)], env, run_dir
    if tool == "sweep":
        return [pyinfra, "-y", ctx.inventory, "playbooks/sweep.py", "--data",
                f"report={run_dir / 'report.json'}"], env, REPO
    if tool == "probes-local":
        return [str(VENV_PY), str(HERE / "tools" / "probes_local.py"), str(ctx.n), str(ctx.batch_script)], env, run_dir
    if tool == "batch-ssh":
        return [str(VENV_PY), str(HERE / "tools" / "batch_ssh.py"), str(ctx.hosts_json), ctx.ssh_config,
                str(ctx.batch_script)], env, run_dir
    if tool == "sweep-api":
        exe = resolve_exe("keystone-checks", env) or "keystone-checks"
        return [exe, "run", "sweep", "-i", ctx.inventory, "--report", f"json:{run_dir / 'report.json'}"], env, REPO
    if tool == "pyinfra-connect":
        return [pyinfra, "-y", ctx.inventory, str(HERE / "tools" / "pyinfra_connect_deploy.py")], env, run_dir
    if tool == "pyinfra-facts":
        return [pyinfra, "-y", ctx.inventory, str(HERE / "tools" / "pyinfra_facts_deploy.py"),
                "--data", f"probes_file={ctx.probes_file}", "--data", f"bench_out={run_dir / 'facts.out'}"], env, run_dir
    if tool == "testinfra":
        venv_env = dict(os.environ)
        venv_env["KC_BENCH_PROBES"] = str(ctx.probes_file)
        hosts = ",".join(f"paramiko://{name}" for name, _, _ in ctx.fleet.hosts)
        argv = [str(VENV_PY), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(HERE / "tools"),
                "-c", str(HERE / "tools" / "pytest.ini"), "--confcutdir", str(HERE / "tools"),
                str(HERE / "tools" / "testinfra_probes.py"), f"--hosts={hosts}", f"--ssh-config={ctx.ssh_config}"]
        workers = min(ctx.n, TESTINFRA_MAX_WORKERS)
        if workers > 1:
            argv += ["-n", str(workers), "--dist", "loadgroup"]
        return argv, venv_env, HERE / "tools"
    if tool == "ansible":
        venv_env = dict(os.environ)
        venv_env["ANSIBLE_CONFIG"] = str(ansible_cfg(ctx, run_dir))
        venv_env["ANSIBLE_HOME"] = str(run_dir / "ansible-home")
        venv_env["PATH"] = str(VENV / "bin") + os.pathsep + venv_env.get("PATH", "")
        return [str(VENV / "bin" / "ansible-playbook"), "-i", ctx.ansible_inventory,
                str(ctx.work / "ansible_probes.yml")], venv_env, run_dir
    raise ValueError(tool)


def parse_result(tool: str, ctx: Ctx, run_dir: Path, logfile: Path, m: Measured) -> tuple[int, int]:
    """-> (errors = hosts that did not complete, execs_ok = probe executions that answered)."""
    text = logfile.read_text(errors="replace")
    n, p = ctx.n, len(ctx.probes)
    if tool in ("baseline", "probes-local", "batch-ssh"):
        for line in reversed(text.splitlines()):
            if line.startswith("{"):
                d = json.loads(line)
                return d["errors"], d["execs_ok"]
        return n, 0
    if tool == "pyinfra-connect":
        connected = len(set(re.findall(r"\[(\S+)\] Connected", text)))
        return n - connected, 0
    if tool == "pyinfra-facts":
        out = run_dir / "facts.out"
        answered = {}
        if out.exists():
            for line in out.read_text().splitlines():
                name, cnt = line.split()
                answered[name] = int(cnt)
        return sum(1 for name, _, _ in ctx.fleet.hosts if answered.get(name) != p), sum(answered.values())
    if tool == "testinfra":
        passed = int((re.findall(r"(\d+) passed", text) or ["0"])[-1])
        failed_hosts = set()
        for mm in re.finditer(r"(?:FAILED|ERROR) \S*\[paramiko://([^-\]]+)", text):
            failed_hosts.add(mm.group(1))
        if passed < n * p and not failed_hosts:
            return n, passed
        return len(failed_hosts), passed
    if tool == "ansible":
        ok_total, bad = 0, 0
        seen = 0
        for mm in re.finditer(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", text, re.M):
            seen += 1
            ok_total += int(mm.group(2))
            if int(mm.group(3)) or int(mm.group(4)) or int(mm.group(2)) != p:
                bad += 1
        return bad + (n - seen), ok_total
    if tool in SWEEPS:
        # keystone-checks run exits 0-3 (Nagios: pass/warning/critical/unknown) - a result, not a failure;
        # errors are counted from the report, the same way for both sweep variants
        rep = run_dir / "report.json"
        try:
            data = json.loads(rep.read_text())
            hosts = data.get("hosts", []) if isinstance(data, dict) else []
            errs = sum(1 for h in hosts if isinstance(h, dict) and (h.get("error") or h.get("status") in ("error", "unreachable")))
            errs += max(0, n - len(hosts))
            return errs, len(hosts) * p - errs * p
        except (OSError, ValueError, AttributeError):
            ok_rc = (0, 1, 2, 3) if tool == "sweep-api" else (0,)
            return (0 if m.rc in ok_rc else n), 0
    raise ValueError(tool)


# ------------------------------------------------------------------------------------ cli timing
def measure_cli(runs: int) -> list[dict]:
    env = project_env()
    out = []
    py = project_python()
    exe = resolve_exe("keystone-checks", env)
    cases = [("cli-import", [py, "-c", "import keystone_checks.frontends.cli"], True),
             ("cli-help", [exe or "keystone-checks", "--help"], exe is not None)]
    for name, argv, possible in cases:
        rec = {"tool": name, "hosts": 0, "rtt_ms": 0, "runs": 0, "wall_s_median": None, "wall_s_all": [],
               "cpu_s": None, "peak_rss_mb": None, "errors": None, "probes": 0}
        if possible:
            try:
                subprocess.run(argv, env=env, cwd=REPO, capture_output=True, timeout=60)  # warm caches
            except (OSError, subprocess.TimeoutExpired):
                possible = False
        if not possible:
            rec["status"] = "unavailable"
            rec["note"] = "keystone-checks executable not installed" if name == "cli-help" else ""
            out.append(rec)
            continue
        walls, cpus, rss, rcs = [], [], [], []
        with tempfile.TemporaryDirectory() as td:
            for _ in range(runs):
                m = run_measured(argv, env=env, cwd=REPO, timeout=60, logfile=Path(td) / "log", keep=set())
                walls.append(m.wall)
                cpus.append(m.cpu)
                rss.append(m.maxrss_mb)
                rcs.append(m.rc)
                last = (Path(td) / "log").read_text(errors="replace")
        if any(rcs):
            rec["status"] = "unavailable"
            rec["note"] = last.strip().splitlines()[-1][:200] if last.strip() else f"exit {rcs}"
            out.append(rec)
            log(f"{name}: unavailable ({rec['note']})")
            continue
        rec["status"] = "ok"
        rec.update(runs=runs, wall_s_median=round(statistics.median(walls), 4),
                   wall_s_all=[round(w, 4) for w in walls], cpu_s=round(statistics.median(cpus), 4),
                   peak_rss_mb=round(max(rss), 1))
        out.append(rec)
        log(f"{name}: {rec['status']} {rec['wall_s_median']} s")
    return out


# ------------------------------------------------------------------------------------------ main
def machine_info() -> dict:
    def ver(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unavailable"

    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = int(line.split()[1]) // 1024
    env = project_env()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "os": ver(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_mib": mem,
        "python": platform.python_version(),
        "pyinfra": ver([project_python(), "-c", "import importlib.metadata as m; print(m.version('pyinfra'))"]),
        "pyinfra_paramiko": ver([project_python(), "-c", "import importlib.metadata as m; print(m.version('paramiko'))"]),
        "bench_paramiko": ver([str(VENV_PY), "-c", "import importlib.metadata as m; print(m.version('paramiko'))"]),
        "pytest_testinfra": ver([str(VENV_PY), "-c", "import importlib.metadata as m; print(m.version('pytest-testinfra'))"]),
        "pytest_xdist": ver([str(VENV_PY), "-c", "import importlib.metadata as m; print(m.version('pytest-xdist'))"]),
        "ansible_core": ver([str(VENV_PY), "-c", "import importlib.metadata as m; print(m.version('ansible-core'))"]),
        "openssh": ver(["sh", "-c", "ssh -V 2>&1"]),
        "pyinfra_path": resolve_exe("pyinfra", env) or "missing",
        "keystone_checks_path": resolve_exe("keystone-checks", env) or "missing",
    }


SLOW_PROBE_S = 0.5


def _probe_seconds(command: str) -> float:
    """Wall time of one probe run locally (the bench hosts share this machine's /proc and tools)."""
    started = time.perf_counter()
    subprocess.run(["sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)
    return time.perf_counter() - started


def probes_digest(probes: list[tuple[str, str]]) -> str:
    """Fingerprint of the probe commands: a cheaper command with the same probe count is another catalog."""
    return hashlib.sha256(json.dumps(probes).encode()).hexdigest()[:12]


def merge_results(path: Path, new: list[dict], digest_now: str | None = None) -> list[dict]:
    """New records replace old ones with the same tool/hosts/rtt; with `digest_now` (the current
    probe commands' fingerprint), records of per-probe tools measured with other probe commands are
    flagged `stale` (kept, reported in their own section, never compared with current records)."""
    old: list[dict] = []
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = []
    keys = {(r["tool"], r["hosts"], r["rtt_ms"]) for r in new}
    merged = [r for r in old if (r["tool"], r["hosts"], r["rtt_ms"]) not in keys] + new
    if digest_now is not None:
        for r in merged:
            if r["tool"] in PROBE_TOOLS and r.get("probes_digest") != digest_now:
                r["stale"] = (f"measured with other probe commands ({r.get('probes')} probes, digest "
                              f"{r.get('probes_digest', 'not recorded')}); the catalog now is {digest_now}")
            else:
                r.pop("stale", None)
    merged.sort(key=lambda r: (r["hosts"], r["rtt_ms"], ALL_TOOLS.index(r["tool"]) if r["tool"] in ALL_TOOLS else 99))
    return merged


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="1,10,50,100")
    ap.add_argument("--rtt", default="0,10,50", help="round-trip times in ms")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tools", default=",".join(ALL_TOOLS))
    ap.add_argument("--timeout", type=float, default=600.0, help="per tool run, seconds")
    ap.add_argument("--phase", default="sweep", help="phase passed to host_probes")
    ap.add_argument("--role", default="deployed", help="role passed to host_probes and set on every host")
    ap.add_argument("--host-data", default='{"disk": "/dev/vda"}',
                    help="JSON host data for every host (inventory and host_probes); role is added")
    ap.add_argument("--probes", choices=["auto", "engine", "fallback"], default="auto",
                    help="auto: the engine's sweep catalog if importable, else the fallback list")
    ap.add_argument("--out", default=str(DOCS / "benchmarks.json"))
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI start-up measurement")
    ap.add_argument("--no-report", action="store_true", help="do not regenerate benchmarks.md")
    ap.add_argument("--png", default="", help="also pass --png PATH to bench/report.py (plot; off by default)")
    ap.add_argument("--record-skipped", default="", metavar="REASON",
                    help="run nothing: record --tools x --hosts x --rtt as `skipped` with REASON (e.g. a time budget)")
    ap.add_argument("--keep-logs", default="", help="directory to copy every tool log into")
    ap.add_argument("--only", action="append", default=[], metavar="TOOLS@HOSTS",
                    help="run TOOLS (comma list) only at these host counts, e.g. testinfra,ansible@50 "
                         "(elsewhere they are recorded as skipped); repeatable")
    ap.add_argument("--no-host-cpu", action="store_true", help="skip the host CPU per sweep measurement")
    ap.add_argument("--host-cpu-only", action="store_true",
                    help="measure only the host CPU per sweep (no fleet); waits for a 1-minute load below 1")
    a = ap.parse_args(argv)

    if not VENV_PY.exists():
        print("bench/.venv missing: run bench/setup.sh first", file=sys.stderr)
        return 2
    tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    for t in tools:
        if t not in ALL_TOOLS:
            ap.error(f"unknown tool {t!r}; known: {', '.join(ALL_TOOLS)}")
    host_counts = [int(x) for x in a.hosts.split(",")]
    only_at: dict[str, set[int]] = {}
    for spec in a.only:
        names, _, counts = spec.partition("@")
        if not counts:
            ap.error(f"--only {spec!r}: expected TOOLS@HOSTS, e.g. testinfra,ansible@50")
        for t in names.split(","):
            only_at[t.strip()] = {int(c) for c in counts.split(",")}
    rtts = [float(x) for x in a.rtt.split(",")]
    _set_subreaper()
    # Ctrl-C / SIGTERM always end the run cleanly (even when started in the background with SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def _term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _term)

    host_data = {**json.loads(a.host_data), "role": a.role}
    # Measure the tool as installed from a wheel (byte-code compiled at install): a checkout whose
    # environment sets PYTHONDONTWRITEBYTECODE would otherwise recompile ~50 modules (0.2 s CPU) per run.
    subprocess.run([project_python(), "-m", "compileall", "-q", str(REPO / "keystone_checks")], env=project_env(),
                   check=False, stdout=subprocess.DEVNULL)
    PHASE_ROLE[:] = [a.phase, a.role]
    probes, probes_source = load_probes(a.phase, a.role, host_data, a.probes)
    digest = probes_digest(probes)
    log(f"{len(probes)} probes from {probes_source} (digest {digest})")
    sweep_ok, sweep_why = sweep_available()
    api_ok, api_why = sweep_api_available()
    info = machine_info()
    results: list[dict] = []
    keep_logs = Path(a.keep_logs) if a.keep_logs else None
    if keep_logs:
        keep_logs.mkdir(parents=True, exist_ok=True)

    # Probes that wait (a sampling window) are a floor for every tool. Measured, not read from the
    # command text: a `sleep` may sit in a branch this machine never takes (SwapActivity sleeps only
    # on kernels without PSI).
    slow = {k: t for k, t in ((k, _probe_seconds(c)) for k, c in probes) if t >= SLOW_PROBE_S}
    probe_sleep_s = round(max(slow.values(), default=0.0), 3)
    sleepers = sorted(slow)

    def base_record(tool: str, n: int, rtt: float) -> dict:
        rec = {"tool": tool, "hosts": n, "rtt_ms": rtt, "runs": 0, "wall_s_median": None, "wall_s_all": [],
               "cpu_s": None, "peak_rss_mb": None, "errors": None, "probes": len(probes),
               "probes_source": probes_source, "probes_digest": digest}
        if tool in PROBE_TOOLS:
            rec["probe_sleep_s"] = probe_sleep_s
            rec["probe_sleepers"] = sleepers
        return rec

    if a.record_skipped:
        for n in host_counts:
            for rtt in rtts:
                for tool in tools:
                    results.append({**base_record(tool, n, rtt), "status": "skipped", "note": a.record_skipped})
        out = Path(a.out)
        out.write_text(json.dumps(merge_results(out, results, digest), indent=1) + "\n")
        log(f"wrote {out} ({len(results)} skipped records)")
        return 0

    try:
        if a.host_cpu_only:
            while load1() >= 1.0:  # the per-probe figures are small: other work would inflate them
                log(f"waiting for the machine to settle (load {load1()})")
                time.sleep(15)
            host_counts = []
        if not a.no_host_cpu:
            results.append({**measure_host_cpu(a.phase, a.role, host_data), "probes_digest": digest,
                            "probes_source": probes_source})
        for n in host_counts:
            log(f"starting fleet of {n} hosts")
            with Fleet(n, rtts[0]) as fleet, tempfile.TemporaryDirectory(prefix="kc-bench-") as td:
                work = Path(td)
                ctx = Ctx(fleet, work, probes, host_data)
                for rtt in rtts:
                    fleet.set_rtt(rtt)
                    load_before = load1()
                    samples: dict[str, list[tuple[Measured, int, int]]] = {t: [] for t in tools}
                    status: dict[str, str] = {t: "ok" for t in tools}
                    notes: dict[str, str] = {}
                    for tool in tools:
                        if tool in only_at and n not in only_at[tool]:
                            status[tool] = "skipped"
                            notes[tool] = (f"not run at {n} hosts: measured at {sorted(only_at[tool])} hosts only "
                                           "(--only, the run's time budget)")
                    if "sweep" in tools and not sweep_ok:
                        status["sweep"] = "unavailable"
                        notes["sweep"] = sweep_why
                    for needs_batch in ("probes-local", "batch-ssh"):
                        if needs_batch in tools and ctx.batch_why:
                            status[needs_batch] = "unavailable"
                            notes[needs_batch] = ctx.batch_why
                    if "sweep-api" in tools and not api_ok:
                        status["sweep-api"] = "unavailable"
                        notes["sweep-api"] = api_why
                    for r in range(a.runs):
                        for tool in tools:
                            if status[tool] in ("unavailable", "timeout", "skipped"):
                                continue
                            run_dir = work / f"{tool}-{rtt:g}-{r}"
                            run_dir.mkdir()
                            argv_, env, cwd = tool_command(tool, ctx, run_dir)
                            logfile = run_dir / "tool.log"
                            m = run_measured(argv_, env=env, cwd=cwd, timeout=a.timeout, logfile=logfile,
                                             keep=set(fleet.pids))
                            if m.timed_out:
                                status[tool] = "timeout"
                                notes[tool] = f"run {r + 1} exceeded {a.timeout:g} s"
                                log(f"N={n} rtt={rtt:g} {tool}: TIMEOUT after {a.timeout:g} s")
                                continue
                            errors, execs_ok = parse_result(tool, ctx, run_dir, logfile, m)
                            samples[tool].append((m, errors, execs_ok))
                            log(f"N={n} rtt={rtt:g} run {r + 1}/{a.runs} {tool}: {m.wall:.2f} s wall, "
                                f"{m.cpu:.2f} s cpu, {m.maxrss_mb:.0f} MiB max, {m.tree_rss_mb:.0f} MiB tree, "
                                f"rc={m.rc} errors={errors} execs_ok={execs_ok}")
                            if keep_logs:
                                shutil.copy(logfile, keep_logs / f"{tool}-N{n}-rtt{rtt:g}-run{r + 1}.log")
                    # the engine is a moving target while it is being written: flag a catalog that changed
                    # under the run (the sweep then ran other probes than the other tools did)
                    load_after = load1()
                    log(f"N={n} rtt={rtt:g}: load average (1 min) {load_before} before, {load_after} after")
                    catalog_changed = False
                    if probes_source.startswith("engine") and any(status.get(t) == "ok" for t in SWEEPS if t in tools):
                        try:
                            now_probes, _ = load_probes(a.phase, a.role, host_data, "engine")
                            catalog_changed = now_probes != probes
                        except SystemExit:
                            catalog_changed = True
                        if catalog_changed:
                            log("WARNING: the sweep catalog changed during this configuration")
                    for tool in tools:
                        rec = base_record(tool, n, rtt)
                        if catalog_changed:
                            rec["catalog_changed_during_run"] = True
                        rec["status"] = status[tool]
                        rec["load_avg_1m_before"] = load_before
                        rec["load_avg_1m_after"] = load_after
                        if tool in notes:
                            rec["note"] = notes[tool]
                        ss = samples[tool]
                        if ss:
                            walls = [m.wall for m, _, _ in ss]
                            rec.update(
                                runs=len(ss),
                                wall_s_median=round(statistics.median(walls), 4),
                                wall_s_all=[round(w, 4) for w in walls],
                                cpu_s=round(statistics.median([m.cpu for m, _, _ in ss]), 3),
                                peak_rss_mb=round(max(m.maxrss_mb for m, _, _ in ss), 1),
                                peak_tree_rss_mb=round(max(m.tree_rss_mb for m, _, _ in ss), 1),
                                errors=max(e for _, e, _ in ss),
                                execs_ok=min(x for _, _, x in ss),
                                exit_codes=[m.rc for m, _, _ in ss],
                            )
                            if tool == "baseline":
                                rec["probes"] = 1  # one exec of `true`
                            elif tool == "pyinfra-connect":
                                rec["probes"] = 0  # connects only
                        results.append(rec)
    except KeyboardInterrupt:
        log("interrupted: fleet stopped; keeping the results measured so far")
    finally:
        if not a.no_cli and results is not None:
            try:
                results.extend(measure_cli(max(3, a.runs)))
            except KeyboardInterrupt:
                pass
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        merged = merge_results(out, results, digest)
        out.write_text(json.dumps(merged, indent=1) + "\n")
        if results:
            (HERE / "machine.json").write_text(json.dumps(info, indent=1) + "\n")
        log(f"wrote {out} ({len(results)} new records)")
        if not a.no_report:
            subprocess.run([sys.executable, str(HERE / "report.py"), "--json", str(out)]
                           + (["--png", a.png] if a.png else []), check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
