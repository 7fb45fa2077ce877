"""The Prometheus alerting rules (deploy/prometheus/) and the Grafana dashboard (deploy/grafana/), tested
with promtool on series written by REAL sweeps.

Real ``keystone-checks run sweep`` runs over two real sshd hosts (tests/kc_helpers.Sshd), with the
end-to-end catalog (tests/fixtures/e2e_checks) plus warning and info copies of its always-failing check,
write ``--report prometheus:PATH`` and ``--report json:PATH``:

- sweep 1: ``web-1`` is up with its marker file missing (``marker-file-present`` fails), ``web-2`` has
  nothing listening on its port (unreachable);
- sweep 2: the marker exists and ``web-2``'s sshd is started on that port (both recovered);
- fix runs on ``web-1`` whose marker path lies under a regular file: ``--fix --dry`` (``would-fix``) and
  ``--fix`` (the fix cannot create it: ``fix-failed``), outcomes that must alert like ``fail``.

A small converter turns each exposition into promtool ``input_series`` on a test clock where node_exporter
is scraped every minute: sweep 1's file from minute 0, sweep 2's from minute 15, then no sweep runs (the
file stays, as on a controller whose timer stopped) and at minute 121 the file is removed. The expected
alerts at each eval time are derived from the same run's JSON report, the ground truth the writer was
fed; promtool decides whether the rules produce exactly them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from kc_helpers import REPO, Sshd, free_port, write_inventory
from report_checks import need, run_sweep

RULES = REPO / "deploy" / "prometheus" / "keystone-checks.rules.yml"
RULES_TEST = REPO / "deploy" / "prometheus" / "keystone-checks.rules.test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "keystone-checks.dashboard.json"
E2E_CHECKS = Path(__file__).parent / "fixtures" / "e2e_checks"

FAILING = ("fail", "fix-failed", "would-fix")
JOB = "node"
SCRAPE_LABELS = {"instance", "job"}  # added by Prometheus when it scrapes node_exporter
STALE_AFTER_S = 2700  # the rules' threshold: 3 x the 15-minute timer
EDGE = 15 + STALE_AFTER_S // 60  # the last sweep finishes at minute 15: exactly 2700 s old at minute 60


def promtool() -> str:
    """promtool (Debian package `prometheus`) must be installed: fail, never skip."""
    binary = shutil.which("promtool")
    if not binary:
        pytest.fail("promtool is not installed: `apt-get install --no-install-recommends prometheus` "
                    "(.ci/run installs it); the alert rules cannot be tested without it")
    return binary


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, cwd=REPO)


# --- exposition -> promtool input_series --------------------------------------------------------

def samples(exposition: str) -> list[tuple[str, dict[str, str], float]]:
    """(metric name, labels, value) of every sample, read by the reference parser (prometheus_client)."""
    parser = need("prometheus_client.parser")
    return [(s.name, dict(s.labels), s.value) for family in parser.text_string_to_metric_families(exposition)
            for s in family.samples]


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def series_name(name: str, labels: dict[str, str]) -> str:
    """PromQL series notation, as promtool's input_series reads it: ``name{a="x",b="y"}``."""
    return name + "{" + ",".join(f"{k}={_quote(v)}" for k, v in sorted(labels.items())) + "}"


class Scrapes:
    """What Prometheus would have stored from scraping node_exporter once a minute for ``minutes``.

    ``serve(instance, exposition, start, end)``: the textfile holds that exposition from minute ``start``
    to ``end`` (exclusive); ``keystone_checks_last_run_timestamp_seconds`` is put on the test clock (the
    sweep finished at minute ``start``), every other value is the file's. A series absent at a scrape
    after being present gets a staleness marker, as Prometheus writes when a series leaves a target.
    """

    def __init__(self, minutes: int):
        self.minutes = minutes
        self.values: dict[str, list[float | None]] = {}

    def serve(self, instance: str, exposition: str, start: int, end: int) -> None:
        for name, labels, value in samples(exposition):
            key = series_name(name, {**labels, "instance": instance, "job": JOB})
            row = self.values.setdefault(key, [None] * self.minutes)
            if name == "keystone_checks_last_run_timestamp_seconds":
                value = start * 60.0
            for minute in range(start, min(end, self.minutes)):
                row[minute] = value

    def input_series(self) -> list[dict[str, str]]:
        out = []
        for key, row in self.values.items():
            text, seen = [], False
            for i, value in enumerate(row):
                if value is not None:
                    text.append(repr(value) if value != int(value) else str(int(value)))
                    seen = True
                elif seen and row[i - 1] is not None:
                    text.append("stale")
                else:
                    text.append("_")
            out.append({"series": key, "values": " ".join(text)})
        return out


