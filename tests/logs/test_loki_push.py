"""Loki push API bodies (protobuf+snappy and JSON) → LogBatch, and the encoder."""

from __future__ import annotations

import gzip
import json

import cramjam
import pytest

from lookout.logs.ingest import LogsIngestOptions
from lookout.logs.loki_push import (
    LokiPushError,
    decode_push,
    decode_push_json,
    decode_push_protobuf,
    encode_push_request,
    format_labels,
    parse_labels,
    push_request_class,
    validate_push_json,
    validate_push_protobuf,
)
from lookout.logs.model import ENTRY_SCHEMA, stream_id

STREAMS = [
    ({"app": "api", "env": 'we"ird\n\\'}, [(1_700_000_000_123_456_789, "first", {"trace_id": "abc", "user": "u1"}),
                                           (1_700_000_001_000_000_000, "second", {})]),
    ({"app": "db"}, [(5, "third", {})]),
]


@pytest.mark.parametrize("fmt", ["protobuf", "json"])
def test_round_trip(fmt):
    body = encode_push_request(STREAMS, format=fmt)
    batch = decode_push(body, json_body=fmt == "json")
    assert batch.entries.schema == ENTRY_SCHEMA
    rows = batch.entries.to_pylist()
    assert [(r["ts"], r["line"], r["metadata"]) for r in rows] == [
        (1_700_000_000_123_456_789, "first", [("trace_id", "abc"), ("user", "u1")]),
        (1_700_000_001_000_000_000, "second", []), (5, "third", [])]
    assert batch.streams == {stream_id(lb): lb for lb, _ in STREAMS}
    assert rows[0]["stream_id"] == stream_id(STREAMS[0][0])


def test_validators_count_entries():
    assert validate_push_protobuf(encode_push_request(STREAMS)) == 3
    assert validate_push_json(encode_push_request(STREAMS, format="json")) == 3


def test_gzip_json():
    body = gzip.compress(encode_push_request(STREAMS, format="json"))
    assert decode_push_json(body).num_entries == 3


def test_json_accepts_numeric_timestamps_and_metadata():
    body = json.dumps({"streams": [{"stream": {"a": "b"}, "values": [[12, "x", {"k": "v"}]]}]}).encode()
    assert decode_push_json(body).entries.to_pylist()[0]["metadata"] == [("k", "v")]


@pytest.mark.parametrize("text, labels", [
    ('{a="b"}', {"a": "b"}),
    ('{ a = "b" , c="d" }', {"a": "b", "c": "d"}),
    ('{a=`raw \\n`}', {"a": "raw \\n"}),
    ('{a="\\u00e9\\x41\\101\\t\\"q\\""}', {"a": 'éAA\t"q"'}),
    ('{a="b", empty=""}', {"a": "b"}),
    ('{_x="1"}', {"_x": "1"}),
])
def test_parse_labels(text, labels):
    assert parse_labels(text) == labels


@pytest.mark.parametrize("text, message", [
    ('{a="b"', "expected '}', got end of input at position 6"),
    ('{a=~"b"}', "only = is allowed"),
    ("{}", "expected a label name at position 1"),
    ('{a="\\q"}', "unknown escape sequence"),
    ('a="b"}', "expected '{'"),
    ('{a="b",a="c"}', "duplicate label name 'a'"),
    ('{1a="b"}', "expected a label name"),
    ('{a="b"} x', "unexpected text after"),
    ('{a="unterminated}', "unterminated string"),
    ('{a=""}', "no label with a non-empty value"),
])
def test_bad_labels_are_named(text, message):
    with pytest.raises(LokiPushError, match=message.replace("(", r"\(").replace("{", r"\{")):
        parse_labels(text)


def test_format_labels_round_trips():
    labels = {"b": 'x"y\\z\n\t\x01é', "a": "1"}
    text = format_labels(labels)
    assert text.startswith('{a="1", b=')
    assert parse_labels(text) == labels


def test_errors_are_named():
    with pytest.raises(LokiPushError, match="invalid snappy"):
        decode_push_protobuf(b"not snappy at all")
    with pytest.raises(LokiPushError, match="invalid protobuf logproto.PushRequest"):
        decode_push_protobuf(bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff\xff")))
    req = push_request_class()()
    req.streams.add(labels='{a="b"}').entries.add(line="no timestamp")
    with pytest.raises(LokiPushError, match=r"streams\[0\]\.entries\[0\]: missing timestamp"):
        decode_push_protobuf(req.SerializeToString(), compressed=False)
    req = push_request_class()()
    req.streams.add(labels='{a="b"}')
    req.streams.add(labels="{a=b}")
    expected = r"streams\[1\]: invalid labels .*expected a quoted label value at position 3"
    with pytest.raises(LokiPushError, match=expected):
        decode_push_protobuf(bytes(cramjam.snappy.compress_raw(req.SerializeToString())))
    cases = [
        (b"{", "invalid JSON push body"),
        (b"\x1f\x8bnope", "invalid gzip body"),
        (b'{"nope": 1}', "expected"),
        (b'{"streams": [{"values": []}]}', r'streams\[0\]: missing "stream" labels object'),
        (b'{"streams": [{"stream": {"a": "b"}}]}', r'streams\[0\]: missing "values" array'),
        (b'{"streams": [{"stream": {"a": "b"}, "values": [["x1", "l"]]}]}', r"values\[0\]: timestamp \"x1\""),
        (b'{"streams": [{"stream": {"a": "b"}, "values": [["1"]]}]}', r"values\[0\]: expected"),
        (b'{"streams": [{"stream": {"a-b": "c"}, "values": []}]}', "invalid label name 'a-b'"),
        (b'{"streams": [{"stream": {"a": "b"}, "values": [["1", "l", {"k": 1}]]}]}', "must be a string"),
    ]
    for body, message in cases:
        with pytest.raises(LokiPushError, match=message):
            decode_push_json(body)


def test_limits_apply_to_push():
    body = encode_push_request([({"a": "b"}, [(1, "x" * 10, {}), (2, "ok", {})])])
    batch = decode_push_protobuf(body, LogsIngestOptions(max_line_bytes=5))
    assert batch.num_entries == 1 and batch.refused == {"line_too_long": 1}


def test_encode_rejects_unknown_format():
    with pytest.raises(ValueError, match="format"):
        encode_push_request(STREAMS, format="xml")
