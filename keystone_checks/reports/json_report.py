"""JSON: the report dict itself (schema: keystone_checks/schema/report.schema.json)."""

from __future__ import annotations

from typing import Any

from ..engine.outcome import to_json
from . import DEFAULT, Options


def write(report: dict[str, Any], options: Options = DEFAULT) -> str:
    return to_json(report)
