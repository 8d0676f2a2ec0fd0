"""Remote write 1.0 decoding/encoding: round-trips, stale markers and every error path."""

from __future__ import annotations

import cramjam
import numpy as np
import pytest

from lookout.metrics import prompb
from lookout.metrics.batch import EXEMPLAR_SCHEMA, SAMPLE_SCHEMA, SERIES_SCHEMA, MetricMetadata
from lookout.metrics.model import STALE_NAN, STALE_NAN_BITS, is_stale
from lookout.metrics.remote_write import (
    REFUSED_NATIVE_HISTOGRAMS,
    RemoteWriteError,
    decode_write_request,
    decode_write_request_counted,
    encode_write_request,
    encode_write_request_raw,
)


def _request(*series: list[tuple[bytes, bytes]], samples=((1.0, 1000),)) -> bytes:
    """A raw (uncompressed) WriteRequest with labels exactly as given, built with upb."""
    req = prompb.message_class("WriteRequest")()
    for labels in series:
        ts = req.timeseries.add()
        for name, value in labels:
            ts.labels.add(name=name, value=value)
        for v, t in samples:
            ts.samples.add(value=v, timestamp=t)
    return req.SerializeToString()


def _as_dict(batch) -> dict[tuple, list[tuple[int, float]]]:
    series = [tuple((lb["name"], lb["value"]) for lb in row["labels"]) for row in batch.series.to_pylist()]
    out: dict[tuple, list] = {s: [] for s in series}
    for row in batch.samples.to_pylist():
        out[series[row["ref"]]].append((row["t"], row["v"]))
    return out


def test_round_trip_many_series() -> None:
    rng = np.random.default_rng(1)
    series = []
    for i in range(200):
        n = int(rng.integers(0, 20))
        t = np.sort(rng.integers(-(2**40), 2**45, n))
        v = rng.normal(size=n) * 10.0 ** rng.integers(-5, 5)
        series.append(({"__name__": f"m{i % 7}", "idx": str(i), "zone": "ü-ß"}, t, v))
    meta = [MetricMetadata("m0", "counter", "seconds", "a help"), MetricMetadata("m1", "summary")]
    batch = decode_write_request(encode_write_request(series, meta))
    assert batch.series.schema == SERIES_SCHEMA and batch.samples.schema == SAMPLE_SCHEMA
    assert batch.num_samples == sum(len(t) for _, t, _ in series)
    got = _as_dict(batch)
    for labels, t, v in series:
        key = tuple(sorted(labels.items()))
        assert got[key] == list(zip(t.tolist(), v.tolist(), strict=True))
    assert batch.metadata == meta


def test_stale_markers_and_special_floats_survive_bit_exactly() -> None:
    values = np.array([STALE_NAN, np.nan, -0.0, np.inf, -np.inf, 5e-324, 0.0])
    t = np.arange(len(values), dtype=np.int64)
    batch = decode_write_request(encode_write_request([({"__name__": "x"}, t, values)]))
    v = batch.samples.column("v").to_numpy()
    assert v.view(np.uint64).tolist() == values.view(np.uint64).tolist()
    assert is_stale(v).tolist() == [True] + [False] * 6
    assert v.view(np.uint64)[0] == STALE_NAN_BITS


def test_encoder_matches_upb_decoding() -> None:
    body = encode_write_request(
        [({"b": "2", "__name__": "m", "a": "1", "empty": ""}, np.array([5, 2**62]), np.array([1.5, STALE_NAN]))],
        [MetricMetadata("m", "histogram", "bytes", "h")],
    )
    req = prompb.message_class("WriteRequest").FromString(bytes(cramjam.snappy.decompress_raw(body)))
    (ts,) = req.timeseries
    assert [(lb.name, lb.value) for lb in ts.labels] == [(b"__name__", b"m"), (b"a", b"1"), (b"b", b"2")]
    assert [s.timestamp for s in ts.samples] == [5, 2**62]
    assert req.metadata[0].type == prompb.METRIC_TYPES["histogram"]
    assert req.metadata[0].unit == b"bytes"


def test_empty_request() -> None:
    batch = decode_write_request(encode_write_request([]))
    assert batch.num_samples == 0 and batch.series.num_rows == 0


def test_uncompressed_flag() -> None:
    raw = encode_write_request_raw([({"__name__": "up"}, np.array([1]), np.array([2.0]))])
    assert decode_write_request(raw, compressed=False).num_samples == 1


