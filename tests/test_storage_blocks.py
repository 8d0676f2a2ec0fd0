from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from lookout.storage.blocks import META_NAME, BlockMeta, BlockStore, encode_key, make_block_id
from tests.storage_helpers import HOUR_NS, SORT, T0, make_table, write  # noqa: F401


def sidecar_builder(table: pa.Table) -> dict[str, bytes]:
    return {
        "keys.bin": b"".join(table.column("key").to_pylist()[:3]),
        "count.txt": str(table.num_rows).encode(),
    }


def assert_sorted(t: pa.Table) -> None:
    s = t.sort_by(SORT)
    assert s.equals(t)


def test_write_list_read_round_trip(tmp_path):
    store = BlockStore(tmp_path)
    table = make_table(1000)
    meta = write(store, table, sidecars=sidecar_builder, raw_bytes=12345)

    assert meta.rows == 1000
    assert meta.tenant == "t1" and meta.signal == "traces" and meta.level == 0
    assert meta.min_time_ns == min(table.column("ts").to_pylist())
    assert meta.max_time_ns == max(table.column("ts").to_pylist())
    assert meta.path.startswith("blocks/t1/traces/2023-11-14/")
    assert meta.path.endswith(meta.block_id)
    assert meta.raw_bytes == 12345
    assert sorted(meta.sidecars) == ["count.txt", "keys.bin"]
    assert len(meta.block_id) == 26

    assert store.list_blocks() == [meta]
    assert store.list_blocks("t1", "traces") == [meta]
    assert store.tenants("traces") == ["t1"]

    files = store.data_files(meta)
    assert len(files) == 1 and files[0].endswith("/data.parquet")
    back = pq.read_table(files[0], filesystem=store.fs)
    assert back.num_rows == 1000
    assert_sorted(back)
    assert back.sort_by(SORT).equals(table.sort_by(SORT))
    # pyarrow.dataset works with the same paths and filesystem
    assert ds.dataset(files, filesystem=store.fs, format="parquet").count_rows() == 1000

    # Parquet properties: zstd, row groups, page index, sorting columns
    pf = pq.ParquetFile(files[0])
    md = pf.metadata
    assert md.num_row_groups == 10
    assert md.row_group(0).column(0).compression == "ZSTD"
    assert md.row_group(0).sorting_columns[0].column_index == 0
    assert md.row_group(0).column(0).has_offset_index

    # row-group stats in meta match the data
    rgs = meta.files[0]["row_groups"]
    assert [rg["rows"] for rg in rgs] == [100] * 10
    assert meta.files[0]["rows"] == 1000
    start = 0
    for rg in rgs:
        part = back.slice(start, rg["rows"])
        keys = part.column("key").to_pylist()
        assert rg["min_key_hex"] == min(keys).hex() and rg["max_key_hex"] == max(keys).hex()
        ts = part.column("ts").to_pylist()
        assert rg["min_time"] == min(ts) and rg["max_time"] == max(ts)
        start += rg["rows"]
    assert rgs[0]["min_key_hex"] <= rgs[-1]["max_key_hex"]

    # sidecars
    assert store.read_sidecar(meta, "count.txt") == b"1000"
    with pytest.raises(KeyError):
        store.read_sidecar(meta, "nope")

    # stored_bytes counts data and sidecars
    on_disk = sum(
        os.path.getsize(os.path.join(store.block_dir(meta), f))
        for f in os.listdir(store.block_dir(meta))
        if f != META_NAME
    )
    assert meta.stored_bytes == on_disk

    # a fresh store sees the same block through meta.json
    other = BlockStore(tmp_path)
    assert other.list_blocks() == [meta]


def test_meta_json_round_trip(tmp_path):
    store = BlockStore(tmp_path)
    meta = write(store, make_table(10))
    with open(os.path.join(store.block_dir(meta), META_NAME)) as f:
        raw = json.load(f)
    assert raw["block_id"] == meta.block_id
    assert BlockMeta.from_json(meta.to_json()) == meta
    raw["future_field"] = 1
    m2 = BlockMeta.from_json(json.dumps(raw))
    assert m2.extra["future_field"] == 1


