"""MetricsStore: head + blocks, matchers, ingest rules, limits, flush protocol, compaction,
retention and tenant isolation. In-process and small, so the whole file runs in seconds."""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pytest

from lookout.config import Storage
from lookout.metrics.batch import EXEMPLAR_SCHEMA, LABELS, SAMPLE_SCHEMA, SERIES_SCHEMA, MetricBatch, MetricMetadata
from lookout.metrics.model import STALE_NAN, Matcher, MemoryQuerier, is_stale
from lookout.metrics.store import MetricsLimits, MetricsStore
from lookout.selfmon.registry import Registry
from lookout.storage.blocks import BlockStore

DAY_MS = 86_400_000


def make_batch(series: list[dict[str, str]], samples: list[tuple[int, int, float]],
               exemplars: list[tuple[int, int, float, dict[str, str]]] | None = None,
               metadata: list[MetricMetadata] | None = None) -> MetricBatch:
    labels = [[{"name": k, "value": v} for k, v in sorted(s.items())] for s in series]
    st = pa.table({"labels": pa.array(labels, LABELS)}, schema=SERIES_SCHEMA)
    refs, ts, vs = (list(x) for x in zip(*samples, strict=True)) if samples else ([], [], [])
    sm = pa.table({"ref": pa.array(refs, pa.uint32()), "t": pa.array(ts, pa.int64()),
                   "v": pa.array(vs, pa.float64())}, schema=SAMPLE_SCHEMA)
    ex = EXEMPLAR_SCHEMA.empty_table()
    if exemplars:
        ex = pa.table({"ref": pa.array([e[0] for e in exemplars], pa.uint32()),
                       "t": pa.array([e[1] for e in exemplars], pa.int64()),
                       "v": pa.array([e[2] for e in exemplars], pa.float64()),
                       "labels": pa.array([[{"name": k, "value": v} for k, v in sorted(e[3].items())]
                                           for e in exemplars], LABELS)}, schema=EXEMPLAR_SCHEMA)
    return MetricBatch(st, sm, ex, metadata or [])


@pytest.fixture
def registry() -> Registry:
    return Registry()


def new_store(tmp_path, registry: Registry | None = None, **limits) -> MetricsStore:
    cfg = Storage(retention=3600.0, compaction_min_blocks=2, row_group_rows=4)  # tiny row groups: pruning
    return MetricsStore(BlockStore(tmp_path / "data", fsync=False), cfg, registry or Registry(),
                        limits=MetricsLimits(**limits))


SERIES = [
    {"__name__": "up", "job": "api", "instance": "a:1"},
    {"__name__": "up", "job": "web", "instance": "b:2"},
    {"__name__": "up", "job": "api"},
    {"__name__": "http_requests_total", "job": "api", "code": "200"},
    {"__name__": "http_requests_total", "job": "web", "code": "500", "instance": "b:2"},
]

MATCHER_CASES = [
    [Matcher("__name__", "=", "up")],
    [Matcher("__name__", "=", "up"), Matcher("job", "!=", "api")],
    [Matcher("job", "=~", "ap.*")],
    [Matcher("job", "=~", "api|web"), Matcher("__name__", "!~", "up")],
    [Matcher("instance", "=", "")],  # no instance label
    [Matcher("instance", "!=", "")],  # has an instance label
    [Matcher("instance", "=~", "a:1|")],  # a:1 or absent
    [Matcher("instance", "!~", "b.*")],  # absent labels match a negative regex
    [Matcher("code", "=~", "[45]..")],
    [Matcher("__name__", "=", "nope")],
    [Matcher("job", "!=", "zzz")],
    [Matcher("__name__", "=~", "UP")],  # regexes are case-sensitive and anchored
    [Matcher("__name__", "=~", "u")],
]


def load(store: MetricsStore, tenant: str = "t1", t0: int = 1000, n: int = 5) -> MemoryQuerier:
    mem = MemoryQuerier()
    samples = [(i, t0 + k * 15_000, float(i * 100 + k)) for i in range(len(SERIES)) for k in range(n)]
    store.append(tenant, make_batch(SERIES, samples))
    for i, s in enumerate(SERIES):
        ts = np.array([t0 + k * 15_000 for k in range(n)], np.int64)
        mem.add(s, ts, np.array([i * 100 + k for k in range(n)], np.float64))
    return mem


