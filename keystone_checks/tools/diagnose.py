"""``keystone-checks diagnose``: which checks explain this error message or pasted log?

Knowledge: the programs' own messages, not the guides' sentences. ``keystone_checks/data/messages/*.yaml``
lists the message strings of OpenZFS, OpenSSH, Nix, NixOS, systemd, cryptsetup, util-linux, parted,
gptfdisk and the kernel, each with the source file it comes from and the checks that explain it (most
specific first); the checks' own ``symptoms:`` take part too. A message is a printf format string
(``%s``, ``%llu``, ``%3.3o`` ... stand for names and numbers) or, where words alone are ambiguous, a
``pattern`` regex. ``uncovered`` records a cause no check looks at.

Matching (stdlib only, deterministic, explainable, linear in the input):

1. The paste is cleaned: ANSI colours, ``\\r`` redraws, and per-line prefixes (timestamps,
   ``journalctl`` ``host unit[pid]:``, ``[web01]``, ``> ``, ``+ ``, kernel ``[ 12.3]``) are removed;
   lines longer than 60 words are cut into overlapping pieces, so no window is ever large.
2. Text and messages become word sequences: lowercase words, with paths, devices, addresses, hex ids,
   numbers and quotes dropped (they are the names that differ between hosts), so
   ``cannot import 'tank'`` and ``cannot import '%s'`` read the same.
3. Each window of up to four consecutive lines is compared with the messages sharing a word with it.
   A message's *coverage* is the share of its word weight found in the window; words weigh by how rare
   they are among the messages (IDF), and common English/log words (the, error, cannot ...) weigh
   little, so "hostkeys" or "resilvered" decide and "error" does not. Its *order* is the share of the
   found words that appear in the message's order (longest common subsequence). The message scores
   ``coverage x (0.8 + 0.2 x order)``; a pattern or a check symptom found verbatim scores 1.0.
4. A check takes its best message's score, minus 0.01 per place it stands behind the message's first
   check, plus 0.02 for each other distinct message that also names it (at most 0.06). Ties go to the
   message with more matched weight (the more specific one).

Scores (0..1): 1.0 = a message or symptom found whole (names aside) or a pattern matched; 0.8-0.99 =
nearly all of a message's words, in order (another version's wording); ``THRESHOLD`` (0.62) up to 0.8 =
most of its weighted words; below ``THRESHOLD`` nothing is reported: "no confident match".

Why hand-written scoring rather than a fuzzy-matching library (rapidfuzz token ratios): the variants that
matter are structural (names, devices, pools, prefixes) and are removed exactly by normalisation;
rapidfuzz weighs all words alike, so "error"/"failed" would count as much as "hostkeys", and it is not
installed here. IDF-weighted word coverage with an order check is 100 lines, needs no dependency, and
explains itself (which message, which source file, what share of its words).

Accuracy: ``keystone-checks diagnose --eval`` over tests/fixtures/diagnose/frozen-test.yaml (real texts
from public issue threads, never tuned on), dev.yaml and corpus.yaml.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

THRESHOLD = 0.62
MESSAGES_DIR = Path(__file__).resolve().parents[1] / "data" / "messages"
FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "diagnose"
CORPUS = FIXTURES / "corpus.yaml"
EVAL_FILES = [FIXTURES / "frozen-test.yaml", FIXTURES / "dev.yaml", CORPUS]

_CHUNK_WORDS = 60        # long lines are cut into pieces of this many words ...
_CHUNK_OVERLAP = 30      # ... overlapping by this many, so a message across a cut is still whole once
_WINDOW_LINES = 4        # a message may span this many lines
_REGEX_CHUNK = 2000      # patterns run over pieces of at most this many characters (bounded work)
_REGEX_OVERLAP = 300

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]{0,4096}(?:\x07|\x1b\\)|\x1b[()][AB0-2]")
# prefixes a log line carries that are not part of the message (removed repeatedly, all anchored)
_PREFIXES = [
    re.compile(r"^\s*\[\s*\d+\.\d+\]\s*"),                                                 # kernel [ 12.345]
    re.compile(r"^\s*\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?\s*"),  # ISO timestamp
    re.compile(r"^\s*\S{3,5} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)? +\S+ +[\w@.:/\\-]{1,80}(?:\[\d+\])?:\s*"),  # journal
    re.compile(r"^\s*\[[\w.@:-]{1,64}\]\s+"),                                              # [web01] host tag
    re.compile(r"^\s*(?:[>+|#$%]|\+\+|~:)\s+"),                                            # quote / xtrace / prompt
    re.compile(r"^\s*[\w.-]{1,64}@[\w.-]{1,64}(?::\S{0,64})?\s?[#$%]\s+"),                 # user@host:~$
    re.compile(r"^\s*\[[\w.-]{1,32}@[\w.-]{1,64}[^\]]{0,64}\][#$%]\s+"),                   # [root@host ~]#
    re.compile(r"^\s*[\w .-]{1,40}\.{3,}>\s+"),                                            # nixops: host....>
]
_NAMES = re.compile(
    r"/nix/store/\S+|\b[a-z][\w+.-]{0,30}://\S+|(?<![\w<])(?:~|\.{1,2})?(?:/[\w.@+:,=-]*)+/?"     # store paths, URLs, paths
    r"|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b|\b(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}\b"          # IPv4/IPv6
    r"|\b0x[0-9a-f]*|\b[0-9a-f]{12,}\b|[0-9]", re.I)                                        # hex ids, digits
_WORD = re.compile(r"[a-z][a-z_]*")
_PLACEHOLDER = re.compile(r"%(?:\d+%|[-+ #0]*\d*(?:\.\d+)?(?:hh|h|ll|l|z|j|t|L)?[diouxXeEfgGcsp%])")
_STOP = frozenset("""a an the to of in on at for is are was were be been by with and or not no it this that from as
    into than then there their its your you we i if will may can could would should has have had do does did any all
    some such only please try running run use using error errors warning failed fail failure cannot unable found
    file directory while so but also just one more other""".split())
_STOP_WEIGHT = 0.15
_GENERIC_FACTOR = 0.9
_SYMPTOM_FACTOR = 0.97
_MIN_KEY_SHARE = 0.75    # a message must show at least this share of its non-stop words (all, if <= 3)
_UNSAFE_REGEX = re.compile(r"\((?:[^()\\]|\\.)*[+*](?:[^()\\]|\\.)*\)[+*{]")  # (x+)+ and friends


def clean(text: str) -> str:
    """Drop ANSI colours and ``\\r`` redraws (keep what was on screen last)."""
    text = _ANSI.sub("", text).replace("\u200b", "")
    return "\n".join(line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r")
                     for line in text.split("\n"))


def strip_prefix(line: str) -> str:
    """One log line without its timestamp/host/journal/shell prefixes."""
    for _ in range(4):
        before = line
        for prefix in _PREFIXES:
            line = prefix.sub("", line, count=1)
        if line == before:
            break
    return line


def words(text: str) -> list[str]:
    """The message words of a text: lowercase, names/paths/numbers/quotes removed."""
    return _WORD.findall(_NAMES.sub(" ", text.lower()))


def normalise(text: str) -> str:
    return " ".join(words(strip_prefix(clean(text))))


def message_words(fmt: str) -> list[str]:
    """Words of a printf-style message; placeholders are names, so they add no words."""
    return words(_PLACEHOLDER.sub(" ", fmt))


def _lcs(a: list[str], b: list[str]) -> int:
    """Longest common subsequence length (a is short: a message; b is a bounded window)."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


