"""``tail_sampling:`` config, parsed and validated with the OpenTelemetry Collector's keys.

The goal is that a Collector ``tailsamplingprocessor`` block can be pasted unchanged, so the
keys, defaults and validation follow upstream (see
``/work/shared/conformance/tailsampling/NOTES.md``). Every problem is reported at once as
``<path>.policies[i].<type>: policy "<name>": <message>`` so ``lookout check-config`` names the
offending policy; unknown keys are errors (a typo must not silently disable a policy).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "TailSamplingConfig",
    "PolicyConfig",
    "parse_config",
    "parse_go_duration",
    "BASIC_TYPES",
]

BASIC_TYPES = (
    "always_sample",
    "latency",
    "numeric_attribute",
    "probabilistic",
    "status_code",
    "string_attribute",
    "trace_state",
    "trace_flags",
    "rate_limiting",
    "bytes_limiting",
    "span_count",
    "boolean_attribute",
    "ottl_condition",
)
"""Types allowed everywhere, also as sub-policies of ``and``/``drop``/``not``/``composite``."""

_TOP_TYPES = (*BASIC_TYPES, "and", "drop", "not", "composite")
_COMPOSITE_SUB_TYPES = (*BASIC_TYPES, "and")

_SETTINGS_KEYS = {
    "latency": {"threshold_ms", "upper_threshold_ms"},
    "numeric_attribute": {"key", "min_value", "max_value", "invert_match"},
    "probabilistic": {"hash_salt", "sampling_percentage"},
    "status_code": {"status_codes"},
    "string_attribute": {"key", "values", "enabled_regex_matching", "cache_max_size", "invert_match"},
    "trace_state": {"key", "values"},
    "rate_limiting": {"spans_per_second"},
    "bytes_limiting": {"bytes_per_second", "burst_capacity"},
    "span_count": {"min_spans", "max_spans"},
    "boolean_attribute": {"key", "value", "invert_match"},
    "ottl_condition": {"error_mode", "span", "spanevent"},
    "and": {"and_sub_policy"},
    "drop": {"drop_sub_policy"},
    "not": {"not_sub_policy"},
    "composite": {"max_total_spans_per_second", "policy_order", "composite_sub_policy", "rate_allocation"},
}
"""Settings keys per policy type. A policy entry may carry the settings block of any type (the
Collector's struct has them all and ignores the ones its ``type`` does not use), so these are
also the accepted entry keys besides ``name`` and ``type``."""

_STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}
_ERROR_MODES = ("propagate", "ignore", "silent")

_TOP_KEYS = {
    "decision_wait",
    "num_traces",
    "expected_new_traces_per_sec",
    "decision_cache",
    "sample_on_first_match",
    "drop_pending_traces_on_shutdown",
    "policies",
    "decision_wait_after_root_received",
    "maximum_trace_size_bytes",
    "block_on_overflow",
    "sampling_strategy",
}

# --------------------------------------------------------------------------------------------
# Typed settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencyCfg:
    threshold_ms: int = 0
    upper_threshold_ms: int = 0


@dataclass(frozen=True, slots=True)
class NumericAttributeCfg:
    key: str
    min_value: int | None  # as configured; the evaluator applies the 0-means-unset quirk
    max_value: int | None
    invert_match: bool = False


@dataclass(frozen=True, slots=True)
class ProbabilisticCfg:
    sampling_percentage: float = 0.0
    hash_salt: str = "default-hash-seed"


@dataclass(frozen=True, slots=True)
class StatusCodeCfg:
    status_codes: tuple[int, ...]  # OTLP numbers: 0 unset, 1 ok, 2 error


@dataclass(frozen=True, slots=True)
class StringAttributeCfg:
    key: str
    values: tuple[str, ...]
    enabled_regex_matching: bool = False
    cache_max_size: int = 128
    invert_match: bool = False


@dataclass(frozen=True, slots=True)
class TraceStateCfg:
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RateLimitingCfg:
    spans_per_second: int = 0


@dataclass(frozen=True, slots=True)
class BytesLimitingCfg:
    bytes_per_second: int = 0
    burst_capacity: int = 0  # 0 → 2 × bytes_per_second


@dataclass(frozen=True, slots=True)
class SpanCountCfg:
    min_spans: int = 0
    max_spans: int = 0


@dataclass(frozen=True, slots=True)
class BooleanAttributeCfg:
    key: str
    value: bool = False
    invert_match: bool = False


@dataclass(frozen=True, slots=True)
class OttlConditionCfg:
    span: tuple[str, ...]
    spanevent: tuple[str, ...]
    error_mode: str  # propagate | ignore | silent
    compiled_span: tuple[Any, ...] = ()
    compiled_spanevent: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class SubPoliciesCfg:
    """``and`` / ``drop``: an ordered list of sub-policies."""

    sub_policies: tuple[PolicyConfig, ...]


@dataclass(frozen=True, slots=True)
class NotCfg:
    sub_policy: PolicyConfig


@dataclass(frozen=True, slots=True)
class CompositeCfg:
    max_total_spans_per_second: int
    policy_order: tuple[str, ...]  # parsed, unused — as upstream (issue #36955)
    sub_policies: tuple[PolicyConfig, ...]
    rate_allocation: tuple[tuple[str, int], ...]  # (policy name, percent)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    name: str
    type: str
    settings: Any = None  # one of the *Cfg classes above, None for always_sample/trace_flags


@dataclass(frozen=True, slots=True)
class TailSamplingConfig:
    policies: tuple[PolicyConfig, ...]
    decision_wait: float = 30.0
    num_traces: int = 50_000
    expected_new_traces_per_sec: int = 0
    sampled_cache_size: int = 0
    non_sampled_cache_size: int = 0
    sample_on_first_match: bool = False
    drop_pending_traces_on_shutdown: bool = False
    decision_wait_after_root_received: float = 0.0  # 0 = off
    maximum_trace_size_bytes: int = 0  # 0 = off


# --------------------------------------------------------------------------------------------
# Scalars
# --------------------------------------------------------------------------------------------

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(value: Any) -> float:
    """Seconds in a Go ``time.ParseDuration`` string (``10s``, ``500ms``, ``1m30s``, ``1.5h``).

    Like Go: units are required except for a lone ``0``, may repeat and come in any order, and
    a sign is allowed (negative values are then rejected by the caller). Plain YAML numbers are
    refused: the Collector would read them as *nanoseconds*, which is never what was meant.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected a Go duration like 10s or 500ms, got {value!r}")
    text = value.strip()
    sign = 1.0
    if text[:1] in "+-" and text:
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _GO_PART.match(text, pos)
        if m is None:
            raise ValueError(f"expected a Go duration like 10s or 500ms, got {value!r}")
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ValueError(f"expected a Go duration like 10s or 500ms, got {value!r}")
    return sign * total


class _Problems:
    """Collects messages for one location; ``bad`` tells whether anything was added."""

    def __init__(self, out: list[str]) -> None:
        self.out = out
        self.start = len(out)

    def add(self, msg: str) -> None:
        self.out.append(msg)

    @property
    def bad(self) -> bool:
        return len(self.out) > self.start


def _int(raw: dict, key: str, where: str, p: _Problems, *, default: int = 0, minimum: int | None = 0) -> int:
    v = raw.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        p.add(f"{where}: {key} must be an integer, got {v!r}")
        return default
    if minimum is not None and v < minimum:
        p.add(f"{where}: {key} must be ≥ {minimum}, got {v}")
        return default
    return v


def _opt_int(raw: dict, key: str, where: str, p: _Problems) -> int | None:
    if key not in raw or raw[key] is None:
        return None
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, int):
        p.add(f"{where}: {key} must be an integer, got {v!r}")
        return None
    return v


