"""Tool (d) 'testinfra': the same probes run by pytest-testinfra, paramiko backend, `host.run(cmd)`.

One pytest session over all hosts (`--hosts paramiko://h001,... --ssh-config fleet_ssh_config`),
one test per probe per host.  Probes come from $KC_BENCH_PROBES (JSON [[key, wrapped_cmd], ...]).
"""

import json
import os

import pytest

PROBES = json.load(open(os.environ["KC_BENCH_PROBES"]))


@pytest.mark.parametrize("cmd", [c for _, c in PROBES], ids=[k for k, _ in PROBES])
def test_probe(host, cmd):
    result = host.run(cmd)
    assert "rc=" in result.stdout