def as_dict(series) -> dict[tuple, tuple[list[int], list[float]]]:
    return {tuple(sorted(s.labels.items())): (s.t.tolist(), s.v.tolist()) for s in series}


@pytest.mark.parametrize("where", ["head", "blocks"])
def test_select_matches_memory_querier(tmp_path, where):
    store = new_store(tmp_path)
    mem = load(store)
    if where == "blocks":
        assert store.flush(lambda off: None) is not None
        assert store.head.tenants["t1"].live == []
    q = store.querier("t1")
    for ms in MATCHER_CASES:
        assert as_dict(q.select(ms, 0, 10**9)) == as_dict(mem.select(ms, 0, 10**9)), ms
        assert q.series([ms], 0, 10**9) == mem.series([ms], 0, 10**9), ms
    # time range cuts inside a series
    got = q.select([Matcher("__name__", "=", "up")], 16_000, 31_000)
    assert all(s.t.tolist() == [16_000, 31_000] for s in got) and len(got) == 3
    assert q.label_names([], 0, 10**9) == ["__name__", "code", "instance", "job"]
    assert q.label_values("job", [], 0, 10**9) == ["api", "web"]
    assert q.label_values("instance", [[Matcher("__name__", "=", "up")]], 0, 10**9) == ["a:1", "b:2"]
    assert q.label_names([[Matcher("code", "=", "200")]], 0, 10**9) == ["__name__", "code", "job"]


def test_head_and_block_merge_after_flush(tmp_path):
    store = new_store(tmp_path, out_of_order_window_ms=10**9)
    s = [{"__name__": "m", "x": "1"}]
    store.append("t1", make_batch(s, [(0, t, float(t)) for t in range(1, 6)]), offset_hi=10)
    commits: list[int] = []
    res = store.flush(commits.append)
    assert commits == [10] and len(res.blocks) == 1 and res.blocks[0].rows == 5
    store.append("t1", make_batch(s, [(0, t, float(t)) for t in range(6, 11)]), offset_hi=20)
    store.append("t1", make_batch(s, [(0, 3, 333.0)]), offset_hi=21)  # in the block; the head wins
    (got,) = store.querier("t1").select([Matcher("x", "=", "1")], 0, 100)
    assert got.t.tolist() == list(range(1, 11))
    assert got.v.tolist() == [1, 2, 333, 4, 5, 6, 7, 8, 9, 10]
    store.flush(commits.append)
    assert commits == [10, 21]
    (got,) = store.querier("t1").select([Matcher("x", "=", "1")], 0, 100)
    assert got.v.tolist() == [1, 2, 333, 4, 5, 6, 7, 8, 9, 10]  # the newer block wins too


def test_out_of_order_and_duplicates_are_refused_by_reason(tmp_path, registry):
    store = new_store(tmp_path, registry)
    s = [{"__name__": "m"}]
    assert store.append("t1", make_batch(s, [(0, 3000, 1.0), (0, 1000, 0.5), (0, 2000, 0.7)])).accepted == 3
    st = store.append("t1", make_batch(s, [(0, 2500, 9.0)]))
    assert st.accepted == 0 and st.refused == {"out_of_order": 1}
    st = store.append("t1", make_batch(s, [(0, 3000, 1.0)]))
    assert st.accepted == 0 and st.ignored == 1 and st.refused == {}
    st = store.append("t1", make_batch(s, [(0, 3000, 2.0), (0, 4000, 4.0), (0, 4000, 4.0), (0, 4000, 5.0)]))
    assert st.accepted == 1 and st.ignored == 1 and st.refused == {"duplicate_sample_for_timestamp": 2}
    store.flush(lambda off: None)
    st = store.append("t1", make_batch(s, [(0, 1500, 1.0), (0, 5000, 5.0)]))
    assert st.accepted == 1 and st.refused == {"too_old": 1}  # 1500 is already in a block
    (got,) = store.querier("t1").select([Matcher("__name__", "=", "m")], 0, 10_000)
    assert got.t.tolist() == [1000, 2000, 3000, 4000, 5000] and got.v.tolist() == [0.5, 0.7, 1.0, 4.0, 5.0]
    text = registry.render()
    assert 'lookout_metrics_samples_refused_total{reason="duplicate_sample_for_timestamp",tenant="t1"} 2' in text
    assert 'lookout_metrics_samples_refused_total{reason="out_of_order",tenant="t1"} 1' in text