def _bool(raw: dict, key: str, where: str, p: _Problems, default: bool = False) -> bool:
    v = raw.get(key, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        p.add(f"{where}: {key} must be true or false, got {v!r}")
        return default
    return v


def _str(raw: dict, key: str, where: str, p: _Problems, *, required: bool = False, default: str = "") -> str:
    v = raw.get(key)
    if v is None:
        if required:
            p.add(f"{where}: {key} is required")
        return default
    if not isinstance(v, str):
        p.add(f"{where}: {key} must be a string, got {v!r}")
        return default
    if required and not v:
        p.add(f"{where}: {key} must not be empty")
    return v


def _str_list(raw: dict, key: str, where: str, p: _Problems) -> tuple[str, ...]:
    v = raw.get(key)
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        p.add(f"{where}: {key} must be a list of strings, got {v!r}")
        return ()
    return tuple(v)


def _unknown(raw: dict, allowed: set[str], where: str, p: _Problems) -> None:
    for k in raw:
        if k not in allowed:
            p.add(f"{where}: unknown key {k!r} (expected one of {', '.join(sorted(allowed))})")


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------


def _settings(entry: dict, ptype: str, where: str, p: _Problems) -> dict:
    raw = entry.get(ptype)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        p.add(f"{where}: expected a mapping, got {raw!r}")
        return {}
    _unknown(raw, _SETTINGS_KEYS[ptype], where, p)
    return raw


def _regex_ok(pattern: str) -> str | None:
    """None if Arrow's RE2 (the engine that runs the match, Go-compatible syntax) accepts it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        return str(e)
    return None


def _compile_ottl(texts: tuple[str, ...], ctx: str, where: str, label: str, p: _Problems) -> tuple[Any, ...]:
    try:
        from lookout.pipeline.ottl import OttlError, compile_condition
    except ImportError:
        p.add(f"{where}: {label}: ottl_condition needs the OTTL engine (lookout.pipeline.ottl), which is not available")
        return ()
    out = []
    for i, text in enumerate(texts):
        try:
            out.append(compile_condition(text, ctx))
        except OttlError as e:
            p.add(f"{where}.{ctx}[{i}]: {label}: {e}")
    return tuple(out)


def _parse_settings(ptype: str, entry: dict, where: str, label: str, p: _Problems, path_prefix: str) -> Any:
    """Typed settings for one policy; ``where`` is ``<path>.<type>`` and ``label`` the
    ``policy "<name>"`` prefix every message carries."""
    loc = f"{where}: {label}"
    if ptype in ("always_sample", "trace_flags"):
        return None
    raw = _settings(entry, ptype, where, p)
    if ptype == "latency":
        thr = _int(raw, "threshold_ms", loc, p)
        upper = _int(raw, "upper_threshold_ms", loc, p)
        if upper and upper < thr:
            p.add(f"{loc}: upper_threshold_ms ({upper}) must be ≥ threshold_ms ({thr})")
        return LatencyCfg(thr, upper)
    if ptype == "numeric_attribute":
        key = _str(raw, "key", loc, p, required=True)
        lo = _opt_int(raw, "min_value", loc, p)
        hi = _opt_int(raw, "max_value", loc, p)
        if "min_value" not in raw and "max_value" not in raw:
            p.add(f"{loc}: at least one of min_value or max_value must be set")
        # Compare the effective bounds (a configured 0 means "no bound", as the evaluator reads it).
        elo = lo if lo else -math.inf
        ehi = hi if hi else math.inf
        if elo > ehi:
            p.add(f"{loc}: min_value ({lo}) must be less than or equal to max_value ({hi})")
        return NumericAttributeCfg(key, lo, hi, _bool(raw, "invert_match", loc, p))
    if ptype == "probabilistic":
        pct = raw.get("sampling_percentage", 0)
        if isinstance(pct, bool) or not isinstance(pct, int | float) or not pct >= 0:
            p.add(f"{loc}: sampling_percentage must be a number ≥ 0, got {pct!r}")
            pct = 0
        salt = raw.get("hash_salt")
        if salt is None or salt == "":
            salt = "default-hash-seed"
        elif not isinstance(salt, str):
            p.add(f"{loc}: hash_salt must be a string, got {salt!r}")
            salt = "default-hash-seed"
        return ProbabilisticCfg(float(pct), salt)
    if ptype == "status_code":
        names = _str_list(raw, "status_codes", loc, p)
        if not names:
            p.add(f"{loc}: status_codes must list at least one of OK, ERROR, UNSET")
        codes = []
        for n in names:
            if n not in _STATUS_CODES:
                p.add(f"{loc}: unknown status code {n!r} (expected OK, ERROR or UNSET)")
            else:
                codes.append(_STATUS_CODES[n])
        return StatusCodeCfg(tuple(codes))
    if ptype == "string_attribute":
        key = _str(raw, "key", loc, p, required=True)
        values = _str_list(raw, "values", loc, p)
        regex = _bool(raw, "enabled_regex_matching", loc, p)
        cache = _int(raw, "cache_max_size", loc, p, default=128)
        if regex:
            for v in values:
                err = _regex_ok(v)
                if err is not None:
                    p.add(f"{loc}: invalid regular expression {v!r}: {err}")
        return StringAttributeCfg(key, values, regex, cache or 128, _bool(raw, "invert_match", loc, p))
    if ptype == "trace_state":
        key = _str(raw, "key", loc, p, required=True)
        values = _str_list(raw, "values", loc, p)
        if not values:
            p.add(f"{loc}: values must not be empty")
        return TraceStateCfg(key, values)
    if ptype == "rate_limiting":
        return RateLimitingCfg(_int(raw, "spans_per_second", loc, p))
    if ptype == "bytes_limiting":
        rate = _int(raw, "bytes_per_second", loc, p)
        burst = _int(raw, "burst_capacity", loc, p)
        if rate <= 0 and not p.bad:
            p.add(f"{loc}: bytes_per_second must be greater than 0")
        return BytesLimitingCfg(rate, burst or 2 * rate)
    if ptype == "span_count":
        lo = _int(raw, "min_spans", loc, p)
        hi = _int(raw, "max_spans", loc, p)
        if hi and hi < lo:
            p.add(f"{loc}: max_spans ({hi}) must be ≥ min_spans ({lo}) (or 0 for no upper bound)")
        return SpanCountCfg(lo, hi)
    if ptype == "boolean_attribute":
        key = _str(raw, "key", loc, p, required=True)
        return BooleanAttributeCfg(key, _bool(raw, "value", loc, p), _bool(raw, "invert_match", loc, p))
    if ptype == "ottl_condition":
        span = _str_list(raw, "span", loc, p)
        events = _str_list(raw, "spanevent", loc, p)
        mode = raw.get("error_mode") or "propagate"
        if mode not in _ERROR_MODES:
            p.add(f"{loc}: error_mode must be one of {', '.join(_ERROR_MODES)}, got {mode!r}")
        if not span and not events:
            p.add(f"{loc}: at least one span or spanevent condition is required")
        cs = _compile_ottl(span, "span", where, label, p)
        ce = _compile_ottl(events, "spanevent", where, label, p)
        return OttlConditionCfg(span, events, mode, cs, ce)
    if ptype in ("and", "drop"):
        key = f"{ptype}_sub_policy"
        subs = _parse_policy_list(raw.get(key), f"{where}.{key}", p, BASIC_TYPES, path_prefix)
        if not raw.get(key):
            p.add(f"{loc}: {key} must list at least one policy")
        return SubPoliciesCfg(subs)
    if ptype == "not":
        sub = raw.get("not_sub_policy")
        if not isinstance(sub, dict):
            p.add(f"{loc}: not_sub_policy must be one policy mapping")
            return None
        parsed = _parse_policy(sub, f"{where}.not_sub_policy", p, BASIC_TYPES, path_prefix)
        return NotCfg(parsed) if parsed is not None else None
    if ptype == "composite":
        total = _int(raw, "max_total_spans_per_second", loc, p)
        order = _str_list(raw, "policy_order", loc, p)
        subs = _parse_policy_list(raw.get("composite_sub_policy"), f"{where}.composite_sub_policy", p,
                                  _COMPOSITE_SUB_TYPES, path_prefix)
        if not raw.get("composite_sub_policy"):
            p.add(f"{loc}: composite_sub_policy must list at least one policy")
        names = {s.name for s in subs}
        for n in order:
            if n not in names:
                p.add(f"{loc}: policy_order names {n!r}, which is not a composite_sub_policy")
        alloc: list[tuple[str, int]] = []
        ra = raw.get("rate_allocation") or []
        if not isinstance(ra, list):
            p.add(f"{loc}: rate_allocation must be a list")
            ra = []
        for i, item in enumerate(ra):
            iloc = f"{where}.rate_allocation[{i}]: {label}"
            if not isinstance(item, dict):
                p.add(f"{iloc}: expected a mapping with policy and percent")
                continue
            _unknown(item, {"policy", "percent"}, iloc, p)
            pname = _str(item, "policy", iloc, p, required=True)
            pct = _int(item, "percent", iloc, p)
            if pname and names and pname not in names:
                p.add(f"{iloc}: policy {pname!r} is not a composite_sub_policy")
            alloc.append((pname, pct))
        if sum(pct for _, pct in alloc) > 100:
            p.add(f"{loc}: rate_allocation percents add up to more than 100")
        return CompositeCfg(total, order, subs, tuple(alloc))
    raise AssertionError(ptype)


def _parse_policy(entry: Any, where: str, p: _Problems, allowed: tuple[str, ...], path_prefix: str
                  ) -> PolicyConfig | None:
    if not isinstance(entry, dict):
        p.add(f"{where}: expected a policy mapping with name and type, got {entry!r}")
        return None
    start = len(p.out)
    name = entry.get("name")
    label = f"policy {name!r}" if isinstance(name, str) and name else "unnamed policy"
    if not isinstance(name, str) or not name:
        p.add(f"{where}: every policy needs a non-empty name")
    ptype = entry.get("type")
    _unknown(entry, {"name", "type", *_SETTINGS_KEYS}, f"{where}: {label}", p)
    if not isinstance(ptype, str) or not ptype:
        p.add(f"{where}: {label}: type is required")
        return None
    if ptype not in allowed:
        if ptype in _TOP_TYPES:
            p.add(f"{where}: {label}: type {ptype!r} is not allowed here (allowed: {', '.join(allowed)})")
        else:
            p.add(f"{where}: {label}: unknown policy type {ptype!r} (expected one of {', '.join(_TOP_TYPES)})")
        return None
    settings = _parse_settings(ptype, entry, f"{where}.{ptype}", label, p, path_prefix)
    if len(p.out) > start:
        return None
    return PolicyConfig(name, ptype, settings)


def _parse_policy_list(raw: Any, where: str, p: _Problems, allowed: tuple[str, ...], path_prefix: str
                       ) -> tuple[PolicyConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        p.add(f"{where}: expected a list of policies")
        return ()
    out: list[PolicyConfig] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        loc = f"{where}[{i}]"
        pol = _parse_policy(entry, loc, p, allowed, path_prefix)
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name:
            if name in seen:
                p.add(f"{loc}: policy {name!r}: duplicate policy name")
            seen.add(name)
        if pol is not None:
            out.append(pol)
    return tuple(out)


def parse_config(raw: dict, path: str, problems: list[str]) -> TailSamplingConfig | None:
    """The mapping under ``tail_sampling:`` → config, or None after appending every problem."""
    p = _Problems(problems)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        p.add(f"{path}: expected a mapping")
        return None
    _unknown(raw, _TOP_KEYS, path, p)

    def duration(key: str, default: float) -> float:
        if key not in raw or raw[key] is None:
            return default
        try:
            v = parse_go_duration(raw[key])
        except ValueError as e:
            p.add(f"{path}.{key}: {e}")
            return default
        if v < 0:
            p.add(f"{path}.{key}: must not be negative, got {raw[key]!r}")
            return default
        return v

    wait = duration("decision_wait", 30.0)
    if wait <= 0 and "decision_wait" in raw:
        p.add(f"{path}.decision_wait: must be greater than 0")
    root_wait = duration("decision_wait_after_root_received", 0.0)
    num = _int(raw, "num_traces", path, p, default=50_000, minimum=1)
    expected = _int(raw, "expected_new_traces_per_sec", path, p)
    max_bytes = _int(raw, "maximum_trace_size_bytes", path, p)
    first = _bool(raw, "sample_on_first_match", path, p)
    drop_shutdown = _bool(raw, "drop_pending_traces_on_shutdown", path, p)
    if _bool(raw, "block_on_overflow", path, p):
        p.add(f"{path}.block_on_overflow: not supported — the log already applies backpressure; "
              "size num_traces instead")
    strategy = raw.get("sampling_strategy", "trace-complete")
    if strategy not in (None, "trace-complete"):
        p.add(f"{path}.sampling_strategy: only 'trace-complete' is supported, got {strategy!r}")

    sampled_cache = non_sampled_cache = 0
    dc = raw.get("decision_cache")
    if dc is not None:
        if not isinstance(dc, dict):
            p.add(f"{path}.decision_cache: expected a mapping")
        else:
            _unknown(dc, {"sampled_cache_size", "non_sampled_cache_size"}, f"{path}.decision_cache", p)
            sampled_cache = _int(dc, "sampled_cache_size", f"{path}.decision_cache", p)
            non_sampled_cache = _int(dc, "non_sampled_cache_size", f"{path}.decision_cache", p)

    policies = _parse_policy_list(raw.get("policies"), f"{path}.policies", p, _TOP_TYPES, path)
    if not raw.get("policies"):
        p.add(f"{path}.policies: at least one policy is required")
    if p.bad:
        return None
    return TailSamplingConfig(
        policies=policies,
        decision_wait=wait,
        num_traces=num,
        expected_new_traces_per_sec=expected,
        sampled_cache_size=sampled_cache,
        non_sampled_cache_size=non_sampled_cache,
        sample_on_first_match=first,
        drop_pending_traces_on_shutdown=drop_shutdown,
        decision_wait_after_root_received=root_wait,
        maximum_trace_size_bytes=max_bytes,
    )
