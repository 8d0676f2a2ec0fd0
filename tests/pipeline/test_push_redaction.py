"""Redaction of Loki push and Prometheus remote-write bodies before the write-ahead log: secrets
in lines, structured metadata and labels are masked, everything else decodes unchanged, a body
with nothing to redact stays byte-identical, and end to end no secret reaches the data dir."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from lookout.ingest import formats
from lookout.logs.loki_push import decode_push_json, decode_push_protobuf, encode_push_request
from lookout.metrics.remote_write import decode_write_request, encode_write_request
from lookout.pipeline.processors.redaction import RedactionProcessor, build
from lookout.pipeline.push_redaction import redact_push
from lookout.pipeline.request import RequestPipeline

EMAIL = "alice.doe@example.com"
CARD = "4111 1111 1111 1111"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
TOKEN = "ghp_" + "x1Y2" * 9
SECRETS = (EMAIL, CARD, JWT, TOKEN)
NS = 1_000_000_000
T0 = 1_700_000_000 * NS + 123


def make(cfg: dict[str, Any] | None, signal: str = "logs") -> RedactionProcessor:
    problems: list[str] = []
    p = build("redaction", cfg, signal=signal, path=f"pipeline.{signal}[0].redaction", problems=problems)
    assert problems == [] and p is not None
    return p


def mask(text: str) -> str:
    for s in SECRETS:
        text = text.replace(s, "****")
    return text


Streams = list[tuple[dict[str, str], list[tuple[int, str, dict[str, str]]]]]


def loki_streams() -> Streams:
    return [
        ({"app": "web", "user": EMAIL}, [
            (T0, f"login ok marker-1 for {EMAIL}", {"trace_id": "abc123", "note": f"card {CARD}"}),
            (T0 + 1, "plain line marker-2", {}),
            (T0 + 2, f"auth Bearer {JWT}", {"token": "s3cr3t-value"}),
        ]),
        ({"app": "api"}, [
            (T0 - 5 * NS - 7, f"pushed with {TOKEN}", {"trace_id": "def456"}),
            (T0 + 3, "nothing to see", {}),
        ]),
    ]


def expected_streams(streams: Streams, *, delete_unallowed: bool, allowed: tuple[str, ...] = ()) -> Streams:
    out: Streams = []
    for labels, entries in streams:
        new_entries = []
        for ts, line, md in entries:
            md2 = {}
            for k, v in md.items():
                if delete_unallowed and k not in allowed:
                    continue
                md2[k] = "****" if k == "token" else mask(v)
            new_entries.append((ts, mask(line), md2))
        out.append(({k: mask(v) for k, v in labels.items()}, new_entries))
    return out


def as_rows(batch) -> list[tuple]:
    """Entries of a LogBatch with their stream's labels, for comparison across stream ids."""
    rows = []
    for r in batch.entries.to_pylist():
        rows.append((tuple(sorted(batch.streams[r["stream_id"]].items())), r["ts"], r["line"],
                     tuple(sorted(dict(r["metadata"] or []).items()))))
    return sorted(rows)


def encode(streams: Streams, fmt: str) -> bytes:
    if fmt == formats.LOKI_PUSH:
        return encode_push_request(streams)
    return encode_push_request(streams, format="json")


def decode(fmt: str, body: bytes):
    return decode_push_protobuf(body) if fmt == formats.LOKI_PUSH else decode_push_json(body)