# --- expected alerts from the JSON report -------------------------------------------------------

def _title_or_check(labels: dict) -> str:
    return labels.get("title") or labels["check"]


def check_alerts(report: dict, instance: str, outcomes: tuple[str, ...], *, with_info: bool = True) -> list[dict]:
    """The alerts the rules must raise for one report's results whose outcome is in ``outcomes``
    (KeystoneCheckFailing: failing critical/warning checks; KeystoneCheckError: every error)."""
    alerts = []
    for host in report["hosts"]:
        for r in host["results"]:
            if r["outcome"] not in outcomes:
                continue
            if outcomes == FAILING and r["severity"] not in ("critical", "warning"):
                continue
            labels = {"host": host["name"], "check": r["check"], "severity": r["severity"], "outcome": r["outcome"],
                      "phase": report["phase"], "instance": instance, "job": JOB}
            if with_info:
                labels |= {"title": r["title"], "guide_document": r["guide"]["document"],
                           "guide_section": r["guide"]["section"]}
            if outcomes == FAILING:
                guide = (f' Guide: {labels["guide_document"]}, section "{labels["guide_section"]}".'
                         if with_info else "")
                annotations = {
                    "summary": f"{host['name']}: {_title_or_check(labels)}",
                    "description": f"Check {r['check']} ({r['severity']}) is {r['outcome']} on {host['name']} "
                                   f"(last {report['phase']} run on {instance}).{guide} What it expects and the fix: "
                                   f"`keystone-checks show {r['check']}`; found values in the sweep report.",
                }
            else:
                annotations = {
                    "summary": f"{host['name']}: {_title_or_check(labels)} could not be evaluated",
                    "description": f"Check {r['check']} ({r['severity']}) on {host['name']} could not be evaluated "
                                   "(command missing, output unparseable, timeout or host data missing): its state is "
                                   "unknown, not healthy. The reason is the result's message in the sweep report on "
                                   f"{instance}; `keystone-checks show {r['check']}`.",
                }
            alerts.append({"exp_labels": labels, "exp_annotations": annotations})
    return alerts


def unreachable_alerts(report: dict, instance: str) -> list[dict]:
    return [{"exp_labels": {"host": h["name"], "status": "unreachable", "phase": report["phase"], "instance": instance,
                            "job": JOB, "severity": "critical"},
             "exp_annotations": {
                 "summary": f"{h['name']} unreachable from {instance}",
                 "description": f"The last {report['phase']} run on {instance} could not connect to {h['name']}: "
                                "none of its checks ran. The reason (does not resolve, refused, timed out, key "
                                "rejected, host key changed) is the host's `error` in the sweep report; "
                                "docs/operator.md section 3."}}
            for h in report["hosts"] if h["status"] == "unreachable"]


def stale_alert(instance: str, phase: str, age: str) -> dict:
    return {"exp_labels": {"instance": instance, "job": JOB, "phase": phase, "severity": "warning"},
            "exp_annotations": {
                "summary": f"keystone-checks {phase} on {instance} last finished {age} ago",
                "description": f"No {phase} run has finished on {instance} for {age} (timer: every 15 min): the "
                               "check alerts from there show old verdicts. On that machine: `systemctl status "
                               "keystone-checks-sweep.timer keystone-checks-sweep.service`, "
                               "`journalctl -u keystone-checks-sweep`."}}


