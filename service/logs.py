"""Logging: text (`time level logger message key=value…`) or JSON lines (`RUNG_LOG_FORMAT=json`),
with the study, trial and worker ids that use cases attach as `extra`."""

from __future__ import annotations

import json
import logging
import re
import sys

FIELDS = (
    "study_id",
    "trial_id",
    "worker_id",
    "status",
    "reason",
    "bracket",
    "round",
    "epochs",
    "score",
    "lease_expiries",
)


_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+-]+")


def _value(value: object) -> str:
    """A field's value as one token: anything but plain characters (a space, `=`, a quote, a
    line separator…) is written as a JSON string, so that no value can forge fields or
    lines (worker ids come from clients)."""
    text = str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [f"{k}={_value(getattr(record, k))}" for k in FIELDS if hasattr(record, k)]
        return " ".join([text, *extras])


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: getattr(record, k) for k in FIELDS if hasattr(record, k)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
