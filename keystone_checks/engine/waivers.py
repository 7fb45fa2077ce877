"""Waivers (as InSpec has them): a known, accepted failure, with a reason and an expiry date.

The file is a YAML list; ``keystone-checks run --waivers FILE`` or host data ``waivers=PATH``::

    - check: credstore-tpm2-enrolled      # a check id of the catalog (else: an error naming file:line)
      hosts: "lab-*"                       # fnmatch glob over inventory host names; default "*"
      reason: these VMs have no TPM; unlock by passphrase is accepted until the hardware move
      expires: 2027-01-31                  # YYYY-MM-DD, required: the waiver holds through that day (UTC)

A check that **fails** on a host a live waiver covers is reported ``waived`` (never ``pass``, never
dropped): it keeps its message, gains the waiver (reason, expiry, where it was written), is not
fixed, and does not count toward the exit status; the summary counts it. Errors are never waived
(a check that could not be evaluated is not a known failure). A waiver past its date no longer
waives: the check is ``fail`` again, its result carries the expired waiver, the report lists it
under ``waivers.expired`` and a warning line is printed for it.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from .. import yamlsafe
from ..errors import KeystoneChecksError

MAX_BYTES = 1024 * 1024  # a waivers file is a short hand-written list
MAX_TEXT = 4096
_KEYS = ("check", "hosts", "reason", "expires")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class WaiverError(KeystoneChecksError):
    """The waivers file cannot be used; the message names file:line."""


@dataclass(frozen=True)
class Waiver:
    check: str
    hosts: str
    reason: str
    expires: _dt.date
    source: str  # file:line of the entry

    def expired(self, today: _dt.date) -> bool:
        return today > self.expires

    def as_dict(self, today: _dt.date) -> dict[str, Any]:
        return {"check": self.check, "hosts": self.hosts, "reason": self.reason,
                "expires": self.expires.isoformat(), "source": self.source, "expired": self.expired(today)}


def today_utc() -> _dt.date:
    return _dt.datetime.now(_dt.UTC).date()


def load(path: str | Path, check_ids: Iterable[str]) -> list[Waiver]:
    """Parse and validate a waivers file; raise WaiverError naming ``file:line`` for every kind of
    problem (unreadable, YAML, shape, unknown check id, bad glob or date)."""
    path = Path(path)
    where = str(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise WaiverError(f"{where}: larger than {MAX_BYTES} bytes; a waivers file is a short list")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WaiverError(f"{where}: waivers file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WaiverError(f"{where}: cannot read the waivers file ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        root = yamlsafe.compose(text, what="a waivers file")
    except yaml.YAMLError as exc:
        raise WaiverError(yamlsafe.describe(exc, where)) from None
    if root is None:
        return []
    if not isinstance(root, yaml.SequenceNode):
        raise WaiverError(f"{where}:{root.start_mark.line + 1}: a waivers file is a YAML list of "
                          "{check, hosts, reason, expires} entries")
    known = set(check_ids)
    waivers = []
    for entry in root.value:
        line = entry.start_mark.line + 1
        at = f"{where}:{line}"
        if not isinstance(entry, yaml.MappingNode):
            raise WaiverError(f"{at}: each waiver is a mapping with check, reason, expires (and hosts)")
        values: dict[str, tuple[Any, int]] = {}
        for key_node, value_node in entry.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            key_line = key_node.start_mark.line + 1
            if key not in _KEYS:
                raise WaiverError(f"{where}:{key_line}: unknown key {key!r}; a waiver has {', '.join(_KEYS)}")
            if key in values:
                raise WaiverError(f"{where}:{key_line}: duplicate key {key!r}")
            if not isinstance(value_node, yaml.ScalarNode):
                raise WaiverError(f"{where}:{key_line}: {key} must be a single value")
            values[key] = (value_node.value, value_node.start_mark.line + 1)
        for key in ("check", "reason", "expires"):
            if key not in values:
                raise WaiverError(f"{at}: waiver without {key!r} (every waiver names the check, why it is "
                                  "accepted and until when: expires: YYYY-MM-DD)")
        check, check_line = values["check"]
        if check not in known:
            raise WaiverError(f"{where}:{check_line}: unknown check id {check!r}; valid ids: "
                              f"{', '.join(sorted(known))}")
        reason, reason_line = values["reason"]
        if not reason.strip() or len(reason) > MAX_TEXT or _CONTROL.search(reason):
            raise WaiverError(f"{where}:{reason_line}: reason must be non-empty text of at most {MAX_TEXT} "
                              "characters without control characters")
        hosts, hosts_line = values.get("hosts", ("*", line))
        if not hosts or len(hosts) > MAX_TEXT or _CONTROL.search(hosts):
            raise WaiverError(f"{where}:{hosts_line}: hosts must be a host name or glob (default '*')")
        expires_text, expires_line = values["expires"]
        try:
            if not _DATE.fullmatch(expires_text):
                raise ValueError
            expires = _dt.date.fromisoformat(expires_text)
        except ValueError:
            raise WaiverError(f"{where}:{expires_line}: expires {expires_text!r} is not a date YYYY-MM-DD") from None
        waivers.append(Waiver(check, hosts, reason.strip(), expires, at))
    return waivers


_cache: dict[str, list[Waiver]] = {}


def load_cached(path: str, check_ids: Iterable[str]) -> list[Waiver]:
    """``load`` once per process and path (a playbook resolves host data once per host)."""
    if path not in _cache:
        _cache[path] = load(path, check_ids)
    return _cache[path]


def matching(waivers: list[Waiver], check_id: str, host_name: str, today: _dt.date) -> Waiver | None:
    """The waiver for this check on this host: a live one first, else an expired one (to report it)."""
    found = [w for w in waivers if w.check == check_id and fnmatchcase(host_name, w.hosts)]
    live = [w for w in found if not w.expired(today)]
    chosen = live or found
    return chosen[0] if chosen else None


def apply(results: Iterable, host_name: str, waivers: list[Waiver], today: _dt.date | None = None) -> None:
    """Turn failing results a live waiver covers into ``waived``; note expired waivers on results."""
    from .evaluate import Outcome

    today = today or today_utc()
    results = list(results)
    for result in results:
        waiver = matching(waivers, result.check, host_name, today)
        if waiver is None:
            continue
        result.waiver = waiver.as_dict(today)
        if result.outcome != Outcome.FAIL:
            continue
        if waiver.expired(today):
            result.message = (f"{result.message} (the waiver at {waiver.source} expired on "
                              f"{waiver.expires.isoformat()}: no longer waived)")
        else:
            result.outcome = Outcome.WAIVED
            result.message = (f"waived until {waiver.expires.isoformat()} ({waiver.reason}; {waiver.source}): "
                              f"{result.message}")
    waived = {r.check for r in results if r.outcome == Outcome.WAIVED}
    for result in results:  # "skipped because X (fail) did not pass" was written before X was waived
        for check in set(result.blocked_by) & waived:
            result.message = result.message.replace(f"{check} (fail)", f"{check} (waived)")


def apply_context(results: Iterable, host_name: str, context: dict[str, Any]) -> None:
    """``apply`` with the waivers file host data ``waivers`` names (none: nothing to do). Used for
    the first look and for the checks a fix unblocks, so neither fixes a waived failure."""
    path = context.get("waivers")
    if not path:
        return
    from .pipeline import catalog

    apply(results, host_name, load_cached(str(path), [c.id for c in catalog()]))


def report_section(path: str, waivers: list[Waiver], today: _dt.date | None = None) -> dict[str, Any]:
    """The report's ``waivers`` object: the file, how many entries, and every expired one."""
    today = today or today_utc()
    return {"file": str(path), "count": len(waivers),
            "expired": [w.as_dict(today) for w in waivers if w.expired(today)]}


def expired_lines(waivers: list[Waiver], today: _dt.date | None = None) -> list[str]:
    """One loud line per expired waiver, for the console."""
    today = today or today_utc()
    return [f"WARNING: waiver EXPIRED on {w.expires.isoformat()} ({w.source}): {w.check} on hosts {w.hosts!r} "
            f"is no longer waived (reason was: {w.reason}); renew it with a new date or fix the check"
            for w in waivers if w.expired(today)]


def annotate_report(data: dict[str, Any], path: str, check_ids: Iterable[str], stream=None) -> None:
    """Add the ``waivers`` section to a built report and print one warning line per expired waiver
    (to ``stream``). A file that cannot be loaded is already each host's error; noted here too."""
    import sys

    stream = stream or sys.stderr
    try:
        loaded = load_cached(path, check_ids)
    except WaiverError as exc:
        data["waivers"] = {"file": str(path), "count": 0, "expired": [], "error": str(exc)}
        return
    data["waivers"] = report_section(path, loaded)
    for line in expired_lines(loaded):
        print(f"keystone-checks: {line}", file=stream)
