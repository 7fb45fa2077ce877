"""``keystone-checks diagnose``: which checks explain this error message or pasted log?

Matching (stdlib only, deterministic, explainable):

1. The text is cleaned: ANSI colour codes, carriage-return progress redraws and zero-width noise
   are removed.
2. ``regex`` symptoms are searched in the cleaned text (case-insensitive): a hit scores 1.0.
3. Literal symptoms found verbatim (case-insensitive) score 1.0.
4. Otherwise both sides are *normalised*: lowercase; IP addresses, ``/dev/...`` devices,
   ``/nix/store`` paths, other paths, hex ids and numbers become placeholder tokens
   (``<ip>``, ``<dev>``, ``<store>``, ``<path>``, ``<hex>``, ``<n>``); quote characters are dropped. A normalised symptom
   found verbatim in a normalised line scores 0.95 (the guide's message with another pool, IP,
   device). Else the symptom's tokens are looked for in windows of two consecutive lines and the
   score is the IDF-weighted share of its tokens present (IDF over the catalog's symptoms, so
   "zfs" or "credstore" weigh more than "error"); regex symptoms take part through their literal
   words (metacharacters dropped) at 0.85 of the weight. Shares below 0.75 do not count.
5. A check's score is its best symptom's, plus a small bonus (0.05 each, at most 0.1) for other
   symptoms that also matched; matches below ``THRESHOLD`` are dropped.

Why not a fuzzy-matching library: the corpus is small (tens of checks, ~100 symptoms), the
variants that matter are structural (names, addresses, devices), which placeholder normalisation
handles exactly, and an operator can see why a check matched (the ``why`` field of a match).
Accuracy on tests/fixtures/diagnose/corpus.yaml: ``keystone-checks diagnose --eval``.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

THRESHOLD = 0.6
TOKEN_SHARE = 0.75  # a fuzzy (word-overlap) symptom match needs 3/4 of its weighted words
CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "diagnose" / "corpus.yaml"

# [^\x07\x1b]: an OSC sequence that never ends must not make every "\x1b]" rescan the line (quadratic)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][AB0-2]")
_STOP = frozenset("a an the to of in on at for is are was be been by with and or not no it this that from as "
                  "into than then there their its your you we i".split())
_SUBS = [
    (re.compile(r"\b\d{4}-\d\d-\d\d[t ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:z|[+-]\d\d:?\d\d)?\b"), " "),  # timestamps
    (re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec) +\d+ \d\d:\d\d:\d\d\b"), " "),  # syslog
    (re.compile(r"/nix/store/[^\s'\"`]+"), " <store> "),
    (re.compile(r"/dev/[^\s'\"`:,;)]+"), " <dev> "),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), " <ip> "),
    (re.compile(r"\b(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}\b"), " <ip> "),
    (re.compile(r"(?<![\w<])(?:~|\.{1,2})?(?:/[\w.@+-]+)+/?"), " <path> "),
    # quotes differ between tools and versions (`x', 'x', "x", `x`): dropped, the quoted words stay
    (re.compile(r"[`'\"‘’“”]"), " "),
    (re.compile(r"\b[0-9a-f]{12,}\b"), " <hex> "),
    (re.compile(r"\b\d+(?:\.\d+)?(?:[kmgtp]i?b?|%|s|ms)?\b"), " <n> "),
]
_TOKEN = re.compile(r"<[a-z]+>|[a-z][a-z0-9_+-]*[a-z0-9]|[a-z]")


def clean(text: str) -> str:
    text = _ANSI.sub("", text)
    text = text.replace("\u200b", "")
    # a progress line redrawn with \r: keep what was on screen last
    return "\n".join(line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r")
                     for line in text.split("\n"))


def normalise(text: str) -> str:
    text = clean(text).lower()
    for pattern, repl in _SUBS:
        text = pattern.sub(repl, text)
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(normalise(text)) if t not in _STOP]


def _regex_words(pattern: str) -> str:
    """The literal words of a regex symptom: what an operator's message has in common with it."""
    # a wildcard after a path prefix stands for a name: /dev/\S+ -> /dev/x (becomes <dev>)
    pattern = re.sub(r"(?<=/)(\\S\+|\[\^[^\]]*\]\+|\.\+|\\S\*)", "x", pattern)
    text = re.sub(r"\\[sSdDwWbB]|\[[^\]]*\]|\(\?[^)]*\)", " ", pattern)
    text = re.sub(r"\\(.)", r"\1", text)
    text = re.sub(r"[.*+?{}()|^$]", " ", text)
    return text


