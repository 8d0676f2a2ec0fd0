"""TraceQL errors.

Exception tree::

    TraceQLError                      base; carries message, span (0-based offsets) and query
    ├── TraceQLParseError             the text is not TraceQL (line/col, 1-based, as Tempo)
    ├── TraceQLValidationError        it parses but is semantically wrong (types, regex, nil …)
    └── TraceQLUnsupportedError       valid TraceQL that Lookout cannot execute yet

As in Tempo, "unsupported" is not "invalid": an API should answer 400 for the first two and
make the third's message say which construct is missing.
"""

from __future__ import annotations


class TraceQLError(Exception):
    """Base class of every TraceQL error."""

    def __init__(self, message: str, span: tuple[int, int] | None = None, query: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.query = query

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, span={self.span!r})"


class TraceQLParseError(TraceQLError):
    """A syntax error; ``str()`` is ``parse error at line L, col C: <message>``."""

    def __init__(
        self,
        message: str,
        line: int,
        col: int,
        span: tuple[int, int] | None = None,
        query: str | None = None,
    ):
        super().__init__(message, span, query)
        self.line = line
        self.col = col

    def __str__(self) -> str:
        return f"parse error at line {self.line}, col {self.col}: {self.message}"

    @classmethod
    def at(cls, message: str, query: str, offset: int, end: int | None = None) -> TraceQLParseError:
        """Build an error for ``query[offset:end]``, computing the 1-based line and column."""
        offset = max(0, min(offset, len(query)))
        line = query.count("\n", 0, offset) + 1
        col = offset - (query.rfind("\n", 0, offset) + 1) + 1
        return cls(message, line, col, (offset, offset if end is None else end), query)


class TraceQLValidationError(TraceQLError):
    """The query parses but is invalid: type mismatches, bad regexes, nil on intrinsics …"""

    def __str__(self) -> str:
        return f"invalid TraceQL query: {self.message}"


class TraceQLUnsupportedError(TraceQLError):
    """Valid TraceQL that Lookout does not execute (yet); the message names the construct."""

    def __str__(self) -> str:
        return f"unsupported TraceQL: {self.message}"