@pytest.mark.parametrize("fmt", [formats.LOKI_PUSH, formats.LOKI_JSON, "gzip"])
def test_loki_push_secrets_masked_rest_unchanged(fmt: str) -> None:
    streams = loki_streams()
    body = encode(streams, formats.LOKI_PUSH if fmt == formats.LOKI_PUSH else formats.LOKI_JSON)
    if fmt == "gzip":
        body, fmt = gzip.compress(body), formats.LOKI_JSON
    p = make({"allow_all_keys": True})
    out, items = redact_push(fmt, body, [p])
    assert items == 5
    got = as_rows(decode(fmt, out))
    want = as_rows(decode(fmt, encode(expected_streams(streams, delete_unallowed=False), fmt)))
    assert got == want
    assert not any(s.encode() in out for s in SECRETS)
    assert p.stats.get("redacted_values", rule="email") == 2  # a line and a label
    assert p.stats.get("redacted_values", rule="credit_card") == 1
    assert p.stats.get("redacted_values", rule="api_key") >= 2  # GitHub token + key "token"
    assert p.stats.get("received_items") == 5


@pytest.mark.parametrize("fmt", [formats.LOKI_PUSH, formats.LOKI_JSON])
def test_loki_metadata_keys_not_allowed_are_deleted(fmt: str) -> None:
    streams = loki_streams()
    p = make({"allowed_keys": ["trace_id"]})
    out, _ = redact_push(fmt, encode(streams, fmt), [p])
    want = expected_streams(streams, delete_unallowed=True, allowed=("trace_id",))
    assert as_rows(decode(fmt, out)) == as_rows(decode(fmt, encode(want, fmt)))
    assert p.stats.get("deleted_keys") == 2  # note, token; stream labels are never deleted


@pytest.mark.parametrize("fmt", [formats.LOKI_PUSH, formats.LOKI_JSON])
def test_unchanged_loki_body_is_byte_identical(fmt: str) -> None:
    streams = [({"app": "web"}, [(T0, "hello world", {"trace_id": "abc"}), (T0 + 1, "bye", {})])]
    body = encode(streams, fmt)
    out, items = redact_push(fmt, body, [make({"allow_all_keys": True})])
    assert out is body and items == 2


def test_apply_to_limits_places_and_chain_of_processors() -> None:
    streams = loki_streams()
    body = encode(streams, formats.LOKI_PUSH)
    only_bodies = make({"allow_all_keys": True, "apply_to": ["log_bodies"]})
    out, _ = redact_push(formats.LOKI_PUSH, body, [only_bodies])
    rows = as_rows(decode_push_protobuf(out))
    assert all(EMAIL in dict(r[0]).get("user", EMAIL) for r in rows)  # labels left alone
    assert not any(s in r[2] for r in rows for s in SECRETS)  # lines masked
    # a second processor masks what the first left
    out2, _ = redact_push(formats.LOKI_PUSH, out, [make({"allow_all_keys": True})])
    want = expected_streams(streams, delete_unallowed=False)
    assert as_rows(decode_push_protobuf(out2)) == as_rows(decode_push_protobuf(encode(want, formats.LOKI_PUSH)))


def test_hash_action_on_lines() -> None:
    body = encode([({"app": "x"}, [(T0, f"mail {EMAIL}", {})])], formats.LOKI_JSON)
    out, _ = redact_push(formats.LOKI_JSON, body, [make({"allow_all_keys": True, "action": "hash"})])
    line = json.loads(out)["streams"][0]["values"][0][1]
    assert EMAIL not in line and line.startswith("mail ") and len(line) == len("mail ") + 64


def rw_series(name: str = "http_requests_total") -> list:
    return [
        ({"__name__": name, "job": "api", "user": EMAIL}, np.array([1000, 2000]), np.array([1.0, 2.0])),
        ({"__name__": name, "job": "api", "path": "/x"}, np.array([1000]), np.array([3.0])),
    ]


def rw_rows(batch) -> list:
    series = batch.series.column("labels").to_pylist()
    samples = sorted((tuple(sorted((d["name"], d["value"]) for d in series[r["ref"]])), r["t"], r["v"])
                     for r in batch.samples.to_pylist())
    ex = sorted((tuple(sorted((d["name"], d["value"]) for d in series[r["ref"]])),
                 tuple(sorted((d["name"], d["value"]) for d in r["labels"])))
                for r in batch.exemplars.to_pylist())
    return [samples, ex]


