"""Reading one processor's mapping with errors that name the path and key.

Every processor config is a Collector-style mapping; this keeps the parsing of each key one
line and makes unknown keys an error (a typo must not silently do nothing).
"""

from __future__ import annotations

import re
from typing import Any

from lookout.storage.durations import parse_duration


class Settings:
    def __init__(self, raw: Any, path: str, problems: list[str]) -> None:
        self.path, self.problems = path, problems
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            problems.append(f"{path}: expected a mapping, got {type(raw).__name__}")
            raw = {}
        self.raw: dict[str, Any] = raw
        self.used: set[str] = set()

    def _get(self, key: str) -> Any:
        self.used.add(key)
        return self.raw.get(key)

    def has(self, key: str) -> bool:
        return key in self.raw

    def bad(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}.{key}: {message}")

    def any(self, key: str, default: Any = None) -> Any:
        value = self._get(key)
        return default if value is None else value

    def integer(self, key: str, default: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(key, f"expected an integer, got {value!r}")
            return default
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.bad(key, f"expected a number, got {value!r}")
            return default
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.bad(key, f"expected true or false, got {value!r}")
            return default
        return value

    def string(self, key: str, default: str | None = None, choices: tuple[str, ...] | None = None) -> str | None:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            self.bad(key, f"expected a string, got {value!r}")
            return default
        if choices is not None and value not in choices:
            self.bad(key, f'expected one of {", ".join(choices)}, got "{value}"')
            return default
        return value

    def duration(self, key: str, default: float | None) -> float | None:
        """Go-style durations (``10s``, ``500ms``, ``1m30s``) or a number of seconds."""
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as e:
            self.bad(key, str(e))
            return default

    def strings(self, key: str, default: list[str] | None = None) -> list[str]:
        value = self._get(key)
        if value is None:
            return list(default or [])
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            self.bad(key, f"expected a list of strings, got {value!r}")
            return list(default or [])
        return list(value)

    def regexes(self, key: str) -> list[re.Pattern[str]]:
        out = []
        for i, pattern in enumerate(self.strings(key)):
            try:
                out.append(re.compile(pattern))
            except re.error as e:
                self.bad(f"{key}[{i}]", f'invalid regular expression "{pattern}": {e}')
        return out

    def done(self) -> None:
        """Every key not read is unknown: name it and the keys that exist."""
        for key in self.raw:
            if key not in self.used:
                known = ", ".join(sorted(self.used)) or "none"
                self.problems.append(f"{self.path}.{key}: unknown setting (expected one of {known})")
