"""JSON-lines log records for collectors (``LETHE_LOG_FORMAT=json``, see settings.LOGGING).

One JSON object per line, so Loki, CloudWatch or ``jq`` read fields without a regex, and a
traceback stays inside its record instead of spilling over lines that parse as records of
their own. Named ``log`` rather than ``logging`` so it never shadows the standard module.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonLinesFormatter(logging.Formatter):
    """Format a record as ``{"time", "level", "logger", "message", "exc_info"}`` on one line,
    with ``request_id`` too when the record has one.

    ``time`` is ISO 8601 in UTC with milliseconds; ``exc_info`` is the formatted traceback,
    or null. The message is formatted with its arguments, as text handlers show it.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "exc_info": self.formatException(record.exc_info) if record.exc_info else None,
        }
        # Set by middleware.RequestIdFilter on the handlers LOGGING configures.
        if (request_id := getattr(record, "request_id", None)) is not None:
            entry["request_id"] = request_id
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        # json escapes newlines, so a multi-line message or traceback stays on one line.
        return json.dumps(entry)