def test_remote_write_label_values_masked_name_never() -> None:
    name = f"weird_{EMAIL}"  # a UTF-8 metric name that looks like an email: left alone
    exemplars = [[({"trace_id": "abc", "user": EMAIL}, 1.0, 1500)], []]
    body = encode_write_request(rw_series(name), exemplars=exemplars)
    p = make({"allow_all_keys": True}, signal="metrics")
    out, items = redact_push(formats.PROM_REMOTE_WRITE, body, [p])
    assert items == 4  # 3 samples + 1 exemplar
    masked = [({k: (v if k == "__name__" else mask(v)) for k, v in lb.items()}, t, v) for lb, t, v in rw_series(name)]
    want = encode_write_request(masked, exemplars=[[({"trace_id": "abc", "user": "****"}, 1.0, 1500)], []])
    assert rw_rows(decode_write_request(out)) == rw_rows(decode_write_request(want))
    got = decode_write_request(out)
    assert any(d["value"] == name for s in got.series.column("labels").to_pylist() for d in s)
    assert p.stats.get("redacted_values", rule="email") == 2


def test_unchanged_remote_write_is_byte_identical() -> None:
    body = encode_write_request([({"__name__": "up", "job": "x"}, np.array([1]), np.array([1.0]))])
    out, items = redact_push(formats.PROM_REMOTE_WRITE, body, [make({}, signal="metrics")])
    assert out is body and items == 1


def test_request_pipeline_process_push() -> None:
    pipe = RequestPipeline("logs", [make({"allow_all_keys": True})])
    assert pipe.redacts_push
    body = encode(loki_streams(), formats.LOKI_JSON)
    out, items = pipe.process_push(formats.LOKI_JSON, body, "t")
    assert items == 5 and out is not None and EMAIL.encode() not in out
    assert not RequestPipeline("logs", []).redacts_push


# ------------------------------------------------------------------------------------------------
# end to end: the real server, a Loki JSON push with PII, SIGTERM, then grep the data dir


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _haystacks(root: Path) -> list[bytes]:
    out = []
    for p in _files(root):
        out.append(p.read_bytes())
        if p.suffix == ".parquet":
            out.append(repr(pq.read_table(p).to_pylist()).encode())
    return out


def test_e2e_loki_push_secrets_never_reach_disk(lookout_factory, tmp_path: Path) -> None:
    node = lookout_factory({"pipeline": {"logs": [{"redaction": {"allow_all_keys": True}}]}},
                           data_dir=tmp_path / "node")
    now = time.time_ns()
    marker = "marker-7f3a9c"
    body = json.dumps({"streams": [{
        "stream": {"app": "shop", "customer": EMAIL},
        "values": [[str(now), f"{marker} paid with {CARD} by {EMAIL} using {TOKEN}",
                    {"session": JWT, "order": "o-1"}]],
    }]}).encode()
    r = httpx.post(f"{node.http}/loki/api/v1/push", content=body,
                   headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 204, r.text
    assert node.terminate() == 0
    hay = _haystacks(tmp_path / "node")
    assert any(marker.encode() in h for h in hay), "the non-secret marker was not stored at all"
    for secret in (*SECRETS, "4111111111111111"):
        found = [h for h in hay if secret.encode() in h]
        assert not found, f"{secret!r} reached the disk"


def test_chain_second_processor_sees_only_kept_metadata() -> None:
    streams = loki_streams()
    first = make({"allowed_keys": ["trace_id", "note"], "detectors": []})
    second = make({"allow_all_keys": True})
    out, _ = redact_push(formats.LOKI_PUSH, encode(streams, formats.LOKI_PUSH), [first, second])
    want = expected_streams(streams, delete_unallowed=True, allowed=("trace_id", "note"))
    assert as_rows(decode_push_protobuf(out)) == as_rows(decode_push_protobuf(encode(want, formats.LOKI_PUSH)))
    assert first.stats.get("deleted_keys") == 1 and first.stats.total("redacted_values") == 0
