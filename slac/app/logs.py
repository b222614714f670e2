"""Logging set-up for applications (the ``slac`` command, the examples).

The library itself only creates loggers; an application calls :func:`configure_logging`
once. Lines about an EVSE carry its id (``evse_id``) and, for a run, the EV's MAC and the
RunID (``ev_mac``, ``run_id``) as record fields: ``LOG_FORMAT=json`` writes them as keys.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Optional, TextIO

from slac.app.settings import AppSettings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: record fields copied into JSON lines when present
CONTEXT_FIELDS = ("evse_id", "ev_mac", "run_id")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, context."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        entry: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(config: AppSettings, stream: Optional[TextIO] = None) -> logging.Handler:
    """Send log records at ``config.log_level`` and above to ``stream`` (stderr), as text
    lines or JSON objects (``config.log_format``). Replaces the root logger's handlers."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    # nothing here logs from threads or subprocesses: spare each record those lookups
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.log_level_number)
    return handler
