"""Run the wipe guard (operations/disks.py) for real, in a PID namespace of its own.

The guard reads every process's open file descriptors (/proc/<pid>/fd/*) and refuses when one
cannot be read. In this test sandbox PID 1 belongs to the machinery and its descriptors are
unreadable (EPERM), so on the shared /proc the guard correctly refuses every wipe. A fresh PID
namespace with its own /proc (``unshare --pid --fork --mount-proc``) holds only the processes of
the test: the guard's walk over /proc is unchanged, the processes it sees are ours.
"""

from __future__ import annotations

import shutil
import subprocess

UNSHARE = shutil.which("unshare")

# Inside the namespace: "$1" (when given) is opened on fd 3 by a `sleep` that keeps it open while
# the guard runs; the namespace's init (this sh) exiting kills the sleep.
_HOLD = 'if [ -n "${1:-}" ]; then sleep 60 3<"$1" & sleep 0.2; fi\n'


def run_guard(script: str, env: dict | None = None, hold: str | None = None, timeout: int = 60):
    """Run ``script`` with /bin/sh in its own PID namespace; ``hold``: a path a process keeps open."""
    assert UNSHARE, "unshare (util-linux) is needed to give the guard a /proc of its own"
    return subprocess.run([UNSHARE, "--pid", "--fork", "--mount-proc", "/bin/sh", "-c", _HOLD + script,
                           "guard", hold or ""], capture_output=True, text=True, timeout=timeout, env=env)
