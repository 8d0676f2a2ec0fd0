"""The Loki push API bodies (``POST /loki/api/v1/push``) → :class:`LogBatch`, and back.

Two wire forms, as Loki accepts them:

- ``application/x-protobuf``: a snappy *block*-compressed ``logproto.PushRequest``
  (streams of ``{labels: '{a="b"}', entries: [{timestamp, line, structuredMetadata}]}``). The
  descriptors are built at run time from a ``FileDescriptorProto`` (no protoc, no generated code)
  and decoded with ptars into Arrow, so no Python runs per entry;
- ``application/json`` (optionally gzip): ``{"streams": [{"stream": {...}, "values":
  [["<ns>", "<line>", {<structured metadata>}], ...]}]}``.

Stream labels are parsed exactly like LogQL's stream selector (Go string escapes, raw backtick
strings, only ``=``); every problem raises :class:`LokiPushError` with a message naming it and
where it is, so the receiver can answer 400 with it.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Sequence
from functools import cache
from typing import Any

import cramjam
import numpy as np
import ptars
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

from lookout.logs.ingest import LogsIngestOptions, apply_limits
from lookout.logs.model import ENTRY_SCHEMA, stream_id
from lookout.logs.schema import LogBatch

__all__ = [
    "LokiPushError",
    "decode_push",
    "decode_push_json",
    "decode_push_protobuf",
    "encode_push_request",
    "format_labels",
    "parse_labels",
    "push_request_class",
    "validate_push_json",
    "validate_push_protobuf",
]

_MD_TYPE = ENTRY_SCHEMA.field("metadata").type
_INT64_MAX = 2**63 - 1


class LokiPushError(ValueError):
    """A push body Loki would refuse with 400; the message names the problem."""


# --------------------------------------------------------------------------------------------
# logproto descriptors, built at run time


def _logproto_file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(name="lookout/logproto_push.proto", package="logproto", syntax="proto3",
                                           dependency=["google/protobuf/timestamp.proto"])
    string, uint64, message = (descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                               descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
                               descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE)
    one, many = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL, descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    pair = f.message_type.add(name="LabelPairAdapter")
    pair.field.add(name="name", number=1, type=string, label=one)
    pair.field.add(name="value", number=2, type=string, label=one)
    entry = f.message_type.add(name="EntryAdapter")
    entry.field.add(name="timestamp", number=1, type=message, label=one, type_name=".google.protobuf.Timestamp")
    entry.field.add(name="line", number=2, type=string, label=one)
    entry.field.add(name="structuredMetadata", json_name="structuredMetadata", number=3, type=message, label=many,
                    type_name=".logproto.LabelPairAdapter")
    stream = f.message_type.add(name="StreamAdapter")
    stream.field.add(name="labels", number=1, type=string, label=one)
    stream.field.add(name="entries", number=2, type=message, label=many, type_name=".logproto.EntryAdapter")
    stream.field.add(name="hash", number=3, type=uint64, label=one)
    push = f.message_type.add(name="PushRequest")
    push.field.add(name="streams", number=1, type=message, label=many, type_name=".logproto.StreamAdapter")
    return f


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    ts = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(ts)
    pool.Add(ts)
    pool.Add(_logproto_file())
    return pool


@cache
def push_request_class() -> type:
    """The ``logproto.PushRequest`` message class (upb), for encoders and tests."""
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName("logproto.PushRequest"))


@cache
def _handler() -> ptars._lib.MessageHandler:
    desc = _pool().FindMessageTypeByName("logproto.PushRequest")
    return ptars.HandlerPool([desc.file]).get_for_message(desc)


# --------------------------------------------------------------------------------------------
# label strings: {a="b", c=`d`}

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
            "'": "'", '"': '"'}


class _LabelParser:
    """A recursive-descent parser for a stream selector made of ``=`` matchers only."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def fail(self, what: str) -> LokiPushError:
        return LokiPushError(f"invalid labels {self.s!r}: {what} at position {self.i}")

    def skip(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def expect(self, ch: str) -> None:
        self.skip()
        if not self.s.startswith(ch, self.i):
            got = repr(self.s[self.i]) if self.i < len(self.s) else "end of input"
            raise self.fail(f"expected {ch!r}, got {got}")
        self.i += 1

    def name(self) -> str:
        self.skip()
        start = self.i
        s = self.s
        if self.i < len(s) and (s[self.i] == "_" or (s[self.i].isascii() and s[self.i].isalpha())):
            self.i += 1
            while self.i < len(s) and (s[self.i] == "_" or (s[self.i].isascii() and s[self.i].isalnum())):
                self.i += 1
        if self.i == start:
            raise self.fail("expected a label name")
        return s[start:self.i]

    def value(self) -> str:
        self.skip()
        if self.s.startswith("`", self.i):
            end = self.s.find("`", self.i + 1)
            if end < 0:
                raise self.fail("unterminated raw string")
            out, self.i = self.s[self.i + 1:end], end + 1
            return out
        if not self.s.startswith('"', self.i):
            raise self.fail("expected a quoted label value")
        self.i += 1
        out: list[str] = []
        while True:
            if self.i >= len(self.s):
                raise self.fail("unterminated string")
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                return "".join(out)
            if c == "\n":
                raise self.fail("newline in string")
            if c != "\\":
                out.append(c)
                self.i += 1
                continue
            out.append(self.escape())

    def escape(self) -> str:
        s, i = self.s, self.i + 1
        if i >= len(s):
            raise self.fail("unterminated escape")
        c = s[i]
        if c in _ESCAPES:
            self.i = i + 1
            return _ESCAPES[c]
        width = {"x": 2, "u": 4, "U": 8}.get(c)
        if width is not None:
            digits = s[i + 1:i + 1 + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.fail(f"invalid \\{c} escape")
            self.i = i + 1 + width
            code = int(digits, 16)
            if c == "x":
                return chr(code)  # Go: a byte; for ASCII the same character
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.fail("invalid Unicode code point in escape")
            return chr(code)
        if c in "01234567":
            digits = s[i:i + 3]
            if len(digits) != 3 or any(d not in "01234567" for d in digits) or int(digits, 8) > 255:
                raise self.fail("invalid octal escape")
            self.i = i + 3
            return chr(int(digits, 8))
        raise self.fail(f"unknown escape sequence \\{c}")

    def parse(self) -> dict[str, str]:
        self.expect("{")
        labels: dict[str, str] = {}
        self.skip()
        if self.s.startswith("}", self.i):
            raise self.fail("expected a label name")
        while True:
            name = self.name()
            self.skip()
            if self.s.startswith(("=~", "!=", "!~"), self.i):
                raise self.fail(f"only = is allowed in stream labels, got {self.s[self.i:self.i + 2]!r}")
            self.expect("=")
            value = self.value()
            if name in labels:
                raise LokiPushError(f"invalid labels {self.s!r}: duplicate label name {name!r}")
            labels[name] = value
            self.skip()
            if self.s.startswith(",", self.i):
                self.i += 1
                continue
            self.expect("}")
            self.skip()
            if self.i != len(self.s):
                raise self.fail("unexpected text after '}'")
            return labels


@cache
def parse_labels(text: str) -> dict[str, str]:
    """``{a="b", c="d"}`` → labels (empty values dropped, as in Prometheus). Cached: clients
    send the same few label strings over and over."""
    labels = {k: v for k, v in _LabelParser(text).parse().items() if v != ""}
    if not labels:
        raise LokiPushError(f"invalid labels {text!r}: no label with a non-empty value")
    return labels


def _go_quote(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x80 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_labels(labels: dict[str, str]) -> str:
    """Labels as Loki prints them: ``{a="1", b="2"}``, names sorted, Go-quoted values."""
    return "{" + ", ".join(f"{k}={_go_quote(v)}" for k, v in sorted(labels.items())) + "}"


# --------------------------------------------------------------------------------------------
# protobuf + snappy


def _snappy(body: bytes) -> bytes:
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:
        raise LokiPushError(f"invalid snappy block compression: {exc}") from exc


def _decode_proto(data: bytes) -> pa.Array:
    try:
        return _handler().list_to_record_batch([data]).column(0)
    except Exception as exc:
        raise LokiPushError(f"invalid protobuf logproto.PushRequest: {exc}") from exc


def _stream_ids(label_strings: list[str]) -> tuple[dict[int, dict[str, str]], np.ndarray]:
    streams: dict[int, dict[str, str]] = {}
    ids = np.empty(len(label_strings), np.uint64)
    for i, text in enumerate(label_strings):
        try:
            labels = parse_labels(text)
        except LokiPushError as exc:
            raise LokiPushError(f"streams[{i}]: {exc}") from None
        sid = stream_id(labels)
        streams[sid] = labels
        ids[i] = sid
    return streams, ids


def _pairs_map(pairs: pa.ListArray, names: tuple[str, str]) -> pa.MapArray:
    flat = pairs.values
    return pa.MapArray.from_arrays(pairs.offsets, flat.field(names[0]), flat.field(names[1]), type=_MD_TYPE)


def decode_push_protobuf(body: bytes, options: LogsIngestOptions | None = None, *, compressed: bool = True) -> LogBatch:
    """A snappy-compressed (unless ``compressed=False``) ``logproto.PushRequest`` → LogBatch."""
    data = _snappy(body) if compressed else body
    streams_arr = pc.list_flatten(_decode_proto(data))
    if len(streams_arr) == 0:
        return LogBatch.empty()
    streams, ids = _stream_ids(streams_arr.field("labels").to_pylist())
    entry_lists = streams_arr.field("entries")
    entries = pc.list_flatten(entry_lists)
    if len(entries) == 0:
        return LogBatch.empty()
    owner = pc.list_parent_indices(entry_lists).to_numpy()
    ts = entries.field("timestamp")
    missing = np.flatnonzero(~ts.is_valid().to_numpy(zero_copy_only=False))
    if missing.size:
        i = int(missing[0])
        offs = entry_lists.offsets.to_numpy()
        raise LokiPushError(f"streams[{int(owner[i])}].entries[{i - int(offs[owner[i]] - offs[0])}]: missing timestamp")
    table = pa.Table.from_arrays(
        [pa.array(ids[owner], pa.uint64()), ts.cast(pa.int64()), entries.field("line"),
         _pairs_map(entries.field("structuredMetadata"), ("name", "value"))],
        schema=ENTRY_SCHEMA)
    return apply_limits(LogBatch(streams, table), options or LogsIngestOptions())


def validate_push_protobuf(body: bytes) -> int:
    """The receiver's check: decodes fully (so a bad body is a 400 now, not a dropped record
    later) and returns the number of entries."""
    return decode_push_protobuf(body).num_entries


# --------------------------------------------------------------------------------------------
# JSON (gzip or plain)


def _maybe_gunzip(body: bytes) -> bytes:
    if body[:2] != b"\x1f\x8b":
        return body
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise LokiPushError(f"invalid gzip body: {exc}") from exc


def _timestamp(value: Any, where: str) -> int:
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit():
        ns = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        ns = value
    else:
        raise LokiPushError(f"{where}: timestamp {json.dumps(value)} is not a string of Unix nanoseconds")
    if not -_INT64_MAX - 1 <= ns <= _INT64_MAX:
        raise LokiPushError(f"{where}: timestamp {value} is out of int64 range")
    return ns


def _json_metadata(value: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(value, dict):
        raise LokiPushError(f"{where}: structured metadata must be an object of strings")
    for k, v in value.items():
        if not isinstance(v, str):
            raise LokiPushError(f"{where}: structured metadata {k!r} must be a string, got {json.dumps(v)}")
    return list(value.items())


def _json_stream(i: int, stream: Any) -> tuple[dict[str, str], list[int], list[str], list[list[tuple[str, str]]]]:
    where = f"streams[{i}]"
    if not isinstance(stream, dict):
        raise LokiPushError(f"{where}: must be an object")
    labels = stream.get("stream")
    if not isinstance(labels, dict) or not labels:
        raise LokiPushError(f'{where}: missing "stream" labels object')
    for k, v in labels.items():
        if not isinstance(v, str):
            raise LokiPushError(f"{where}.stream.{k}: label value must be a string")
        _check_name(k, where)
    labels = {k: v for k, v in labels.items() if v != ""}
    if not labels:
        raise LokiPushError(f"{where}: no label with a non-empty value")
    values = stream.get("values")
    if not isinstance(values, list):
        raise LokiPushError(f'{where}: missing "values" array')
    ts, lines, mds = [], [], []
    for j, v in enumerate(values):
        w = f"{where}.values[{j}]"
        if not isinstance(v, list) or len(v) not in (2, 3):
            raise LokiPushError(f'{w}: expected ["<ns>", "<line>"] or ["<ns>", "<line>", {{metadata}}]')
        if not isinstance(v[1], str):
            raise LokiPushError(f"{w}: the line must be a string")
        ts.append(_timestamp(v[0], w))
        lines.append(v[1])
        mds.append(_json_metadata(v[2], w) if len(v) == 3 else [])
    return labels, ts, lines, mds


def _check_name(name: str, where: str) -> None:
    ok = bool(name) and (name[0] == "_" or (name[0].isascii() and name[0].isalpha())) and all(
        c == "_" or (c.isascii() and c.isalnum()) for c in name)
    if not ok:
        raise LokiPushError(f"{where}: invalid label name {name!r}")


def decode_push_json(body: bytes, options: LogsIngestOptions | None = None) -> LogBatch:
    """A Loki push JSON body (gzip or plain) → LogBatch."""
    text = _maybe_gunzip(body)
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LokiPushError(f"invalid JSON push body: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("streams"), list):
        raise LokiPushError('invalid JSON push body: expected {"streams": [...]}')
    streams: dict[int, dict[str, str]] = {}
    sids, ts, lines, mds = [], [], [], []
    for i, stream in enumerate(doc["streams"]):
        labels, t, ln, md = _json_stream(i, stream)
        sid = stream_id(labels)
        streams[sid] = labels
        sids.extend([sid] * len(t))
        ts.extend(t)
        lines.extend(ln)
        mds.extend(md)
    table = pa.Table.from_arrays(
        [pa.array(sids, pa.uint64()), pa.array(ts, pa.int64()), pa.array(lines, pa.string()),
         pa.array(mds, _MD_TYPE)], schema=ENTRY_SCHEMA)
    return apply_limits(LogBatch({s: lb for s, lb in streams.items() if s in set(sids)}, table),
                        options or LogsIngestOptions())


def validate_push_json(body: bytes) -> int:
    return decode_push_json(body).num_entries


def decode_push(body: bytes, *, json_body: bool, options: LogsIngestOptions | None = None) -> LogBatch:
    """Either form, by content type."""
    return decode_push_json(body, options) if json_body else decode_push_protobuf(body, options)


# --------------------------------------------------------------------------------------------
# encoding (clients, tests, bench, conformance)


def encode_push_request(streams: Sequence[tuple[dict[str, str], Sequence[tuple[int, str, dict[str, str]]]]], *,
                        format: str = "protobuf") -> bytes:
    """``[(labels, [(ts_ns, line, metadata), ...]), ...]`` → a push body: snappy-compressed
    protobuf (``format="protobuf"``) or plain JSON (``format="json"``)."""
    if format == "json":
        doc = {"streams": [{"stream": dict(labels),
                            "values": [[str(ts), line, dict(md)] if md else [str(ts), line]
                                       for ts, line, md in entries]}
                           for labels, entries in streams]}
        return json.dumps(doc, separators=(",", ":")).encode()
    if format != "protobuf":
        raise ValueError(f'format must be "protobuf" or "json", got {format!r}')
    req = push_request_class()()
    for labels, entries in streams:
        st = req.streams.add(labels=format_labels(labels))
        for ts, line, md in entries:
            e = st.entries.add(line=line)
            e.timestamp.seconds, e.timestamp.nanos = divmod(int(ts), 1_000_000_000)
            for k, v in (md or {}).items():
                e.structuredMetadata.add(name=k, value=v)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
