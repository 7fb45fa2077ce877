"""Tool (c) 'pyinfra-facts': the same probes as plain pyinfra facts, one fact per probe.

What a straightforward pyinfra implementation of the checks does: for each probe command,
`host.get_fact(Command, cmd)` (pyinfra.facts.server.Command).  The facts are gathered inside a
`python.call` operation so that pyinfra runs the hosts in parallel (module-level get_fact calls in a
deploy file run host after host while the file is loaded, which would be far slower still).
Commands arrive wrapped as `{ cmd ; } 2>&1; echo "rc=$?"` so a missing tool does not fail the host.

Data (via --data): probes_file = JSON [[key, wrapped_cmd], ...]; bench_out = file to append
"<host> <facts answered>" lines to (the harness counts them).
"""

import json

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import python

PROBES = json.load(open(host.data.probes_file))


def _probe_all() -> None:
    answered = 0
    for _key, cmd in PROBES:
        out = host.get_fact(Command, cmd)
        if out is not None and "rc=" in out:
            answered += 1
    with open(host.data.bench_out, "a") as f:
        f.write(f"{host.name} {answered}\n")


python.call(name="probe every check with one fact each", function=_probe_all)