def test_out_of_order_window(tmp_path):
    store = new_store(tmp_path, out_of_order_window_ms=10_000)
    s = [{"__name__": "m"}]
    store.append("t1", make_batch(s, [(0, 20_000, 2.0)]))
    store.flush(lambda off: None)
    st = store.append("t1", make_batch(s, [(0, 15_000, 1.5), (0, 5_000, 0.5), (0, 20_000, 2.0)]))
    assert st.accepted == 1 and st.ignored == 1 and st.refused == {"too_old": 1}
    (got,) = store.querier("t1").select([Matcher("__name__", "=", "m")], 0, 10**6)
    assert got.t.tolist() == [15_000, 20_000]  # merged in time order across head and block


def test_stale_markers_and_ancient_timestamps_survive(tmp_path):
    store = new_store(tmp_path)
    nan_bits = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
    st = store.append("t1", make_batch([{"__name__": "m"}], [(0, 0, 1.0), (0, 15, STALE_NAN), (0, 30, nan_bits)]))
    assert st.accepted == 3
    for flush in (False, True):
        if flush:
            store.flush(lambda off: None)
        (got,) = store.querier("t1").select([Matcher("__name__", "=", "m")], 0, 100)
        assert got.t.tolist() == [0, 15, 30]
        assert is_stale(got.v).tolist() == [False, True, False]
        assert got.v.view(np.uint64)[2] == 0x7FF8000000000001


def test_series_limit(tmp_path):
    store = new_store(tmp_path, max_active_series_per_tenant=2)
    st = store.append("t1", make_batch(SERIES[:3], [(0, 1, 1.0), (1, 1, 1.0), (2, 1, 1.0)]))
    assert st.accepted == 2 and st.refused == {"series_limit": 1} and st.new_series == 2
    assert store.active_series("t1") == 2 and store.tenant_over_series_limit("t1")
    assert not store.tenant_over_series_limit("t2")
    st = store.append("t1", make_batch(SERIES[:2], [(0, 2, 2.0), (1, 2, 2.0)]))  # existing series keep working
    assert st.accepted == 2 and not st.refused
    assert store.append("t2", make_batch(SERIES[:2], [(0, 1, 1.0), (1, 1, 1.0)])).accepted == 2


def test_idle_series_leave_the_head(tmp_path):
    store = new_store(tmp_path, max_active_series_per_tenant=1, series_idle_timeout_s=0.0)
    store.append("t1", make_batch(SERIES[:1], [(0, 1, 1.0)]))
    store.flush(lambda off: None)
    assert store.active_series("t1") == 0
    assert store.append("t1", make_batch(SERIES[1:2], [(0, 1, 1.0)])).accepted == 1
    assert len(store.querier("t1").select([Matcher("__name__", "=", "up")], 0, 10)) == 2


def test_failed_flush_puts_data_back(tmp_path):
    store = new_store(tmp_path)
    load(store)
    store.append("t1", make_batch([], []), offset_hi=7)

    def boom(offset: int) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.flush(boom)
    assert store.head.tenants["t1"].live
    assert len(store.querier("t1").select([Matcher("__name__", "=", "up")], 0, 10**9)) == 3
    commits: list[int] = []
    res = store.flush(commits.append)
    assert commits == [7]
    assert len(store.blocks.list_blocks("t1", "metrics")) == 1  # same source: the same block, once
    got = store.querier("t1").select([Matcher("__name__", "=", "up")], 0, 10**9)
    assert len(got) == 3 and all(len(s.t) == 5 for s in got) and res.offset_hi == 7


def test_failed_block_write_keeps_the_head(tmp_path, monkeypatch):
    store = new_store(tmp_path)
    load(store)

    def fail(*a, **k):
        raise OSError("no space")

    monkeypatch.setattr(store.blocks, "write_block", fail)
    with pytest.raises(OSError):
        store.flush(lambda off: None)
    monkeypatch.undo()
    assert len(store.querier("t1").select([Matcher("job", "=", "api")], 0, 10**9)) == 3
    store.flush(lambda off: None)
    assert store.head.tenants["t1"].live == []
    assert len(store.querier("t1").select([Matcher("job", "=", "api")], 0, 10**9)) == 3


