"""keystone-checks: the Keystone troubleshooting guides as declarative checks and fixes, run by pyinfra.

Flow: ``checks/*.yaml`` (what to look for) -> ``keystone_checks.facts`` (how to look, one batched
remote command per host) -> ``keystone_checks.engine.evaluate`` (JSON Schema conditions) ->
``keystone_checks.operations`` (how to fix) -> ``keystone_checks.reports``.
"""

__version__ = "0.1.0"
