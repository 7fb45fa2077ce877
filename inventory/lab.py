"""The lab guests started with `keystone-checks lab up` (see docs/lab.md), grouped by role:

    keystone-checks lab up --state installer
    keystone-checks lab up --state deployed
    pyinfra -y inventory/lab.py playbooks/preflight.py
    keystone-checks run sweep -i inventory/lab.py --limit zfs21-deployed

Host names are the guests' names (`zfs21-deployed`, `zfs21-installer`, ...; `lab status` lists them).
"""

import sys

# Imported before pyinfra connects, so each unreachable host is reported with its reason.
import keystone_checks.engine.connect_errors  # noqa: F401
from keystone_checks.lab.inventory import guests_up

_groups = guests_up()
installer = _groups.get("installer", [])
deployed = _groups.get("deployed", [])
if not installer and not deployed:
    print("inventory/lab.py: no lab guest is up; start one with `keystone-checks lab up --state deployed`",
          file=sys.stderr)
