from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lookout.storage.blocks import BlockStore
from lookout.storage.compaction import compact, dedupe_rows, merge_blocks, read_blocks
from tests.storage_helpers import HOUR_NS, SORT, T0, make_table, write  # noqa: F401

KW = dict(sort_keys=SORT, time_column="ts", key_column="key")


def all_rows(store: BlockStore, tenant="t1", signal="traces") -> pa.Table:
    blocks = store.list_blocks(tenant, signal)
    return read_blocks(store, blocks).sort_by(SORT + [("v", "ascending")])


def rows_set(t: pa.Table) -> list[tuple]:
    return sorted(
        zip(t.column("key").to_pylist(), t.column("ts").to_pylist(), t.column("v").to_pylist(), strict=True)
    )


def test_compaction_merges_window(tmp_path):
    store = BlockStore(tmp_path)
    inputs = [write(store, make_table(200, seed=i), lo=i * 10, hi=i * 10 + 10) for i in range(4)]
    # a block in another hour stays alone
    other = write(store, make_table(50, seed=99, t0=T0 + 2 * HOUR_NS), lo=100, hi=110)
    before = rows_set(all_rows(store))

    out = compact(store, "t1", "traces", **KW, sidecars=lambda t: {"n.txt": str(t.num_rows).encode()})
    assert len(out) == 1
    merged = out[0]
    assert merged.level == 1 and merged.rows == 800
    assert merged.source["kind"] == "compaction"
    assert merged.source["inputs"] == sorted(m.block_id for m in inputs)
    assert merged.replaces == sorted(m.block_id for m in inputs)
    assert merged.source["offset_lo"] == 0 and merged.source["offset_hi"] == 40
    assert merged.min_time_ns == min(m.min_time_ns for m in inputs)
    assert merged.max_time_ns == max(m.max_time_ns for m in inputs)
    assert store.read_sidecar(merged, "n.txt") == b"800"

    visible = store.list_blocks("t1", "traces")
    assert {m.block_id for m in visible} == {merged.block_id, other.block_id}
    for m in inputs:
        assert not os.path.exists(store.block_dir(m))
    # every row exactly once, and the merged file sorted
    assert rows_set(all_rows(store)) == before
    data = pq.read_table(store.data_files(merged)[0])
    assert data.sort_by(SORT).equals(data)
    # a fresh store agrees
    fresh = BlockStore(tmp_path)
    assert fresh.recover()["superseded"] == 0
    assert rows_set(all_rows(fresh)) == before
    # nothing left to do
    assert compact(store, "t1", "traces", **KW) == []


def test_compaction_with_dedupe(tmp_path):
    store = BlockStore(tmp_path)
    t = make_table(300, seed=1)
    # at-least-once delivery: the same rows flushed twice under different offset ranges
    write(store, t, lo=0, hi=10)
    write(store, t.slice(100, 200), lo=10, hi=20)
    write(store, make_table(100, seed=2), lo=20, hi=30)
    no_dedupe = BlockStore(tmp_path / "copy")
    write(no_dedupe, t, lo=0, hi=10)
    write(no_dedupe, t.slice(100, 200), lo=10, hi=20)

    out = compact(store, "t1", "traces", **KW, dedupe_columns=["key", "ts"])
    assert len(out) == 1 and out[0].rows == 400
    got = all_rows(store)
    expected = pa.concat_tables([t, make_table(100, seed=2)])
    assert rows_set(got) == rows_set(expected)

    # without dedupe, duplicates are kept (all rows exactly once per input)
    out2 = compact(no_dedupe, "t1", "traces", **KW)
    assert out2[0].rows == 500


def test_dedupe_rows_keep_first_and_last():
    t = pa.table({"a": [1, 2, 1, 3, 2], "b": ["x", "y", "x", "z", "w"], "n": [0, 1, 2, 3, 4]})
    first = dedupe_rows(t, ["a", "b"])
    assert first.column("n").to_pylist() == [0, 1, 3, 4]
    last = dedupe_rows(t, ["a", "b"], keep="last")
    assert last.column("n").to_pylist() == [1, 2, 3, 4]
    assert dedupe_rows(t, ["a"]).column("n").to_pylist() == [0, 1, 3]
    with pytest.raises(ValueError):
        dedupe_rows(t, ["missing"])


