"""Why a host could not be reached: pyinfra's connect error per host, classified.

pyinfra connects BEFORE it loads the deploy file, and keeps no record of why a connection failed
(only that it did: ``state.failed_hosts``); the reason is only logged. So this module installs a
``logging.Handler`` on the ``pyinfra`` logger when it is imported, and inventories import it:

    import keystone_checks.engine.connect_errors  # noqa: F401  (first line of an inventory file)

``keystone_checks.frontends.playbook`` imports it too (later than connect, but harmless). The playbooks' report
then gives each unreachable host its own status reason instead of "see pyinfra's output above".

It also keeps paramiko's transport logger from printing a traceback when a server accepts a
connection but never sends an SSH banner (pyinfra reports that host's error itself).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HOST_LINE = re.compile(r"^\s*\[(?P<host>[^\]]+)\]\s+(?P<message>.+)$", re.S)

GUIDE_UNREACHABLE = ("troubleshooting-nixos-anywhere-vm-install.md", "Issue: Target Not Reachable")
GUIDE_REFUSED = ("troubleshooting-build-and-deploy.md", 'Error: "connection refused" during remote deploy')
GUIDE_SSH_ACCESS = ("troubleshooting-nixos-anywhere-vm-install.md", "Issue: SSH Access Fails After Deployment")


@dataclass(frozen=True)
class ConnectFailure:
    kind: str  # one of KINDS (below)
    reason: str  # what the operator reads
    detail: str  # pyinfra's (or ssh's) own message
    guide: tuple[str, str]
    check: str | None = None  # the catalog check that explains it, when there is one
    symptom: str = ""  # a typical message of this kind, for ranking the catalog (diagnose)

    def as_text(self, explained_by: str | None = None) -> str:
        """One line for a host's report: kind, reason, the raw message, where to read on.
        ``explained_by``: a catalog check found for this failure (else the kind's own check)."""
        where = f"guide: {self.guide[0]} / {self.guide[1]}"
        check = explained_by or self.check
        if check:
            where += f"; see check {check}: keystone-checks show {check}"
        return f"{self.kind}: {self.reason} [{self.detail}] ({where})"


_NO_BANNER = ("connection timed out: no SSH banner: the port accepts connections but no SSH server answered "
              "within the connect timeout (sshd hung or overloaded, another service on the port, a proxy)")

# (kind, pattern over the message, reason, guide, explaining check, typical symptom). The first
# pattern that matches wins, so the narrower kinds come first: an unknown key before a changed one
# (OpenSSH ends both with "Host key verification failed"), a missing banner before a plain timeout.
_RULES: list[tuple[str, str, str, tuple[str, str], str | None, str]] = [
    ("does-not-resolve",
     r"resolve hostname|name or service not known|nodename nor servname|gaierror|temporary failure in name resolution",
     "name does not resolve: the host name does not resolve (DNS, or a typo in the inventory's ssh_hostname)",
     GUIDE_UNREACHABLE, None, "ssh: Could not resolve hostname host: Name or service not known"),
    ("host-key-unknown",
     r"not found in known_hosts|no host key for .* known_hosts|host key is known for .* strict checking",
     "host key unknown: the host's SSH key is not in the known_hosts file and strict host key checking is on: "
     "record it after verifying it out of band",
     GUIDE_SSH_ACCESS, None, "Host key verification failed."),
    ("host-key-changed",
     r"host key.*(does not match|changed)|remote host identification has changed|host key verification failed",
     "SSH host key changed: the host's key differs from the recorded one and the connection was refused. The "
     "Keystone installer ISO regenerates its host keys on every boot, so a rebooted installer shows a new key "
     "(installer hosts use their own known_hosts file with accept-new; `ssh-keygen -R HOST` removes the old "
     "entry); on a deployed server this may be an attack (man in the middle): verify the key out of band first",
     GUIDE_SSH_ACCESS, None, "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! Host key verification failed."),
    ("auth-rejected",
     r"authentication|auth fail|permission denied \(|no authentication methods|not a valid .*key|invalid key",
     "authentication rejected: the host refused our SSH key (key not in the login user's authorized_keys, or the "
     "wrong ssh_key / ssh_user)",
     GUIDE_REFUSED, "root-authorized-keys", "Permission denied (publickey)."),
    # paramiko gives up on a silent server (TCP accepted, no banner) without saying so, then fails
    # authenticating: "No existing session". OpenSSH says "during banner exchange".
    ("timed-out", r"no existing session|protocol banner|during banner exchange",
     _NO_BANNER, GUIDE_UNREACHABLE, None,
     "ssh: connect to host 192.0.2.1 port 22: Connection timed out during banner exchange"),
    ("no-route", r"no route to host|network is unreachable|errno 113\b|errno 101\b",
     "no route to host: the network path to the host is broken (wrong address, host down, VLAN/bridge)",
     GUIDE_UNREACHABLE, None, "ssh: connect to host 192.0.2.1 port 22: No route to host"),
    # paramiko's NoValidConnectionsError ("Unable to connect to port N on ADDR") wraps ECONNREFUSED
    ("connection-refused", r"connection refused|errno 111\b|unable to connect to port",
     "connection refused: nothing listens on the SSH port (sshd not running, wrong port, or a firewall rejecting)",
     GUIDE_REFUSED, "sshd-running", "ssh: connect to host 192.0.2.1 port 22: Connection refused"),
    ("timed-out", r"timed out|timeout|errno 110\b",
     "timed out: no answer in time (host down, wrong address, firewall DROP, not speaking SSH)",
     GUIDE_UNREACHABLE, None, "ssh: connect to host 192.0.2.1 port 22: Connection timed out"),
]

KINDS = tuple(dict.fromkeys([rule[0] for rule in _RULES] + ["could-not-connect"]))


def classify(message: str) -> ConnectFailure:
    """A connect error's text (pyinfra's, paramiko's or OpenSSH's) -> its kind with an explanation.
    The one classifier of both front-ends (the playbooks' report and ``keystone-checks run``)."""
    text = _ANSI.sub("", message).strip()
    for kind, pattern, reason, guide, check, symptom in _RULES:
        if re.search(pattern, text, re.I):
            return ConnectFailure(kind, reason, text, guide, check, symptom)
    return ConnectFailure("could-not-connect", "could not connect", text, GUIDE_UNREACHABLE, None, text)


def explaining_check(failure: ConnectFailure, checks) -> str | None:
    """The catalog check that explains ``failure``: the kind's own check when the catalog has it,
    else the check whose symptoms best match (diagnose's ranking of the typical message, then the
    raw one)."""
    ids = {c.id for c in checks}
    if failure.check in ids:
        return failure.check
    from ..tools import diagnose

    for text in (failure.symptom, failure.detail):
        matches = diagnose.rank(text, checks) if text else []
        if matches:
            return matches[0].check.id
    return None


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.failures: dict[str, ConnectFailure] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            match = _HOST_LINE.match(_ANSI.sub("", record.getMessage()))
            if not match:
                return
            message = match.group("message").strip()
            if message.lower().startswith(("connected", "ready", "success", "loaded")):
                return
            low = message.lower()
            if any(w in low for w in ("could not", "error", "refused", "timed out", "unable")):
                self.failures.setdefault(match.group("host").strip(), classify(message))
        except Exception:  # noqa: BLE001 - a logging handler must never raise
            pass


class _NoBannerTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


def _install() -> _Collector:
    logger = logging.getLogger("pyinfra")
    for handler in logger.handlers:
        if isinstance(handler, _Collector) or type(handler).__name__ == "_Collector":
            return handler  # type: ignore[return-value]
    collector = _Collector()
    logger.addHandler(collector)
    if logger.level == logging.NOTSET or logger.level > logging.WARNING:
        pass  # pyinfra's CLI sets its own level; errors (what we need) pass at every verbosity
    logging.getLogger("paramiko.transport").addFilter(_NoBannerTraceback())
    return collector


COLLECTOR = _install()


def failure_for(host_name: str) -> ConnectFailure | None:
    return COLLECTOR.failures.get(host_name)
