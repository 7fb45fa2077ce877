"""The ways in: playbook (what playbooks/*.py call under the pyinfra CLI), api (``keystone-checks
run``, through pyinfra's Python API) and cli (the ``keystone-checks`` command). Each is a thin
caller of keystone_checks.engine.pipeline."""