def test_crash_after_commit_before_deleting_inputs(tmp_path):
    store = BlockStore(tmp_path)
    inputs = [write(store, make_table(100, seed=i), lo=i, hi=i + 1) for i in range(3)]
    before = rows_set(all_rows(store))
    # the merged block is committed, then the process "dies" before deleting the inputs
    merged = merge_blocks(store, inputs, **KW, delete_inputs=False)
    for m in inputs:
        assert os.path.exists(store.block_dir(m))
    # exactly one visible copy, even before recovery, in this process and in a new one
    assert [m.block_id for m in store.list_blocks()] == [merged.block_id]
    assert rows_set(all_rows(store)) == before
    fresh = BlockStore(tmp_path)
    assert [m.block_id for m in fresh.list_blocks()] == [merged.block_id]
    res = fresh.recover()
    assert res["superseded"] == 3 and res["blocks"] == 1
    for m in inputs:
        assert not os.path.exists(fresh.block_dir(m))
    assert rows_set(all_rows(fresh)) == before


def test_crash_before_commit_keeps_inputs(tmp_path):
    store = BlockStore(tmp_path)
    inputs = [write(store, make_table(100, seed=i), lo=i, hi=i + 1) for i in range(3)]
    before = rows_set(all_rows(store))

    def boom(_t):
        raise RuntimeError("crash while writing the merged block")

    with pytest.raises(RuntimeError):
        compact(store, "t1", "traces", **KW, sidecars=boom)
    fresh = BlockStore(tmp_path)
    res = fresh.recover()
    assert res["partial"] == 1
    assert {m.block_id for m in fresh.list_blocks()} == {m.block_id for m in inputs}
    assert rows_set(all_rows(fresh)) == before
    # the retried job succeeds with the same deterministic id
    out = compact(fresh, "t1", "traces", **KW)
    assert len(out) == 1 and out[0].rows == 300
    assert rows_set(all_rows(fresh)) == before


def test_compaction_limits_and_windows(tmp_path):
    store = BlockStore(tmp_path)
    a = write(store, make_table(50, seed=1), lo=0, hi=1)
    write(store, make_table(50, seed=2, t0=T0 + HOUR_NS), lo=1, hi=2)
    # one block per window: nothing to do
    assert compact(store, "t1", "traces", **KW) == []
    b = write(store, make_table(50, seed=3), lo=2, hi=3)
    # inputs above the byte budget are left alone
    assert compact(store, "t1", "traces", **KW, max_input_bytes=a.stored_bytes - 1) == []
    # an open window is not compacted when sealed_before_ns says so
    window_end = (a.min_time_ns // HOUR_NS + 1) * HOUR_NS
    assert compact(store, "t1", "traces", **KW, sealed_before_ns=window_end - 1) == []
    out = compact(store, "t1", "traces", **KW, sealed_before_ns=window_end)
    assert len(out) == 1 and set(out[0].replaces) == {a.block_id, b.block_id}
    # a wider window merges the L1 with the block of the next hour
    out2 = compact(store, "t1", "traces", **KW, window_s=86400)
    assert len(out2) == 1 and out2[0].level == 2 and out2[0].rows == 150
    assert len(store.list_blocks()) == 1


def test_compaction_tenant_isolation(tmp_path):
    store = BlockStore(tmp_path)
    for i in range(2):
        write(store, make_table(20, seed=i), tenant="a", lo=i, hi=i + 1)
        write(store, make_table(20, seed=10 + i), tenant="b", lo=i, hi=i + 1)
    out = compact(store, "a", "traces", **KW)
    assert len(out) == 1 and out[0].tenant == "a"
    assert len(store.list_blocks("a")) == 1
    assert len(store.list_blocks("b")) == 2
    with pytest.raises(ValueError):
        merge_blocks(store, store.list_blocks(), **KW)


def test_retention_of_replacing_block_removes_hidden_inputs(tmp_path):
    from lookout.storage.retention import apply_retention

    store = BlockStore(tmp_path)
    inputs = [write(store, make_table(10, seed=i), lo=i, hi=i + 1) for i in range(2)]
    merged = merge_blocks(store, inputs, **KW, delete_inputs=False)
    n = apply_retention(store, retention_s=60, now_ns=merged.max_time_ns + 3600 * 10**9)
    assert n == 3
    assert store.list_blocks(include_replaced=True) == []
    assert BlockStore(tmp_path).list_blocks(include_replaced=True) == []