def test_compaction_dedupes_and_the_newest_block_wins(tmp_path):
    store = new_store(tmp_path, out_of_order_window_ms=10**9)
    s = [{"__name__": "m", "k": "a"}, {"__name__": "m", "k": "b"}]
    store.append("t1", make_batch(s, [(0, t, 1.0) for t in range(0, 100, 10)] + [(1, 5, 1.0)]), offset_hi=1)
    store.flush(lambda off: None)
    st = store.append("t1", make_batch(s, [(0, 50, 2.0), (0, 55, 2.0), (1, 5, 3.0)]), offset_hi=2)
    assert st.accepted == 2 and st.refused == {"duplicate_sample_for_timestamp": 1}  # 5 is b's newest
    store.flush(lambda off: None)
    assert len(store.blocks.list_blocks("t1", "metrics")) == 2
    before = as_dict(store.querier("t1").select([Matcher("__name__", "=", "m")], 0, 1000))
    out = store.compact()
    assert len(out) == 1 and out[0].level == 1 and out[0].source["offset_hi"] == 2
    metas = store.blocks.list_blocks("t1", "metrics")
    assert [m.block_id for m in metas] == [out[0].block_id] and metas[0].rows == 12
    after = as_dict(store.querier("t1").select([Matcher("__name__", "=", "m")], 0, 1000))
    assert after == before
    assert after[(("__name__", "m"), ("k", "a"))][1][5] == 2.0
    assert after[(("__name__", "m"), ("k", "b"))] == ([5], [1.0])


def test_retention_drops_old_blocks(tmp_path):
    store = new_store(tmp_path)
    now_ms = 400 * DAY_MS
    store.append("t1", make_batch(SERIES[:1], [(0, now_ms - 2 * DAY_MS, 1.0), (0, now_ms, 2.0)]))
    store.flush(lambda off: None)
    assert len(store.blocks.list_blocks("t1", "metrics")) == 2  # split by UTC day
    assert store.apply_retention(now_ns=now_ms * 1_000_000) == 1
    (got,) = store.querier("t1").select([Matcher("__name__", "=", "up")], 0, now_ms)
    assert got.t.tolist() == [now_ms]


def test_tenants_never_see_each_other(tmp_path):
    store = new_store(tmp_path)
    store.append("a", make_batch(SERIES[:1], [(0, 1, 1.0)]))
    store.append("b", make_batch(SERIES[1:2], [(0, 1, 2.0)]))
    for flushed in (False, True):
        if flushed:
            store.flush(lambda off: None)
        qa, qb = store.querier("a"), store.querier("b")
        assert [s.labels["job"] for s in qa.select([Matcher("__name__", "=", "up")], 0, 10)] == ["api"]
        assert [s.labels["job"] for s in qb.select([Matcher("__name__", "=", "up")], 0, 10)] == ["web"]
        assert qa.label_values("job", [], 0, 10) == ["api"]
        assert store.querier("c").select([Matcher("__name__", "=", "up")], 0, 10) == []
    assert {m.tenant for m in store.blocks.list_blocks(signal="metrics")} == {"a", "b"}


def test_metadata_exemplars_and_tsdb_status(tmp_path):
    store = new_store(tmp_path)
    md = [MetricMetadata("up", "gauge", "", "1 if the target is up"),
          MetricMetadata("http_requests_total", "counter", "", "Requests.")]
    ex = [(3, 1000, 1.0, {"trace_id": "abc"}), (4, 1000, 7.0, {"trace_id": "def"})]
    store.append("t1", make_batch(SERIES, [(i, 1000, 1.0) for i in range(5)], ex, md))
    for flushed in (False, True):
        if flushed:
            store.flush(lambda off: None)
        assert store.metadata("t1") == {"http_requests_total": [{"type": "counter", "help": "Requests.", "unit": ""}],
                                        "up": [{"type": "gauge", "help": "1 if the target is up", "unit": ""}]}
        assert list(store.metadata("t1", limit=1)) == ["http_requests_total"]
        assert list(store.metadata("t1", "up")) == ["up"]
        got = store.exemplars("t1", [[Matcher("code", "=", "500")]], 0, 2000)
        assert got == [{"seriesLabels": SERIES[4], "exemplars": [{"labels": {"trace_id": "def"}, "value": "7",
                                                                  "timestamp": 1.0}]}]
        assert store.exemplars("t2", [[Matcher("code", "=", "500")]], 0, 2000) == []
    store.append("t1", make_batch(SERIES, [(i, 2000, 1.0) for i in range(5)]))
    st = store.tsdb_status("t1")
    assert st["headStats"]["numSeries"] == 5 and st["headStats"]["minTime"] == 2000
    assert st["seriesCountByMetricName"] == [{"name": "up", "value": 3}, {"name": "http_requests_total", "value": 2}]
    assert st["labelValueCountByLabelName"][:2] == [{"name": "__name__", "value": 2}, {"name": "code", "value": 2}]
    assert {"name": "job=api", "value": 3} in st["seriesCountByLabelValuePair"]