@dataclass
class Match:
    check: Any
    score: float
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.check.id, "title": self.check.title, "score": round(self.score, 3),
                "guide": dict(self.check.guide), "fix": fix_of(self.check), "why": self.why}


def fix_of(check) -> dict[str, Any]:
    """What to run (or do) about a check: the fix playbook, the run command, or the manual text."""
    fix = check.fix or {}
    if not fix:
        return {"manual": f"no automatic fix; see the guide section and `keystone-checks show {check.id}`"}
    if "manual" in fix:
        return {"manual": " ".join(fix["manual"].split())}
    phase = check.phases[0]
    if fix.get("playbook"):
        command = f"pyinfra INVENTORY {fix['playbook']} --dry   # then: pyinfra -y INVENTORY {fix['playbook']}"
    else:
        command = f"keystone-checks run {phase} -i INVENTORY --fix --dry   # then without --dry"
    return {"risk": fix.get("risk"), "summary": fix.get("summary", ""), "command": command,
            "steps": [s["op"] for s in fix.get("steps", [])]}


class Index:
    """Symptoms of a catalog, with token weights (IDF over checks)."""

    def __init__(self, checks: Iterable[Any]):
        self.checks = list(checks)
        self.entries: list[tuple[Any, str, Any, list[str], str, float]] = []  # check, kind, raw, tokens, norm, factor
        doc_freq: dict[str, int] = {}
        for check in self.checks:
            seen: set[str] = set()
            for symptom in check.symptoms:
                if isinstance(symptom, dict):
                    raw = symptom["regex"]
                    words = _regex_words(raw)
                    entry = (check, "regex", re.compile(raw, re.I), tokens(words), normalise(words), 0.85)
                else:
                    entry = (check, "text", symptom, tokens(symptom), normalise(symptom), 1.0)
                self.entries.append(entry)
                seen.update(entry[3])
            for t in seen:
                doc_freq[t] = doc_freq.get(t, 0) + 1
        n = max(len(self.checks), 1)
        self.idf = {t: math.log(1 + n / df) for t, df in doc_freq.items()}

    def weight(self, token: str) -> float:
        w = self.idf.get(token, math.log(1 + len(self.checks) or 2))
        return w * 0.5 if token.startswith("<") else w

    def rank(self, text: str, limit: int | None = None) -> list[Match]:
        cleaned = clean(text)
        lines = [l for l in cleaned.split("\n") if l.strip()] or [cleaned]
        norm_lines = [normalise(l) for l in lines]
        windows = [set(_TOKEN.findall(norm_lines[i] + " " + (norm_lines[i + 1] if i + 1 < len(norm_lines) else "")))
                   for i in range(len(norm_lines))]
        norm_all = "\n".join(norm_lines)
        lower = cleaned.lower()
        per_check: dict[str, list[tuple[float, str]]] = {}
        for check, kind, raw, toks, norm, factor in self.entries:
            score, why = 0.0, ""
            if kind == "regex" and raw.search(cleaned):
                score, why = 1.0, f"matches /{raw.pattern}/"
            elif kind == "text" and raw.strip().lower() in lower:
                score, why = 1.0, f"contains {raw!r}"
            elif norm and len(norm) >= 8 and norm in norm_all:
                score, why = 0.95 * factor, f"contains a variant of {raw if kind == 'text' else '/' + raw.pattern + '/'!r}"
            elif toks:
                total = sum(self.weight(t) for t in set(toks))
                best = max((sum(self.weight(t) for t in set(toks) if t in w) for w in windows), default=0.0)
                share = best / total if total else 0.0
                # a one-word symptom must match verbatim (above), not by token share
                if share >= TOKEN_SHARE and len(set(toks)) >= 2:
                    score = share * 0.9 * factor
                    label = raw if kind == "text" else "/" + raw.pattern + "/"
                    why = f"{share:.0%} of the words of {label!r}"
            if score:
                per_check.setdefault(check.id, []).append((score, why))
        by_id = {c.id: c for c in self.checks}
        matches = []
        for check_id, scores in per_check.items():
            scores.sort(key=lambda s: -s[0])
            bonus = min(0.05 * (len(scores) - 1), 0.1)
            total = scores[0][0] + bonus
            if total >= THRESHOLD:
                matches.append(Match(by_id[check_id], round(total, 4), scores[0][1]))
        matches.sort(key=lambda m: (-m.score, m.check.severity != "critical", m.check.id))
        return matches[:limit] if limit else matches


def rank(text: str, checks: Iterable[Any], limit: int | None = None) -> list[Match]:
    return Index(checks).rank(text, limit)


# -- evaluation over the corpus -----------------------------------------------------------------


