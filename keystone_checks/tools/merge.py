"""One fleet report from the JSON reports of several controllers (inventory shards).

A fleet larger than one controller is swept in shards (``--limit shard_3`` on each controller,
docs/benchmarks.md "Beyond one machine"); each writes its own JSON report. Reports are per-host
records, so merging is concatenation, with three rules that keep the fleet summary honest:

- a host in two shard reports is an error (two controllers disagree about who owns it);
- with the inventory, a host no shard reported is added as ``unreachable`` ("no shard reported
  it"): a shard that did not run must not make the fleet look healthier than it is;
- a host last observed longer ago than ``--max-age`` (default 2 h: eight missed 15-minute sweeps)
  is ``unreachable`` with the reason ("stale: last checked ... by shard ..."), its old results
  dropped: an old shard must not vouch for a host today. Each host carries its own
  ``finished_at`` (older reports without it: their shard's ``finished_at``);
- the fleet report's ``finished_at`` is the OLDEST shard's: the merged answer is only as fresh as
  its stalest part;
- the summary (outcome counts, worst status, Nagios exit code) is recomputed from the merged hosts
  by ``report.build``, exactly as one run over the whole fleet would, never added up.

Example::

    keystone-checks merge reports/sweep-shard_*.json -i inventory/fleet.py --report json:fleet.json
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import fields
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from ..engine import outcome as report
from ..engine.evaluate import CheckResult, Outcome
from ..errors import KeystoneChecksError

_RESULT_FIELDS = {f.name for f in fields(CheckResult)}


@lru_cache(maxsize=1)
def _report_validator() -> Draft202012Validator:
    """The report schema's validator, built once for all shards."""
    return Draft202012Validator(json.loads(
        resources.files("keystone_checks").joinpath("schema/report.schema.json").read_text(encoding="utf-8")))


def load_shard(path: str | Path) -> dict[str, Any]:
    """A shard's JSON report, checked against the report schema; errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeystoneChecksError(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise KeystoneChecksError(f"{path}: not JSON ({exc}); pass the shards' --report json files") from None
    problem = next(iter(sorted(_report_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))), None)
    if problem is not None:
        where = "/".join(map(str, problem.absolute_path)) or "top level"
        raise KeystoneChecksError(f"{path}: not a keystone-checks report ({where}: {problem.message})")
    return data


DEFAULT_MAX_AGE_S = 2 * 3600
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """``--max-age``: ``90m``, ``2h``, ``1d``, ``3600`` (seconds). Raises KeystoneChecksError."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise KeystoneChecksError(f"--max-age {text}: expected a positive duration like 90m, 2h or 1d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def merge(shards: list[tuple[str, dict[str, Any]]], expected_hosts: list[str] | None = None,
          max_age_s: float = DEFAULT_MAX_AGE_S, now: float | None = None) -> dict[str, Any]:
    """Merge ``(name, report)`` pairs; ``expected_hosts`` (the inventory) adds the hosts nobody reported;
    hosts last observed more than ``max_age_s`` before ``now`` (default: the current time) are stale."""
    now = time.time() if now is None else now
    if not shards:
        raise KeystoneChecksError("merge: no shard reports given")
    phases = {data["phase"] for _, data in shards}
    if len(phases) > 1:
        listing = ", ".join(f"{name}: {data['phase']}" for name, data in shards)
        raise KeystoneChecksError(f"merge: the shards ran different phases ({listing}); merge one phase at a time")
    owner: dict[str, str] = {}
    hosts: list[report.HostReport] = []
    explained: dict[str, Any] = {}
    for name, data in shards:
        for host in data["hosts"]:
            if host["name"] in owner:
                raise KeystoneChecksError(f"merge: host {host['name']} is in two shards ({owner[host['name']]} and {name}); "
                                          "each host must belong to exactly one shard")
            owner[host["name"]] = name
            merged_host = _host(host, data)
            age = now - (merged_host.finished_at or merged_host.started_at)
            if age > max_age_s:
                merged_host = report.HostReport(
                    name=merged_host.name, roles=merged_host.roles, status="unreachable",
                    started_at=merged_host.started_at, finished_at=merged_host.finished_at,
                    error=f"stale: last checked {host.get('finished_at') or data['finished_at']} "
                          f"({_age_text(age)} before the merge, more than --max-age {_age_text(max_age_s)}) "
                          f"by shard {name}: its controller has not swept it since")
            hosts.append(merged_host)
            if host.get("explained_by"):
                explained[host["name"]] = host["explained_by"]
    for missing in sorted(set(expected_hosts or []) - set(owner)):
        hosts.append(report.HostReport(name=missing, status="unreachable",
                                       error="in the inventory but in no shard report: its shard did not run, "
                                             "did not finish, or its --limit left the host out"))
    started = min(_epoch(data["started_at"]) for _, data in shards)
    finished = min(_epoch(data["finished_at"]) for _, data in shards)  # the oldest: see the module docstring
    merged = report.build(phases.pop(), hosts, started, finished,
                          dry_run=any(data["dry_run"] for _, data in shards),
                          fix_requested=any(data["fix_requested"] for _, data in shards))
    for host in merged["hosts"]:
        host["explained_by"] = explained.get(host["name"])
    merged["shards"] = [name for name, _ in shards]
    merged["max_age_s"] = max_age_s
    return merged


def _host(data: dict[str, Any], shard: dict[str, Any]) -> report.HostReport:
    results = []
    for item in data["results"]:
        values = {k: v for k, v in item.items() if k in _RESULT_FIELDS}
        values["outcome"] = Outcome(item["outcome"])
        results.append(CheckResult(**values))
    return report.HostReport(name=data["name"], roles=list(data.get("roles", [])), status=data["status"],
                             error=data.get("error"), duration_s=data.get("duration_s", 0.0), results=results,
                             started_at=_epoch(data.get("started_at") or shard["started_at"]),
                             finished_at=_epoch(data.get("finished_at") or shard["finished_at"]))


def _epoch(iso: str) -> float:
    when = datetime.fromisoformat(iso)
    if when.tzinfo is None:  # the schema's date-time has an offset; a hand-edited one is read as UTC
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _age_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}".replace(".0" + unit, unit)
    return f"{seconds:.0f}s"
