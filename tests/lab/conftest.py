"""Lab fixtures: every test gets a fresh clone of a saved guest state.

Environment:
  KC_LAB_ZFS=zfs21|zfs23|all   which ZFS image(s) to run against (default zfs21)
  KC_LAB_BUILD=1               build missing images/states instead of failing
                               (a cache hit is instant; a cold build ≈ 10 min per variant)

Without KC_LAB_BUILD a missing image FAILS the test with the command to run;
lab tests never skip silently.

Runs with pytest-xdist (``-n 2``, as CI does): every clone has its own overlay, ports and QMP
socket; builds take a lock so two workers never build the same image or state.
"""

from __future__ import annotations

import os

import pytest

from keystone_checks.lab import build, faults, inventory, paths, recipe, snapshot
from keystone_checks.lab.errors import LabError


def _variants() -> list[str]:
    want = os.environ.get("KC_LAB_ZFS", "zfs21")
    return list(recipe.VARIANTS) if want == "all" else want.split(",")


# The lab tests that take longest (one guest for many minutes) go first: with `-n 2` a long test
# collected last runs alone at the end while the other worker idles (measured 2026-12-02: the
# units test, last in file order, was the ZFS 2.1 run's last ≈ 5 minutes).
_LONG_FIRST = ("test_lab_units.py", "test_lab_reports.py", "test_lab_destructive_wipe.py", "test_lab_recovery.py")
# The Keystone-shaped guest's chains go last: in a cold run its disk and running state may still be
# being built in the background while the Debian guests' tests run (a chain started early would only
# wait for them); the longest chains (the reboot faults) before the healthy-boot module.
_LAST = ("test_lab_ksboot_reboot.py", "test_lab_ksboot.py")


def pytest_collection_modifyitems(items):
    first = _variants()[0]

    def rank(item) -> tuple[int, int]:
        # A second ZFS variant's tests (KC_LAB_ZFS=zfs21,zfs23) after all of the first's: its image
        # builds in the background after the Keystone-shaped disk; short tests also fill the end.
        spec = getattr(item, "callspec", None)
        later = int(spec is not None and spec.params.get("lab_zfs", first) != first)
        name = item.path.name
        if name in _LAST:
            return later, len(_LONG_FIRST) + 1 + _LAST.index(name)
        return later, _LONG_FIRST.index(name) if name in _LONG_FIRST else len(_LONG_FIRST)

    items.sort(key=rank)  # stable: every other test keeps its order


def pytest_generate_tests(metafunc):
    if "lab_zfs" in metafunc.fixturenames:
        metafunc.parametrize("lab_zfs", _variants(), scope="session")


class LabHost:
    """One fresh clone, as the tests see it."""

    def __init__(self, clone: snapshot.Clone, variant: recipe.Variant, state: str, tmp_path):
        self.clone, self.variant, self.state = clone, variant, state
        self.fault: faults.Fault | None = None
        self.name = f"lab-{state}-{variant.name}"
        self.data = inventory.host_data(clone, state, variant)
        self.inventory_path = tmp_path / "inventory.py"
        self._write_inventory()

    def _write_inventory(self) -> None:
        inventory.write(self.inventory_path, [(self.name, self.data)])

    @property
    def expected_checksum(self) -> str:
        """Checksum of the lab data recorded when the state was saved."""
        return self.clone.meta["checksum"]

    def ssh(self, cmd: str, timeout: float = 120, control: bool = False) -> tuple[int, str, str]:
        """Run ``cmd`` in the guest.  ``control=True`` uses the lab's control sshd
        (only up after a fault with ``control`` was injected)."""
        return self.clone.ssh(cmd, timeout=timeout, port=self.clone.ctl_port if control else None)

    def inject(self, fault_name: str) -> faults.Fault:
        f = faults.get(fault_name)
        if f.state != self.state:
            raise LabError(f"fault {f.name} starts from state '{f.state}', this host is '{self.state}'; "
                           f"use lab_host(fault={f.name!r})")
        if self.variant.name not in f.variants:
            raise LabError(f"fault {f.name} does not apply to {self.variant.name}")
        overrides = faults.inject(self.clone, f, self.variant)
        self.fault = f
        if overrides:
            self.data.update(overrides)
            self._write_inventory()
            text = self.inventory_path.read_text()
            missing = {k: v for k, v in overrides.items() if f"{k!r}: {v!r}" not in text}
            if missing:
                raise LabError(f"fault {f.name}: inventory {self.inventory_path} lacks {missing}")
        return f

    def ssh_answers(self) -> tuple[bool, bool]:
        """(the guest's own sshd answers, the lab's control sshd answers): a fault that cuts SSH
        must read (False, True)."""
        return self.ssh("true", timeout=30)[0] == 0, self.ssh("true", timeout=30, control=True)[0] == 0

    def fault_present(self) -> bool:
        assert self.fault is not None, "no fault injected"
        return faults.verify(self.clone, self.fault, self.variant)[0] == 0

    def checksum(self) -> str:
        return snapshot.data_checksum(self.clone, self.variant)

    def kill(self) -> None:
        self.clone.destroy()


def _state_ready(variant: recipe.Variant, state: str) -> None:
    """With KC_LAB_BUILD=1, build what a test of ``variant`` needs when it first asks: the state,
    and first its image (snapshot.ensure_state -> build.build, which takes the image's lock: a
    background `lab build` may be building it). Only the variants a selection uses are built (CI
    runs a ZFS 2.3 selection at the end of the same run, while that image builds in the background)."""
    if os.environ.get("KC_LAB_BUILD") == "1" and not (snapshot.state_dir(variant, state) / "meta.json").exists():
        with paths.build_lock(f"states-{variant.name}"):
            snapshot.ensure_state(variant, state)


@pytest.fixture(scope="session")
def lab_ready():
    """Fail (not skip) with the command to run when the lab is not built."""
    building = os.environ.get("KC_LAB_BUILD") == "1"
    try:
        build.require_tools(build.HOST_TOOLS if building else build.RUN_TOOLS)
    except LabError as e:
        pytest.fail(str(e), pytrace=False)
    snapshot.reap_orphans()
    if building:
        return
    missing = [f"{v}/{st}" for v in _variants() for st in recipe.STATES
               if not (snapshot.state_dir(recipe.VARIANTS[v], st) / "meta.json").exists()]
    if missing:
        pytest.fail("lab image/states not built (" + ", ".join(missing) + "): run "
                    "`python -m keystone_checks.lab build --zfs all` (≈10 min per ZFS variant) "
                    "or set KC_LAB_BUILD=1", pytrace=False)


@pytest.fixture
def lab_host(lab_ready, tmp_path):
    """Factory: ``lab_host("deployed")``, ``lab_host(fault="scrub-running")``,
    optional ``zfs="zfs23"``.  Every clone is hard-killed at teardown."""
    made: list[LabHost] = []

    def make(state: str = "deployed", *, fault: str | None = None, zfs: str | None = None) -> LabHost:
        f = faults.get(fault) if fault else None
        st = f.state if f else state
        variant = recipe.VARIANTS[zfs or _variants()[0]]
        try:
            _state_ready(variant, st)
            clone = snapshot.Clone.restore(variant, st)
        except LabError as e:
            pytest.fail(str(e), pytrace=False)
        d = tmp_path / f"host{len(made)}"
        d.mkdir(exist_ok=True)
        host = LabHost(clone, variant, st, d)
        made.append(host)
        if f:
            try:
                host.inject(f.name)
            except LabError as e:
                pytest.fail(str(e), pytrace=False)
        return host

    yield make
    for h in made:
        h.kill()
