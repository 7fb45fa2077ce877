"""This machine, as both the operator's controller and an install target.

    pyinfra -y inventory/local.py playbooks/preflight.py

KEYSTONE_DISK names the disk the installer checks look at (default /dev/vda).
"""

# Imported before pyinfra connects, so each unreachable host is reported with its reason
# (refused, timed out, key rejected, host key changed, ...), not a generic failure.
import os

import keystone_checks.engine.connect_errors  # noqa: F401

local = [
    ("@local", {"role": ["controller", "installer"], "disk": os.environ.get("KEYSTONE_DISK", "/dev/vda")}),
]
