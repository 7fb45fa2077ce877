"""Why a host could not be reached: pyinfra's connect error per host, classified.

pyinfra connects BEFORE it loads the deploy file, and keeps no record of why a connection failed
(only that it did: ``state.failed_hosts``); the reason is only logged. So this module installs a
``logging.Handler`` on the ``pyinfra`` logger when it is imported, and inventories import it:

    import keystone_checks.connect_errors  # noqa: F401  (first line of an inventory file)

``keystone_checks.runner`` imports it too (later than connect, but harmless). The runner's report
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
    kind: str  # does-not-resolve | connection-refused | timed-out | auth-rejected | host-key-changed | host-key-unknown | could-not-connect
    reason: str  # what the operator reads
    detail: str  # pyinfra's own message
    guide: tuple[str, str]
    check: str | None = None  # the catalog check that explains it, when there is one

    def as_text(self) -> str:
        where = f"guide: {self.guide[0]} / {self.guide[1]}"
        if self.check:
            where += f"; see check {self.check}"
        return f"{self.kind}: {self.reason} [{self.detail}] ({where})"


def classify(message: str) -> ConnectFailure:
    """pyinfra's connect error text -> a distinct kind with an explanation."""
    text = _ANSI.sub("", message).strip()
    low = text.lower()
    if "could not resolve hostname" in low or "name or service not known" in low:
        return ConnectFailure("does-not-resolve", "the host name does not resolve (DNS or a typo in the inventory)",
                              text, GUIDE_UNREACHABLE)
    if "host key" in low and ("does not match" in low or "changed" in low):
        return ConnectFailure(
            "host-key-changed",
            "the host's SSH key differs from the recorded one and the connection was refused. The Keystone "
            "installer ISO regenerates its host keys on every boot, so a rebooted installer shows a new key "
            "(installer hosts use their own known_hosts file with accept-new); on a deployed server this may "
            "be an attack (man in the middle): verify the key out of band before `ssh-keygen -R`",
            text, GUIDE_SSH_ACCESS)
    if "not found in known_hosts" in low or ("no host key" in low and "known_hosts" in low):
        return ConnectFailure("host-key-unknown", "the host's SSH key is not in the known_hosts file and strict "
                              "host key checking is on: record it after verifying it out of band", text, GUIDE_SSH_ACCESS)
    if "authentication" in low:
        return ConnectFailure("auth-rejected", "the host refused our SSH key (key not in root's authorized_keys, "
                              "or the wrong ssh_key/ssh_user)", text, GUIDE_REFUSED, "root-authorized-keys")
    if "no existing session" in low or "protocol banner" in low:
        # paramiko gives up on a silent server (TCP accepted, no banner) without saying so, then
        # fails authenticating: "No existing session".
        return ConnectFailure("timed-out", "connection timed out: no SSH banner: the port accepts connections "
                              "but no SSH server answered within the connect timeout (sshd hung or overloaded, "
                              "another service on the port)", text, GUIDE_UNREACHABLE)
    if "timed out" in low or "timeout" in low or "protocol banner" in low:
        return ConnectFailure("timed-out", "no answer in time: host down, firewalled, or not speaking SSH",
                              text, GUIDE_UNREACHABLE)
    if "refused" in low or "unable to connect to port" in low:
        return ConnectFailure("connection-refused", "nothing listens on the SSH port (sshd not running, wrong "
                              "port, or a firewall rejecting)", text, GUIDE_REFUSED, "sshd-running")
    return ConnectFailure("could-not-connect", "pyinfra could not connect", text, GUIDE_UNREACHABLE)


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
