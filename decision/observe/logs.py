"""Structured logs: one JSON object per line, for log shippers (``--log-format json``).

Fields: ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``pid``, ``msg``, the
exception as ``exc`` if any, every ``extra={...}`` field a call passes (e.g.
``event``, ``ruleset_version``), and ``trace_id``/``span_id`` when an
OpenTelemetry span is current.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes every LogRecord has: whatever else a record carries came from ``extra``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            body["exc"] = record.exc_text
        body.update(_trace_ids())
        return orjson.dumps(body, default=str).decode()


def _trace_ids() -> dict[str, str]:
    trace = sys.modules.get("opentelemetry.trace")  # only when tracing is in use: no import otherwise
    if trace is None:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def configure_json_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
