"""OTLP metric and attribute names → Prometheus names, as Prometheus' OTLP receiver does it.

A port of the rules in ``github.com/prometheus/otlptranslator`` (``MetricNamer``, ``LabelNamer``,
unit maps) that Prometheus 3.x uses for ``otlp.translation_strategy``. These run once per
*distinct* metric or attribute key (callers cache), never per data point, so plain Python is fine.
"""

from __future__ import annotations

import enum
import re

# OTLP (UCUM "c/s") units → Prometheus base-unit words; "1" (dimensionless) maps to nothing.
UNIT_MAP: dict[str, str] = {
    # time
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    # bytes
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    # SI
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    # misc
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}

# the unit after "/" is singular: "By/s" → "bytes_per_second"
PER_UNIT_MAP: dict[str, str] = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}


class TranslationStrategy(enum.StrEnum):
    """Prometheus' ``otlp.translation_strategy`` values."""

    UNDERSCORE_ESCAPING_WITH_SUFFIXES = "UnderscoreEscapingWithSuffixes"
    UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES = "UnderscoreEscapingWithoutSuffixes"
    NO_UTF8_ESCAPING_WITH_SUFFIXES = "NoUTF8EscapingWithSuffixes"
    NO_TRANSLATION = "NoTranslation"

    @property
    def escapes(self) -> bool:
        """Names are rewritten to the legacy ``[a-zA-Z_:][a-zA-Z0-9_:]*`` character set."""
        return self in (self.UNDERSCORE_ESCAPING_WITH_SUFFIXES, self.UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES)

    @property
    def adds_suffixes(self) -> bool:
        """Unit and type suffixes (``_seconds``, ``_total``, ``_ratio``) are appended."""
        return self in (self.UNDERSCORE_ESCAPING_WITH_SUFFIXES, self.NO_UTF8_ESCAPING_WITH_SUFFIXES)


class MetricKind(enum.Enum):
    """The otlptranslator metric types that influence naming."""

    GAUGE = "gauge"
    MONOTONIC_COUNTER = "monotonic_counter"
    NON_MONOTONIC_COUNTER = "non_monotonic_counter"
    HISTOGRAM = "histogram"
    EXPONENTIAL_HISTOGRAM = "exponential_histogram"
    SUMMARY = "summary"
    UNKNOWN = "unknown"


class NameError_(ValueError):  # noqa: N801 - ``NameError`` is a builtin
    """A metric or label name that normalizes to nothing usable."""


_INVALID_METRIC_CHARS = re.compile(r"[^a-zA-Z0-9:_]")
_NOT_COMPLIANT = re.compile(r"[^a-zA-Z0-9:]+")  # tokens split on everything else, "_" included
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_MULTI_UNDERSCORE = re.compile(r"__+")


def _unit_suffixes(unit: str) -> tuple[str, str]:
    """(main, per) unit words, unescaped: ``"By/s"`` → ``("bytes", "per_second")``.

    Units in braces (UCUM annotations such as ``{requests}``) contribute nothing.
    """
    tokens = unit.split("/", 1)
    main = per = ""
    main_otel = tokens[0].strip()
    if main_otel and "{" not in main_otel and "}" not in main_otel:
        main = UNIT_MAP.get(main_otel, main_otel)
    if len(tokens) > 1 and tokens[1]:
        per_otel = tokens[1].strip()
        if per_otel and "{" not in per_otel and "}" not in per_otel:
            per = PER_UNIT_MAP.get(per_otel, per_otel)
        if per:
            per = "per_" + per
    return main, per


def _clean_unit_strict(unit: str) -> str:
    """``cleanUpUnit``: chars outside ``[a-zA-Z0-9:]`` → ``_``, runs collapsed, leading ``_`` cut."""
    return _MULTI_UNDERSCORE.sub("_", re.sub(r"[^a-zA-Z0-9:]", "_", unit)).removeprefix("_")


