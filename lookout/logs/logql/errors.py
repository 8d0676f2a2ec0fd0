"""LogQL exception tree.

``LogQLError`` (HTTP status in ``status``)
  ├── ``ParseError``      — the query text is malformed (400), worded as Loki words it
  ├── ``ValidationError`` — well-formed but not allowed (400)
  ├── ``PipelineError``   — a metric query met a line the pipeline flagged with ``__error__`` (400)
  └── ``LimitError``      — too many series / lines / too long a range (400, as Loki's limits)
"""

from __future__ import annotations


class LogQLError(Exception):
    """Base of every error the engine raises on purpose; ``status`` is the HTTP status to answer."""

    status: int = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class ParseError(LogQLError):
    """Syntax error with Loki's wording: ``parse error at line L, col C: <msg>``."""

    def __init__(self, msg: str, line: int = 0, col: int = 0) -> None:
        text = f"parse error at line {line}, col {col}: {msg}" if line else f"parse error : {msg}"
        super().__init__(text)
        self.msg = msg
        self.line = line
        self.col = col


class ValidationError(LogQLError):
    """A query that parses but that Loki refuses (grouping not allowed, unwrap missing, ...)."""


class PipelineError(LogQLError):
    """A metric query reached a sample whose line carries ``__error__`` (Loki fails the query)."""

    def __init__(self, error_type: str, series: str) -> None:
        msg = (
            f"pipeline error: '{error_type}' for series: '{series}'.\n"
            f"Use a label filter to intentionally skip this error. (e.g | __error__!=\"{error_type}\").\n"
            "To skip all potential errors you can match empty errors.(e.g __error__=\"\")\n"
            "The label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n"
        )
        super().__init__(msg)


class LimitError(LogQLError):
    """A query over a configured limit (series, lines, range)."""
