"""Secrets (LUKS passphrases) resolved on the controller from host-data REFERENCES only.

Host data names where the secret is, never the secret itself:

- ``luks_passphrase_file``: a file on the controller (the operator's machine), mode 0600 or
  stricter; one line; a trailing newline is ignored;
- ``luks_passphrase_env``: the name of an environment variable of the pyinfra process.

Check files can only template these references (the secret is not host data, so no template can
render it). The passphrase travels to the host on the SSH channel's STDIN of the one command
that needs it (``luks.open_mapping``: pyinfra's per-command ``_stdin``): never in a command line
(``ps`` on the host, pyinfra's ``-vvv`` echo of commands, ``--dry`` listings, reports), never in
an operation argument (pyinfra prints those), never in a message: errors here name the reference,
not the value, and a :class:`Secret`'s ``repr`` is masked (tracebacks, debug dumps).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import KeystoneChecksError


class SecretError(KeystoneChecksError):
    """A secret reference could not be resolved. The message never contains the secret."""


class Secret(str):
    """A str whose repr is masked (pyinfra and tracebacks use repr); str()/encode() are the value."""

    def __repr__(self) -> str:
        return "Secret('***')"


# Every secret value resolved in this process: text that leaves it (a failing command's stderr in a
# report) goes through :func:`redact` first.
_RESOLVED: set[str] = set()


def redact(text: str) -> str:
    """``text`` with every secret resolved in this process replaced by ``***``."""
    for value in sorted(_RESOLVED, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def resolve_passphrase(passphrase_file: str = "", passphrase_env: str = "") -> Secret:
    if passphrase_file and passphrase_env:
        raise SecretError("set only one of luks_passphrase_file and luks_passphrase_env")
    if passphrase_file:
        value = _from_file(passphrase_file)
        where = f"luks_passphrase_file {passphrase_file}"
    elif passphrase_env:
        if passphrase_env not in os.environ:
            raise SecretError(f"luks_passphrase_env: environment variable {passphrase_env} is not set on the controller")
        value = os.environ[passphrase_env]
        where = f"luks_passphrase_env {passphrase_env}"
    else:
        raise SecretError("no passphrase reference: set host data luks_passphrase_file or luks_passphrase_env")
    if value.endswith("\n"):
        value = value[:-1]
    if not value:
        raise SecretError(f"{where}: the passphrase is empty")
    if "\n" in value or "\r" in value or "\0" in value:
        raise SecretError(f"{where}: the passphrase must be one line (it is sent as one line on stdin)")
    _RESOLVED.add(value)
    return Secret(value)


def _from_file(path_text: str) -> str:
    path = Path(path_text).expanduser()
    try:
        info = path.stat()
    except OSError as exc:
        raise SecretError(f"luks_passphrase_file {path_text}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretError(f"luks_passphrase_file {path_text}: not a regular file")
    if info.st_mode & 0o077:
        raise SecretError(f"luks_passphrase_file {path_text}: readable by group or others "
                          f"(mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 it")
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SecretError(f"luks_passphrase_file {path_text}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SecretError(f"luks_passphrase_file {path_text}: not UTF-8 text") from None
