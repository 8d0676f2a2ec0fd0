"""Parsing of human-written durations and sizes used throughout the config.

``parse_duration`` accepts Prometheus-style durations (``30s``, ``5m``, ``2h``, ``30d``, ``1w``,
``1y``, ``1h30m``, ``500ms``; units in decreasing order, each at most once). ``parse_bytes``
accepts sizes like ``64MiB``, ``1GB``, ``512KB`` or a plain number of bytes.
"""

from __future__ import annotations

import re

__all__ = ["parse_duration", "parse_prometheus_duration", "parse_bytes", "format_duration"]

_NUM = r"(\d+(?:\.\d+)?)"
_DURATION_RE = re.compile(
    rf"^(?:{_NUM}y)?(?:{_NUM}w)?(?:{_NUM}d)?(?:{_NUM}h)?(?:{_NUM}m)?(?:{_NUM}s)?(?:{_NUM}ms)?"
    rf"(?:{_NUM}(?:us|µs))?(?:{_NUM}ns)?$"
)
_DURATION_UNITS = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 1e-3, 1e-6, 1e-9)
_PLAIN_NUMBER_RE = re.compile(r"^\d+(?:\.\d+)?$")
_STRICT_DURATION_RE = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_STRICT_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_prometheus_duration(text: str) -> float:
    """Seconds in a duration exactly as Prometheus' ``model.ParseDuration`` reads it (whole
    numbers, units y w d h m s ms in that order, or a lone ``0``), for formats that must refuse
    what Prometheus refuses (Alertmanager configs, template ``parseDuration``). Raises
    ``ValueError("not a valid duration string")`` otherwise."""
    if text == "0":
        return 0.0
    m = _STRICT_DURATION_RE.match(text)
    if not text or m is None or not any(m.groups()):
        raise ValueError("not a valid duration string")
    return float(sum(int(g) * u for g, u in zip(m.groups(), _STRICT_UNITS, strict=True) if g))



def parse_duration(s: str | int | float) -> float:
    """Seconds in a Prometheus-style duration such as ``1h30m`` or ``500ms``.

    A plain number (int, float or a numeric string such as ``"0"``) is taken as seconds.
    Raises ``ValueError('expected a duration like 30d, got "<s>"')`` otherwise."""
    if isinstance(s, bool):
        raise ValueError(f'expected a duration like 30d, got "{s}"')
    if isinstance(s, int | float):
        if s < 0 or s != s:  # negative or NaN
            raise ValueError(f'expected a duration like 30d, got "{s}"')
        return float(s)
    if not isinstance(s, str):
        raise ValueError(f'expected a duration like 30d, got "{s}"')
    text = s.strip()
    if _PLAIN_NUMBER_RE.match(text):
        return float(text)
    m = _DURATION_RE.match(text)
    if not text or m is None or not any(g is not None for g in m.groups()):
        raise ValueError(f'expected a duration like 30d, got "{s}"')
    return sum(float(g) * unit for g, unit in zip(m.groups(), _DURATION_UNITS, strict=True) if g)


def format_duration(seconds: float) -> str:
    """The inverse of ``parse_duration`` for whole milliseconds, e.g. ``5400`` -> ``"1h30m"``."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        q, ms = divmod(ms, size)
        if q:
            out.append(f"{q}{unit}")
    return "".join(out)


_BYTES_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]*)$", re.IGNORECASE)
_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}


def parse_bytes(s: str | int | float) -> int:
    """Bytes in a size such as ``64MiB`` (binary, 1024-based), ``1GB`` / ``512KB`` (decimal,
    1000-based, as in SI and Loki's flags) or a plain number. Case-insensitive; a space between
    number and unit is allowed. Raises ``ValueError('expected a size like 64MiB, got "<s>"')``."""
    if isinstance(s, bool):
        raise ValueError(f'expected a size like 64MiB, got "{s}"')
    if isinstance(s, int | float):
        if s < 0 or s != s:
            raise ValueError(f'expected a size like 64MiB, got "{s}"')
        return int(s)
    if not isinstance(s, str):
        raise ValueError(f'expected a size like 64MiB, got "{s}"')
    m = _BYTES_RE.match(s.strip())
    if m is None or m.group(2).lower() not in _BYTE_UNITS:
        raise ValueError(f'expected a size like 64MiB, got "{s}"')
    return int(float(m.group(1)) * _BYTE_UNITS[m.group(2).lower()])
