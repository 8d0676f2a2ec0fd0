"""``servicegraph``: request edges between services, as Tempo's metrics-generator service-graphs
processor produces them (Grafana's service map reads exactly these series).

An edge is a CLIENT (or PRODUCER) span and the SERVER (or CONSUMER) span whose parent it is, in
the same trace. Series (cumulative, per tenant)::

    traces_service_graph_request_total{client, server, connection_type[, <dims>][, virtual_node]}
    traces_service_graph_request_failed_total{...}                 client or server span is an error
    traces_service_graph_request_server_seconds_bucket/_sum/_count  the server span's duration
    traces_service_graph_request_client_seconds_bucket/_sum/_count  the client span's duration
    traces_service_graph_unpaired_spans_total{client, server, connection_type}  halves that expired
    traces_service_graph_dropped_spans_total{client, server, connection_type}   store full

``connection_type`` is ``""`` (direct call), ``messaging_system`` (producer/consumer),
``database`` or ``virtual_node``. As in Tempo:

- a CLIENT span with ``db.name`` or ``db.system`` is a database call and completes at once; the
  server node is ``peer.service``, else ``server.address``, else ``network.peer.address[:port]``,
  else ``db.name`` (with none of these it waits like any client span);
- a client half that expires unpaired but carries a peer attribute (``peer_attributes``, first
  present wins, span attributes only) becomes an edge to a *virtual* server node named by it;
- a root SERVER/CONSUMER span (no parent) is an edge from the virtual client ``user``. Tempo
  reaches that when the half expires after ``wait``; no client can ever match an empty parent id,
  so Lookout emits it immediately and does not let it occupy the store.

Pairing is a hash join of the batch's client and server spans on (trace_id, span_id) =
(trace_id, parent_span_id) in Arrow; only the halves left over are kept, in a per-tenant
insertion-ordered dict bounded by ``max_items`` and expired after ``wait`` (Tempo's store).
Counting each expired half in ``unpaired_spans_total`` (also when it became a virtual-node
edge) keeps instrumentation gaps visible.

Config (Tempo's keys and defaults)::

    servicegraph:
      wait: 10s
      max_items: 10000
      histogram_buckets: [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8]
      dimensions: []                      # resource first, then span attributes
      peer_attributes: [peer.service, db.name, db.system]
      enable_client_server_prefix: false  # dimensions as client_<d> and server_<d>
      enable_virtual_node_label: false    # adds virtual_node="client"|"server"|""
      external_labels: {}
      max_series: 10000                   # per tenant, over every family of this processor
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.pipeline.series import (
    KeptFn,
    LabelColumn,
    SeriesBudget,
    SeriesFamily,
    SeriesSample,
    attr_values,
    end_ms,
    exponential_buckets,
    parse_buckets,
    parse_external_labels,
    sanitize_label_name,
    string_column,
)
from lookout.pipeline.settings import Settings
from lookout.pipeline.stats import ProcessorStats

REQUEST_TOTAL = "traces_service_graph_request_total"
REQUEST_FAILED = "traces_service_graph_request_failed_total"
SERVER_SECONDS = "traces_service_graph_request_server_seconds"
CLIENT_SECONDS = "traces_service_graph_request_client_seconds"
UNPAIRED = "traces_service_graph_unpaired_spans_total"
DROPPED = "traces_service_graph_dropped_spans_total"
DEFAULT_BUCKETS = exponential_buckets(0.1, 2, 8)  # 0.1 .. 12.8, Tempo's default
DEFAULT_PEER_ATTRIBUTES = ["peer.service", "db.name", "db.system"]
VIRTUAL_NODE_LABEL = "virtual_node"

_SERVER, _CLIENT, _PRODUCER, _CONSUMER = 2, 3, 4, 5


@dataclass(slots=True)
class ServiceGraphConfig:
    wait: float = 10.0
    max_items: int = 10_000
    histogram_buckets: list[float] = field(default_factory=lambda: list(DEFAULT_BUCKETS))
    dimensions: list[str] = field(default_factory=list)
    peer_attributes: list[str] = field(default_factory=lambda: list(DEFAULT_PEER_ATTRIBUTES))
    enable_client_server_prefix: bool = False
    enable_virtual_node_label: bool = False
    external_labels: dict[str, str] = field(default_factory=dict)
    max_series: int = 10_000

    def label_names(self) -> list[str]:
        names = ["client", "server", "connection_type"]
        for d in self.dimensions:
            if self.enable_client_server_prefix:
                names += [sanitize_label_name("client_" + d), sanitize_label_name("server_" + d)]
            else:
                names.append(sanitize_label_name(d))
        if self.enable_virtual_node_label:
            names.append(VIRTUAL_NODE_LABEL)
        return names


def parse_servicegraph_config(raw: dict | None, path: str, problems: list[str]) -> ServiceGraphConfig | None:
    """Validate a ``servicegraph`` mapping; every problem is appended as ``path.key: message``."""
    before = len(problems)
    s = Settings(raw, path, problems)
    cfg = ServiceGraphConfig()
    wait = s.duration("wait", cfg.wait)
    if wait is None or wait <= 0:
        s.bad("wait", f"expected a positive duration like 10s, got {s.raw.get('wait')!r}")
    else:
        cfg.wait = wait
    cfg.max_items = s.integer("max_items", cfg.max_items)
    if cfg.max_items <= 0:
        s.bad("max_items", f"expected a positive integer, got {cfg.max_items}")
    s.integer("workers", 10)  # Tempo's goroutine count: accepted so Tempo configs load, meaningless here
    cfg.histogram_buckets = parse_buckets(s.any("histogram_buckets"), f"{path}.histogram_buckets", problems,
                                          DEFAULT_BUCKETS)
    cfg.dimensions = s.strings("dimensions")
    cfg.peer_attributes = s.strings("peer_attributes", DEFAULT_PEER_ATTRIBUTES)
    cfg.enable_client_server_prefix = s.boolean("enable_client_server_prefix", False)
    cfg.enable_virtual_node_label = s.boolean("enable_virtual_node_label", False)
    cfg.external_labels = parse_external_labels(s.any("external_labels"), f"{path}.external_labels", problems)
    cfg.max_series = s.integer("max_series", cfg.max_series)
    if cfg.max_series <= 0:
        s.bad("max_series", f"expected a positive integer, got {cfg.max_series}")
    s.done()
    seen: set[str] = set()
    for n in cfg.label_names():
        if n in seen:
            problems.append(f'{path}.dimensions: "{n}" is already a service graph label')
        seen.add(n)
    for k in cfg.external_labels:
        if k in seen:
            problems.append(f"{path}.external_labels.{k}: collides with a service graph label")
    return cfg if len(problems) == before else None


@dataclass(slots=True)
class _Half:
    """One side of an edge waiting for the other (only leftovers of a batch get here)."""

    is_client: bool
    expires: float
    trace_id: bytes
    span_id: bytes
    service: str
    latency: float
    failed: bool
    conn: str
    dims: tuple[str, ...]
    peer: str  # client only: first peer attribute present
    t_ms: int


@dataclass(slots=True)
class _Edges:
    """Columns of completed edges, ready for the series family."""

    client: list[str] | pa.Array
    server: list[str] | pa.Array
    conn: list[str] | pa.Array
    cdims: list[list[str] | pa.Array]  # per dimension, the client span's value
    sdims: list[list[str] | pa.Array]  # per dimension, the server span's value
    virtual: list[str] | pa.Array
    client_lat: np.ndarray
    server_lat: np.ndarray
    failed: np.ndarray
    trace_id: list[bytes] | pa.Array
    span_id: list[bytes] | pa.Array
    t_ms: np.ndarray


_STRING = pa.string()


def _arr(x: list | pa.Array, typ: pa.DataType = _STRING) -> pa.Array:
    return x if isinstance(x, pa.Array) else pa.array(x, typ)


class _TenantState:
    def __init__(self, cfg: ServiceGraphConfig, labels: list[str]) -> None:
        budget = SeriesBudget(cfg.max_series)
        self.edges = SeriesFamily(labels, [REQUEST_TOTAL, REQUEST_FAILED],
                                  [(SERVER_SECONDS, cfg.histogram_buckets), (CLIENT_SECONDS, cfg.histogram_buckets)],
                                  budget)
        side = ["client", "server", "connection_type"]
        self.unpaired = SeriesFamily(side, [UNPAIRED], [], budget)
        self.dropped = SeriesFamily(side, [DROPPED], [], budget)
        self.store: dict[bytes, _Half] = {}


class ServiceGraph:
    """Service-graph edges per tenant. ``clock`` is injectable so tests can expire halves."""

    def __init__(self, cfg: ServiceGraphConfig, stats: ProcessorStats,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self.stats, self.clock = cfg, stats, clock
        self._labels = cfg.label_names()
        self._tenants: dict[str, _TenantState] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------------------------------
    # observe
    # ---------------------------------------------------------------------------------------

    def observe(self, tenant: str, table: pa.Table) -> None:
        """Pair the batch's spans (a join), complete or store the leftovers, expire old halves."""
        with self._lock:
            st = self._state(tenant)
            self._expire(st, self.clock())
            if table.num_rows:
                self._observe(st, table)

    def _state(self, tenant: str) -> _TenantState:
        st = self._tenants.get(tenant)
        if st is None:
            st = self._tenants[tenant] = _TenantState(self.cfg, self._labels)
        return st

    def _observe(self, st: _TenantState, table: pa.Table) -> None:
        cfg = self.cfg
        kind = table.column("kind").fill_null(0).to_numpy().astype(np.int64)
        svc = string_column(table, "service_name")
        has_svc = pc.not_equal(svc, "").to_numpy(zero_copy_only=False)
        is_client = ((kind == _CLIENT) | (kind == _PRODUCER)) & has_svc
        is_server = ((kind == _SERVER) | (kind == _CONSUMER)) & has_svc
        if not (is_client.any() or is_server.any()):
            return
        n = table.num_rows
        tids = table.column("trace_id").combine_chunks()
        spids = table.column("span_id").combine_chunks().cast(pa.binary())
        parent = table.column("parent_span_id").combine_chunks().fill_null(b"")
        lat = np.maximum(table.column("duration_nano").to_numpy(), 0) / 1e9
        failed = table.column("status_code").fill_null(0).to_numpy() == 2
        t_ms = end_ms(table)
        dims = [attr_values(table, d)[0] for d in cfg.dimensions]
        peer = pa.nulls(n, pa.string())
        for key in cfg.peer_attributes:  # span attributes only, first present wins
            vals, present = attr_values(table, key, ("",))
            peer = pc.coalesce(peer, pc.if_else(pa.array(present), vals, pa.scalar(None, pa.string())))
        peer = peer.fill_null("")
        # database calls: complete at once with a server node named by precedence
        db_name, has_db_name = attr_values(table, "db.name")
        _, has_db_system = attr_values(table, "db.system")
        is_db = is_client & (has_db_name | has_db_system)
        db_server = pa.nulls(n, pa.string())
        for key in ("peer.service", "server.address"):
            vals, present = attr_values(table, key)
            db_server = pc.coalesce(db_server, pc.if_else(pa.array(present), vals, pa.scalar(None, pa.string())))
        host, has_host = attr_values(table, "network.peer.address")
        port, has_port = attr_values(table, "network.peer.port")
        hostport = pc.if_else(pa.array(has_port), pc.binary_join_element_wise(host, port, ":"), host)
        db_server = pc.coalesce(db_server, pc.if_else(pa.array(has_host), hostport, pa.scalar(None, pa.string())))
        db_server = pc.coalesce(db_server, pc.if_else(pa.array(has_db_name), db_name,
                                                      pa.scalar(None, pa.string()))).fill_null("")
        db_done = is_db & pc.not_equal(db_server, "").to_numpy(zero_copy_only=False)
        conn_client = np.where(kind == _PRODUCER, "messaging_system", np.where(is_db, "database", ""))
        conn_server = np.where(kind == _CONSUMER, "messaging_system", "")

        def take(a: pa.Array, idx: np.ndarray) -> pa.Array:
            return a.take(pa.array(idx, pa.int64()))

        def blank(k: int) -> list[str]:
            return [""] * k

        # 1. database clients
        di = np.flatnonzero(db_done)
        if len(di):
            self._emit(st, _Edges(
                client=take(svc, di), server=take(db_server, di), conn=["database"] * len(di),
                cdims=[take(d, di) for d in dims], sdims=[blank(len(di)) for _ in dims], virtual=blank(len(di)),
                client_lat=lat[di], server_lat=lat[di], failed=failed[di], trace_id=take(tids, di),
                span_id=take(spids, di), t_ms=t_ms[di]))
        # 2. root servers: from the virtual client "user"
        parent_empty = pc.equal(pc.binary_length(parent), 0).to_numpy(zero_copy_only=False)
        ri = np.flatnonzero(is_server & parent_empty)
        if len(ri):
            self._emit(st, _Edges(
                client=["user"] * len(ri), server=take(svc, ri), conn=["virtual_node"] * len(ri),
                cdims=[blank(len(ri)) for _ in dims], sdims=[take(d, ri) for d in dims], virtual=["client"] * len(ri),
                client_lat=np.zeros(len(ri)), server_lat=lat[ri], failed=failed[ri], trace_id=take(tids, ri),
                span_id=take(spids, ri), t_ms=t_ms[ri]))
        # 3. the join
        ci = np.flatnonzero(is_client & ~db_done)
        si = np.flatnonzero(is_server & ~parent_empty)
        pc_i = ps_i = np.zeros(0, dtype=np.int64)
        if len(ci) and len(si):
            ct = pa.table({"t": take(tids, ci), "k": take(spids, ci), "ci": pa.array(ci, pa.int64())})
            stt = pa.table({"t": take(tids, si), "k": take(parent, si), "si": pa.array(si, pa.int64())})
            j = ct.join(stt, keys=["t", "k"], join_type="inner", use_threads=False)
            a = j.column("ci").to_numpy()
            b = j.column("si").to_numpy()
            order = np.lexsort((b, a))
            a, b = a[order], b[order]
            _, first = np.unique(a, return_index=True)  # one server per client span (Tempo pairs once)
            a, b = a[first], b[first]
            _, first = np.unique(b, return_index=True)
            pc_i, ps_i = a[first], b[first]
        if len(pc_i):
            conn = np.where((kind[pc_i] == _PRODUCER) | (kind[ps_i] == _CONSUMER), "messaging_system", "")
            self._emit(st, _Edges(
                client=take(svc, pc_i), server=take(svc, ps_i), conn=conn.tolist(),
                cdims=[take(d, pc_i) for d in dims], sdims=[take(d, ps_i) for d in dims],
                virtual=blank(len(pc_i)), client_lat=lat[pc_i], server_lat=lat[ps_i],
                failed=failed[pc_i] | failed[ps_i], trace_id=take(tids, pc_i), span_id=take(spids, pc_i),
                t_ms=t_ms[pc_i]))
        # 4. leftovers meet the store
        left_c = np.setdiff1d(ci, pc_i, assume_unique=True)
        left_s = np.setdiff1d(si, ps_i, assume_unique=True)
        if len(left_c) or len(left_s):
            self._leftovers(st, left_c, left_s, tids, spids, parent, svc, lat, failed, conn_client, conn_server,
                            dims, peer, t_ms)

    def _leftovers(self, st: _TenantState, left_c: np.ndarray, left_s: np.ndarray, tids: pa.Array,
                   spids: pa.Array, parent: pa.Array, svc: pa.Array, lat: np.ndarray, failed: np.ndarray,
                   conn_client: np.ndarray, conn_server: np.ndarray, dims: Sequence[pa.Array], peer: pa.Array,
                   t_ms: np.ndarray) -> None:
        """The only per-span Python: halves whose partner is in another batch (or nowhere)."""
        expires = self.clock() + self.cfg.wait
        done: list[tuple[_Half, _Half]] = []
        dropped: list[tuple[str, str, str]] = []
        store, limit = st.store, self.cfg.max_items
        for is_client, idx in ((True, left_c), (False, left_s)):
            if not len(idx):
                continue
            sel = pa.array(idx, pa.int64())
            t = tids.take(sel).to_pylist()
            own = spids.take(sel).to_pylist()
            key_part = own if is_client else parent.take(sel).to_pylist()
            names = svc.take(sel).to_pylist()
            dim_rows = list(zip(*[d.take(sel).to_pylist() for d in dims], strict=True)) if dims else \
                [()] * len(idx)
            peers = peer.take(sel).to_pylist() if is_client else [""] * len(idx)
            conns = (conn_client if is_client else conn_server)[idx].tolist()
            lats, fails, tms = lat[idx].tolist(), failed[idx].tolist(), t_ms[idx].tolist()
            for i in range(len(idx)):
                key = t[i] + key_part[i]
                half = _Half(is_client, expires, t[i], own[i], names[i], lats[i], fails[i], conns[i], dim_rows[i],
                             peers[i], tms[i])
                other = store.get(key)
                if other is not None and other.is_client != is_client:
                    del store[key]
                    done.append((half, other) if is_client else (other, half))
                elif other is not None or len(store) < limit:
                    store[key] = half  # a repeated half replaces the waiting one (Tempo updates it)
                else:
                    dropped.append((names[i], "", conns[i]) if is_client else ("", names[i], conns[i]))
        if done:
            cl = [c for c, _ in done]
            sv = [s for _, s in done]
            self._emit(st, _Edges(
                client=[c.service for c in cl], server=[s.service for s in sv],
                conn=["messaging_system" if "messaging_system" in (c.conn, s.conn) else "" for c, s in done],
                cdims=[[c.dims[k] for c in cl] for k in range(len(dims))],
                sdims=[[s.dims[k] for s in sv] for k in range(len(dims))], virtual=[""] * len(done),
                client_lat=np.array([c.latency for c in cl]), server_lat=np.array([s.latency for s in sv]),
                failed=np.array([c.failed or s.failed for c, s in done]), trace_id=[c.trace_id for c in cl],
                span_id=[c.span_id for c in cl], t_ms=np.array([c.t_ms for c in cl], dtype=np.int64)))
        if dropped:
            self.stats.add("dropped_spans", len(dropped), reason="max_items")
            self._count(st.dropped, DROPPED, dropped)

    # ---------------------------------------------------------------------------------------
    # expiry, emission
    # ---------------------------------------------------------------------------------------

    def _expire(self, st: _TenantState, now: float) -> None:
        """Pop halves past ``wait`` (insertion order is expiry order): count them unpaired and
        turn client halves with a peer attribute into edges to a virtual server node."""
        store = st.store
        keys: list[bytes] = []
        for key, half in store.items():
            if half.expires > now:
                break
            keys.append(key)
        if not keys:
            return
        expired = [store.pop(k) for k in keys]
        self.stats.add("expired_edges", len(expired))
        self._count(st.unpaired, UNPAIRED,
                    [(h.service, "", h.conn) if h.is_client else ("", h.service, h.conn) for h in expired])
        virt = [h for h in expired if h.is_client and h.peer]
        if virt:
            nd = len(self.cfg.dimensions)
            self._emit(st, _Edges(
                client=[h.service for h in virt], server=[h.peer for h in virt], conn=["virtual_node"] * len(virt),
                cdims=[[h.dims[k] for h in virt] for k in range(nd)], sdims=[[""] * len(virt) for _ in range(nd)],
                virtual=["server"] * len(virt), client_lat=np.array([h.latency for h in virt]),
                server_lat=np.array([h.latency if h.conn == "database" else 0.0 for h in virt]),
                failed=np.array([h.failed for h in virt]), trace_id=[h.trace_id for h in virt],
                span_id=[h.span_id for h in virt], t_ms=np.array([h.t_ms for h in virt], dtype=np.int64)))

    def _count(self, fam: SeriesFamily, name: str, rows: list[tuple[str, str, str]]) -> None:
        cols: list[LabelColumn] = [pa.array(list(c), pa.string()) for c in zip(*rows, strict=True)]
        sid = fam.resolve(cols, len(rows))
        self._note_dropped(sid)
        fam.add(name, sid)

    def _note_dropped(self, sid: np.ndarray) -> None:
        over = int(np.count_nonzero(sid < 0))
        if over:
            self.stats.add("series_dropped_spans", over, reason="max_series")

    def _emit(self, st: _TenantState, e: _Edges) -> None:
        n = len(e.client_lat)
        cols: list[LabelColumn] = [_arr(e.client), _arr(e.server), _arr(e.conn)]
        for c, s in zip(e.cdims, e.sdims, strict=True):
            c, s = _arr(c), _arr(s)
            if self.cfg.enable_client_server_prefix:
                cols += [c, s]
            else:  # Tempo: "either value could get used"; the server's wins when both are set
                cols.append(pc.if_else(pc.equal(s, ""), c, s))
        if self.cfg.enable_virtual_node_label:
            cols.append(_arr(e.virtual))
        fam = st.edges
        sid = fam.resolve(cols, n)
        self._note_dropped(sid)
        tid, spid = _arr(e.trace_id, pa.binary()), _arr(e.span_id, pa.binary())
        fam.add(REQUEST_TOTAL, sid)
        fam.add(REQUEST_FAILED, sid, e.failed.astype(np.float64))
        fam.observe(SERVER_SECONDS, sid, e.server_lat, tid, spid, e.t_ms)
        fam.observe(CLIENT_SECONDS, sid, e.client_lat, tid, spid, e.t_ms)
        self.stats.add("edges", n)

    # ---------------------------------------------------------------------------------------
    # collect
    # ---------------------------------------------------------------------------------------

    def collect(self, tenant: str, kept: KeptFn) -> list[SeriesSample]:
        """Expire due halves, then every series of ``tenant`` with its cumulative value."""
        with self._lock:
            st = self._tenants.get(tenant)
            if st is None:
                return []
            self._expire(st, self.clock())
            ext = self.cfg.external_labels
            return st.edges.collect(kept, ext) + st.unpaired.collect(kept, ext) + st.dropped.collect(kept, ext)

    def tenants(self) -> list[str]:
        with self._lock:
            return sorted(self._tenants)

    def pending(self, tenant: str) -> int:
        """Halves waiting for their partner (tests, self-monitoring)."""
        with self._lock:
            st = self._tenants.get(tenant)
            return len(st.store) if st else 0


def build(name: str, raw: Any, *, signal: str, path: str, problems: list[str]) -> ServiceGraph | None:
    """The pipeline factory (see ``lookout/pipeline/processor.py``)."""
    cfg = parse_servicegraph_config(raw, path, problems)
    return None if cfg is None else ServiceGraph(cfg, ProcessorStats(signal, name))
