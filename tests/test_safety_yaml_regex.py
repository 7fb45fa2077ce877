"""YAML bombs and slow regexes.

- check files (and every YAML the tool reads from users) refuse aliases and absurd nesting before
  composing: a self-referencing alias was a RecursionError, a billion-laughs file grew `validate`
  without bound, 10^5 nested brackets crashed libyaml's composer (SIGSEGV);
- every symptom regex of the catalog and every regex diagnose applies is linear on a long line of
  adversarial text (a 200 KB line in under 0.5 s, measured); one was quadratic
  (``\\S+\\.service: Failed with result`` on a long path took minutes).
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time

import pytest
from kc_helpers import REPO

from keystone_checks import yamlsafe
from keystone_checks.engine.catalog import DEFAULT_CHECKS_DIR, validate
from keystone_checks.tools import diagnose

BASE = (REPO / "tests" / "fixtures" / "e2e_checks" / "root-has-space.yaml").read_text()

BOMBS = {
    "self-alias": (BASE + "x_loop: &loop [*loop]\n", "alias *loop is not allowed"),
    "billion-laughs": (BASE + "".join(
        [f"l0: &l0 [{', '.join(['lol'] * 10)}]\n"] +
        [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10)]), "alias *l0 is not allowed"),
    "alias-in-expect": (BASE.replace("expect:", "x_anchor: &m {minimum: 1}\nexpect:").replace(
        '{minimum: 1, description: "some free space on /"}', "*m"), "alias *m is not allowed"),
    # PyYAML >= 6.0.4 (libyaml parser) refuses deep nesting itself, before our event check does:
    # either refusal is a file:line error, which is the promise.
    "deep-nesting": (BASE + "deep: " + "[" * 100_000 + "]" * 100_000 + "\n",
                     ("nested deeper than 64 levels", "YAML syntax error: exceeded maximum nesting depth")),
}


def _limited(seconds: int = 60, memory: int = 1 << 30):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))  # the old code grew past 2 GB
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
    return limit


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_yaml_bombs_in_a_check_file_are_a_file_line_error(tmp_path, name):
    text, messages = BOMBS[name]
    messages = (messages,) if isinstance(messages, str) else messages
    message = messages[0]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if ("*" in l and "alias" in message) or
                ("deep:" in l and "nested" in message))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "validate", str(path)], capture_output=True,
                          text=True, cwd=REPO, timeout=120, preexec_fn=_limited())
    elapsed = time.perf_counter() - started
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr
    assert any(f"{name}.yaml:{line}: {m}" in done.stderr for m in messages), done.stderr[-2000:]
    assert elapsed < 30


def test_yamlsafe_load_refuses_aliases_and_loads_plain_yaml():
    assert yamlsafe.load("a: [1, {b: c}]\n") == {"a": [1, {"b": "c"}]}
    with pytest.raises(yamlsafe.YamlRefused, match=r"alias \*x is not allowed in a diagnose corpus"):
        yamlsafe.load("a: &x 1\nb: *x\n", what="a diagnose corpus")


def test_diagnose_corpus_and_coverage_data_use_the_safe_loader(tmp_path):
    corpus = tmp_path / "corpus.yaml"
    corpus.write_text("cases: &c [*c]\n")
    done = subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "diagnose", "--eval", str(corpus)],
                          capture_output=True, text=True, cwd=REPO, timeout=120, preexec_fn=_limited())
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "alias *c is not allowed" in done.stderr


# -- regexes ---------------------------------------------------------------------------------------


def _patterns() -> list[tuple[str, re.Pattern]]:
    """Every symptom regex of the shipped catalog and every compiled regex diagnose holds."""
    checks, problems = validate([DEFAULT_CHECKS_DIR])
    assert not problems
    found = [(f"{c.id} symptom", p) for c in checks for p in c.symptom_patterns]
    for name, value in vars(diagnose).items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            for part in item if isinstance(item, tuple) else (item,):
                if isinstance(part, re.Pattern):
                    found.append((f"diagnose.{name}", part))
    assert len(found) > 20
    return found


def _literal_prefix(pattern: str) -> str:
    """The pattern's leading literal text (what a match must start with)."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            out.append(pattern[i + 1])
            i += 2
            continue
        if ch in ".^$*+?{}[]()|\\":
            break
        out.append(ch)
        i += 1
    if out and i < len(pattern) and pattern[i] in "*+?{":
        out.pop()  # the last literal is quantified
    return "".join(out)


def _adversarial(pattern: str, size: int) -> dict[str, str]:
    """Long lines that make a backtracking regex retry from every position."""
    prefix = _literal_prefix(pattern)
    seeds = ["a", " ", "/", "0", ":", ".", "-", "'", "a/", "0.", "a-", "~/", "/nix/store/x", "\x1b]", "\x1b[",
             "error: ", "a b"]
    if prefix:
        seeds += [prefix, prefix + "a", prefix + " "]
    texts = {repr(seed[:30]): (seed * (size // len(seed) + 1))[:size] for seed in seeds}
    if prefix:
        texts[f"{prefix[:30]!r}+a*"] = prefix + "a" * size
    return texts


@pytest.mark.parametrize("label,pattern", _patterns(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_symptom_and_diagnose_regex_is_linear_on_long_lines(label, pattern):
    # 20 KB first: a quadratic regex fails here in well under a second instead of taking minutes
    # at 200 KB; then the real bound on a 200 KB line.
    for size, bound in ((20_000, 0.25), (200_000, 0.5)):
        for name, text in _adversarial(pattern.pattern, size).items():
            started = time.perf_counter()
            pattern.search(text)
            pattern.sub(" ", text) if label.startswith("diagnose") else None
            elapsed = time.perf_counter() - started
            assert elapsed < bound, f"{label} /{pattern.pattern}/ took {elapsed:.2f}s on {size // 1000} KB of {name}"
