"""The ``redaction`` request processor: keep secrets and PII out of everything Lookout stores.

It runs in the receiver on the decoded request, before the write-ahead log, so a masked value
never touches the disk. A Collector ``redaction`` block pasted here behaves as in the Collector:

- ``allow_all_keys`` (default **false**: attributes whose key is not in ``allowed_keys`` are
  deleted — the Collector fails closed, and so do we), ``allowed_keys``, ``ignored_keys`` and
  ``ignored_key_patterns`` (passed through untouched), ``blocked_values`` (RE2; matched parts
  are replaced), ``blocked_key_patterns`` (values of matching keys are replaced whole),
  ``allowed_values`` (values matching are left alone, checked before the two above),
  ``hash_function`` (``md5``, ``sha1``, ``sha3``, ``hmac-sha256``/``hmac-sha512`` with
  ``hmac_key``: the hex digest replaces the match instead of ``****``), ``redact_all_types``
  (int/double/bool values are matched as their string form and become strings when changed)
  and ``summary`` (``debug``: ``redaction.{redacted,masked,allowed}.keys`` + counts;
  ``info``: counts only; ``silent`` or unset: nothing), with ``redaction.ignored.count`` and the
  ``redaction.body.masked.*`` attributes on a log record whose string body was masked. Order
  per attribute, as in the Collector: ignored → deleted → allowed value → blocked key →
  blocked values. Summary attributes merge with ones an upstream redaction already wrote.
- ``url_sanitizer`` and ``db_sanitizer`` are not implemented: a config with them is rejected
  rather than silently behaving differently.

Lookout extensions (stronger than the Collector by default):

- ``detectors``: built-in rules, default all of ``lookout.pipeline.detectors.DETECTOR_NAMES``
  (``jwt``, ``api_key``, ``bearer_token``, ``url_params``, ``email``, ``credit_card`` (Luhn),
  ``iban`` (mod-97)); ``detectors: []`` turns them off. ``bearer_token`` and ``api_key`` also
  mask whole values of keys like ``http.request.header.authorization``, ``*.cookie``,
  ``x-api-key``.
- ``action``: ``mask`` (default) or ``hash`` (sha3 unless ``hash_function`` says otherwise;
  ``hash_function`` alone implies hash). ``mask``: the replacement string, default ``****``.
- ``apply_to``: places the value rules (detectors and ``blocked_values``) run on, default all:
  ``attributes`` (values of every attribute key but the URL keys), ``urls`` (values of
  ``url.full``, ``url.query``, ``http.url``, ``http.target``, ``http.route``...),
  ``span_names``, ``event_names``, ``status_messages``, ``log_bodies`` (string bodies) and
  ``other_strings`` (severity text, metric name and description). Unlike the Collector, names,
  status messages and links are redacted too. Key deletion and ``blocked_key_patterns`` always
  apply to every attribute site (resource, scope, span, event, link, log, data point).
- Strings inside array and kvlist attribute values are redacted too (the rare rows that have
  them are decoded with upb, their string leaves redacted in one vectorized call, and
  re-serialized); a nested kvlist key matching a blocked key pattern has its value replaced.

Stats: ``received_items``, ``deleted_keys``, ``redacted_values{rule=...}`` with rule a detector
name, ``blocked_values[i]`` or ``blocked_key_patterns[i]``. Values are never logged or counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from lookout.pipeline.detectors import (
    ACTIONS,
    DEFAULT_MASK,
    DETECTOR_NAMES,
    HASH_FUNCTIONS,
    Redactor,
    regex_error,
)
from lookout.pipeline.otlp_view import OtlpBatch, any_values, key_value_lists
from lookout.pipeline.stats import ProcessorStats

PLACES = ("attributes", "urls", "span_names", "event_names", "status_messages", "log_bodies",
          "other_strings")
SUMMARIES = ("debug", "info", "silent", "")
URL_KEYS = ("url.full", "url.original", "url.path", "url.query", "url.fragment", "url.template",
            "http.url", "http.target", "http.route", "http.request.url")
_SITE_PLACE = {
    "span.name": "span_names",
    "spanevent.name": "event_names",
    "log.event_name": "event_names",
    "span.status.message": "status_messages",
    "log.body": "log_bodies",
}
_UNSUPPORTED = {
    "url_sanitizer": "the Collector's URL sanitizer is not implemented in Lookout",
    "db_sanitizer": "the Collector's database query sanitizer is not implemented in Lookout",
}
_LIST_KEYS = ("allowed_keys", "ignored_keys", "ignored_key_patterns", "blocked_values",
              "blocked_key_patterns", "allowed_values", "detectors", "apply_to")
_KNOWN = (*_LIST_KEYS, "allow_all_keys", "hash_function", "hmac_key", "summary",
          "redact_all_types", "action", "mask")

# the Collector's summary attributes; always allowed so a chain of redactions keeps them
REDACTED_KEYS, REDACTED_COUNT = "redaction.redacted.keys", "redaction.redacted.count"
MASKED_KEYS, MASKED_COUNT = "redaction.masked.keys", "redaction.masked.count"
ALLOWED_KEYS, ALLOWED_COUNT = "redaction.allowed.keys", "redaction.allowed.count"
IGNORED_COUNT = "redaction.ignored.count"
BODY_MASKED_KEYS, BODY_MASKED_COUNT = "redaction.body.masked.keys", "redaction.body.masked.count"
SUMMARY_KEYS = (
    REDACTED_KEYS, REDACTED_COUNT, MASKED_KEYS, MASKED_COUNT, ALLOWED_KEYS, ALLOWED_COUNT,
    IGNORED_COUNT, "redaction.body.redacted.keys", "redaction.body.redacted.count",
    BODY_MASKED_KEYS, BODY_MASKED_COUNT, "redaction.body.allowed.keys",
    "redaction.body.allowed.count", "redaction.body.ignored.count",
)


@dataclass(slots=True)
class RedactionConfig:
    allow_all_keys: bool = False
    allowed_keys: tuple[str, ...] = ()
    ignored_keys: tuple[str, ...] = ()
    ignored_key_patterns: tuple[str, ...] = ()
    blocked_values: tuple[str, ...] = ()
    blocked_key_patterns: tuple[str, ...] = ()
    allowed_values: tuple[str, ...] = ()
    hash_function: str | None = None
    hmac_key: str | None = None
    summary: str = ""
    redact_all_types: bool = False
    detectors: tuple[str, ...] = DETECTOR_NAMES
    action: str = "mask"
    mask: str = DEFAULT_MASK
    apply_to: tuple[str, ...] = PLACES


def parse_config(raw: Any, path: str, problems: list[str]) -> RedactionConfig | None:
    """Validate a ``redaction`` mapping; every problem is appended as ``path.key: message``."""
    start = len(problems)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
        return None
    cfg = RedactionConfig()
    for key, value in raw.items():
        where = f"{path}.{key}"
        if key in _UNSUPPORTED:
            problems.append(f"{where}: {_UNSUPPORTED[key]}")
        elif key not in _KNOWN:
            problems.append(f"{where}: unknown key; expected one of {', '.join(_KNOWN)}")
        elif key in _LIST_KEYS:
            if value is None:
                value = []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{where}: expected a list of strings, got {value!r}")
                continue
            setattr(cfg, key, tuple(value))
        elif key in ("allow_all_keys", "redact_all_types"):
            if not isinstance(value, bool):
                problems.append(f"{where}: expected true or false, got {value!r}")
                continue
            setattr(cfg, key, value)
        elif not isinstance(value, str):
            problems.append(f"{where}: expected a string, got {value!r}")
        else:
            setattr(cfg, key, value)
    for key in ("ignored_key_patterns", "blocked_values", "blocked_key_patterns",
                "allowed_values"):
        for i, pattern in enumerate(getattr(cfg, key)):
            err = regex_error(pattern)
            if err:
                problems.append(f"{path}.{key}[{i}]: invalid regex {pattern!r}: {err}")
    for i, name in enumerate(cfg.detectors):
        if name not in DETECTOR_NAMES:
            problems.append(f"{path}.detectors[{i}]: unknown detector {name!r}; expected one of "
                            f"{', '.join(DETECTOR_NAMES)}")
    for i, name in enumerate(cfg.apply_to):
        if name not in PLACES:
            problems.append(f"{path}.apply_to[{i}]: unknown place {name!r}; expected one of "
                            f"{', '.join(PLACES)}")
    if cfg.hash_function is not None and cfg.hash_function not in HASH_FUNCTIONS:
        problems.append(f"{path}.hash_function: unknown hash function {cfg.hash_function!r}; "
                        f"expected one of {', '.join(HASH_FUNCTIONS)}")
    if cfg.hash_function in ("hmac-sha256", "hmac-sha512") and not cfg.hmac_key:
        problems.append(f"{path}.hmac_key: required with hash_function {cfg.hash_function}")
    if cfg.summary not in SUMMARIES:
        problems.append(f"{path}.summary: unknown summary {cfg.summary!r}; expected debug, info "
                        f"or silent")
    if cfg.action not in ACTIONS:
        problems.append(f"{path}.action: unknown action {cfg.action!r}; expected mask or hash")
    elif cfg.action == "mask" and cfg.hash_function is not None and "action" in raw:
        problems.append(f"{path}.action: 'mask' contradicts hash_function "
                        f"{cfg.hash_function!r} (a hash_function means hash)")
    if "action" in raw and cfg.action == "hash" and cfg.hash_function is None:
        cfg.hash_function = "sha3"
    return None if len(problems) > start else cfg


def build(name: str, raw: Any, *, signal: str, path: str,
          problems: list[str]) -> RedactionProcessor | None:
    """The factory ``lookout/pipeline/factories.py`` calls for a ``redaction`` entry."""
    cfg = parse_config(raw, path, problems)
    return None if cfg is None else RedactionProcessor(name, signal, cfg)


def _any_match(arr: pa.Array, patterns: tuple[str, ...]) -> np.ndarray:
    out = np.zeros(len(arr), dtype=np.bool_)
    for p in patterns:
        out |= pc.match_substring_regex(arr, p).fill_null(False).to_numpy(zero_copy_only=False)
    return out


def _first_match(arr: pa.Array, patterns: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """(matched, index into ``patterns`` of the first pattern matching) per element."""
    which = np.full(len(arr), -1, dtype=np.int64)
    for i, (_, p) in enumerate(patterns):
        hit = pc.match_substring_regex(arr, p).fill_null(False).to_numpy(zero_copy_only=False)
        which[hit & (which < 0)] = i
    return which >= 0, which


def _np(arr: pa.Array) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False)


def _scatter(base: pa.Array, rows: np.ndarray, new: pa.Array) -> pa.Array:
    """``base`` with ``base[rows[i]] = new[i]``; works for any type (structs too) via take."""
    if len(rows) == 0:
        return base
    new = new.cast(base.type) if new.type != base.type else new
    idx = np.arange(len(base), dtype=np.int64)
    idx[rows] = len(base) + np.arange(len(rows))
    return pa.concat_arrays([base, new]).take(pa.array(idx))


class RedactionProcessor:
    """Deletes, masks and hashes attribute values and strings of one OTLP request in place."""

    def __init__(self, name: str, signal: str, config: RedactionConfig) -> None:
        self.name = name
        self.signal = signal
        self.config = config
        self.stats = ProcessorStats(signal, name)
        self.redactor = Redactor(config.detectors, config.blocked_values, config.allowed_values,
                                 "hash" if config.hash_function else "mask",
                                 config.hash_function, config.mask, hmac_key=config.hmac_key)
        self.allow_set = pa.array(sorted({*config.allowed_keys, *SUMMARY_KEYS}), pa.string())
        self.ignore_set = pa.array(sorted(set(config.ignored_keys)), pa.string())
        self.url_set = pa.array(URL_KEYS, pa.string())
        places = set(config.apply_to)
        self.places = places
        # (rule name, key regex): Collector's blocked_key_patterns, then detector key patterns
        self.block_keys = [(f"blocked_key_patterns[{i}]", p)
                           for i, p in enumerate(config.blocked_key_patterns)]
        self.detector_keys = list(self.redactor.key_rules)

    # ---- entry point ------------------------------------------------------------------------

    def process(self, batch: OtlpBatch, tenant: str) -> None:
        """Redact every string site per ``apply_to``, then every attribute site."""
        self.stats.add("received_items", batch.item_count())
        body_masked: np.ndarray | None = None
        for site in batch.string_sites():
            place = _SITE_PLACE.get(site, "other_strings")
            if place not in self.places:
                continue
            values = batch.strings(site)
            if len(values) == 0 or values.null_count == len(values):
                continue
            new, counts = self.redactor.redact(values)
            if counts:
                self._count(counts)
                changed = _np(pc.fill_null(pc.not_equal(new, values), False))
                batch.set_strings(site, pc.if_else(pa.array(changed), new, pa.nulls(len(new), new.type)))
                if site == "log.body":
                    body_masked = changed
        for site in batch.attribute_sites():
            lists = batch.attributes(site)
            extra = body_masked if site == "log" else None
            new_lists = self._attributes(lists, extra)
            if new_lists is not None:
                batch.set_attributes(site, new_lists)

    def _count(self, counts: dict[str, int]) -> None:
        for rule, n in counts.items():
            self.stats.add("redacted_values", n, rule=rule)

    # ---- flat strings of non-OTLP payloads (Loki push, remote write) --------------------------

    def redact_strings(self, values: pa.Array, place: str) -> pa.Array | None:
        """``values`` with the value rules applied when ``place`` is in ``apply_to``, counted
        into the stats; None when nothing changed (so callers keep the client's bytes).

        Why here and not in the push adapters: the adapters must not know the config's places
        or how stats are named, so every wire format counts ``redacted_values{rule}`` alike.
        """
        if place not in self.places or len(values) == 0 or values.null_count == len(values):
            return None
        new, counts = self.redactor.redact(values)
        if not counts:
            return None
        self._count(counts)
        return new

    def redact_pairs(self, keys: pa.Array, values: pa.Array, *, may_delete: bool,
                     protected: np.ndarray | None = None
                     ) -> tuple[pa.Array, np.ndarray] | None:
        """Key and value rules over flat ``(key, string value)`` pairs: ``(new values, keep)``,
        or None when nothing changed.

        The same order as for OTLP attributes (ignored → deleted → allowed value → blocked
        key → value rules), on plain strings: Loki structured metadata (``may_delete``: keys
        not allowed are dropped unless ``allow_all_keys``, as attributes are), Loki stream
        labels and remote-write labels (``may_delete=False``: a series or stream cannot lose
        its labels, so their values are only masked). ``protected`` rows (``__name__``) are
        never touched. No summary attributes: these payloads have nowhere to put counts.
        """
        cfg = self.config
        m = len(keys)
        if m == 0:
            return None
        keys = keys.cast(pa.string())
        values = values.cast(pa.string())
        ignored = _np(pc.is_in(keys, value_set=self.ignore_set)).astype(np.bool_)
        if cfg.ignored_key_patterns:
            ignored |= _any_match(keys, cfg.ignored_key_patterns)
        if may_delete and not cfg.allow_all_keys:
            deleted = ~_np(pc.is_in(keys, value_set=self.allow_set)).astype(np.bool_) & ~ignored
        else:
            deleted = np.zeros(m, dtype=np.bool_)
        live = ~ignored & ~deleted
        if protected is not None:
            live &= ~protected
        if cfg.allowed_values and live.any():
            live &= ~self.redactor.allowed(values.fill_null(""))
        is_url = _np(pc.is_in(keys, value_set=self.url_set)).astype(np.bool_)
        place_on = np.where(is_url, "urls" in self.places, "attributes" in self.places)

        rules = self.block_keys + self.detector_keys
        whole, which = _first_match(keys, rules) if rules else (np.zeros(m, np.bool_), None)
        if which is not None and self.detector_keys:
            whole &= (which < len(self.block_keys)) | place_on
        whole &= live
        new = values
        changed = False
        if whole.any():
            rows = np.flatnonzero(whole)
            new = _scatter(new, rows, self.redactor.replace_whole(values.take(pa.array(rows))))
            names = np.array([r for r, _ in rules], dtype=object)[which[rows]]
            uniq, cnt = np.unique(names, return_counts=True)
            self._count({str(u): int(c) for u, c in zip(uniq, cnt, strict=True)})
            changed = True
        scan = live & ~whole & place_on & _np(values.is_valid())
        if scan.any():
            rows = np.flatnonzero(scan)
            before = values.take(pa.array(rows))
            after, counts = self.redactor.redact(before)
            if counts:
                self._count(counts)
                new = _scatter(new, rows, after)
                changed = True
        if deleted.any():
            self.stats.add("deleted_keys", int(deleted.sum()))
        elif not changed:
            return None
        return new, ~deleted

    # ---- attributes -------------------------------------------------------------------------

    def _attributes(self, lists: pa.Array, body_masked: np.ndarray | None) -> pa.Array | None:
        """The redacted KeyValue lists, or None when nothing changed (keeps the original bytes
        of requests redaction has nothing to do with)."""
        cfg = self.config
        n = len(lists)
        flat = pc.list_flatten(lists)
        m = len(flat)
        if m == 0 and (body_masked is None or not body_masked.any()):
            return None
        parents = _np(pc.list_parent_indices(lists)).astype(np.int64)
        keys = pc.struct_field(flat, "key")
        value = pc.struct_field(flat, "value")
        str_val = pc.struct_field(value, "string_value")

        ignored = _np(pc.is_in(keys, value_set=self.ignore_set)).astype(np.bool_)
        if cfg.ignored_key_patterns:
            ignored |= _any_match(keys, cfg.ignored_key_patterns)
        if cfg.allow_all_keys:
            deleted = np.zeros(m, dtype=np.bool_)
        else:
            deleted = ~_np(pc.is_in(keys, value_set=self.allow_set)).astype(np.bool_) & ~ignored
        live = ~ignored & ~deleted

        if cfg.redact_all_types:
            as_text = pc.coalesce(str_val, *(pc.struct_field(value, f).cast(pa.string())
                                             for f in ("int_value", "double_value", "bool_value")))
        else:
            as_text = str_val
        allowed_val = np.zeros(m, dtype=np.bool_)
        if cfg.allowed_values:
            allowed_val = live & self.redactor.allowed(as_text.fill_null(""))
        candidates = live & ~allowed_val

        is_url = _np(pc.is_in(keys, value_set=self.url_set)).astype(np.bool_)
        place_on = np.where(is_url, "urls" in self.places, "attributes" in self.places)

        # whole-value replacement: Collector blocked_key_patterns, then detector key patterns
        rules = self.block_keys + ([*self.detector_keys] if self.detector_keys else [])
        whole, which = _first_match(keys, rules) if rules else (np.zeros(m, np.bool_), None)
        if which is not None and self.detector_keys:
            detector_rule = which >= len(self.block_keys)
            whole &= ~detector_rule | place_on
        whole &= candidates
        new_str = str_val
        becomes_string = np.zeros(m, dtype=np.bool_)
        masked = np.zeros(m, dtype=np.bool_)
        if whole.any():
            rows = np.flatnonzero(whole)
            new_str = _scatter(new_str, rows,
                               self.redactor.replace_whole(as_text.take(pa.array(rows))))
            becomes_string |= whole
            masked |= whole
            names = np.array([r for r, _ in rules], dtype=object)[which[rows]]
            uniq, cnt = np.unique(names, return_counts=True)
            self._count({str(u): int(c) for u, c in zip(uniq, cnt, strict=True)})

        scan = candidates & ~whole & place_on & _np(as_text.is_valid())
        if scan.any():
            rows = np.flatnonzero(scan)
            before = as_text.take(pa.array(rows))
            after, counts = self.redactor.redact(before)
            if counts:
                self._count(counts)
                changed = _np(pc.not_equal(after, before).fill_null(False))
                rows, after = rows[changed], after.filter(pa.array(changed))
                new_str = _scatter(new_str, rows, after)
                masked[rows] = True
                becomes_string[rows] |= ~_np(str_val.is_valid())[rows]

        new_value = value
        nested = candidates & ~whole & place_on & (
            _np(pc.struct_field(value, "array_value").is_valid())
            | _np(pc.struct_field(value, "kvlist_value").is_valid()))
        if nested.any():
            new_value, nested_masked = self._nested(value, np.flatnonzero(nested))
            masked |= nested_masked

        if masked.any():
            new_value = self._with_strings(new_value, new_str, becomes_string)

        summary = cfg.summary in ("debug", "info")
        if not (masked.any() or deleted.any() or (summary and (ignored.any() or allowed_val.any()))
                or (summary and body_masked is not None and body_masked.any())):
            return None
        self.stats.add("deleted_keys", int(deleted.sum()))

        items = pa.StructArray.from_arrays(
            [new_value if f.name == "value" else pc.struct_field(flat, f.name)
             for f in flat.type], fields=list(flat.type)) if m else flat
        keep = ~deleted
        items = items.filter(pa.array(keep))
        item_parents = parents[keep]
        if summary:
            items, item_parents = self._summarize(
                n, lists.type, items, item_parents, keys, parents,
                [(REDACTED_KEYS, REDACTED_COUNT, deleted), (MASKED_KEYS, MASKED_COUNT, masked),
                 (ALLOWED_KEYS, ALLOWED_COUNT, allowed_val), (None, IGNORED_COUNT, ignored)],
                body_masked)
        order = np.argsort(item_parents, kind="stable")
        items = items.take(pa.array(order))
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(item_parents, minlength=n), out=offsets[1:])
        out = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), items,
                                       type=lists.type, mask=lists.is_null() if lists.null_count else None)
        return out

    def _with_strings(self, value: pa.StructArray, new_str: pa.Array,
                      becomes_string: np.ndarray) -> pa.StructArray:
        """``value`` with ``string_value`` replaced; rows in ``becomes_string`` lose their other
        member (an int/array whose value was masked is a string now, as in the Collector)."""
        cond = pa.array(becomes_string)
        children = []
        for f in value.type:
            child = pc.struct_field(value, f.name)
            if f.name == "string_value":
                child = new_str.cast(f.type)
            elif becomes_string.any():
                child = pc.if_else(cond, pa.scalar(None, f.type), child)
            children.append(child)
        return pa.StructArray.from_arrays(children, fields=list(value.type),
                                          mask=value.is_null() if value.null_count else None)

    # ---- nested array / kvlist values (rare: Python per such value, vectorized redaction) ------

    def _nested(self, value: pa.StructArray, rows: np.ndarray) -> tuple[pa.StructArray, np.ndarray]:
        """Redact the string leaves inside array/kvlist values at ``rows``.

        The values are serialized ``AnyValue``/``KeyValue`` bytes (ptars does not recurse): they
        are parsed with upb, every string leaf is collected into one array and redacted in one
        :meth:`Redactor.redact` call, and changed values are re-serialized.
        """
        arr_col = pc.struct_field(value, "array_value")
        kv_col = pc.struct_field(value, "kvlist_value")
        arr_py = arr_col.take(pa.array(rows)).to_pylist()
        kv_py = kv_col.take(pa.array(rows)).to_pylist()
        key_rules = self.block_keys + self.detector_keys
        parsed: list[tuple[str, list[Any]]] = []
        leaves: list[AnyValue] = []
        whole_counts: dict[str, int] = {}

        def walk(v: AnyValue) -> None:
            kind = v.WhichOneof("value")
            if kind == "string_value":
                leaves.append(v)
            elif kind == "array_value":
                for x in v.array_value.values:
                    walk(x)
            elif kind == "kvlist_value":
                for kv in v.kvlist_value.values:
                    walk_kv(kv)

        def walk_kv(kv: KeyValue) -> None:
            for rule, pattern in key_rules:
                if pc.match_substring_regex(pa.array([kv.key]), pattern)[0].as_py():
                    text = kv.value.string_value if kv.value.HasField("string_value") else ""
                    kv.value.string_value = self.redactor.replace_whole(pa.array([text]))[0].as_py()
                    whole_counts[rule] = whole_counts.get(rule, 0) + 1
                    return
            walk(kv.value)

        for a, k in zip(arr_py, kv_py, strict=True):
            if a is not None:
                msgs = [AnyValue.FromString(b) for b in a["values"]]
                for msg in msgs:
                    walk(msg)
                parsed.append(("array_value", msgs))
            else:
                msgs = [KeyValue.FromString(b) for b in (k or {"values": []})["values"]]
                for msg in msgs:
                    walk_kv(msg)
                parsed.append(("kvlist_value", msgs))
        changed_leaf = np.zeros(len(leaves), dtype=np.bool_)
        if leaves:
            before = pa.array([v.string_value for v in leaves], pa.string())
            after, counts = self.redactor.redact(before)
            self._count(counts)
            changed_leaf = _np(pc.not_equal(after, before).fill_null(False))
            for i in np.flatnonzero(changed_leaf):
                leaves[i].string_value = after[int(i)].as_py()
        self._count(whole_counts)
        masked = np.zeros(len(value), dtype=np.bool_)
        if not changed_leaf.any() and not whole_counts:
            return value, masked
        # re-serialize every parsed row (cheap, rare) and mark the rows that differ
        arr_rows, arr_vals, kv_rows, kv_vals = [], [], [], []
        for row, old_a, old_k, (kind, msgs) in zip(rows, arr_py, kv_py, parsed, strict=True):
            blobs = [msg.SerializeToString() for msg in msgs]
            old = (old_a if kind == "array_value" else old_k)["values"]
            if blobs != old:
                masked[row] = True
                (arr_rows if kind == "array_value" else kv_rows).append(row)
                (arr_vals if kind == "array_value" else kv_vals).append({"values": blobs})
        children = []
        for f in value.type:
            child = pc.struct_field(value, f.name)
            if f.name == "array_value" and arr_rows:
                child = _scatter(child, np.array(arr_rows), pa.array(arr_vals, f.type))
            elif f.name == "kvlist_value" and kv_rows:
                child = _scatter(child, np.array(kv_rows), pa.array(kv_vals, f.type))
            children.append(child)
        new_value = pa.StructArray.from_arrays(children, fields=list(value.type),
                                               mask=value.is_null() if value.null_count else None)
        return new_value, masked

    # ---- summary attributes ---------------------------------------------------------------------

    def _summarize(self, n: int, list_type: pa.DataType, items: pa.StructArray,
                   item_parents: np.ndarray, keys: pa.Array, parents: np.ndarray,
                   categories: list[tuple[str | None, str, np.ndarray]],
                   body_masked: np.ndarray | None) -> tuple[pa.StructArray, np.ndarray]:
        """Append the Collector's ``redaction.*`` attributes per owner, merged with existing ones.

        For each category with at least one key on an owner: ``<keys attr>`` (debug only) is
        the sorted, comma-joined key list, ``<count attr>`` the count; an existing attribute of
        the same name (from an upstream redaction) is folded in and replaced, as PutStr/PutInt
        do in the Collector.
        """
        debug = self.config.summary == "debug"
        cats = [(ka, ca, parents[sel], keys.filter(pa.array(sel)))
                for ka, ca, sel in categories]
        if body_masked is not None and body_masked.any():
            owners = np.flatnonzero(body_masked).astype(np.int64)
            cats.append((BODY_MASKED_KEYS, BODY_MASKED_COUNT, owners,
                         pa.array(np.full(len(owners), "body", dtype=object), pa.string())))
        item_keys = pc.struct_field(items, "key")
        item_value = pc.struct_field(items, "value")
        drop = np.zeros(len(items), dtype=np.bool_)
        add_owner: list[np.ndarray] = []
        add_key: list[pa.Array] = []
        add_str: list[pa.Array] = []
        add_int: list[pa.Array] = []
        for keys_attr, count_attr, owners, cat_keys in cats:
            if len(owners) == 0:
                continue
            counts = np.bincount(owners, minlength=n).astype(np.int64)
            has = counts > 0
            targets = np.flatnonzero(has)
            # existing count attribute on an owner that gets a new one: add it, drop the old
            pos = np.flatnonzero(_np(pc.equal(item_keys, count_attr)))
            if pos.size:
                upd = pos[has[item_parents[pos]]]
                old = _np(pc.struct_field(item_value, "int_value").take(pa.array(upd)).fill_null(0))
                np.add.at(counts, item_parents[upd], old.astype(np.int64))
                drop[upd] = True
            if debug and keys_attr is not None:
                own, ks = owners, cat_keys
                pos = np.flatnonzero(_np(pc.equal(item_keys, keys_attr)))
                if pos.size:
                    upd = pos[has[item_parents[pos]]]
                    drop[upd] = True
                    old = pc.split_pattern(pc.struct_field(item_value, "string_value")
                                           .take(pa.array(upd)).fill_null(""), ",")
                    old_parts = pc.list_flatten(old)
                    old_own = item_parents[upd][_np(pc.list_parent_indices(old))]
                    nonempty = _np(pc.not_equal(old_parts, ""))
                    own = np.concatenate([own, old_own[nonempty]])
                    ks = pa.concat_arrays([ks.cast(pa.string()),
                                           old_parts.filter(pa.array(nonempty)).cast(pa.string())])
                table = pa.table({"o": pa.array(own, pa.int64()), "k": ks.cast(pa.string())})
                table = table.sort_by([("o", "ascending"), ("k", "ascending")])
                per = np.bincount(_np(table["o"].combine_chunks()), minlength=n)[targets]
                offs = np.zeros(len(targets) + 1, dtype=np.int32)
                np.cumsum(per, out=offs[1:])
                joined = pc.binary_join(pa.ListArray.from_arrays(
                    pa.array(offs), table["k"].combine_chunks()), ",")
                add_owner.append(targets)
                add_key.append(pa.array(np.full(len(targets), keys_attr, dtype=object), pa.string()))
                add_str.append(joined)
                add_int.append(pa.nulls(len(targets), pa.int64()))
            add_owner.append(targets)
            add_key.append(pa.array(np.full(len(targets), count_attr, dtype=object), pa.string()))
            add_str.append(pa.nulls(len(targets), pa.string()))
            add_int.append(pa.array(counts[targets], pa.int64()))
        if not add_owner:
            return items, item_parents
        # interleave per owner in category order: stable sort by owner after the existing items
        extra_owner = np.concatenate(add_owner)
        extra_keys = pa.concat_arrays(add_key)
        vtype = items.type.field("value").type
        extra_values = any_values(vtype, str=pa.concat_arrays(add_str),
                                  int=pa.concat_arrays(add_int))
        extra = key_value_lists(list_type, np.array([0, len(extra_owner)]), extra_keys,
                                extra_values).flatten()
        keep = ~drop
        if extra.type != items.type:
            extra = extra.cast(items.type)
        merged = pa.concat_arrays([items.filter(pa.array(keep)), extra])
        return merged, np.concatenate([item_parents[keep], extra_owner])