def test_unsorted_labels_are_sorted_like_prometheus() -> None:
    raw = _request([(b"zone", b"a"), (b"__name__", b"up"), (b"job", b"j")])
    batch = decode_write_request(raw, compressed=False)
    assert [lb["name"] for lb in batch.series.column("labels")[0].as_py()] == ["__name__", "job", "zone"]


def test_repeated_series_are_merged() -> None:
    raw = _request([(b"__name__", b"up"), (b"a", b"1")], [(b"a", b"1"), (b"__name__", b"up")], [(b"__name__", b"x")])
    batch = decode_write_request(raw, compressed=False)
    assert batch.series.num_rows == 2
    assert batch.samples.column("ref").to_pylist() == [0, 0, 1]


def test_empty_label_values_are_dropped() -> None:
    raw = _request([(b"__name__", b"up"), (b"a", b""), (b"b", b"x")])
    batch = decode_write_request(raw, compressed=False)
    assert batch.series.column("labels")[0].as_py() == [
        {"name": "__name__", "value": "up"},
        {"name": "b", "value": "x"},
    ]


def test_exemplars_and_native_histograms() -> None:
    req = prompb.message_class("WriteRequest")()
    ts = req.timeseries.add()
    ts.labels.add(name=b"__name__", value=b"req_total")
    ts.samples.add(value=3, timestamp=10)
    ex = ts.exemplars.add(value=0.25, timestamp=9)
    ex.labels.add(name=b"trace_id", value=b"0af7651916cd43dd8448eb211c80319c")
    ts.histograms.add(count_int=3, sum=1.0, schema=0, timestamp=10)
    batch, refused = decode_write_request_counted(req.SerializeToString(), compressed=False)
    assert batch.exemplars.schema == EXEMPLAR_SCHEMA
    assert batch.exemplars.to_pylist() == [
        {"ref": 0, "t": 9, "v": 0.25, "labels": [{"name": "trace_id", "value": "0af7651916cd43dd8448eb211c80319c"}]}
    ]
    assert refused == {REFUSED_NATIVE_HISTOGRAMS: 1}
    assert batch.num_samples == 1


@pytest.mark.parametrize(
    ("body", "compressed", "needle"),
    [
        (b"\xff\xff\xff\xff\xff", True, "snappy"),
        (b"\x10garbage-not-snappy", True, "snappy"),
        (b"", True, "snappy"),
        (b"\xff\xff\xff\xff\x7f", True, "over the limit"),
        (bytes(cramjam.snappy.compress_raw(b"\x0a\x05\x0a\x03")), True, "invalid protobuf prometheus.WriteRequest"),
        (b"\x0a\xff", False, "invalid protobuf"),
    ],
)
def test_transport_errors(body: bytes, compressed: bool, needle: str) -> None:
    with pytest.raises(RemoteWriteError, match=needle):
        decode_write_request(body, compressed=compressed)


@pytest.mark.parametrize(
    ("labels", "needle"),
    [
        ([(b"job", b"a")], r"timeseries\[1\]: no __name__ label"),
        ([(b"__name__", b""), (b"job", b"a")], r"timeseries\[1\]: empty metric name"),
        ([(b"__name__", b"up"), (b"job", b"a"), (b"job", b"b")], r"timeseries\[1\]: duplicate label name 'job'"),
        ([(b"__name__", b"up"), (b"", b"a")], r"timeseries\[1\]: empty label name"),
        ([(b"__name__", b"up"), (b"job", b"\xff\xfe")], r"timeseries\[1\]\.labels\[1\]\.value is not valid UTF-8"),
        ([(b"__name__", b"up"), (b"\xc3", b"x")], r"timeseries\[1\]\.labels\[1\]\.name is not valid UTF-8"),
    ],
)
def test_label_errors_name_the_series_and_problem(labels, needle: str) -> None:
    raw = _request([(b"__name__", b"fine")], labels)
    with pytest.raises(RemoteWriteError, match=needle):
        decode_write_request(raw, compressed=False)
    with pytest.raises(RemoteWriteError, match=needle):
        decode_write_request(bytes(cramjam.snappy.compress_raw(raw)))


def test_invalid_utf8_metadata() -> None:
    req = prompb.message_class("WriteRequest")()
    req.metadata.add(type=1, metric_family_name=b"\xff")
    with pytest.raises(RemoteWriteError, match=r"metadata\[0\]"):
        decode_write_request(req.SerializeToString(), compressed=False)


def test_encoder_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="as many values"):
        encode_write_request([({"__name__": "x"}, np.array([1, 2]), np.array([1.0]))])
