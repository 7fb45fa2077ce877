"""pytest-xdist grouping for the testinfra tool: all tests of one host go to one worker
(`--dist loadgroup`), so each host gets exactly one SSH connection, as with the other tools."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        spec = getattr(item, "callspec", None)
        if spec is not None and "_testinfra_host" in spec.params:
            item.add_marker(pytest.mark.xdist_group(str(spec.params["_testinfra_host"])))
