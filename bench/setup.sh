#!/usr/bin/env bash
# Prepare the machine for the keystone-checks fleet benchmark.
#  - installs OpenSSH server (client + sshd binaries; the system service is NOT started/used)
#  - creates bench/.venv (gitignored) with the comparison tools (testinfra, ansible, psutil; matplotlib only for the optional `report.py --png` plot)
# pyinfra itself is taken from the project's environment (the tool under test), not from this venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v /usr/sbin/sshd >/dev/null 2>&1 || ! command -v ssh-keygen >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # policy-rc.d-free: in containers there is no init; the package's service is never used by the bench.
    apt-get install -y -q --no-install-recommends openssh-server openssh-client
fi

if [ ! -x "$here/.venv/bin/python" ]; then
    python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install -q --upgrade pip
"$here/.venv/bin/pip" install -q -r "$here/requirements.txt"
echo "bench setup OK: $("$here/.venv/bin/python" --version), sshd at /usr/sbin/sshd"
