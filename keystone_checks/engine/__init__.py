"""The engine, in pipeline order: catalog (checks) -> plan (which checks, which probes, per host) ->
gather (one batched remote command) -> evaluate (outcomes) -> fix (queued fixes, re-checks) ->
outcome (the report model). pipeline runs them for one host; both front-ends call it.

Beside them: hostdata (typed host data), templating, commands (quoted remote commands),
connect_errors (why a host could not be reached), nodelay (TCP_NODELAY on SSH sockets).
"""
