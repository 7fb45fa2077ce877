"""Tool 'probes-local': the checks' remote work alone, without SSH (a decomposition, not a comparison).

Runs the engine's batch script (the exact shell script the sweep sends to each host: every probe of
the catalog, each under `timeout`, with its section markers) N times in parallel on this machine,
one `sh` per host, and waits for all.  On this benchmark the hosts share the controller's 2 cores,
so this is what the N hosts' own work costs here before any connection, key exchange or parsing.
Prints one JSON line: {"ok": n, "errors": n, "execs_ok": n}.

usage: python probes_local.py N BATCH.sh
"""

import json
import subprocess
import sys


def main() -> None:
    n, script = int(sys.argv[1]), open(sys.argv[2], "rb").read()
    procs = []
    for _ in range(n):
        # nice 10: the same priority as the fleet's simulated hosts (bench/fleet.py HOST_NICE)
        p = subprocess.Popen(["nice", "-n", "10", "sh", "-s"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        procs.append(p)
    for p in procs:  # feed after all are started, so the hosts run concurrently as in a sweep
        p.stdin.write(script)
        p.stdin.close()
    ok = sum(1 for p in procs if p.wait() == 0)
    print(json.dumps({"ok": ok, "errors": n - ok, "execs_ok": ok}))


if __name__ == "__main__":
    main()