def vanished_alert(instance: str, phase: str) -> dict:
    return {"exp_labels": {"instance": instance, "job": JOB, "phase": phase, "severity": "warning"},
            "exp_annotations": {
                "summary": f"keystone-checks metrics from {instance} are gone",
                "description": f"{instance} exported keystone_checks_last_run_timestamp_seconds (phase {phase}) in the "
                               "last day but does not now: the textfile was removed or is unreadable "
                               "(node_textfile_scrape_error), or node_exporter is not scraped. Nothing is watching "
                               "its hosts."}}


ABSENT_ALERT = {"exp_labels": {"severity": "warning"},
                "exp_annotations": {
                    "summary": "No keystone-checks sweep metrics in Prometheus",
                    "description": "No machine exports keystone_checks_last_run_timestamp_seconds: no sweep writes its "
                                   "`--report prometheus:` file into a scraped node_exporter textfile directory."}}


def at(minute: int, alertname: str, alerts: list[dict]) -> dict:
    return {"eval_time": f"{minute}m", "alertname": alertname, "exp_alerts": alerts}


def run_rule_tests(tmp: Path, tests: list[dict], rules: Path = RULES) -> subprocess.CompletedProcess:
    path = tmp / "alerts.test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests},
                                   sort_keys=False, allow_unicode=True))
    return run_promtool("test", "rules", str(path))


# --- the real sweeps --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """Two real sweeps of two sshd hosts, then the two fix runs: (report, exposition) of each."""
    tmp = tmp_path_factory.mktemp("alerts")
    web1 = Sshd(tmp / "web-1")
    web1.root.mkdir()
    web1.start()
    web2 = Sshd(tmp / "web-2")
    web2.root.mkdir()
    web2.port = free_port()  # nothing listens here during sweep 1
    marker = tmp / "marker"
    # The end-to-end catalog plus the always-failing check at the two other severities: a failing
    # warning check alerts, a failing info check does not.
    checks = tmp / "checks"
    shutil.copytree(E2E_CHECKS, checks)
    tiny = (E2E_CHECKS / "root-is-tiny.yaml").read_text()
    for severity in ("warning", "info"):
        text = tiny.replace("id: root-is-tiny", f"id: root-is-tiny-{severity}").replace(
            "severity: critical", f"severity: {severity}").replace("(always fails)", f"(always fails, {severity})")
        (checks / f"root-is-tiny-{severity}.yaml").write_text(text)
    env = {"KEYSTONE_CHECKS_DIR": str(checks)}
    out = []
    try:
        for n in (1, 2):
            if n == 2:
                marker.write_text("")
                web2.start()
                web2_data = web2.host_data()
            else:
                web2_data = {"ssh_hostname": "127.0.0.1", "ssh_port": web2.port}
            inventory = write_inventory(tmp / f"inv{n}.py", {
                "web-1": {"role": "deployed", "installer_marker": str(marker), **web1.host_data()},
                "web-2": {"role": "deployed", "installer_marker": str(marker), **web2_data},
            })
            json_path, prom_path = tmp / f"sweep{n}.json", tmp / f"sweep{n}.prom"
            done = run_sweep(inventory, {"json": json_path, "prometheus": prom_path}, timeout=180, env=env)
            assert done.returncode in (2, 3), done.stdout + done.stderr
            out.append((json.loads(json_path.read_text()), prom_path.read_text()))
        (tmp / "not-a-dir").write_text("")
        blocked = {"web-1": {"role": "deployed", "installer_marker": str(tmp / "not-a-dir" / "marker"),
                             **web1.host_data()}}
        for n, extra in ((3, ("--fix", "--dry")), (4, ("--fix",))):
            inventory = write_inventory(tmp / f"inv{n}.py", blocked)
            json_path, prom_path = tmp / f"sweep{n}.json", tmp / f"sweep{n}.prom"
            done = run_sweep(inventory, {"json": json_path, "prometheus": prom_path}, *extra, timeout=180, env=env)
            assert done.returncode == 2, done.stdout + done.stderr
            out.append((json.loads(json_path.read_text()), prom_path.read_text()))
    finally:
        web1.stop()
        web2.stop()
    return out


def _outcome(report: dict, host: str, check: str) -> str:
    (entry,) = [h for h in report["hosts"] if h["name"] == host]
    return {r["check"]: r["outcome"] for r in entry["results"]}[check]


