"""Alertmanager time intervals (``time_intervals`` / ``mute_time_intervals``).

A named interval is a list of :class:`TimeInterval`; an instant is in the named interval when it
is in *any* of them, and in one :class:`TimeInterval` when *every* field that is set matches
(an unset field matches everything). Semantics follow Alertmanager's ``timeinterval`` package:
``times`` are ``HH:MM`` ranges, start inclusive and end exclusive, ``24:00`` allowed as an end;
``weekdays``/``months`` take names or ranges (``monday:friday``, ``1:3``); ``days_of_month``
accepts negative days counted from the end of the month (``-1`` = last day), clamped to the
month's length; everything is evaluated in ``location`` (an IANA zone, default UTC).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["TimeInterval", "TimeIntervalError", "parse_time_interval", "in_any"]

_WEEKDAYS = {d: i for i, d in enumerate(["sunday", "monday", "tuesday", "wednesday", "thursday", "friday",
                                           "saturday"])}
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}


class TimeIntervalError(ValueError):
    pass


@dataclass(slots=True)
class TimeInterval:
    times: list[tuple[int, int]] = field(default_factory=list)  # minutes of day, [start, end)
    weekdays: list[tuple[int, int]] = field(default_factory=list)  # 0=Sunday, inclusive
    days_of_month: list[tuple[int, int]] = field(default_factory=list)  # may be negative
    months: list[tuple[int, int]] = field(default_factory=list)  # 1..12 inclusive
    years: list[tuple[int, int]] = field(default_factory=list)
    location: str = "UTC"

    def contains(self, ts: float) -> bool:
        """Is the Unix time ``ts`` inside this interval?"""
        t = dt.datetime.fromtimestamp(ts, ZoneInfo(self.location))
        if self.times:
            mins = t.hour * 60 + t.minute
            if not any(s <= mins < e for s, e in self.times):
                return False
        if self.days_of_month:
            mdays = calendar.monthrange(t.year, t.month)[1]
            ok = False
            for s, e in self.days_of_month:
                # Negative days count from the end; clamp to the month, as Alertmanager does.
                s2 = s if s > 0 else mdays + s + 1
                e2 = e if e > 0 else mdays + e + 1
                s2 = max(s2, 1)
                e2 = min(e2, mdays)
                if s2 <= t.day <= e2:
                    ok = True
                    break
            if not ok:
                return False
        if self.months and not any(s <= t.month <= e for s, e in self.months):
            return False
        if self.weekdays:
            wd = (t.weekday() + 1) % 7  # Python: Monday=0; Go: Sunday=0
            if not any(s <= wd <= e for s, e in self.weekdays):
                return False
        if self.years and not any(s <= t.year <= e for s, e in self.years):
            return False
        return True


def in_any(intervals: Sequence[TimeInterval], ts: float) -> bool:
    return any(ti.contains(ts) for ti in intervals)


def _parse_time(s: str, path: str) -> int:
    try:
        hh, mm = s.split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise TimeIntervalError(f"{path}: invalid time {s!r}, want HH:MM") from None
    if not (0 <= m < 60) or not (0 <= h <= 24) or (h == 24 and m != 0) or len(mm) != 2:
        raise TimeIntervalError(f"{path}: invalid time {s!r}, want HH:MM between 00:00 and 24:00")
    return h * 60 + m


def _range(spec: object, path: str, names: Mapping[str, int] | None, lo: int, hi: int,
           allow_negative: bool = False) -> tuple[int, int]:
    def one(x: str) -> int:
        x = x.strip().lower()
        if names is not None and x in names:
            return names[x]
        try:
            v = int(x)
        except ValueError:
            raise TimeIntervalError(f"{path}: invalid value {x!r}") from None
        ok = (lo <= v <= hi) or (allow_negative and -hi <= v <= -1)
        if not ok:
            raise TimeIntervalError(f"{path}: {v} out of range")
        return v

    s = str(spec)
    parts = s.split(":")
    if len(parts) == 1:
        a = b = one(parts[0])
    elif len(parts) == 2:
        a, b = one(parts[0]), one(parts[1])
    else:
        raise TimeIntervalError(f"{path}: invalid range {s!r}")
    if (a >= 0) == (b >= 0) and a > b:
        raise TimeIntervalError(f"{path}: start {a} is after end {b}")
    if allow_negative and a < 0 <= b:
        raise TimeIntervalError(f"{path}: a range may not start negative and end positive")
    return a, b


def parse_time_interval(obj: object, path: str) -> TimeInterval:
    """Parse one element of a named interval's ``time_intervals`` list."""
    if not isinstance(obj, Mapping):
        raise TimeIntervalError(f"{path}: expected a mapping")
    known = {"times", "weekdays", "days_of_month", "months", "years", "location"}
    for k in obj:
        if k not in known:
            raise TimeIntervalError(f"{path}: unknown field {k!r}")
    ti = TimeInterval()
    for i, t in enumerate(obj.get("times") or []):
        p = f"{path}.times[{i}]"
        if not isinstance(t, Mapping) or "start_time" not in t or "end_time" not in t:
            raise TimeIntervalError(f"{p}: needs start_time and end_time")
        s, e = _parse_time(str(t["start_time"]), p), _parse_time(str(t["end_time"]), p)
        if s >= e:
            raise TimeIntervalError(f"{p}: start_time must be before end_time")
        ti.times.append((s, e))
    for i, w in enumerate(obj.get("weekdays") or []):
        ti.weekdays.append(_range(w, f"{path}.weekdays[{i}]", _WEEKDAYS, 99, -99))
    for i, d in enumerate(obj.get("days_of_month") or []):
        ti.days_of_month.append(_range(d, f"{path}.days_of_month[{i}]", None, 1, 31, allow_negative=True))
    for i, m in enumerate(obj.get("months") or []):
        ti.months.append(_range(m, f"{path}.months[{i}]", _MONTHS, 1, 12))
    for i, y in enumerate(obj.get("years") or []):
        ti.years.append(_range(y, f"{path}.years[{i}]", None, 1, 9999))
    loc = obj.get("location")
    if loc is not None:
        loc = str(loc)
        if loc == "Local":
            loc = "localtime" if _zone_ok("localtime") else "UTC"
        if not _zone_ok(loc):
            raise TimeIntervalError(f"{path}.location: unknown time zone {loc!r}")
        ti.location = loc
    return ti


def _zone_ok(name: str) -> bool:
    try:
        ZoneInfo(name)
        return True
    except (ZoneInfoNotFoundError, ValueError):
        return False
