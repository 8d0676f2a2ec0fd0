"""The contract between the log store and the LogQL engine.

The engine only sees a :class:`LogQuerier`. The store (head + blocks) and :class:`MemoryLogQuerier`
(unit tests, in-process conformance runner) implement it. Entries travel as one Arrow table so
that line filters and parsers run in pyarrow compute or DuckDB, never a Python loop per line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

# The columns every selection returns, in this order. ``metadata`` is the structured metadata
# (OTLP attributes not promoted to stream labels, trace_id/span_id, severity, ...): it is
# queryable by label filters and, as in Loki, shows up in result labels.
ENTRY_SCHEMA = pa.schema(
    [
        pa.field("stream_id", pa.uint64(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),  # Unix nanoseconds
        pa.field("line", pa.string(), nullable=False),
        pa.field("metadata", pa.map_(pa.string(), pa.string())),
    ]
)


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    """A stream selector matcher: ``op`` is ``=``, ``!=``, ``=~`` or ``!~``; regexes are anchored."""

    name: str
    op: str
    value: str

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = re.fullmatch(f"(?s:{self.value})", value) is not None
        return hit if self.op == "=~" else not hit


def stream_key(labels: dict[str, str]) -> str:
    """Loki's canonical form of a label set: ``{a="1", b="2"}`` with names sorted."""
    body = ", ".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def stream_id(labels: dict[str, str]) -> int:
    """Stable 64-bit id of a stream (xxh64 of its canonical key); the store's sort key."""
    return xxhash.xxh64_intdigest(stream_key(labels).encode())


@dataclass(slots=True)
class SelectHints:
    """What the engine knows that lets the store skip blocks; the engine still applies every
    filter itself, so a store may ignore hints.

    ``contains``: substrings every returned line must contain (from ``|=`` filters);
    ``trace_id``: lowercase hex trace id the entries must carry in their metadata."""

    contains: list[str] = field(default_factory=list)
    trace_id: str | None = None
    limit: int | None = None
    direction: str = "backward"  # with limit: keep the newest (backward) or oldest (forward)


@dataclass(slots=True)
class LogSelection:
    """Entries of the selected streams in ``[start_ns, end_ns)``: ``entries`` follows
    :data:`ENTRY_SCHEMA`, sorted by ``(stream_id, ts)``; ``streams`` maps every ``stream_id``
    present to its labels."""

    streams: dict[int, dict[str, str]]
    entries: pa.Table


class LogQuerier(Protocol):
    """Read access to one tenant's logs. Times are Unix nanoseconds, ``start`` inclusive and
    ``end`` exclusive (Loki's convention)."""

    def select(self, matchers: list[LabelMatcher], start_ns: int, end_ns: int,
               hints: SelectHints | None = None) -> LogSelection: ...

    def streams(self, matchers: list[LabelMatcher], start_ns: int, end_ns: int) -> dict[int, dict[str, str]]:
        """Labels of the streams matching ``matchers`` with at least one entry in the range."""
        ...

    def label_names(self, start_ns: int, end_ns: int) -> list[str]: ...

    def label_values(self, name: str, start_ns: int, end_ns: int,
                     matchers: list[LabelMatcher] | None = None) -> list[str]: ...


class MemoryLogQuerier:
    """In-memory :class:`LogQuerier` for tests and the in-process conformance runner."""

    def __init__(self) -> None:
        self._streams: dict[int, dict[str, str]] = {}
        self._chunks: list[pa.Table] = []
        self._table: pa.Table | None = None

    def clear(self) -> None:
        self.__init__()

    def push(self, labels: dict[str, str], ts_ns: np.ndarray, lines: list[str],
             metadata: list[dict[str, str]] | None = None) -> None:
        sid = stream_id(labels)
        self._streams[sid] = dict(labels)
        n = len(lines)
        md = [list((metadata[i] if metadata else {}).items()) for i in range(n)]
        self._chunks.append(pa.table(
            {
                "stream_id": pa.array(np.full(n, sid, dtype=np.uint64)),
                "ts": pa.array(np.asarray(ts_ns, dtype=np.int64)),
                "line": pa.array(lines, pa.string()),
                "metadata": pa.array(md, pa.map_(pa.string(), pa.string())),
            },
            schema=ENTRY_SCHEMA,
        ))
        self._table = None

    def _all(self) -> pa.Table:
        if self._table is None:
            t = pa.concat_tables(self._chunks) if self._chunks else ENTRY_SCHEMA.empty_table()
            self._table = t.sort_by([("stream_id", "ascending"), ("ts", "ascending")])
        return self._table

    def streams(self, matchers: list[LabelMatcher], start_ns: int, end_ns: int) -> dict[int, dict[str, str]]:
        sel = self.select(matchers, start_ns, end_ns)
        return sel.streams

    def select(self, matchers: list[LabelMatcher], start_ns: int, end_ns: int,
               hints: SelectHints | None = None) -> LogSelection:
        wanted = {sid: lb for sid, lb in self._streams.items()
                  if all(m.matches(lb.get(m.name, "")) for m in matchers)}
        t = self._all()
        ids = pa.array(np.fromiter(wanted, dtype=np.uint64, count=len(wanted)), pa.uint64())
        mask = pc.and_(pc.is_in(t["stream_id"], value_set=ids),
                       pc.and_(pc.greater_equal(t["ts"], start_ns), pc.less(t["ts"], end_ns)))
        out = t.filter(mask)
        present = set(np.unique(out["stream_id"].to_numpy()).tolist()) if out.num_rows else set()
        return LogSelection({sid: wanted[sid] for sid in present}, out)

    def label_names(self, start_ns: int, end_ns: int) -> list[str]:
        return sorted({n for lb in self.streams([], start_ns, end_ns).values() for n in lb})

    def label_values(self, name: str, start_ns: int, end_ns: int,
                     matchers: list[LabelMatcher] | None = None) -> list[str]:
        return sorted({lb[name] for lb in self.streams(matchers or [], start_ns, end_ns).values() if name in lb})
