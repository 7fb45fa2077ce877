"""This machine, as both the operator's controller and an install target.

    pyinfra -y inventory/local.py playbooks/preflight.py

KEYSTONE_DISK names the disk the installer checks look at (default /dev/vda).
"""

import os

local = [
    ("@local", {"role": ["controller", "installer"], "disk": os.environ.get("KEYSTONE_DISK", "/dev/vda")}),
]
