"""Fixtures shared by every test; the helpers themselves live in kc_helpers.py. Also the lab's
pytest-xdist scheduler (here, not in tests/lab/conftest.py: the controller process collects
nothing, so only this top-level conftest is loaded where schedulers are made)."""

import re

import pytest
from kc_helpers import Sshd


def _lab_chain(nodeid: str) -> str | None:
    """The chain (one guest carried from test to test, in order) a lab test belongs to, if any:
    the Keystone-shaped guest's healthy-boot module, and the UKI flavour's test with that
    flavour's faults (keystone_checks/lab/reboot_faults.UKI_CHAIN)."""
    path, _, name = nodeid.partition("::")
    if path.endswith("tests/lab/test_lab_ksboot.py"):
        return "ks-healthy"
    if path.endswith("tests/lab/test_lab_ksboot_reboot.py"):
        from keystone_checks.lab import reboot_faults

        if name.startswith("test_lanzaboote_style_flavour"):
            return reboot_faults.UKI_CHAIN
        param = re.search(r"\[(.+)\]$", name)
        if param and reboot_faults.get(param.group(1)).flavour == "uki":
            return reboot_faults.UKI_CHAIN
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` (the Keystone-shaped guest's runs, docs/lab.md): each chain of lab tests (``_lab_chain``) goes to one worker,
    in order; every other test is scheduled alone. pytest-xdist's own loadgroup cannot do this under
    pytest 9: it marks a group by rewriting ``item._nodeid``, which pytest 9 no longer reads (the
    groups were silently ignored: a chain's tests ran on both workers, measured 2026-12-02)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    # Keep the collection's order (tests/lab/conftest.py puts the longest Debian tests first and the
    # Keystone-shaped guest's last): LoadScopeScheduling otherwise starts with the scopes holding the
    # most tests, i.e. the chains, which wait for their disk while it builds (both workers idled ≈ 20 min
    # in a cold run, measured 2026-12-02).
    config.option.loadscopereorder = False

    class ChainScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _lab_chain(nodeid) or nodeid

    return ChainScheduling(config, log)


@pytest.fixture
def sshd(tmp_path):
    server = Sshd(tmp_path / "sshd")
    server.root.mkdir()
    server.start()
    yield server
    server.stop()
