"""ssh.SshdAuthorizedKeys, live: the fact's own command against the real OpenSSH sshd (``sshd -T``)
with a NixOS-shaped configuration, its AuthorizedKeysFile tokens expanded for the login user."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from kc_helpers import SSHD
from nix_flakes import make_keypair

from keystone_checks.errors import ProbeFailed
from keystone_checks.facts.base import ProbeOutput
from keystone_checks.facts.ssh import SshdAuthorizedKeys


def _setup(tmp_path: Path, authorized_keys_file: str, permit_root_login="prohibit-password", host_key=True):
    """An ``sshd`` first on PATH that is the real sshd reading our NixOS-like config."""
    if not Path(SSHD).exists():
        pytest.fail("OpenSSH sshd is not installed: run .ci/run or `apt-get install openssh-server`")
    key = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    if not host_key:
        key.unlink()
    config = tmp_path / "sshd_config"
    config.write_text(f"AuthorizedKeysFile {authorized_keys_file}\nPermitRootLogin {permit_root_login}\n"
                      f"PasswordAuthentication no\nPubkeyAuthentication yes\nKbdInteractiveAuthentication no\n"
                      f"UsePAM no\nHostKey {key}\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sshd").write_text(f"#!/bin/sh\nexec {SSHD} -f {config} \"$@\"\n")
    (bindir / "sshd").chmod(0o755)
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "LC_ALL": "C"}


def _run(env, **args):
    fact = SshdAuthorizedKeys()
    done = subprocess.run(["sh", "-c", fact.command(**args)], capture_output=True, text=True, env=env, timeout=60)
    return fact.parse(ProbeOutput(done.returncode, done.stdout.splitlines(), done.stderr.splitlines()))


@pytest.mark.skipif(os.geteuid() != 0, reason="sshd -T needs root (CI runs as root)")
def test_reads_the_files_sshd_reads_with_tokens_expanded(tmp_path):
    keysd = tmp_path / "authorized_keys.d"
    keysd.mkdir()
    op = make_keypair(tmp_path / "op").read_text().strip()
    (keysd / "root").write_text(f"# managed by NixOS\n{op}\nssh-ed25519 AAAAC3Nza broken\n")
    # A relative path (under the home, /root) that does not exist, and the authorized_keys.d/%u file.
    env = _setup(tmp_path, f".kc-test-absent/%u %%literal {keysd}/%u")
    got = _run(env, user="root", expected_key=op)
    assert got["home"] == "/root" and got["login_permitted"] is True
    assert [f["path"] for f in got["files"]] == ["/root/.kc-test-absent/root", "/root/%literal", f"{keysd}/root"]
    assert [f["exists"] for f in got["files"]] == [False, False, True]
    assert got["contains_expected"] is True and got["found_in"] == [f"{keysd}/root"]
    assert got["invalid"] == [{"path": f"{keysd}/root", "line": 3}]
    other = make_keypair(tmp_path / "other").read_text().strip()
    assert _run(env, user="root", expected_key=other)["contains_expected"] is False


@pytest.mark.skipif(os.geteuid() != 0, reason="sshd -T needs root (CI runs as root)")
def test_root_login_refused_and_sshd_failures_are_errors(tmp_path):
    env = _setup(tmp_path, "%h/.ssh/authorized_keys", permit_root_login="no")
    assert _run(env, user="root")["login_permitted"] is False
    assert _run(env, user="kc-no-such-user-42")["user_exists"] is False
    broken = tmp_path / "broken"
    broken.mkdir()
    with pytest.raises(ProbeFailed, match="no hostkeys available"):
        _run(_setup(broken, "%h/.ssh/authorized_keys", host_key=False), user="root")


def test_sshd_missing_is_an_error(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("sh", "printf", "echo"):
        if shutil.which(tool):
            (bindir / tool).symlink_to(shutil.which(tool))
    fact = SshdAuthorizedKeys()
    command = fact.command(user="root").replace("/usr/sbin/sshd /run/current-system/sw/bin/sshd", "/nonexistent/sshd")
    done = subprocess.run(["sh", "-c", command],
                          capture_output=True, text=True, env={"PATH": str(bindir)})
    with pytest.raises(ProbeFailed, match="sshd not found"):
        fact.parse(ProbeOutput(done.returncode, done.stdout.splitlines(), done.stderr.splitlines()))