def test_sweeps_cover_every_alerting_state(sweeps):
    """The two real runs really are what the rule tests below rely on (else they would test nothing)."""
    (first, _), (second, _), *_ = sweeps
    hosts1 = {h["name"]: h["status"] for h in first["hosts"]}
    hosts2 = {h["name"]: h["status"] for h in second["hosts"]}
    assert hosts1 == {"web-1": "ok", "web-2": "unreachable"} and hosts2 == {"web-1": "ok", "web-2": "ok"}
    assert _outcome(first, "web-1", "marker-file-present") == "fail"
    assert _outcome(second, "web-1", "marker-file-present") == "pass"
    assert _outcome(second, "web-2", "marker-file-present") == "pass"
    for report in (first, second):
        assert _outcome(report, "web-1", "needs-disk") == "error"  # host data 'disk' is not set
        assert _outcome(report, "web-1", "root-is-tiny") == "fail"
        assert _outcome(report, "web-1", "root-is-tiny-warning") == _outcome(report, "web-1", "root-is-tiny-info") == "fail"
    (dry, _), (fix, _) = sweeps[2:]
    assert _outcome(dry, "web-1", "marker-file-present") == "would-fix"
    assert _outcome(fix, "web-1", "marker-file-present") == "fix-failed"


def test_rules_are_valid():
    done = run_promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout
    assert f"keystone_checks_last_run_timestamp_seconds > {STALE_AFTER_S}\n" in RULES.read_text()


def _series_schema(series: str) -> tuple[str, frozenset[str]]:
    """``name{a="x",b="y"}`` -> (name, {a, b}) (values may hold escaped quotes)."""
    found = re.fullmatch(r'(\w+)\{((?:\w+="(?:[^"\\]|\\.)*",?)*)\}', series)
    assert found, series
    return found[1], frozenset(re.findall(r'(\w+)="(?:[^"\\]|\\.)*"', found[2]))


def test_shipped_rule_tests_pass_on_series_the_writer_still_writes(sweeps):
    """deploy/prometheus/keystone-checks.rules.test.yml (for operators who change a threshold) passes
    under promtool, and its series have exactly the metric and label names a sweep writes today."""
    done = run_promtool("test", "rules", str(RULES_TEST))
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout[-6000:] + done.stderr[-3000:]
    shipped = {_series_schema(s["series"]) for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
               for s in test["input_series"]}
    (_, prom1), (_, prom2), *_ = sweeps
    written = {(name, frozenset(labels) | SCRAPE_LABELS) for prom in (prom1, prom2)
               for name, labels, _ in samples(prom)}
    assert {name for name, _ in shipped} == {name for name, _ in written}
    assert shipped <= written, sorted(shipped - written)


def _timeline(sweeps, instance: str) -> Scrapes:
    """One controller: sweep 1 at minute 0, sweep 2 at 15, no sweep after; file removed at 121."""
    (_, prom1), (_, prom2), *_ = sweeps
    scrapes = Scrapes(140)
    scrapes.serve(instance, prom1, 0, 15)
    scrapes.serve(instance, prom2, 15, 121)
    return scrapes