def _normalize_escaped(name: str, unit: str, kind: MetricKind, namespace: str) -> str:
    """``normalizeName``: escaped name with unit/type suffixes (the default strategy)."""
    tokens = [t for t in _NOT_COMPLIANT.split(name) if t]
    main, per = (_clean_unit_strict(u) for u in _unit_suffixes(unit))
    if main in tokens:
        main = ""
    if per == "per_":
        per = ""
    else:
        per = per.removesuffix("_")
        if per in tokens:
            per = ""
    if per:
        main = main.removesuffix("_")
    if main:
        tokens.append(main)
    if per:
        tokens.append(per)
    if kind is MetricKind.MONOTONIC_COUNTER:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and kind is MetricKind.GAUGE:
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    if namespace:
        tokens.insert(0, namespace)
    out = "_".join(tokens)
    if out and out[0].isdigit():
        out = "_" + out
    return out


def _trim_suffix(name: str, suffix: str) -> str:
    """``trimSuffixAndDelimiter``: drop ``suffix`` plus the one delimiter before it."""
    if name.endswith(suffix) and len(name) > len(suffix) + 1:
        return name[: -(len(suffix) + 1)]
    return name


def _with_suffixes_utf8(name: str, unit: str, kind: MetricKind) -> str:
    """``buildMetricName`` with suffixes: names are kept, suffixes appended once."""
    tail = []
    if unit == "1" and kind is MetricKind.GAUGE:
        name = _trim_suffix(name, "ratio")
        tail.insert(0, "_ratio")
    if kind is MetricKind.MONOTONIC_COUNTER:
        name = _trim_suffix(name, "total")
        tail.insert(0, "_total")
    main, per = _unit_suffixes(unit)
    if per:
        name = _trim_suffix(name, per)
        tail.insert(0, "_" + per)
    if main and not name.endswith(main):
        name = name + "_" + main
    return name + "".join(tail)


def metric_name(name: str, unit: str, kind: MetricKind, strategy: TranslationStrategy, namespace: str = "") -> str:
    """The Prometheus metric name of an OTLP metric (``MetricNamer.Build``).

    Raises :class:`NameError_` when the result is empty or only underscores (Prometheus drops
    such metrics).
    """
    if not strategy.escapes:
        full = f"{namespace}_{name}" if namespace else name
        out = _with_suffixes_utf8(full, unit, kind) if strategy.adds_suffixes else full
        if not out:
            raise NameError_(f"metric name {name!r} normalizes to an empty name")
        return out
    if strategy.adds_suffixes:
        out = _normalize_escaped(name, unit, kind, namespace)
    else:
        out = "_".join(t for t in _INVALID_METRIC_CHARS.split(name) if t)
        if namespace:
            out = "_".join(t for t in _INVALID_METRIC_CHARS.split(namespace) if t) + "_" + out
        elif out and out[0].isdigit():
            out = "_" + out
    if not out:
        raise NameError_(f"metric name {name!r} normalizes to an empty name")
    if out != name and not out.strip("_"):
        raise NameError_(f"metric name {name!r} normalizes to the invalid name {out!r}")
    return out


def unit_name(unit: str, strategy: TranslationStrategy) -> str:
    """The unit word for metadata (``UnitNamer.Build``): ``"By/s"`` → ``"bytes_per_second"``."""
    main, per = _unit_suffixes(unit)
    if strategy.escapes:
        main, per = _clean_unit_strict(main), _clean_unit_strict(per)
    out = f"{main}_{per}" if main and per else (main or per)
    return out.removeprefix("_").removesuffix("_")


def label_name(key: str, strategy: TranslationStrategy, underscore_sanitization: bool = True) -> str:
    """The Prometheus label name of an attribute key (``LabelNamer.Build``).

    Escaping: characters outside ``[a-zA-Z0-9_]`` → ``_``; a leading digit gets ``key_``; a
    single leading ``_`` gets ``key`` (unless ``underscore_sanitization`` is off); ``__``-prefixed
    names are kept (reserved). Raises :class:`NameError_` for empty or all-underscore results.
    """
    if not key:
        raise NameError_("empty attribute name")
    if not strategy.escapes:
        return key
    out = _INVALID_LABEL_CHARS.sub("_", key)
    if out[0].isdigit():
        out = "key_" + out
    elif underscore_sanitization and out.startswith("_") and not out.startswith("__"):
        out = "key" + out
    if out != key and not out.strip("_"):
        raise NameError_(f"attribute name {key!r} normalizes to the invalid label name {out!r}")
    return out
