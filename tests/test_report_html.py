"""The HTML report at three fleet sizes (1 x 10, 24 x 31, 100 x 100 synthetic), in a real headless
Chromium: a screenshot of each (written to KC_SCREENSHOT_DIR when set, else pytest's tmp dir; look at
them after a layout change), the DOM as Chromium built it (failing list first and worst first, one
row per host, severity on failing cells, the two kinds of skip and of host problems apart), the
panel closing with its button and Esc, and no external asset or unescaped host text."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from report_checks import _chromium, _dom, check_failing_first, check_panel_closes, failing_order, results
from report_fleet import fleet

from keystone_checks.reports import writer

SIZES = [(1, 10), (24, 31), (100, 100)]


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = os.environ.get("KC_SCREENSHOT_DIR")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        return Path(where)
    return tmp_path_factory.mktemp("screenshots")


@pytest.mark.parametrize("hosts,checks", SIZES, ids=[f"{h}x{c}" for h, c in SIZES])
def test_html_fleet_in_chromium(hosts, checks, tmp_path, shots):
    report = fleet(hosts, checks)
    page = tmp_path / f"fleet-{hosts}x{checks}.html"
    page.write_text(writer("html")(report))
    shot = shots / f"fleet-{hosts}x{checks}.png"
    done = _chromium([f"--screenshot={shot}", page.as_uri()], tmp_path, timeout=180)
    assert shot.exists() and shot.stat().st_size > 5000, done.stderr[-2000:]

    order = check_failing_first(report, page, tmp_path)
    assert order and order == failing_order(report)
    dom, html = _dom(page, tmp_path)
    assert dom.external == [] and not dom.open_details
    assert list(dom.rows) == [h["name"] for h in report["hosts"]]

    # severity on every failing cell (its letter), both kinds of skip told apart
    cells = re.findall(r'<td class="([^"]*)" data-check="[^"]*" data-outcome="([^"]*)" data-severity="([^"]*)">'
                       r"<details><summary[^>]*>([^<]*)</summary>", html)
    every = results(report)
    assert len(cells) == len(every)
    letters = {"critical": "C", "warning": "W", "info": "I"}
    for classes, outcome, severity, text in cells:
        if outcome in ("fail", "would-fix"):
            assert text == letters[severity], (classes, text)
        elif outcome == "fix-failed":
            assert text == letters[severity] + "!"
    skips = {(tuple(sorted(c.split())), t) for c, o, _, t in cells if o == "skipped"}
    assert any("skip-dependency" in c and t == "↷" for c, t in skips), skips
    if hosts > 1:
        assert any("skip-role" in c and t == "–" for c, t in skips), skips
        # hosts not checked: unreachable, timeout and error rows each in their own colour
        for status in ("unreachable", "timeout", "error"):
            assert f'class="host down h-row-{status}"' in html, status
        colours = set(re.findall(r"\.h-(unreachable|timeout|error) \{ background: (#[0-9a-f]+)", html))
        assert len({c for _, c in colours}) == 3, colours
        assert re.search(r"\.o-error > details > summary, \.o-error\.badge \{ background: (#[0-9a-f]+)", html)[1] \
            not in {c for _, c in colours}

    host, r = next((h, r) for h, r in every if r["outcome"] == "fail")
    check_panel_closes(page, tmp_path, host, r["check"])
    # the guide section is a link to the guide copy shipped with the package, at the section's anchor
    assert re.search(r'<a class="guide" href="file://[^"]*/keystone_checks/data/guides/troubleshooting-[a-z-]+\.md#[a-z-]+">',
                     html)


def test_html_hostile_names_are_text(tmp_path):
    names = ['<script>alert(1)</script>', '"><img src=x onerror=alert(2)>', "web-1"]
    report = fleet(3, 8, names=names)
    page = tmp_path / "hostile.html"
    text = writer("html")(report)
    assert "<script>alert" not in text and "<img src=x" not in text
    page.write_text(text)
    dom, html = _dom(page, tmp_path)
    assert set(dom.rows) == set(names)  # the names come back as data, not as elements
    assert html.count("<script>") == 1, "only the report's own script"