def test_alerts_follow_real_sweeps_then_staleness_then_absence(sweeps, tmp_path):
    (first, _), (second, _), *_ = sweeps
    ctl = "ctl-a:9100"
    failing_1 = check_alerts(first, ctl, FAILING)
    errors_1 = check_alerts(first, ctl, ("error",))
    alerting = {f'{a["exp_labels"]["host"]}/{a["exp_labels"]["check"]}' for a in failing_1}
    assert {"web-1/marker-file-present", "web-1/root-is-tiny", "web-1/root-is-tiny-warning"} <= alerting
    assert "web-1/root-is-tiny-info" not in alerting
    assert errors_1 and unreachable_alerts(first, ctl)
    evals = [
        # Sweep 1: failing checks with title and guide, the errors, the unreachable host; the sweep is fresh.
        at(5, "KeystoneCheckFailing", failing_1),
        at(5, "KeystoneCheckError", errors_1),
        at(5, "KeystoneHostUnreachable", unreachable_alerts(first, ctl)),
        at(5, "KeystoneHostNotChecked", []),
        at(5, "KeystoneSweepStale", []),
        at(5, "KeystoneSweepMetricsVanished", []),
        at(5, "KeystoneSweepMetricsAbsent", []),
        # Sweep 2: the marker check and web-2 recovered, and their alerts resolved.
        at(20, "KeystoneCheckFailing", check_alerts(second, ctl, FAILING)),
        at(20, "KeystoneCheckError", check_alerts(second, ctl, ("error",))),
        at(20, "KeystoneHostUnreachable", []),
        # No sweep since minute 15: stale once older than 2700 s (at minute 60 it is exactly 2700 s).
        at(EDGE, "KeystoneSweepStale", []),
        at(EDGE + 1, "KeystoneSweepStale", [stale_alert(ctl, "sweep", "46m 0s")]),
        at(EDGE + 1, "KeystoneCheckFailing", check_alerts(second, ctl, FAILING)),  # old verdicts still served
        # File removed at minute 121: the check alerts resolve; the loss itself alerts after 10 minutes.
        at(125, "KeystoneCheckFailing", []),
        at(125, "KeystoneSweepMetricsVanished", []),
        at(125, "KeystoneSweepMetricsAbsent", []),
        at(132, "KeystoneSweepMetricsVanished", [vanished_alert(ctl, "sweep")]),
        at(132, "KeystoneSweepMetricsAbsent", [ABSENT_ALERT]),
    ]
    done = run_rule_tests(tmp_path, [{"name": "one controller", "interval": "1m",
                                      "input_series": _timeline(sweeps, ctl).input_series(),
                                      "alert_rule_test": evals}])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


def test_two_controllers_one_stops(sweeps, tmp_path):
    """ctl-a stops sweeping and later loses its file; ctl-b sweeps every 15 min (sweep 2's verdicts):
    only ctl-a's sweep alerts fire, ctl-b's check alerts stay, and absent() stays quiet."""
    (first, _), (second, prom2), *_ = sweeps
    scrapes = _timeline(sweeps, "ctl-a:9100")
    for start in range(0, 140, 15):
        scrapes.serve("ctl-b:9100", prom2, start, start + 15)
    evals = [
        at(5, "KeystoneCheckFailing", check_alerts(first, "ctl-a:9100", FAILING)
           + check_alerts(second, "ctl-b:9100", FAILING)),
        at(EDGE + 1, "KeystoneSweepStale", [stale_alert("ctl-a:9100", "sweep", "46m 0s")]),
        at(132, "KeystoneSweepStale", []),
        at(132, "KeystoneSweepMetricsVanished", [vanished_alert("ctl-a:9100", "sweep")]),
        at(132, "KeystoneSweepMetricsAbsent", []),
        at(132, "KeystoneCheckFailing", check_alerts(second, "ctl-b:9100", FAILING)),
    ]
    done = run_rule_tests(tmp_path, [{"name": "two controllers", "interval": "1m",
                                      "input_series": scrapes.input_series(), "alert_rule_test": evals}])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


def test_check_alerts_without_info_series(sweeps, tmp_path):
    """A writer older than keystone_check_info: the check alerts still fire, named by check id."""
    (first, prom1), *_ = sweeps
    without_info = "\n".join(line for line in prom1.splitlines() if "keystone_check_info" not in line) + "\n"
    assert "keystone_check_info" in prom1 and "keystone_check_info" not in without_info
    scrapes = Scrapes(20)
    scrapes.serve("ctl-c:9100", without_info, 0, 20)
    evals = [at(5, "KeystoneCheckFailing", check_alerts(first, "ctl-c:9100", FAILING, with_info=False)),
             at(5, "KeystoneCheckError", check_alerts(first, "ctl-c:9100", ("error",), with_info=False))]
    done = run_rule_tests(tmp_path, [{"name": "no info series", "interval": "1m",
                                      "input_series": scrapes.input_series(), "alert_rule_test": evals}])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