def test_unsorted_labels_are_normalised(tmp_path):
    store = new_store(tmp_path)
    labels = pa.array([[{"name": "job", "value": "x"}, {"name": "__name__", "value": "m"},
                        {"name": "empty", "value": ""}]], LABELS)
    b = make_batch([], [])
    b.series = pa.table({"labels": labels}, schema=SERIES_SCHEMA)
    b.samples = pa.table({"ref": pa.array([0], pa.uint32()), "t": pa.array([1], pa.int64()),
                          "v": pa.array([1.0])}, schema=SAMPLE_SCHEMA)
    assert store.append("t1", b).accepted == 1
    st = store.append("t1", make_batch([{"__name__": "m", "job": "x"}], [(0, 2, 2.0)]))
    assert st.accepted == 1 and st.new_series == 0


def test_flush_due_and_head_bytes(tmp_path):
    store = new_store(tmp_path)
    assert not store.flush_due() and store.flush(lambda off: None) is None
    store.cfg.flush_size = 1
    load(store)
    assert store.flush_due() and store.head_bytes() > 5 * 5 * 20


def test_queries_during_a_flush_see_everything_once(tmp_path):
    store = new_store(tmp_path)
    load(store)
    seen: list[int] = []

    def commit(offset: int) -> None:  # blocks are written, the snapshot is not released yet
        got = store.querier("t1").select([Matcher("__name__", "=", "up")], 0, 10**9)
        seen.append(sum(len(s.t) for s in got))

    store.append("t1", make_batch([], []), offset_hi=3)
    store.flush(commit)
    assert seen == [15]


def test_a_flush_completing_during_a_select_loses_nothing(tmp_path, monkeypatch):
    """A flush that commits its block and releases its snapshot while a select runs (after
    the select listed the blocks, before it read the head) must not hide the flushed samples:
    they are in the head or in a listed block, never in neither."""
    store = new_store(tmp_path)
    load(store)
    listed = store.blocks_in
    flushed: list[object] = []

    def blocks_in_then_flush(tenant, start_ms, end_ms):
        metas = listed(tenant, start_ms, end_ms)
        if not flushed:  # the concurrent flush lands right after the block listing
            flushed.append(store.flush(lambda off: None))
        return metas

    monkeypatch.setattr(store, "blocks_in", blocks_in_then_flush)
    got = store.querier("t1").select([Matcher("__name__", "=", "up")], 0, 10**9)
    assert flushed and flushed[0] is not None and store.head.tenants["t1"].live == []
    assert sum(len(s.t) for s in got) == 15 and len(got) == 3
    monkeypatch.setattr(store, "blocks_in", listed)
    again = store.querier("t1").select([Matcher("__name__", "=", "up")], 0, 10**9)
    assert as_dict(again) == as_dict(got)


def test_bad_refs_empty_label_sets_and_exemplar_bound(tmp_path):
    store = new_store(tmp_path, max_exemplars_per_tenant=2)
    b = make_batch([{"__name__": "m"}], [(0, 1, 1.0), (5, 1, 1.0)])
    assert store.append("t1", b).refused == {"invalid_series": 1}
    st = store.append("t1", make_batch([{}], [(0, 1, 1.0)]))
    assert st.refused == {"invalid_series": 1} and st.new_series == 0
    ex = [(0, t, 1.0, {"trace_id": str(t)}) for t in (1, 2, 3)]
    st = store.append("t1", make_batch([{"__name__": "m"}], [(0, 5, 1.0)], ex))
    assert st.exemplars == 3
    got = store.exemplars("t1", [[Matcher("__name__", "=", "m")]], 0, 10)
    assert [e["timestamp"] for e in got[0]["exemplars"]] == [0.002, 0.003]  # the newest two
