from __future__ import annotations

import os

import pytest

from lookout.storage.blocks import BlockStore
from lookout.storage.durations import format_duration, parse_bytes, parse_duration
from lookout.storage.retention import apply_retention
from tests.storage_helpers import HOUR_NS, SORT, T0, make_table, write  # noqa: F401

DAY_NS = 24 * HOUR_NS


def test_retention_deletes_only_old_blocks(tmp_path):
    store = BlockStore(tmp_path)
    old = write(store, make_table(10, seed=1, t0=T0 - 20 * DAY_NS), lo=0, hi=1)
    edge = write(store, make_table(10, seed=2, t0=T0 - 14 * DAY_NS - HOUR_NS), lo=1, hi=2)
    recent = write(store, make_table(10, seed=3, t0=T0 - DAY_NS), lo=2, hi=3)
    other_tenant_old = write(store, make_table(10, seed=4, t0=T0 - 30 * DAY_NS), tenant="t2", lo=0, hi=1)
    now = T0

    n = apply_retention(store, retention_s=parse_duration("14d"), now_ns=now, tenant="t1")
    assert n == 2
    assert [m.block_id for m in store.list_blocks("t1")] == [recent.block_id]
    assert not os.path.exists(store.block_dir(old))
    assert not os.path.exists(store.block_dir(edge))
    assert [m.block_id for m in store.list_blocks("t2")] == [other_tenant_old.block_id]

    assert apply_retention(store, retention_s=parse_duration("14d"), now_ns=now) == 1
    assert store.tenants("traces") == ["t1"]
    assert apply_retention(store, retention_s=parse_duration("14d"), now_ns=now) == 0
    assert [m.block_id for m in BlockStore(tmp_path).list_blocks()] == [recent.block_id]


def test_retention_boundary(tmp_path):
    store = BlockStore(tmp_path)
    m = write(store, make_table(10))
    # max_time exactly at the cutoff is kept; one ns later than retention it goes
    assert apply_retention(store, retention_s=3600, now_ns=m.max_time_ns + HOUR_NS) == 0
    assert apply_retention(store, retention_s=3600, now_ns=m.max_time_ns + HOUR_NS + 1) == 1
    m2 = write(store, make_table(10, seed=5))
    assert apply_retention(store, retention_s=0, now_ns=m2.max_time_ns + 100 * DAY_NS) == 0  # disabled
    assert store.list_blocks() == [m2]


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("30d", 30 * 86400),
        ("1w", 7 * 86400),
        ("1y", 365 * 86400),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1d12h", 129600),
        ("2m30s", 150),
        ("0", 0),
        ("0s", 0),
        (" 15m ", 900),
        (90, 90),
        (1.5, 1.5),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad", ["forever", "", "5", "5x", "m", "30m5h", "-5m", "1h 30m", "1.2.3s", None, True]
)
def test_parse_duration_errors(bad):
    if bad == "5":
        assert parse_duration(bad) == 5  # a bare number is seconds
        return
    with pytest.raises(ValueError) as e:
        parse_duration(bad)
    assert str(e.value) == f'expected a duration like 30d, got "{bad}"'


def test_parse_duration_exact_message():
    with pytest.raises(ValueError, match=r'^expected a duration like 30d, got "forever"$'):
        parse_duration("forever")


def test_format_duration():
    assert format_duration(5400) == "1h30m"
    assert format_duration(0.5) == "500ms"
    assert format_duration(0) == "0s"
    assert parse_duration(format_duration(93784.5)) == pytest.approx(93784.5)


@pytest.mark.parametrize(
    "text,n",
    [
        ("64MiB", 64 << 20),
        ("1GB", 10**9),
        ("512KB", 512_000),
        ("512KiB", 512 << 10),
        ("2Gi", 2 << 30),
        ("100", 100),
        ("100B", 100),
        ("1.5 GiB", 3 << 29),
        ("1tb", 10**12),
        (4096, 4096),
    ],
)
def test_parse_bytes(text, n):
    assert parse_bytes(text) == n


@pytest.mark.parametrize("bad", ["lots", "", "5XB", "-1MB", "MB", None, True, -3])
def test_parse_bytes_errors(bad):
    with pytest.raises(ValueError, match="expected a size like 64MiB"):
        parse_bytes(bad)
