"""Fixtures shared by every test; the helpers themselves live in kc_helpers.py."""

import pytest
from kc_helpers import Sshd


@pytest.fixture
def sshd(tmp_path):
    server = Sshd(tmp_path / "sshd")
    server.root.mkdir()
    server.start()
    yield server
    server.stop()