@dataclass
class Message:
    source: str
    checks: list[str]
    text: str = ""
    pattern: Any = None          # compiled regex, or None
    uncovered: str = ""
    words: list[str] = field(default_factory=list)
    generic: bool = False        # an envelope ("Failed to start %s.") ranked below a specific cause
    symptom: bool = False        # a check's own symptom (the guide's words), just below the tools' messages
    group: str = ""              # a regex symptom and its literal words are one piece of evidence
    literal: str = ""            # lowercase text every match of `pattern` contains (a cheap pre-filter)

    @property
    def factor(self) -> float:
        return _GENERIC_FACTOR if self.generic else _SYMPTOM_FACTOR if self.symptom else 1.0

    def label(self) -> str:
        shown = self.text or f"/{self.pattern.pattern}/"
        shown = " ".join(shown.split())
        return f"{self.source}: {shown[:110]!r}"


def _bounded(pattern: str, limit: int = 256) -> str:
    """``+``/``*`` become ``{1,limit}``/``{0,limit}`` (outside classes), so a search does bounded work per
    start position: ``\\S+\\.service`` over a 200 KB word cannot backtrack quadratically."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "]":   # "[]...]": a literal ] first
                out.append("[]")
                i += 2
                continue
        elif ch in "+*" and out and out[-1] not in ("(", "|"):
            out.append(f"{{1,{limit}}}" if ch == "+" else f"{{0,{limit}}}")
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _required_literal(pattern: str) -> str:
    """A lowercase string every match must contain (the longest plain run outside groups/classes), or ""
    when the pattern has alternatives; used to skip pieces of text that cannot match."""
    if "|" in pattern:
        return ""
    runs, run, depth, i = [], "", 0, 0
    while i < len(pattern):
        ch = pattern[i]
        nxt = pattern[i + 1:i + 2]
        if ch == "\\" and nxt:
            plain = nxt if not nxt.isalnum() else None
            i += 2
        elif ch in "([":
            depth += 1
            plain, i = None, i + 1
        elif ch in ")]":
            depth -= 1
            plain, i = None, i + 1
        else:
            plain = ch if depth == 0 and ch not in ".^$+*?{}" else None
            i += 1
        optional = pattern[i:i + 1] in ("?", "*") or pattern[i:i + 2] == "{0"
        if plain is not None and not optional:
            run += plain
        else:
            runs.append(run)
            run = ""
    runs.append(run)
    best = max(runs, key=len)
    return best.lower() if len(best) >= 4 else ""


def _compile(pattern: str, where: str):
    if _UNSAFE_REGEX.search(pattern):
        raise ValueError(f"{where}: nested quantifier in {pattern!r} (not linear-time); rewrite it")
    try:
        return re.compile(_bounded(pattern), re.I | re.M)
    except re.error as exc:
        raise ValueError(f"{where}: bad regex {pattern!r}: {exc}") from None


def load_messages(directory: Path = MESSAGES_DIR, known: set[str] | None = None) -> list[Message]:
    """Read every messages/*.yaml; an unknown check id or a bad entry is an error naming file and entry."""
    from .. import yamlsafe

    out: list[Message] = []
    for path in sorted(directory.glob("*.yaml")):
        for n, entry in enumerate(yamlsafe.load(path.read_text(), what=str(path)) or [], 1):
            where = f"{path.name} entry {n}"
            if not isinstance(entry, dict) or "source" not in entry or not ("text" in entry or "pattern" in entry):
                raise ValueError(f"{where}: needs source and text (or pattern)")
            checks = list(entry.get("checks") or [])
            if known is not None:
                unknown = [c for c in checks if c not in known]
                if unknown:
                    raise ValueError(f"{where}: unknown check id(s) {unknown}; see `keystone-checks list`")
            if not checks and not entry.get("uncovered"):
                raise ValueError(f"{where}: names no check; say why in `uncovered`")
            msg = Message(source=entry["source"], checks=checks, text=entry.get("text", ""),
                          uncovered=entry.get("uncovered", ""), generic=bool(entry.get("generic")))
            if "pattern" in entry:
                msg.pattern = _compile(entry["pattern"], where)
            else:
                msg.words = message_words(msg.text)
                if not msg.words:
                    raise ValueError(f"{where}: {msg.text!r} has no words to match")
            out.append(msg)
    return out


_MESSAGES: list[Message] | None = None


def _default_messages() -> list[Message]:
    """data/messages/*.yaml, read once per process (the test suite checks every id exists)."""
    global _MESSAGES
    if _MESSAGES is None:
        _MESSAGES = load_messages()
    return _MESSAGES


@dataclass
class Match:
    check: Any
    score: float
    why: str
    uncovered: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.check.id, "title": self.check.title, "score": round(self.score, 3),
               "guide": dict(self.check.guide), "fix": fix_of(self.check), "why": self.why}
        if self.uncovered:
            out["also_possible_uncovered"] = self.uncovered
        return out


def fix_of(check) -> dict[str, Any]:
    """What to run (or do) about a check: the fix playbook, the run command, or the manual text."""
    from ..engine.catalog import describe_fix

    fix = describe_fix(check)
    if fix.kind != "automated":
        return {"manual": fix.text}
    return {"risk": fix.risk, "summary": fix.text, "command": fix.command, "steps": list(fix.ops)}


def _regex_words(pattern: str) -> str:
    """The literal words of a regex symptom (metacharacters and classes dropped)."""
    text = re.sub(r"\\[sSdDwWbB][+*?]?|\[[^\]]*\][+*?]?|\(\?[^)]*\)", " ", pattern)
    text = re.sub(r"\\(.)", r"\1", text)
    return re.sub(r"[.*+?{}()|^$]", " ", text)


def _symptom_messages(checks: Iterable[Any]) -> list[Message]:
    """The checks' own ``symptoms:`` as messages (text symptoms by words, regex symptoms as patterns)."""
    out = []
    for check in checks:
        for symptom in check.symptoms:
            if isinstance(symptom, dict):
                group = f"{check.id}:{symptom['regex']}"
                out.append(Message(source=f"symptom of {check.id}", checks=[check.id], symptom=True, group=group,
                                   pattern=_compile(symptom["regex"], f"check {check.id} symptom")))
                literal = message_words(_regex_words(symptom["regex"]))
                if set(literal) - _STOP:
                    out.append(Message(source=f"symptom of {check.id}", checks=[check.id], symptom=True,
                                       group=group, text=_regex_words(symptom["regex"]), words=literal))
            elif message_words(symptom):
                out.append(Message(source=f"symptom of {check.id}", checks=[check.id], text=symptom,
                                   words=message_words(symptom), symptom=True))
    return out


class Index:
    """The messages and symptoms of a catalog, with word weights (IDF over the messages)."""

    def __init__(self, checks: Iterable[Any], messages: list[Message] | None = None):
        self.checks = list(checks)
        self.by_id = {c.id: c for c in self.checks}
        if messages is None:
            messages = _default_messages()
        # another catalog (KEYSTONE_CHECKS_DIR, --checks) may lack some checks: a message keeps the ones it has
        own = []
        for m in messages:
            present = [c for c in m.checks if c in self.by_id]
            if present or (not m.checks and m.uncovered):
                own.append(m if present == m.checks else replace(m, checks=present))
        self.messages = own + _symptom_messages(self.checks)
        for m in self.messages:
            if m.pattern is not None:
                m.literal = _required_literal(m.pattern.pattern)
        worded = [m for m in self.messages if m.words]
        df: dict[str, int] = {}
        for m in worded:
            for w in set(m.words):
                df[w] = df.get(w, 0) + 1
        n = len(worded) or 1
        self.weights = {w: math.log(1 + n / d) * (_STOP_WEIGHT if w in _STOP else 1.0) for w, d in df.items()}
        self.postings: dict[str, list[int]] = {}
        for i, m in enumerate(self.messages):
            for w in set(m.words):
                if w not in _STOP:
                    self.postings.setdefault(w, []).append(i)
        self.totals = [sum(self.weights[w] for w in m.words) for m in self.messages]

    # -- scoring ---------------------------------------------------------------------------------

    @staticmethod
    def _stripped(text: str) -> list[str]:
        """The non-empty lines of the cleaned text, each without its log prefix."""
        return [strip_prefix(raw) for raw in clean(text).split("\n") if raw.strip()]

    @staticmethod
    def _lines(stripped: list[str]) -> list[list[str]]:
        """The words of each line; a long line is cut into overlapping pieces of bounded size."""
        out = []
        for line in stripped:
            ws = words(line)
            if len(ws) <= _CHUNK_WORDS:
                out.append(ws)
                continue
            for start in range(0, len(ws), _CHUNK_WORDS - _CHUNK_OVERLAP):
                out.append(ws[start:start + _CHUNK_WORDS])
                if start + _CHUNK_WORDS >= len(ws):
                    break
        return out

    def _pattern_hits(self, stripped: list[str]) -> dict[int, str]:
        """Patterns, searched over bounded pieces of the cleaned text (each line's prefix removed)."""
        body = "\n".join(stripped)
        pieces = [body[i:i + _REGEX_CHUNK] for i in range(0, max(len(body), 1), _REGEX_CHUNK - _REGEX_OVERLAP)]
        lowered = [piece.lower() for piece in pieces]
        hits: dict[int, str] = {}
        for i, m in enumerate(self.messages):
            if m.pattern is None:
                continue
            for piece, low in zip(pieces, lowered):
                if m.literal and m.literal not in low:
                    continue
                found = m.pattern.search(piece)
                if found:
                    hits[i] = found.group(0)
                    break
        return hits

    def scores(self, text: str) -> dict[int, tuple[float, float, str]]:
        """message index -> (score, matched weight, why) for every message above THRESHOLD."""
        best: dict[int, tuple[float, float, str]] = {}
        stripped = self._stripped(text)
        for i, matched in self._pattern_hits(stripped).items():
            # A pattern is the more specific reading of the words it matched (it is written where the
            # words alone are ambiguous): its weight is theirs plus 10, so it outranks a plain message
            # found in the same words (ENOSPC on a /boot path: the ESP, not the Nix store).
            weight = 10.0 + sum(self.weights.get(w, 0.0) for w in set(words(matched)))
            best[i] = (self.messages[i].factor, weight, f"matches {self.messages[i].label()} (found {' '.join(matched.split())[:80]!r})")
        lines = self._lines(stripped)
        seen: set[tuple[str, ...]] = set()
        for start in range(len(lines)):
            window: list[str] = []
            for ws in lines[start:start + _WINDOW_LINES]:
                window.extend(ws)
            key = tuple(window)
            if key in seen:      # a repeated stretch of log scores the same: compare it once
                continue
            seen.add(key)
            present = set(window)
            candidates = {i for w in present if w in self.postings for i in self.postings[w]}
            for i in candidates:
                m = self.messages[i]
                got = sum(self.weights[w] for w in m.words if w in present)
                coverage = got / self.totals[i] if self.totals[i] else 0.0
                if coverage < THRESHOLD:
                    continue
                found = [w for w in m.words if w in present]
                keys = set(m.words) - _STOP
                key_found = len(keys & present)
                if keys and (key_found < len(keys) if len(keys) <= 3 else key_found < _MIN_KEY_SHARE * len(keys)):
                    continue
                if len(keys) <= 2 and coverage < 1.0:
                    continue   # a short message must be there whole
                order = _lcs(found, [w for w in window if w in set(found)]) / len(found)
                if len(keys) <= 2 and order < 1.0:
                    continue
                score = coverage * (0.8 + 0.2 * order) * m.factor
                if score >= THRESHOLD and (i not in best or (score, got) > best[i][:2]):
                    share = f"{coverage:.0%} of its words" + (", in order" if order == 1 else f", {order:.0%} in order")
                    best[i] = (round(score, 4), got, f"{share}: {m.label()}")
        return best

    def rank(self, text: str, limit: int | None = None) -> list[Match]:
        per_check: dict[str, list[tuple[float, float, str, int]]] = {}
        for i, (score, weight, why) in self.scores(text).items():
            m = self.messages[i]
            for place, check_id in enumerate(m.checks):
                per_check.setdefault(check_id, []).append((score - 0.01 * place, weight, why, i))
        matches = []
        for check_id, found in per_check.items():
            found.sort(key=lambda f: (-f[0], -f[1]))
            top_score, top_weight, why, i = found[0]
            evidence = lambda k: self.messages[k].group or str(k)  # noqa: E731
            others = {evidence(f[3]) for f in found[1:] if not self.messages[f[3]].generic} - {evidence(i)}
            total = top_score + min(0.02 * len(others), 0.06)
            uncovered = self.messages[i].uncovered
            matches.append((Match(self.by_id[check_id], round(min(total, 1.0), 4), why, uncovered), total, top_weight))
        matches.sort(key=lambda mw: (-mw[1], -mw[2], mw[0].check.id))
        ranked = [m for m, _, _ in matches]
        return ranked[:limit] if limit else ranked

    def uncovered(self, text: str) -> list[str]:
        """Causes named by matched messages that no check covers."""
        return sorted({f"{self.messages[i].uncovered} ({self.messages[i].source})"
                       for i in self.scores(text) if self.messages[i].uncovered and not self.messages[i].checks})


def rank(text: str, checks: Iterable[Any], limit: int | None = None) -> list[Match]:
    return Index(checks).rank(text, limit)


# -- evaluation ---------------------------------------------------------------------------------


def _load_eval(path: Path) -> tuple[list[dict], list[dict]]:
    """(cases, unrelated) of an eval file: frozen-test/dev format or the older corpus.yaml format."""
    from .. import yamlsafe

    data = yamlsafe.load(path.read_text(), what=str(path)) or {}
    cases = [{"text": c["text"], "expect": list(c["expect"]), "source": c.get("source", "")} for c in data.get("cases", [])]
    unrelated = [{"text": u["text"] if isinstance(u, dict) else u, "source": u.get("source", "") if isinstance(u, dict) else ""}
                 for u in data.get("unrelated", data.get("negatives", []))]
    return cases, unrelated


def evaluate(index: Index, path: Path) -> dict[str, Any]:
    """Top-1 / top-3 / no-match rates over an eval file's cases; confident matches on its unrelated texts."""
    cases, unrelated = _load_eval(path)
    known = set(index.by_id)
    top1 = top3 = nomatch = total = 0
    misses = []
    for case in cases:
        expected = set(case["expect"]) & known
        if not expected:
            continue
        total += 1
        got = [m.check.id for m in index.rank(case["text"], limit=3)]
        top1 += bool(got and got[0] in expected)
        top3 += bool(set(got) & expected)
        nomatch += not got
        if not (got and got[0] in expected):
            misses.append({"source": case["source"], "expect": sorted(expected), "got": got,
                           "text": " ".join(case["text"].split())[:100]})
    false_positives = []
    for u in unrelated:
        got = [m.check.id for m in index.rank(u["text"], limit=3)]
        if got:
            false_positives.append({"source": u["source"], "got": got, "text": " ".join(u["text"].split())[:100]})
    def rate(k):
        return round(k / total, 3) if total else 0.0

    return {"file": str(path), "cases": total, "top1": rate(top1), "top3": rate(top3), "no_match": rate(nomatch),
            "unrelated": len(unrelated), "unrelated_silent": len(unrelated) - len(false_positives),
            "misses": misses, "false_positives": false_positives}


def evaluate_corpus(checks, corpus_path: Path = CORPUS) -> dict[str, Any]:
    """The corpus.yaml figures in the shape the older test reads."""
    result = evaluate(Index(checks), corpus_path)
    result["negatives"] = result["unrelated"]
    return result


# -- command line --------------------------------------------------------------------------------


FROZEN = FIXTURES / "frozen-test.yaml"


def _print_eval(results: list[dict[str, Any]], show_frozen: bool = False) -> None:
    """Figures per file, then its misses, except the frozen test set's: reading which texts it misses
    is how a matcher gets tuned on it (it happened once, 2026-12-02: caught, the change undone)."""
    for r in results:
        print(f"{r['file']}: {r['cases']} case(s): top-1 {r['top1']:.3f}, top-3 {r['top3']:.3f}, "
              f"no match {r['no_match']:.3f}; unrelated: {r['unrelated_silent']}/{r['unrelated']} silent")
        if Path(r["file"]).resolve() == FROZEN.resolve() and not show_frozen:
            if r["misses"] or r["false_positives"]:
                print(f"  ({len(r['misses'])} miss(es), {len(r['false_positives'])} false positive(s) not shown: "
                      "the frozen test set is never tuned on; --show-frozen lists them)")
            continue
        for miss in r["misses"]:
            print(f"  miss [{miss['source']}]: expected {miss['expect']} got {miss['got']}: {miss['text']!r}")
        for fp in r["false_positives"]:
            print(f"  false positive [{fp['source']}]: {fp['got']}: {fp['text']!r}")


def _confirm(args, index: Index, text: str) -> int:
    """Run the candidate checks on ``--host`` and rank the causes by what it shows (confirm.py)."""
    from ..errors import KeystoneChecksError
    from . import confirm

    if not (args.host and args.inventory):
        print("keystone-checks diagnose: --host and -i INVENTORY go together", file=sys.stderr)
        return 3
    matches = index.rank(text, limit=max(args.limit, 8))
    if not matches:
        print("No check in the catalog explains this text (no confident match): nothing to run on the host.")
        return 1
    try:
        status, results = confirm.run_checks(args.inventory, args.host, [m.check.id for m in matches],
                                             index.checks, args.connect_timeout)
    except KeystoneChecksError as exc:
        print(f"keystone-checks diagnose: {exc}", file=sys.stderr)
        return 3
    if status != "ok":
        print(f"keystone-checks diagnose: {args.host}: {status}", file=sys.stderr)
        return 3
    causes = confirm.rank_on_host(matches, results)[: args.limit]
    if args.json:
        print(json.dumps({"host": args.host, "causes": [c.to_dict() for c in causes]}, indent=2))
    else:
        sys.stdout.write(confirm.render(causes, args.host))
    return 0 if any(c.verdict == "confirmed" for c in causes) else 1


def main(args, checks) -> int:
    if args.eval is not None:
        files = [Path(f) for f in args.eval] or EVAL_FILES
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            print(f"keystone-checks diagnose: no such eval file: {', '.join(missing)}", file=sys.stderr)
            return 3
        index = Index(checks)
        results = [evaluate(index, f) for f in files]
        if args.json:
            print(json.dumps({"results": results}, indent=2))
        else:
            _print_eval(results, getattr(args, "show_frozen", False))
        return 0
    if args.text and args.text != ["-"]:
        text = " ".join(args.text)
    elif args.text == ["-"] or not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        text = ""
    if not text.strip():
        print("keystone-checks diagnose: no text given: pass the error text as an argument, or pipe a log "
              "into `diagnose -`", file=sys.stderr)
        return 3
    index = Index(checks)
    if getattr(args, "host", None) or getattr(args, "inventory", None):
        return _confirm(args, index, text)
    matches = index.rank(text, limit=args.limit)
    uncovered = index.uncovered(text)
    if args.json:
        print(json.dumps({"matches": [m.to_dict() for m in matches], "uncovered": uncovered}, indent=2))
        return 0 if matches else 1
    if not matches:
        print("No check in the catalog explains this text (no confident match). Try a shorter excerpt "
              "(the first error line), or look through `keystone-checks list`.")
        for cause in uncovered:
            print(f"  known cause no check covers: {cause}")
        return 1
    for rank_no, m in enumerate(matches, 1):
        c = m.check
        guide = f"{c.guide['document']} > {c.guide['section']}" + (f" > {c.guide['cause']}" if c.guide.get("cause") else "")
        print(f"{rank_no}. {c.id} (score {m.score:.2f}, {c.severity}): {c.title}")
        print(f"   why:   {m.why}")
        if m.uncovered:
            print(f"   also possible (no check covers it): {m.uncovered}")
        print(f"   guide: {guide}")
        fix = fix_of(c)
        if "command" in fix:
            print(f"   fix ({fix['risk']}): {fix['summary']}".rstrip())
            print(f"     $ {fix['command']}")
        else:
            print(f"   fix (manual): {fix['manual']}")
        print(f"   check it: keystone-checks run {c.phases[0]} -i INVENTORY   (details: keystone-checks show {c.id})")
    for cause in uncovered:
        print(f"known cause no check covers: {cause}")
    return 0
