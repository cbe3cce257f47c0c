"""Logging of the `arqgraph` processes: level and format (`--log-level`, `--log-format text|json`)
set with the standard library's `logging.config.dictConfig`, and the context of every record.

The context (run id, thread id, graph, node, attempt) lives in a context variable, set around
each node attempt (`arqgraph.observe.node_attempt`) and each move of a run: asyncio tasks and
the threads of sync nodes copy it, so a line logged by a node, or by the engine on its behalf,
carries the run it is about without every call passing it along. JSON lines are for log
collectors (Loki, Elasticsearch, Cloud Logging); text is for people.
"""

from __future__ import annotations

import json
import logging
import logging.config
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]


class ObserveSettingError(ValueError):
    """A logging or metrics setting that cannot be used (a bad level, a busy port): what and
    why, for the command to print."""


CONTEXT_FIELDS = ("run_id", "thread_id", "graph", "node", "attempt")

_context: ContextVar[dict[str, Any] | None] = ContextVar("arqgraph_log_context", default=None)
_role = "process"  # the `role` of every record: orchestrator, worker, producer...


def enter(**fields: Any) -> Token[dict[str, Any] | None]:
    """Add `fields` to the log context of this task (and what it starts) until `leave`."""
    return _context.set({**(_context.get() or {}), **fields})


def leave(token: Token[dict[str, Any] | None]) -> None:
    _context.reset(token)


class ContextFilter(logging.Filter):
    """Puts the process role and the log context on each record (as attributes, for any
    formatter: `%(run_id)s` works in a text format too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = _role
        context = _context.get() or {}
        for name in CONTEXT_FIELDS:
            setattr(record, name, context.get(name))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger, message, role, the
    run's context where there is one, and the exception's traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "role": getattr(record, "role", _role),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=repr, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def configure(level: str = "INFO", fmt: LogFormat = "text", role: str = "process") -> None:
    """Configure the root logger of this process: `level` (a name, e.g. DEBUG) and `fmt`,
    on standard error. Raises ObserveSettingError naming the bad level or format."""
    global _role
    level = level.upper()
    if level not in logging.getLevelNamesMapping():
        raise ObserveSettingError(f"--log-level {level!r} is not a logging level (DEBUG, INFO, "
                                  "WARNING, ERROR, CRITICAL)")
    if fmt not in ("text", "json"):
        raise ObserveSettingError(f"--log-format {fmt!r} is neither 'text' nor 'json'")
    _role = role
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if fmt == "json" else {"format": TEXT_FORMAT})
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"main": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "main",
                                "filters": ["context"], "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
    })
