"""Tools around the engine: diagnose (which check explains an error text) and confirm (run those
checks on a host), coverage (guide sections the catalog covers), docs (docs/checks.md), merge
(fleet reports from shards)."""