def evaluate_corpus(checks, corpus_path: Path = CORPUS) -> dict[str, Any]:
    """Top-1 / top-3 accuracy over the corpus's positive cases; false positives over its negatives."""
    from . import yamlsafe

    data = yamlsafe.load(corpus_path.read_text(), what="a diagnose corpus")
    index = Index(checks)
    known = {c.id for c in index.checks}
    top1 = top3 = total = 0
    fuzzy = {"cases": 0, "top1": 0, "top3": 0}  # cases no symptom matches verbatim (regex or substring)
    misses: list[dict[str, Any]] = []
    for case in data.get("cases", []):
        expected = set(case["expect"])
        if not expected & known:
            continue  # a check not (yet) in this catalog
        total += 1
        got = [m.check.id for m in index.rank(case["text"], limit=3)]
        hit1, hit3 = bool(got[:1] and got[0] in expected), bool(set(got) & expected)
        top1 += hit1
        top3 += hit3
        if not _verbatim(case["text"], index):
            fuzzy["cases"] += 1
            fuzzy["top1"] += hit1
            fuzzy["top3"] += hit3
        if not (got[:1] and got[0] in expected):
            misses.append({"text": case["text"][:120], "expect": sorted(expected), "got": got})
    false_positives = []
    negatives = data.get("negatives", [])
    for text in negatives:
        got = [m.check.id for m in index.rank(text, limit=3)]
        if got:
            false_positives.append({"text": text[:120], "got": got})
    n = fuzzy["cases"] or 1
    return {"cases": total, "top1": round(top1 / total, 3) if total else 0.0, "top3": round(top3 / total, 3) if total else 0.0,
            "fuzzy_cases": fuzzy["cases"], "fuzzy_top1": round(fuzzy["top1"] / n, 3), "fuzzy_top3": round(fuzzy["top3"] / n, 3),
            "negatives": len(negatives), "false_positives": false_positives, "misses": misses,
            "checks_with_symptoms": sum(1 for c in index.checks if c.symptoms)}


def _verbatim(text: str, index: Index) -> bool:
    cleaned = clean(text)
    for _check, kind, raw, *_ in index.entries:
        if (kind == "regex" and raw.search(cleaned)) or (kind == "text" and raw.lower() in cleaned.lower()):
            return True
    return False


# -- command line --------------------------------------------------------------------------------


def main(args, checks) -> int:
    if args.eval:
        result = evaluate_corpus(checks, Path(args.eval) if isinstance(args.eval, str) else CORPUS)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"corpus: {result['cases']} case(s) over {result['checks_with_symptoms']} check(s) with symptoms")
            print(f"top-1 accuracy: {result['top1']:.3f}   top-3 accuracy: {result['top3']:.3f}")
            print(f"  of which {result['fuzzy_cases']} case(s) match no symptom verbatim: "
                  f"top-1 {result['fuzzy_top1']:.3f}, top-3 {result['fuzzy_top3']:.3f}")
            print(f"negatives: {result['negatives']}, false positives: {len(result['false_positives'])}")
            for miss in result["misses"]:
                print(f"  miss: expected {miss['expect']} got {miss['got']}: {miss['text']!r}")
            for fp in result["false_positives"]:
                print(f"  false positive: {fp['got']}: {fp['text']!r}")
        return 0
    if args.text and args.text != ["-"]:
        text = " ".join(args.text)
    elif args.text == ["-"] or not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        print("keystone-checks diagnose: give the error text as an argument, or pipe a log into `diagnose -`",
              file=sys.stderr)
        return 2
    matches = rank(text, checks, limit=args.limit)
    if args.json:
        print(json.dumps({"matches": [m.to_dict() for m in matches]}, indent=2))
        return 0 if matches else 1
    if not matches:
        print("No check in the catalog explains this text. Nothing matched its symptoms; try a shorter "
              "excerpt (the first error line), or look through `keystone-checks list`.")
        return 1
    for rank_no, m in enumerate(matches, 1):
        c = m.check
        guide = f"{c.guide['document']} > {c.guide['section']}" + (f" > {c.guide['cause']}" if c.guide.get("cause") else "")
        print(f"{rank_no}. {c.id} (score {m.score:.2f}, {c.severity}): {c.title}")
        print(f"   why:   {m.why}")
        print(f"   guide: {guide}")
        fix = fix_of(c)
        if "command" in fix:
            print(f"   fix ({fix['risk']}): {fix['summary']}".rstrip())
            print(f"     $ {fix['command']}")
        else:
            print(f"   fix (manual): {fix['manual']}")
        print(f"   check it: keystone-checks run {c.phases[0]} -i INVENTORY   (details: keystone-checks show {c.id})")
    return 0
