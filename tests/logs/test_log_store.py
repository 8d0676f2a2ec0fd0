"""LogStore: head + blocks, pruning, limits, compaction, retention, isolation, flush failures."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest

from lookout.config import Storage
from lookout.logs import codec
from lookout.logs.model import ENTRY_SCHEMA, LabelMatcher, MemoryLogQuerier, SelectHints, stream_id
from lookout.logs.schema import LogBatch, LogLimits
from lookout.logs.store import LogStore
from lookout.selfmon.registry import Registry
from lookout.storage.blocks import BlockStore

NOW = time.time_ns()
BASE = NOW - 3600 * 10**9
ALL = (0, 2**62)
MD = ENTRY_SCHEMA.field("metadata").type


def batch(labels: dict[str, str], entries: list[tuple[int, str, list[tuple[str, str]]]]) -> LogBatch:
    sid = stream_id(labels)
    t = pa.table({"stream_id": pa.array([sid] * len(entries), pa.uint64()),
                  "ts": pa.array([e[0] for e in entries], pa.int64()),
                  "line": pa.array([e[1] for e in entries], pa.string()),
                  "metadata": pa.array([e[2] for e in entries], MD)}, schema=ENTRY_SCHEMA)
    return LogBatch({sid: dict(labels)}, t)


def tid(i: int) -> str:
    return f"{i:032x}"


def lines(entries: list[tuple[int, str]]) -> list[tuple[int, str, list]]:
    return [(ts, line, []) for ts, line in entries]


@pytest.fixture
def make_store(tmp_path):
    def make(**kw) -> LogStore:
        cfg = Storage(row_group_rows=kw.pop("row_group_rows", 4), compaction_window=kw.pop("window", 86400.0),
                      retention=kw.pop("retention", 30 * 86400.0))
        return LogStore(BlockStore(tmp_path / "data", fsync=False), cfg, kw.pop("registry", Registry()), **kw)
    return make


def committed() -> tuple[list[int], callable]:
    offsets: list[int] = []
    return offsets, offsets.append


def test_codec_round_trip_keeps_metadata_exactly():
    md = [[("a", "1"), ("trace_id", tid(7)), ("span_id", "00000000000000ff"), ("observed_timestamp", str(BASE + 5))],
          [("trace_id", "NOT-HEX"), ("observed_timestamp", "007")],
          [("trace_id", tid(1)), ("trace_id", tid(2))],
          [("trace_id", ""), ("span_id", "abc")], []]
    b = batch({"a": "b"}, [(BASE + i, f"l{i}", m) for i, m in enumerate(md)])
    enc = codec.encode(b.entries, b.streams)
    assert enc.column("trace_id").null_count == 4  # only the canonical, single trace_id moved out
    assert enc.column("observed_delta").to_pylist()[0] == 5
    assert codec.decode(enc).equals(b.entries)


def test_head_then_blocks_merge_and_dedupe(make_store):
    store = make_store()
    app = {"app": "api"}
    store.append("t", batch(app, lines([(BASE + 1, "one"), (BASE + 2, "two")])), offset_hi=10)
    offsets, commit = committed()
    res = store.flush(commit)
    assert offsets == [10] and res.offset_hi == 10 and len(res.blocks) == 1
    store.append("t", batch(app, lines([(BASE + 3, "three"), (BASE + 2, "two")])), offset_hi=20)  # a replayed dup
    sel = store.querier("t").select([LabelMatcher("app", "=", "api")], *ALL)
    assert sel.entries.column("line").to_pylist() == ["one", "two", "three"]
    assert sel.streams == {stream_id(app): app}
    assert sel.entries.schema == ENTRY_SCHEMA


def test_matches_memory_querier(make_store):
    store, mem = make_store(), MemoryLogQuerier()
    rng = np.random.default_rng(1)
    for k in range(3):
        for svc in ("a", "b", "c"):
            labels = {"service_name": svc, "env": "prod" if svc != "c" else "dev"}
            ts = np.sort(rng.integers(BASE, BASE + 10**9, 7))
            md = [[("trace_id", tid(int(x) % 5)), ("level", "info")] for x in ts]
            entries = [(int(t), f"{svc} line {int(t) % 1000} {k}", m) for t, m in zip(ts, md, strict=True)]
            store.append("t", batch(labels, entries))
            mem.push(labels, ts, [e[1] for e in entries], [dict(m) for m in md])
        if k < 2:
            store.flush(lambda _o: None)
    q = store.querier("t")
    for matchers in ([LabelMatcher("env", "=", "prod")], [LabelMatcher("service_name", "=~", "a|c")],
                     [LabelMatcher("service_name", "!=", "a"), LabelMatcher("env", "!~", "dev")]):
        for hints in (None, SelectHints(contains=["line 1"]), SelectHints(trace_id=tid(3))):
            got = q.select(matchers, BASE, BASE + 10**9, hints)
            want = mem.select(matchers, BASE, BASE + 10**9)
            w = want.entries
            if hints and hints.contains:
                w = w.filter(pa.compute.match_substring(w.column("line"), "line 1"))
            if hints and hints.trace_id:
                w = w.filter(pa.array([dict(m).get("trace_id") == tid(3) for m in w.column("metadata").to_pylist()]))
            assert got.entries.select(["stream_id", "ts", "line"]).equals(w.select(["stream_id", "ts", "line"]))
            assert got.entries.column("metadata").to_pylist() == w.column("metadata").to_pylist()
    assert q.label_names(*ALL) == ["env", "service_name"]
    assert q.label_values("service_name", *ALL, [LabelMatcher("env", "=", "prod")]) == ["a", "b"]
    assert set(q.streams([LabelMatcher("env", "=", "dev")], *ALL)) == {stream_id({"service_name": "c", "env": "dev"})}


def test_trace_id_pruning_skips_blocks_and_row_groups(make_store):
    registry = Registry()
    store = make_store(registry=registry, row_group_rows=8)
    for blk in range(5):
        entries = [(BASE + blk * 1000 + i, f"b{blk} e{i}", [("trace_id", tid(blk * 100 + i))]) for i in range(32)]
        store.append("t", batch({"app": "x"}, entries))
        store.flush(lambda _o: None)
    q = store.querier("t")
    sel = q.select([LabelMatcher("app", "=", "x")], *ALL, SelectHints(trace_id=tid(317)))
    assert sel.entries.column("line").to_pylist() == ["b3 e17"]
    # 5 blocks x 4 row groups: the one holding the id, plus at most one bloom false positive (~1 %)
    assert 1 <= q.blocks_read <= 2 and 1 <= q.row_groups_read <= 2
    skipped = registry.counter("lookout_logs_blocks_skipped_total", "")
    assert skipped.get(reason="trace_id") == 5 - q.blocks_read
    q2 = store.querier("t")
    assert q2.select([LabelMatcher("app", "=", "x")], *ALL, SelectHints(trace_id=tid(99999))).entries.num_rows == 0
    assert q2.row_groups_read <= 1
    q3 = store.querier("t")
    assert q3.select([LabelMatcher("app", "=", "x")], *ALL).entries.num_rows == 160
    assert q3.row_groups_read == 20


def test_stream_selection_reads_only_its_row_groups(make_store):
    store = make_store(row_group_rows=4)
    for svc in ("a", "b", "c", "d"):
        store.append("t", batch({"svc": svc}, lines([(BASE + i, f"{svc}{i}") for i in range(8)])))
    store.flush(lambda _o: None)
    q = store.querier("t")
    sel = q.select([LabelMatcher("svc", "=", "c")], *ALL)
    assert sel.entries.num_rows == 8 and q.row_groups_read == 2  # of 8
    q = store.querier("t")
    assert q.select([LabelMatcher("svc", "=", "zzz")], *ALL).entries.num_rows == 0
    assert q.blocks_read == 0


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_limit_and_direction_stop_early(make_store, direction):
    store = make_store(row_group_rows=4)
    for blk in range(6):
        store.append("t", batch({"app": "x"}, lines([(BASE + blk * 100 + i, f"{blk}-{i}") for i in range(5)])))
        store.flush(lambda _o: None)
    store.append("t", batch({"app": "x"}, lines([(BASE + 1000, "head")])))
    q = store.querier("t")
    sel = q.select([LabelMatcher("app", "=", "x")], *ALL, SelectHints(limit=3, direction=direction))
    got = sel.entries.column("line").to_pylist()
    if direction == "backward":
        assert got == ["5-3", "5-4", "head"] and q.blocks_read == 1
    else:
        assert got == ["0-0", "0-1", "0-2"] and q.blocks_read == 1
    assert sel.entries.column("ts").to_pylist() == sorted(sel.entries.column("ts").to_pylist())


def test_time_range_is_start_inclusive_end_exclusive(make_store):
    store = make_store()
    store.append("t", batch({"app": "x"}, lines([(BASE + i, str(i)) for i in range(10)])))
    store.flush(lambda _o: None)
    sel = store.querier("t").select([LabelMatcher("app", "=", "x")], BASE + 2, BASE + 5)
    assert sel.entries.column("line").to_pylist() == ["2", "3", "4"]


def test_tenant_isolation(make_store):
    store = make_store()
    store.append("t1", batch({"app": "x"}, lines([(BASE + 1, "secret-1")])))
    store.append("t2", batch({"app": "x"}, lines([(BASE + 2, "secret-2")])))
    for _ in range(2):
        for tenant, other in (("t1", "secret-2"), ("t2", "secret-1")):
            q = store.querier(tenant)
            got = q.select([LabelMatcher("app", "=", "x")], *ALL).entries.column("line").to_pylist()
            assert other not in got and len(got) == 1
            assert store.stats(tenant, [], *ALL)["entries"] == 1
        store.flush(lambda _o: None)
    assert {m.tenant for m in store.blocks.list_blocks(None, "logs")} == {"t1", "t2"}
    assert store.querier("nobody").select([], *ALL).entries.num_rows == 0


def test_flush_failure_puts_data_back(make_store):
    store = make_store()
    store.append("t", batch({"app": "x"}, lines([(BASE + 1, "a")])), offset_hi=5)

    def boom(_offset: int) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.flush(boom)
    store.append("t", batch({"app": "x"}, lines([(BASE + 2, "b")])), offset_hi=9)
    assert store.querier("t").select([], *ALL).entries.column("line").to_pylist() == ["a", "b"]
    offsets, commit = committed()
    store.flush(commit)
    assert offsets == [9]
    assert store.head_bytes() == 0 and store.flush(commit) is None
    assert store.querier("t").select([], *ALL).entries.column("line").to_pylist() == ["a", "b"]


def test_flush_due_and_offsets_without_data(make_store):
    store = make_store()
    assert not store.flush_due()
    store.append("t", LogBatch.empty(), offset_hi=3)  # records that decoded to nothing
    store.cfg.flush_interval = 0.0
    assert store.flush_due()
    offsets, commit = committed()
    res = store.flush(commit)
    assert offsets == [3] and res.blocks == []


def test_compaction_merges_and_dedupes(make_store):
    store = make_store(row_group_rows=4)
    for i in range(3):
        store.append("t", batch({"app": "x"}, lines([(BASE + i, f"l{i}"), (BASE + 10, "dup")])), offset_hi=i + 1)
        store.flush(lambda _o: None)
    before = store.querier("t").select([], *ALL, SelectHints(trace_id=None)).entries.column("line").to_pylist()
    out = store.compact()
    assert len(out) == 1 and len(store.blocks.list_blocks("t", "logs")) == 1
    assert out[0].rows == 4
    after = store.querier("t").select([], *ALL).entries.column("line").to_pylist()
    assert before == after == ["l0", "l1", "l2", "dup"]


def test_retention_drops_old_blocks_only_for_logs(make_store):
    store = make_store(retention=3600.0)
    store.append("t", batch({"app": "x"}, lines([(NOW - 5 * 3600 * 10**9, "old")])))
    store.flush(lambda _o: None)
    store.append("t", batch({"app": "x"}, lines([(NOW - 60 * 10**9, "new")])))
    store.flush(lambda _o: None)
    assert store.apply_retention() == 1
    assert store.querier("t").select([], *ALL).entries.column("line").to_pylist() == ["new"]


def test_append_limits_refuse_and_count(make_store):
    registry = Registry()
    store = make_store(registry=registry, limits=LogLimits(max_streams_per_tenant=1, max_line_bytes=5))
    kept = store.append("t", batch({"app": "x"}, lines([(BASE, "ok"), (BASE + 1, "too long line"),
                                                         (NOW - 30 * 86400 * 10**9, "old"),
                                                         (NOW + 86400 * 10**9, "future")])))
    assert kept == 1
    assert store.append("t", batch({"app": "y"}, lines([(BASE, "new")]))) == 0
    refused = registry.counter("lookout_logs_entries_refused_total", "")
    assert {r: refused.get(tenant="t", reason=r) for r in
            ("line_too_long", "greater_than_max_sample_age", "too_far_in_future", "stream_limit")} == {
        "line_too_long": 1, "greater_than_max_sample_age": 1, "too_far_in_future": 1, "stream_limit": 1}
    b = batch({"app": "x"}, lines([(BASE + 2, "x")]))
    b.refused = {"line_too_long": 2}
    store.append("t", b)
    assert refused.get(tenant="t", reason="line_too_long") == 3
    text = registry.render()
    assert "lookout_logs_entries_appended_total" in text and "lookout_logs_head_bytes" in text


def test_stats_and_volume(make_store):
    store = make_store()
    store.append("t", batch({"app": "a", "env": "p"}, lines([(BASE + 1, "12345"), (BASE + 2, "1")])))
    store.append("t", batch({"app": "b", "env": "p"}, lines([(BASE + 1, "123")])))
    store.flush(lambda _o: None)
    store.append("t", batch({"app": "a", "env": "p"}, lines([(BASE + 3, "12")])))
    assert store.stats("t", [LabelMatcher("env", "=", "p")], *ALL) == {
        "streams": 2, "chunks": 3, "entries": 4, "bytes": 11}
    vol = store.volume("t", [LabelMatcher("env", "=", "p")], *ALL, target_labels=["app"])
    assert vol == [{"metric": {"app": "a"}, "volume": 8}, {"metric": {"app": "b"}, "volume": 3}]
    assert store.volume("t", [LabelMatcher("env", "=", "p")], *ALL, limit=1) == [
        {"metric": {"env": "p"}, "volume": 11}]
    assert store.volume("t", [], *ALL, aggregate_by="labels") == [
        {"metric": {"app": ""}, "volume": 11}, {"metric": {"env": ""}, "volume": 11}]


def test_otlp_to_store_end_to_end(make_store):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from lookout.logs.otlp_logs import decode_logs

    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = "svc"
    sl = rl.scope_logs.add()
    for i in range(20):
        lr = sl.log_records.add(time_unix_nano=BASE + i, observed_time_unix_nano=BASE + i + 7)
        lr.body.string_value = f"request {i}"
        lr.trace_id = bytes([i + 1]) * 16
        lr.span_id = bytes([i + 1]) * 8
    b = decode_logs(req.SerializeToString())
    store = make_store()
    store.append("t", b)
    store.flush(lambda _o: None)
    q = store.querier("t")
    sel = q.select([LabelMatcher("service_name", "=", "svc")], *ALL, SelectHints(trace_id=(bytes([5]) * 16).hex()))
    assert sel.entries.column("line").to_pylist() == ["request 4"]
    md = dict(sel.entries.column("metadata")[0].as_py())
    assert md["observed_timestamp"] == str(BASE + 11) and md["span_id"] == (bytes([5]) * 8).hex()
    full = q.select([], *ALL)
    assert full.entries.equals(b.entries.sort_by([("stream_id", "ascending"), ("ts", "ascending")]))