def test_duckdb_reads_local_paths(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    store = BlockStore(tmp_path)
    meta = write(store, make_table(50))
    con = duckdb.connect()
    n = con.execute("SELECT count(*) FROM read_parquet(?)", [store.data_files(meta)]).fetchone()[0]
    assert n == 50


def test_split_into_files(tmp_path):
    store = BlockStore(tmp_path)
    meta = write(store, make_table(250), max_file_rows=100)
    assert [f["name"] for f in meta.files] == ["data.parquet", "data-0001.parquet", "data-0002.parquet"]
    assert [f["rows"] for f in meta.files] == [100, 100, 50]
    parts = [pq.read_table(p) for p in store.data_files(meta)]
    whole = pa.concat_tables(parts)
    assert_sorted(whole)
    # key ranges of consecutive files do not overlap out of order
    assert meta.files[0]["row_groups"][-1]["max_key_hex"] <= meta.files[1]["row_groups"][0]["min_key_hex"]


def test_deterministic_ids(tmp_path):
    a = BlockStore(tmp_path / "a")
    b = BlockStore(tmp_path / "b")
    t = make_table(100)
    ma = write(a, t, lo=5, hi=9)
    mb = write(b, t, lo=5, hi=9)
    assert ma.block_id == mb.block_id
    # different offsets, tenant, or level -> different id
    assert write(a, t, lo=5, hi=10).block_id != ma.block_id
    assert write(a, t, lo=5, hi=9, tenant="t2").block_id != ma.block_id
    assert write(a, t, lo=5, hi=9, level=1).block_id != ma.block_id
    # time part is min_time in ms: ids sort by time
    early = make_block_id("t", "s", 0, {"x": 1}, T0)
    late = make_block_id("t", "s", 0, {"x": 1}, T0 + HOUR_NS)
    assert early < late
    assert make_block_id("t", "s", 0, {"x": 1}, T0) == early


def test_reflush_same_range_is_idempotent(tmp_path):
    store = BlockStore(tmp_path)
    t = make_table(100)
    m1 = write(store, t)
    m2 = write(store, t)
    assert m1.block_id == m2.block_id
    assert len(store.list_blocks()) == 1
    # also from a fresh process (catalog not yet loaded)
    fresh = BlockStore(tmp_path)
    m3 = write(fresh, t)
    assert m3.block_id == m1.block_id
    assert len(fresh.list_blocks()) == 1
    assert pq.read_table(fresh.data_files(m3)[0]).num_rows == 100


def test_partial_block_removed_by_recover(tmp_path):
    store = BlockStore(tmp_path)
    good = write(store, make_table(20))
    # simulate a crash mid-write: data and sidecar present, no meta.json (and a stray temp file)
    partial_dir = tmp_path / "blocks" / "t1" / "traces" / "2023-11-14" / "01HPARTIALBLOCK00000000000"
    partial_dir.mkdir(parents=True)
    pq.write_table(make_table(5), partial_dir / "data.parquet")
    (partial_dir / "meta.json.tmp").write_text("{}")
    stray = tmp_path / "blocks" / "t1" / "traces" / "2023-11-14" / good.block_id / "x.tmp"
    stray.write_text("junk")

    fresh = BlockStore(tmp_path)
    assert [m.block_id for m in fresh.list_blocks()] == [good.block_id]  # never listed
    res = fresh.recover()
    assert res["partial"] == 1 and res["temp_files"] == 1 and res["superseded"] == 0
    assert res["blocks"] == 1
    assert not partial_dir.exists()
    assert not stray.exists()
    assert [m.block_id for m in fresh.list_blocks()] == [good.block_id]


def test_crash_before_meta_then_reflush(tmp_path):
    store = BlockStore(tmp_path)
    t = make_table(30)

    def boom(_table):
        raise RuntimeError("crash")

    # crash mid-write, before meta.json: no block visible
    with pytest.raises(RuntimeError):
        write(store, t, sidecars=boom)
    assert store.list_blocks() == []
    # re-flush of the same range succeeds and cleans up the partial directory first
    m = write(store, t)
    assert [b.block_id for b in store.list_blocks()] == [m.block_id]
    assert sorted(os.listdir(store.block_dir(m))) == ["data.parquet", "meta.json"]


def test_meta_written_last(tmp_path):
    """Record the order of file creation: meta.json must come after every other file."""
    store = BlockStore(tmp_path)
    order: list[str] = []
    real_open = store.fs.open_output_stream
    real_move = store.fs.move

    class Spy:
        def open_output_stream(self, path, *a, **k):
            order.append(os.path.basename(path))
            return real_open(path, *a, **k)

        def move(self, src, dst):
            order.append("move:" + os.path.basename(dst))
            return real_move(src, dst)

    spy = Spy()

    # pyarrow's FileSystem is a C extension type; wrap the store's fs with a thin proxy
    class Proxy:
        def __getattr__(self, name):
            if name in ("open_output_stream", "move"):
                return getattr(spy, name)
            return getattr(real_fs, name)

    real_fs = store.fs
    store.fs = Proxy()
    write(store, make_table(10), sidecars=sidecar_builder, max_file_rows=4)
    assert order[-1] == "move:meta.json"
    assert order[-2] == "meta.json.tmp"
    assert set(order[:-2]) == {
        "count.txt",
        "keys.bin",
        "data.parquet",
        "data-0001.parquet",
        "data-0002.parquet",
    }


def test_tenant_isolation_and_validation(tmp_path):
    store = BlockStore(tmp_path)
    a = write(store, make_table(10, seed=1), tenant="alpha")
    b = write(store, make_table(10, seed=2), tenant="beta")
    c = write(store, make_table(10, seed=3), tenant="alpha", signal="logs")
    assert store.list_blocks("alpha", "traces") == [a]
    assert store.list_blocks("beta", "traces") == [b]
    assert store.list_blocks("alpha") == sorted([a, c], key=lambda m: (m.min_time_ns, m.block_id))
    assert store.list_blocks("gamma") == []
    assert store.tenants("traces") == ["alpha", "beta"]
    assert store.tenants("logs") == ["alpha"]
    assert "/alpha/" in store.data_files(a)[0] and "/beta/" in store.data_files(b)[0]
    for bad in ["", "..", ".", "a/b", "a\\b", "x\x00"]:
        with pytest.raises(ValueError):
            write(store, make_table(3), tenant=bad)
    with pytest.raises(ValueError):
        write(store, make_table(3), signal="../x")
    with pytest.raises(ValueError):
        write(store, make_table(0))


def test_delete_block(tmp_path):
    store = BlockStore(tmp_path)
    m = write(store, make_table(10))
    d = store.block_dir(m)
    store.delete_block(m)
    assert store.list_blocks() == []
    assert not os.path.exists(d)
    assert BlockStore(tmp_path).list_blocks() == []


def test_delete_blocks_after(tmp_path):
    store = BlockStore(tmp_path)
    m1 = write(store, make_table(10, seed=1), lo=0, hi=100)
    m2 = write(store, make_table(10, seed=2), lo=100, hi=200)
    m3 = write(store, make_table(10, seed=3), lo=200, hi=300)
    ml = write(store, make_table(10, seed=4), lo=200, hi=300, signal="logs")
    assert store.max_offset_hi("traces") == 300
    assert store.delete_blocks_after(200, signal="traces") == 1
    ids = {m.block_id for m in store.list_blocks()}
    assert ids == {m1.block_id, m2.block_id, ml.block_id}
    assert m3.block_id not in ids
    assert store.max_offset_hi("traces") == 200


def test_superseded_block_hidden_and_recovered(tmp_path):
    store = BlockStore(tmp_path)
    old = write(store, make_table(10, seed=1))
    new = store.write_block(
        "t1",
        "traces",
        make_table(10, seed=1),
        sort_keys=SORT,
        time_column="ts",
        key_column="key",
        level=1,
        source={"kind": "compaction", "inputs": [old.block_id]},
        replaces=[old.block_id],
    )
    assert [m.block_id for m in store.list_blocks()] == [new.block_id]
    assert len(store.list_blocks(include_replaced=True)) == 2
    fresh = BlockStore(tmp_path)
    res = fresh.recover()
    assert res["superseded"] == 1
    assert [m.block_id for m in fresh.list_blocks(include_replaced=True)] == [new.block_id]
    assert not os.path.exists(fresh.block_dir(old))
    # a later re-flush of the replaced range is garbage: deleted right away, never listed
    again = write(fresh, make_table(10, seed=1))
    assert again.block_id == old.block_id
    assert [m.block_id for m in fresh.list_blocks(include_replaced=True)] == [new.block_id]


def test_timestamp_and_int_keys(tmp_path):
    store = BlockStore(tmp_path)
    t = pa.table(
        {
            "ref": pa.array([5, -3, 2, 9], pa.int32()),
            "ts": pa.array([T0 + 3, T0 + 1, T0 + 2, T0], pa.timestamp("ns")),
            "line": ["a", "b", "c", "d"],
        }
    )
    m = store.write_block(
        "default",
        "logs",
        t,
        sort_keys=[("ref", "ascending"), ("ts", "ascending")],
        time_column="ts",
        key_column="ref",
        source={"kind": "wal", "offset_lo": 0, "offset_hi": 1},
    )
    assert m.min_time_ns == T0 and m.max_time_ns == T0 + 3
    rg = m.files[0]["row_groups"][0]
    assert rg["min_key_hex"] == encode_key(-3, pa.int32()) and rg["max_key_hex"] == encode_key(9, pa.int32())
    # the encoding preserves order, including the sign
    vals = [-(2**31), -3, 0, 2, 2**31 - 1]
    enc = [encode_key(v, pa.int32()) for v in vals]
    assert enc == sorted(enc)
    assert pq.read_table(store.data_files(m)[0]).column("ref").to_pylist() == [-3, 2, 5, 9]


@pytest.mark.parametrize("kind", ["mock", "subtree"])
def test_non_local_filesystem(tmp_path, kind):
    """Everything goes through the pyarrow filesystem object (S3 will be passed the same way)."""
    import pyarrow.fs as pafs

    if kind == "mock":
        fs = pafs._MockFileSystem()
        root = "bucket/prefix"
    else:
        (tmp_path / "sub").mkdir()
        fs = pafs.SubTreeFileSystem(str(tmp_path / "sub"), pafs.LocalFileSystem())
        root = "lookout"
    store = BlockStore(root, fs)
    m = write(store, make_table(100), sidecars=sidecar_builder)
    assert store.filesystem is fs
    assert store.data_files(m)[0].startswith(root + "/blocks/t1/traces/")
    assert pq.read_table(store.data_files(m)[0], filesystem=fs).num_rows == 100
    assert store.read_sidecar(m, "count.txt") == b"100"

    # partial block + recovery + reload through the same filesystem
    partial = f"{root}/blocks/t1/traces/2023-11-14/PARTIAL"
    fs.create_dir(partial)
    with fs.open_output_stream(partial + "/data.parquet") as f:
        f.write(b"x")
    fresh = BlockStore(root, fs)
    res = fresh.recover()
    assert res["partial"] == 1 and res["blocks"] == 1
    assert fs.get_file_info(partial).type == pafs.FileType.NotFound
    assert fresh.list_blocks() == [m]
    fresh.delete_block(m)
    assert BlockStore(root, fs).list_blocks() == []


def test_recover_grace_spares_fresh_partial_blocks(tmp_path):
    store = BlockStore(tmp_path)
    partial_dir = tmp_path / "blocks" / "t1" / "traces" / "2023-11-14" / "INFLIGHT"
    partial_dir.mkdir(parents=True)
    (partial_dir / "data.parquet").write_bytes(b"in flight")
    assert store.recover(partial_grace_s=3600)["partial"] == 0
    assert partial_dir.exists()
    assert store.recover()["partial"] == 1
    assert not partial_dir.exists()
    # empty tenant/signal/date directories are tidied on local disk
    assert os.listdir(tmp_path / "blocks") == []


def test_load_concurrent_with_writes_misses_nothing(tmp_path):
    import threading

    store = BlockStore(tmp_path)
    written = []

    def writer():
        for i in range(20):
            written.append(write(store, make_table(5, seed=i), lo=i, hi=i + 1))

    th = threading.Thread(target=writer)
    th.start()
    while th.is_alive():
        store.load()
    th.join()
    assert {m.block_id for m in store.list_blocks()} == {m.block_id for m in written}
