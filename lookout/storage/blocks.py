"""Immutable Parquet blocks: layout, commit protocol, catalog and crash recovery.

A block is a directory ``<root>/blocks/<tenant>/<signal>/<YYYY-MM-DD>/<block_id>/`` holding one or
more sorted Parquet data files (``data.parquet``, ``data-0001.parquet`` …), optional signal sidecars,
and ``meta.json``, which is written last and is the commit marker: a directory without
``meta.json`` is a partial write and is deleted by :meth:`BlockStore.recover`.

This module is signal-agnostic. Signals pass their sort keys, key column, time column and a sidecar
builder; nothing here knows what a span, a sample or a log line is.

All I/O goes through a ``pyarrow.fs.FileSystem`` (local disk by default, S3 later) with string
paths, so the same code works on both.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from lookout.storage.meta import SCHEMA_VERSION, TMP_SUFFIX, BlockMeta, encode_key, make_block_id, validate_name

__all__ = [
    "BlockMeta",
    "BlockStore",
    "SidecarBuilder",
    "encode_key",
    "make_block_id",
    "validate_name",
    "META_NAME",
    "SCHEMA_VERSION",
]

log = logging.getLogger("lookout.storage")

META_NAME = "meta.json"
DATA_PREFIX = "data"

SidecarBuilder = Callable[[pa.Table], dict[str, bytes]]

_OBJECT_STORES = frozenset({"s3", "gcs", "abfs", "hdfs"})


def _as_int64(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    if pa.types.is_integer(col.type) and col.type == pa.int64():
        return col
    return pc.cast(col, pa.int64())


def _plain(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    if pa.types.is_dictionary(col.type):
        return pc.cast(col, col.type.value_type)
    return col


def _min_max(col: pa.ChunkedArray | pa.Array) -> tuple[Any, Any]:
    mm = pc.min_max(col)
    return mm["min"].as_py(), mm["max"].as_py()


def _date_of(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _string_columns(schema: pa.Schema) -> list[str]:
    out = []
    for f in schema:
        t = f.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            out.append(f.name)
    return out


# --------------------------------------------------------------------------------------------
# the store


class BlockStore:
    """Blocks of every tenant and signal under one root, with an in-memory catalog.

    The catalog is a cache of the committed ``meta.json`` files: :meth:`write_block` and
    :meth:`delete_block` keep it current; :meth:`load` (or :meth:`recover`, at startup) rebuilds
    it from storage. A block whose id appears in the ``replaces`` of another committed block is
    hidden from :meth:`list_blocks` (its rows live in the replacing block) and is garbage.
    Thread-safe."""

    def __init__(self, root: str | Path, filesystem: pafs.FileSystem | None = None, *, fsync: bool = True):
        if filesystem is None:
            filesystem = pafs.LocalFileSystem()
            root = str(Path(root).expanduser().resolve())
        elif isinstance(filesystem, pafs.LocalFileSystem):
            root = str(Path(root).expanduser().resolve())
        else:
            root = str(root).rstrip("/")
        self.fs: pafs.FileSystem = filesystem
        self.root: str = root
        self.blocks_root: str = f"{root}/blocks"
        self._object_store = filesystem.type_name in _OBJECT_STORES
        self._local = filesystem.type_name == "local"
        self._fsync = fsync and self._local
        self._lock = threading.RLock()
        self._blocks: dict[str, BlockMeta] = {}
        self._replaced_by: dict[str, set[str]] = {}
        self._loaded = False
        # While load() scans storage, writes and deletes made by this process are journalled
        # here so that the rebuilt catalog does not miss or resurrect them.
        self._journal: dict[str, BlockMeta | None] | None = None
        if not self._object_store:
            self.fs.create_dir(self.blocks_root, recursive=True)

    @property
    def filesystem(self) -> pafs.FileSystem:
        """The pyarrow filesystem every path of this store is relative to (alias of ``fs``)."""
        return self.fs

    # ---- paths -------------------------------------------------------------------------------

    def block_dir(self, meta: BlockMeta) -> str:
        """Full path (for ``self.fs``) of a block's directory."""
        return f"{self.root}/{meta.path}"

    def data_files(self, meta: BlockMeta) -> list[str]:
        """Paths of the block's Parquet data files, in key order. Usable with ``self.fs`` by
        pyarrow.parquet / pyarrow.dataset, and on local disk (absolute paths) by DuckDB."""
        base = self.block_dir(meta)
        return [f"{base}/{f['name']}" for f in meta.files]

    def sidecar_path(self, meta: BlockMeta, name: str) -> str:
        if name not in meta.sidecars:
            raise KeyError(f"block {meta.block_id} has no sidecar {name!r} (has {meta.sidecars})")
        return f"{self.block_dir(meta)}/{name}"

    def read_sidecar(self, meta: BlockMeta, name: str) -> bytes:
        with self.fs.open_input_stream(self.sidecar_path(meta, name)) as f:
            return f.read()

    # ---- catalog -----------------------------------------------------------------------------

    def _add(self, meta: BlockMeta) -> None:
        with self._lock:
            old = self._blocks.get(meta.block_id)
            if old is not None:
                self._forget(old)
            self._blocks[meta.block_id] = meta
            if self._journal is not None:
                self._journal[meta.block_id] = meta
            for r in meta.replaces:
                self._replaced_by.setdefault(r, set()).add(meta.block_id)

    def _forget(self, meta: BlockMeta) -> None:
        with self._lock:
            if self._blocks.get(meta.block_id) is meta:
                del self._blocks[meta.block_id]
                if self._journal is not None:
                    self._journal[meta.block_id] = None
            for r in meta.replaces:
                s = self._replaced_by.get(r)
                if s is not None:
                    s.discard(meta.block_id)
                    if not s:
                        del self._replaced_by[r]

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    def is_replaced(self, block_id: str) -> bool:
        """True if a committed block lists ``block_id`` in its ``replaces``."""
        with self._lock:
            return block_id in self._replaced_by

    def get(self, block_id: str) -> BlockMeta | None:
        self._ensure_loaded()
        with self._lock:
            return self._blocks.get(block_id)

    def list_blocks(
        self,
        tenant: str | None = None,
        signal: str | None = None,
        *,
        include_replaced: bool = False,
    ) -> list[BlockMeta]:
        """Committed blocks, ordered by ``(min_time_ns, block_id)``. Blocks superseded through
        another block's ``replaces`` are left out unless ``include_replaced``."""
        self._ensure_loaded()
        with self._lock:
            out = [
                m
                for m in self._blocks.values()
                if (tenant is None or m.tenant == tenant)
                and (signal is None or m.signal == signal)
                and (include_replaced or m.block_id not in self._replaced_by)
            ]
        out.sort(key=lambda m: (m.min_time_ns, m.block_id))
        return out

    def tenants(self, signal: str | None = None) -> list[str]:
        """Tenants that have at least one visible block (of ``signal`` if given)."""
        return sorted({m.tenant for m in self.list_blocks(signal=signal)})

    def max_offset_hi(
        self, signal: str, *, tenant: str | None = None, partition: int | None = None
    ) -> int | None:
        """The highest source ``offset_hi`` among committed blocks of a signal (any level; the
        compaction output carries the range of its inputs), or None."""
        best = None
        for m in self.list_blocks(tenant, signal, include_replaced=True):
            hi = m.source.get("offset_hi")
            if hi is None or (partition is not None and m.source.get("partition", 0) != partition):
                continue
            best = hi if best is None else max(best, hi)
        return best

    # ---- scanning ----------------------------------------------------------------------------

    def _scan(self) -> tuple[set[str], dict[str, list[pafs.FileInfo]], list[str]]:
        """(block dirs with meta.json, files per block dir, temp files), from one recursive listing."""
        infos = self.fs.get_file_info(
            pafs.FileSelector(self.blocks_root, recursive=True, allow_not_found=True)
        )
        prefix = self.blocks_root + "/"
        committed: set[str] = set()
        per_dir: dict[str, list[pafs.FileInfo]] = {}
        temps: list[str] = []
        for info in infos:
            if not info.path.startswith(prefix):
                continue
            parts = info.path[len(prefix) :].split("/")
            if info.type == pafs.FileType.File and parts[-1].endswith(TMP_SUFFIX):
                temps.append(info.path)
            if len(parts) == 4 and info.type == pafs.FileType.Directory:
                per_dir.setdefault(info.path, [])
            elif len(parts) >= 5:
                d = prefix + "/".join(parts[:4])
                lst = per_dir.setdefault(d, [])
                if info.type == pafs.FileType.File:
                    lst.append(info)
                    if len(parts) == 5 and parts[4] == META_NAME:
                        committed.add(d)
        return committed, per_dir, temps

    def _read_meta(self, path: str) -> BlockMeta:
        with self.fs.open_input_stream(path) as f:
            return BlockMeta.from_json(f.read())

    def load(self) -> int:
        """Rebuild the catalog from the ``meta.json`` files in storage; returns the number of
        committed blocks found (including superseded ones)."""
        with self._lock:
            self._journal = {}
        try:
            metas = self._load_metas()
        finally:
            with self._lock:
                journal, self._journal = self._journal or {}, None
        with self._lock:
            for block_id, m in journal.items():  # changes made while scanning win
                if m is None:
                    metas.pop(block_id, None)
                else:
                    metas[block_id] = m
            self._blocks = {}
            self._replaced_by = {}
            for m in metas.values():
                self._add(m)
            self._loaded = True
        return len(metas)

    def _load_metas(self) -> dict[str, BlockMeta]:
        committed, _, _ = self._scan()
        metas: dict[str, BlockMeta] = {}
        for d in sorted(committed):
            try:
                meta = self._read_meta(f"{d}/{META_NAME}")
            except Exception:  # corrupt meta: keep the data, do not serve it
                log.exception("storage: cannot read %s/%s; block ignored", d, META_NAME)
                continue
            expected = d[len(self.root) + 1 :]
            if meta.path != expected:
                log.warning(
                    "storage: block %s has path %r in meta.json, found at %r",
                    meta.block_id,
                    meta.path,
                    expected,
                )
                meta.path = expected
            metas[meta.block_id] = meta
        return metas

    # ---- writing -----------------------------------------------------------------------------

    def write_block(
        self,
        tenant: str,
        signal: str,
        table: pa.Table,
        *,
        sort_keys: list[tuple[str, str]],
        time_column: str,
        key_column: str,
        level: int = 0,
        source: dict[str, Any],
        sidecars: SidecarBuilder | None = None,
        replaces: Iterable[str] = (),
        raw_bytes: int = 0,
        row_group_rows: int = 32768,
        compression: str = "zstd",
        compression_level: int = 3,
        max_file_rows: int | None = None,
        extra: dict[str, Any] | None = None,
        writer_options: dict[str, Any] | None = None,
    ) -> BlockMeta:
        """Sort ``table`` by ``sort_keys`` and commit it as one block; returns its metadata.

        Order of writes: sidecars, data file(s), then ``meta.json`` (via a temp name and an atomic
        rename on local disk; a single PUT on object stores). The id is deterministic (see
        :func:`make_block_id`); if a committed block with that id already exists it is returned
        unchanged (same source ⇒ same rows). ``max_file_rows`` splits the sorted rows into
        ``data.parquet``, ``data-0001.parquet`` … by key range. ``writer_options`` are extra
        ``pyarrow.parquet.ParquetWriter`` arguments a signal chooses for its layout (which columns
        get dictionaries, byte-stream-split, ...); by default top-level strings get dictionaries."""
        validate_name(tenant, "tenant")
        validate_name(signal, "signal")
        if table.num_rows == 0:
            raise ValueError("write_block: the table is empty")
        for col in {time_column, key_column, *(k for k, _ in sort_keys)}:
            if col not in table.column_names:
                raise ValueError(f"write_block: column {col!r} not in table ({table.column_names})")
        for _, order in sort_keys:
            if order not in ("ascending", "descending"):
                raise ValueError(f"write_block: sort order must be ascending/descending, got {order!r}")
        if row_group_rows <= 0:
            raise ValueError("write_block: row_group_rows must be positive")
        source = dict(source)
        if "inputs" in source:
            source["inputs"] = sorted(source["inputs"])
        replaces = sorted(set(replaces))

        times = _as_int64(table.column(time_column))
        min_time, max_time = _min_max(times)
        if min_time is None:
            raise ValueError(f"write_block: time column {time_column!r} is all null")

        block_id = make_block_id(tenant, signal, level, source, min_time)
        rel = f"blocks/{tenant}/{signal}/{_date_of(min_time)}/{block_id}"
        bdir = f"{self.root}/{rel}"
        meta_path = f"{bdir}/{META_NAME}"

        existing = self._existing(block_id, meta_path)
        if existing is not None:
            log.info("storage: block %s already committed; keeping it", block_id)
            return existing

        # Leftovers of an earlier, crashed attempt at the same block: start clean.
        if self.fs.get_file_info(bdir).type != pafs.FileType.NotFound:
            self.fs.delete_dir(bdir)
        if not self._object_store:
            self.fs.create_dir(bdir, recursive=True)

        table = table.sort_by([(k, o) for k, o in sort_keys])
        written: list[str] = []

        # 1. sidecars
        sidecar_names: list[str] = []
        stored = 0
        if sidecars is not None:
            blobs = sidecars(table)
            for name, blob in sorted(blobs.items()):
                if (
                    not name
                    or name == META_NAME
                    or name.startswith(DATA_PREFIX)
                    or name.endswith(TMP_SUFFIX)
                    or "/" in name
                    or name in (".", "..")
                ):
                    raise ValueError(f"write_block: invalid sidecar name {name!r}")
                path = f"{bdir}/{name}"
                with self.fs.open_output_stream(path) as out:
                    out.write(blob)
                written.append(path)
                sidecar_names.append(name)
                stored += len(blob)

        # 2. data files
        n = table.num_rows
        per_file = n if not max_file_rows or max_file_rows <= 0 else max_file_rows
        files: list[dict[str, Any]] = []
        key_type = table.schema.field(key_column).type
        for i, start in enumerate(range(0, n, per_file)):
            part = table.slice(start, per_file)
            name = f"{DATA_PREFIX}.parquet" if i == 0 else f"{DATA_PREFIX}-{i:04d}.parquet"
            path = f"{bdir}/{name}"
            nbytes, rg_rows = self._write_parquet(
                path, part, sort_keys, row_group_rows, compression, compression_level, writer_options
            )
            written.append(path)
            stored += nbytes
            files.append(
                {
                    "name": name,
                    "rows": part.num_rows,
                    "bytes": nbytes,
                    "row_groups": self._row_group_stats(part, rg_rows, key_column, key_type, time_column),
                }
            )

        meta = BlockMeta(
            block_id=block_id,
            tenant=tenant,
            signal=signal,
            level=int(level),
            min_time_ns=int(min_time),
            max_time_ns=int(max_time),
            rows=n,
            stored_bytes=stored,
            raw_bytes=int(raw_bytes),
            created_at=_now_iso(),
            source=source,
            replaces=replaces,
            files=files,
            sidecars=sidecar_names,
            path=rel,
            sort_keys=[[k, o] for k, o in sort_keys],
            key_column=key_column,
            time_column=time_column,
            extra=dict(extra or {}),
        )

        # 3. meta.json, last: the commit.
        body = meta.to_json(indent=1).encode()
        if self._object_store:
            with self.fs.open_output_stream(meta_path) as out:
                out.write(body)
        else:
            tmp = meta_path + TMP_SUFFIX
            with self.fs.open_output_stream(tmp) as out:
                out.write(body)
            self._sync_files([*written, tmp])
            self.fs.move(tmp, meta_path)
            self._sync_dir(bdir)
        self._add(meta)
        log.debug(
            "storage: committed block %s (%s/%s L%d, %d rows, %d bytes)",
            block_id,
            tenant,
            signal,
            level,
            n,
            stored,
        )

        if self.is_replaced(block_id):
            # A re-flush of data that a compaction has already absorbed: it is garbage.
            log.info(
                "storage: block %s is already replaced by %s; deleting it",
                block_id,
                sorted(self._replaced_by.get(block_id, ())),
            )
            self.delete_block(meta)
        return meta

    def _existing(self, block_id: str, meta_path: str) -> BlockMeta | None:
        with self._lock:
            m = self._blocks.get(block_id)
        if m is not None:
            return m
        if self.fs.get_file_info(meta_path).type == pafs.FileType.File:
            try:
                m = self._read_meta(meta_path)
            except Exception:
                log.exception("storage: unreadable %s; rewriting the block", meta_path)
                return None
            self._add(m)
            return m
        return None

    def _write_parquet(
        self,
        path: str,
        table: pa.Table,
        sort_keys: list[tuple[str, str]],
        row_group_rows: int,
        compression: str,
        compression_level: int,
        writer_options: dict[str, Any] | None = None,
    ) -> tuple[int, list[int]]:
        sorting = pq.SortingColumn.from_ordering(table.schema, [(k, o) for k, o in sort_keys])
        with self.fs.open_output_stream(path) as out:
            writer = pq.ParquetWriter(
                out,
                table.schema,
                compression=compression,
                compression_level=compression_level,
                write_page_index=True,
                sorting_columns=sorting,
                **{"use_dictionary": _string_columns(table.schema), **(writer_options or {})},
            )
            try:
                writer.write_table(table, row_group_size=row_group_rows)
            finally:
                writer.close()
            nbytes = out.tell()
        md = writer.writer.metadata
        rg_rows = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
        return nbytes, rg_rows

    @staticmethod
    def _row_group_stats(
        table: pa.Table, rg_rows: list[int], key_column: str, key_type: pa.DataType, time_column: str
    ) -> list[dict[str, Any]]:
        keys = _plain(table.column(key_column))
        times = _as_int64(table.column(time_column))
        out = []
        start = 0
        for rows in rg_rows:  # one vectorised min/max per row group
            kmin, kmax = _min_max(keys.slice(start, rows))
            tmin, tmax = _min_max(times.slice(start, rows))
            out.append(
                {
                    "rows": rows,
                    "min_key_hex": encode_key(kmin, key_type),
                    "max_key_hex": encode_key(kmax, key_type),
                    "min_time": tmin,
                    "max_time": tmax,
                }
            )
            start += rows
        return out

    def _sync_files(self, paths: list[str]) -> None:
        if not self._fsync:
            return
        for p in paths:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _sync_dir(self, path: str) -> None:
        if not self._fsync:
            return
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    # ---- deleting ----------------------------------------------------------------------------

    def delete_block(self, meta: BlockMeta) -> None:
        """Delete a block: ``meta.json`` first (so it is never half-visible), then the rest.

        Blocks that ``meta`` replaces and that still exist are deleted first: their rows are in
        ``meta``, and removing ``meta`` alone would make them visible again."""
        for rid in list(meta.replaces):
            with self._lock:
                inner = self._blocks.get(rid)
            if inner is not None and inner is not meta:
                self.delete_block(inner)
        self._forget(meta)
        bdir = self.block_dir(meta)
        try:
            self.fs.delete_file(f"{bdir}/{META_NAME}")
        except FileNotFoundError:
            pass
        self._sync_dir(bdir)
        try:
            self.fs.delete_dir(bdir)
        except FileNotFoundError:
            pass
        log.debug("storage: deleted block %s (%s/%s)", meta.block_id, meta.tenant, meta.signal)

    def delete_blocks_after(
        self,
        offset: int,
        source_kind: str = "wal",
        *,
        signal: str | None = None,
        tenant: str | None = None,
        partition: int | None = None,
    ) -> int:
        """Delete blocks made from ``source_kind`` whose ``source.offset_hi`` exceeds ``offset``
        (e.g. blocks flushed after the last committed WAL offset, which replay re-creates).
        Log offsets are per signal, so pass ``signal`` unless all signals share one offset space.
        Returns the number of blocks deleted."""
        n = 0
        for m in self.list_blocks(tenant, signal, include_replaced=True):
            src = m.source
            if src.get("kind") != source_kind or src.get("offset_hi") is None:
                continue
            if partition is not None and src.get("partition", 0) != partition:
                continue
            if src["offset_hi"] > offset and self.get(m.block_id) is not None:
                log.info(
                    "storage: deleting block %s (%s/%s, offsets %s..%s > committed %d)",
                    m.block_id,
                    m.tenant,
                    m.signal,
                    src.get("offset_lo"),
                    src["offset_hi"],
                    offset,
                )
                self.delete_block(m)
                n += 1
        return n

    # ---- recovery ----------------------------------------------------------------------------

    def recover(self, *, partial_grace_s: float = 0.0) -> dict[str, int]:
        """Startup clean-up; call before anything else uses the store.

        Deletes block directories without ``meta.json`` (partial writes) and temp files, loads
        the catalog, and deletes blocks superseded through another block's ``replaces``.
        ``partial_grace_s`` > 0 spares partial blocks whose newest file is younger than that (for
        object stores shared with writers in other processes). Returns counts."""
        committed, per_dir, temps = self._scan()
        now = datetime.now(UTC)
        partial = 0
        for d, files in sorted(per_dir.items()):
            if d in committed:
                continue
            if partial_grace_s > 0 and files:
                newest = max((f.mtime for f in files if f.mtime is not None), default=None)
                if newest is not None and newest.tzinfo is None:
                    newest = newest.replace(tzinfo=UTC)
                if newest is not None and (now - newest).total_seconds() < partial_grace_s:
                    continue
            log.warning("storage: removing partial block %s (%d files, no %s)", d, len(files), META_NAME)
            try:
                self.fs.delete_dir(d)
            except FileNotFoundError:
                pass
            partial += 1
        temp_files = 0
        for t in temps:
            parent = t.rsplit("/", 1)[0]
            if parent in per_dir and parent not in committed:
                continue  # already gone with its partial directory
            log.warning("storage: removing temp file %s", t)
            try:
                self.fs.delete_file(t)
                temp_files += 1
            except FileNotFoundError:
                pass

        self.load()
        superseded = 0
        for m in self.list_blocks(include_replaced=True):
            if self.is_replaced(m.block_id) and self.get(m.block_id) is not None:
                log.warning(
                    "storage: removing block %s, superseded by %s",
                    m.block_id,
                    sorted(self._replaced_by.get(m.block_id, ())),
                )
                self.delete_block(m)
                superseded += 1
        if self._local:
            self._remove_empty_dirs()
        result = {
            "partial": partial,
            "temp_files": temp_files,
            "superseded": superseded,
            "blocks": len(self.list_blocks(include_replaced=True)),
        }
        if partial or temp_files or superseded:
            log.warning("storage: recovery removed %s", result)
        return result

    def _remove_empty_dirs(self) -> None:
        # bottom-up: date dirs, then signal dirs, then tenant dirs (local disk only)
        base = Path(self.blocks_root)
        for depth in (3, 2, 1):
            for d in base.glob("/".join(["*"] * depth)):
                if d.is_dir():
                    try:
                        d.rmdir()
                    except OSError:
                        pass