def test_fix_outcomes_alert_like_failures(sweeps, tmp_path):
    """would-fix (a dry fix run) and fix-failed are failing checks, not healthy ones."""
    (dry, prom_dry), (fix, prom_fix) = sweeps[2:]
    scrapes = Scrapes(30)
    scrapes.serve("ctl-a:9100", prom_dry, 0, 15)
    scrapes.serve("ctl-a:9100", prom_fix, 15, 30)
    failing_dry, failing_fix = check_alerts(dry, "ctl-a:9100", FAILING), check_alerts(fix, "ctl-a:9100", FAILING)
    assert {"would-fix", "fix-failed"} <= {a["exp_labels"]["outcome"] for a in failing_dry + failing_fix}
    evals = [at(5, "KeystoneCheckFailing", failing_dry), at(20, "KeystoneCheckFailing", failing_fix)]
    done = run_rule_tests(tmp_path, [{"name": "fix runs", "interval": "1m",
                                      "input_series": scrapes.input_series(), "alert_rule_test": evals}])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


# --- the Grafana dashboard ---------------------------------------------------------------------

GRAFANA_VARIABLES = {"$instance": ".*", "$host": ".*"}  # what "All" sends (allValue)


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out += panel.get("panels", [])  # collapsed rows hold their panels
    return out


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and query variable, with the variables as "All" sends them.
    ``label_values(SELECTOR, LABEL)`` becomes ``count by (LABEL) (SELECTOR)``: the values it would list."""
    queries = []
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
            assert found, variable
            assert variable["query"]["query"] == variable["definition"], variable["name"]
            queries.append((f"variable {variable['name']}", f"count by ({found[2]}) ({found[1]})"))
    substituted = []
    for where, expr in queries:
        for name, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(name, value)
        assert "$" not in expr, f"{where}: unknown variable in {expr}"
        substituted.append((where, expr))
    return substituted


def test_dashboard_reads_what_the_writer_writes(sweeps, tmp_path):
    """The dashboard parses, is laid out on Grafana's 24-column grid, uses the datasource variable,
    names only metrics and labels the writer emits, and every query returns data on a real sweep
    (promtool evaluates each under absent(): an alert would mean an empty panel or a query that does
    not parse)."""
    dashboard = json.loads(DASHBOARD.read_text())
    (_, prom1), *_ = sweeps
    emitted = samples(prom1)
    metrics = {name for name, _, _ in emitted}
    labels = {label for _, series, _ in emitted for label in series} | SCRAPE_LABELS

    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = _panels(dashboard)
    assert len({p["id"] for p in panels}) == len(panels) >= 8
    types = {p["type"] for p in panels}
    assert types <= {"stat", "table", "timeseries", "state-timeline", "row"}, types
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"] and all(t["datasource"] == panel["datasource"] for t in panel["targets"])
        for transformation in panel.get("transformations", []):
            options = transformation["options"]
            named = set(options.get("excludeByName", {})) | set(options.get("indexByName", {})) | \
                set(options.get("renameByName", {}))
            assert named <= labels | {"Time", "Value", "__name__"}, (panel["title"], named - labels)

    queries = dashboard_queries(dashboard)
    for where, expr in queries:
        used = set(re.findall(r"\bkeystone_\w+", expr))
        assert used and used <= metrics, f"{where}: {sorted(used - metrics)} not written by the prometheus writer"
        matched = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", expr))
        grouped = {name.strip() for group in re.findall(r"(?:by|on|group_left|without)\s*\(([^)]*)\)", expr)
                   for name in group.split(",") if name.strip()}
        assert matched | grouped <= labels, f"{where}: labels {sorted((matched | grouped) - labels)} not written"

    rules = tmp_path / "dashboard.rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"alert": "DashboardQueryEmpty", "expr": f"absent({expr})", "labels": {"query": where}}
        for where, expr in queries]}]}, sort_keys=False))
    checked = run_promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    scrapes = Scrapes(10)
    scrapes.serve("ctl-a:9100", prom1, 0, 10)
    done = run_rule_tests(tmp_path, [{"name": "dashboard", "interval": "1m", "input_series": scrapes.input_series(),
                                      "alert_rule_test": [at(5, "DashboardQueryEmpty", [])]}], rules=rules)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
