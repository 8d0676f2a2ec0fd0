"""Service-graph edges: in-batch and cross-batch pairing, expiry, virtual nodes, bounds."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from lookout.otlp.traces import decode_traces
from lookout.pipeline.servicegraph import (
    CLIENT_SECONDS,
    DEFAULT_BUCKETS,
    DROPPED,
    REQUEST_FAILED,
    REQUEST_TOTAL,
    SERVER_SECONDS,
    UNPAIRED,
    ServiceGraph,
    parse_servicegraph_config,
)
from lookout.pipeline.stats import ProcessorStats

T0 = 1_700_000_000_000_000_000


def _kv(key: str, value: object) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, int) and not isinstance(value, bool):
        kv.value.int_value = value
    else:
        kv.value.string_value = str(value)
    return kv


def table(spans: list[dict]) -> pa.Table:
    """Span dicts (service, trace, span, parent, kind, dur, status, attrs, res) -> the span table."""
    req = ExportTraceServiceRequest()
    for s in spans:
        rs = req.resource_spans.add()
        rs.resource.attributes.append(_kv("service.name", s["service"]))
        for k, v in s.get("res", {}).items():
            rs.resource.attributes.append(_kv(k, v))
        sp = rs.scope_spans.add().spans.add()
        sp.trace_id, sp.span_id, sp.parent_span_id = s["trace"], s["span"], s.get("parent", b"")
        sp.name, sp.kind = s.get("name", "op"), s["kind"]
        sp.start_time_unix_nano = T0
        sp.end_time_unix_nano = T0 + s["dur"]
        sp.status.code = s.get("status", 0)
        for k, v in s.get("attrs", {}).items():
            sp.attributes.append(_kv(k, v))
    return decode_traces([req.SerializeToString()])


def generate(n: int, seed: int = 3) -> list[dict]:
    """Per trace: frontend SERVER (root) -> frontend CLIENT -> backend SERVER -> backend CLIENT (db)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tid = rng.randbytes(16)
        ids = [rng.randbytes(8) for _ in range(4)]

        def dur() -> int:
            return int(10 ** rng.uniform(7, 10.3))  # 10 ms .. 20 s

        out += [
            dict(service="frontend", trace=tid, span=ids[0], kind=2, dur=dur(), status=rng.choice([0, 2])),
            dict(service="frontend", trace=tid, span=ids[1], parent=ids[0], kind=3, dur=dur(),
                 status=rng.choice([0, 0, 2]), attrs={"peer.service": "backend-peer"}),
            dict(service="backend", trace=tid, span=ids[2], parent=ids[1], kind=2, dur=dur(),
                 status=rng.choice([0, 1, 2])),
            dict(service="backend", trace=tid, span=ids[3], parent=ids[2], kind=3, dur=dur(),
                 attrs={"db.system": "postgresql", "db.name": "shop"}),
        ]
    return out


def by_labels(samples, name: str) -> dict[tuple, object]:
    return {tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("__name__",))): s
            for s in samples if s.labels["__name__"] == name}


def edge(client: str, server: str, conn: str = "", **extra: str) -> tuple:
    """The label key of a series; empty values are absent labels, as in Prometheus."""
    d = {"client": client, "server": server, "connection_type": conn, **extra}
    return tuple(sorted((k, v) for k, v in d.items() if v))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(raw: dict | None = None, clock: Clock | None = None) -> tuple[ServiceGraph, ProcessorStats]:
    problems: list[str] = []
    cfg = parse_servicegraph_config(raw, "sg", problems)
    assert cfg is not None, problems
    stats = ProcessorStats("traces", "servicegraph")
    return ServiceGraph(cfg, stats, clock=clock or Clock()), stats


def check_exact(samples, spans: list[dict]) -> None:
    n = len(spans) // 4
    q = spans
    total = by_labels(samples, REQUEST_TOTAL)
    failed = by_labels(samples, REQUEST_FAILED)
    assert total[edge("user", "frontend", "virtual_node")].value == n
    assert total[edge("frontend", "backend")].value == n
    assert total[edge("backend", "shop", "database")].value == n
    assert len(total) == 3
    roots, fclients, bservers = q[0::4], q[1::4], q[2::4]
    assert failed[edge("user", "frontend", "virtual_node")].value == sum(s["status"] == 2 for s in roots)
    assert failed[edge("frontend", "backend")].value == sum(
        c["status"] == 2 or s["status"] == 2 for c, s in zip(fclients, bservers, strict=True))
    assert failed[edge("backend", "shop", "database")].value == 0
    # histograms against numpy
    for name, side in ((CLIENT_SECONDS, fclients), (SERVER_SECONDS, bservers)):
        v = np.array([s["dur"] / 1e9 for s in side])
        buckets = defaultdict(float)
        for s in samples:
            if s.labels["__name__"] == f"{name}_bucket" and s.labels["client"] == "frontend":
                buckets[s.labels["le"]] = s.value
        for b in DEFAULT_BUCKETS:
            le = str(int(b)) if float(b).is_integer() else repr(b)
            assert buckets[le] == np.count_nonzero(v <= b), (name, le)
        assert buckets["+Inf"] == n
        sums = by_labels(samples, f"{name}_sum")[edge("frontend", "backend")].value
        assert abs(sums - v.sum()) < 1e-9 * v.sum()


def test_exact_edges_single_batch():
    spans = generate(300)
    sg, stats = make()
    sg.observe("t", table(spans))
    assert sg.pending("t") == 0
    samples = sg.collect("t", lambda tid: None)
    check_exact(samples, spans)
    assert not by_labels(samples, UNPAIRED)
    assert sg.tenants() == ["t"]


def test_cross_batch_pairing():
    spans = generate(200, seed=5)
    clock = Clock()
    sg, _ = make(clock=clock)
    rng = random.Random(9)
    shuffled = spans[:]
    rng.shuffle(shuffled)
    # client and server halves land in different batches (with time passing below ``wait``)
    pending = []
    for i in range(0, len(shuffled), 37):
        sg.observe("t", table(shuffled[i:i + 37]))
        pending.append(sg.pending("t"))
        clock.now += 0.2  # 22 batches: 4.4 s, under ``wait``
    assert max(pending) > 0 and pending[-1] == 0
    samples = sg.collect("t", lambda tid: None)
    check_exact(samples, spans)
    assert sg.pending("t") == 0


def test_unpaired_expiry_and_virtual_nodes():
    clock = Clock()
    sg, stats = make({"wait": "5s", "enable_virtual_node_label": True}, clock)
    spans = [
        # client with a peer attribute, server never arrives -> virtual server node
        dict(service="api", trace=b"\x01" * 16, span=b"\x01" * 8, parent=b"\x09" * 8, kind=3, dur=2_000_000_000,
             status=2, attrs={"peer.service": "payments"}),
        # client without peer attributes -> only unpaired
        dict(service="api", trace=b"\x02" * 16, span=b"\x02" * 8, parent=b"\x09" * 8, kind=3, dur=1_000_000),
        # server whose client never comes -> only unpaired
        dict(service="worker", trace=b"\x03" * 16, span=b"\x03" * 8, parent=b"\x07" * 8, kind=2, dur=1_000_000),
        # db.system only: no node name yet, waits; expires as virtual node named by db.system
        dict(service="api", trace=b"\x04" * 16, span=b"\x04" * 8, parent=b"\x09" * 8, kind=3, dur=3_000_000,
             attrs={"db.system": "redis"}),
    ]
    sg.observe("t", table(spans))
    assert sg.pending("t") == 4
    clock.now += 4.9
    assert not by_labels(sg.collect("t", lambda tid: None), REQUEST_TOTAL)
    clock.now += 0.2
    samples = sg.collect("t", lambda tid: True)
    assert sg.pending("t") == 0
    total = by_labels(samples, REQUEST_TOTAL)
    assert set(total) == {edge("api", "payments", "virtual_node", virtual_node="server"),
                          edge("api", "redis", "virtual_node", virtual_node="server")}
    assert by_labels(samples, REQUEST_FAILED)[edge("api", "payments", "virtual_node", virtual_node="server")].value == 1
    unpaired = {k: s.value for k, s in by_labels(samples, UNPAIRED).items()}
    assert unpaired == {edge("api", ""): 2, edge("", "worker"): 1, edge("api", "", "database"): 1}
    assert stats.total("expired_edges") == 4
    # the server side of a virtual node saw nothing: 0 s; the client side its span
    srv = by_labels(samples, f"{SERVER_SECONDS}_sum")[edge("api", "payments", "virtual_node", virtual_node="server")]
    cli = by_labels(samples, f"{CLIENT_SECONDS}_sum")[edge("api", "payments", "virtual_node", virtual_node="server")]
    assert srv.value == 0 and cli.value == 2.0


def test_database_nodes_by_precedence():
    sg, _ = make()
    base = dict(service="api", parent=b"\x09" * 8, kind=3, dur=1_000_000)
    spans = [
        dict(base, trace=b"\x01" * 16, span=b"\x01" * 8, attrs={"db.name": "orders"}),
        dict(base, trace=b"\x02" * 16, span=b"\x02" * 8, attrs={"db.system": "mysql", "server.address": "db1"}),
        dict(base, trace=b"\x03" * 16, span=b"\x03" * 8,
             attrs={"db.system": "mysql", "network.peer.address": "10.0.0.5", "network.peer.port": 3306}),
        dict(base, trace=b"\x04" * 16, span=b"\x04" * 8,
             attrs={"db.name": "orders", "peer.service": "orders-db", "server.address": "db1"}),
        dict(base, trace=b"\x05" * 16, span=b"\x05" * 8, attrs={"db.system": "mysql"}, res={"db.name": "fromres"}),
    ]
    sg.observe("t", table(spans))
    assert sg.pending("t") == 0  # every one completes at once
    total = {k: s.value for k, s in by_labels(sg.collect("t", lambda tid: None), REQUEST_TOTAL).items()}
    assert total == {edge("api", "orders", "database"): 1, edge("api", "db1", "database"): 1,
                     edge("api", "10.0.0.5:3306", "database"): 1, edge("api", "orders-db", "database"): 1,
                     edge("api", "fromres", "database"): 1}


def test_messaging_and_dimensions_with_prefix():
    sg, _ = make({"dimensions": ["deployment.environment"], "enable_client_server_prefix": True})
    spans = [
        dict(service="shop", trace=b"\x01" * 16, span=b"\x01" * 8, parent=b"\x09" * 8, kind=4, dur=1_000_000,
             res={"deployment.environment": "prod"}),
        dict(service="mailer", trace=b"\x01" * 16, span=b"\x02" * 8, parent=b"\x01" * 8, kind=5, dur=1_000_000,
             res={"deployment.environment": "eu"}),
    ]
    sg.observe("t", table(spans))
    total = by_labels(sg.collect("t", lambda tid: None), REQUEST_TOTAL)
    assert list(total) == [edge("shop", "mailer", "messaging_system", client_deployment_environment="prod",
                                server_deployment_environment="eu")]


def test_store_bound_drops_and_series_bound():
    clock = Clock()
    sg, stats = make({"max_items": 5}, clock)
    spans = [dict(service="api", trace=bytes([i]) * 16, span=bytes([i]) * 8, parent=b"\x09" * 8, kind=3, dur=1000)
             for i in range(1, 11)]
    sg.observe("t", table(spans))
    assert sg.pending("t") == 5
    samples = sg.collect("t", lambda tid: None)
    assert by_labels(samples, DROPPED)[edge("api", "")].value == 5
    assert stats.get("dropped_spans", reason="max_items") == 5
    # a late server for a stored client still pairs
    sg.observe("t", table([dict(service="db", trace=b"\x01" * 16, span=b"\x77" * 8, parent=b"\x01" * 8,
                                kind=2, dur=1000)]))
    assert by_labels(sg.collect("t", lambda tid: None), REQUEST_TOTAL)[edge("api", "db")].value == 1

    sg2, stats2 = make({"max_series": 3})
    roots = [dict(service=f"s{i}", trace=bytes([i]) * 16, span=bytes([i]) * 8, kind=2, dur=1000) for i in range(10)]
    sg2.observe("t", table(roots))
    total = by_labels(sg2.collect("t", lambda tid: None), REQUEST_TOTAL)
    assert len(total) == 3
    assert stats2.get("series_dropped_spans", reason="max_series") == 7


def test_exemplars_only_from_kept_traces():
    spans = generate(100, seed=11)
    sg, _ = make()
    sg.observe("t", table(spans))
    traces = sorted({s["trace"] for s in spans})
    kept = set(traces[::4])
    samples = sg.collect("t", lambda tid: tid in kept)
    ex = [s.exemplar for s in samples if s.exemplar is not None]
    assert ex and all(e.trace_id in kept for e in ex)
    assert all(s.labels["__name__"].endswith("_bucket") for s in samples if s.exemplar is not None)
    sg2, _ = make()
    sg2.observe("t", table(spans))
    assert all(s.exemplar is None for s in sg2.collect("t", lambda tid: False))


def test_config_errors_are_named():
    problems: list[str] = []
    cfg = parse_servicegraph_config({"wait": "soon", "max_items": -1, "histogram_buckets": [],
                                     "peer_attributes": "peer.service", "enable_virtual_node_label": "yes",
                                     "span_multiplier_key": "x", "dimensions": ["client"]},
                                    "pipeline.traces[2].servicegraph", problems)
    assert cfg is None
    text = "\n".join(problems)
    for needle in ("servicegraph.wait", "servicegraph.max_items", "servicegraph.histogram_buckets",
                   "servicegraph.peer_attributes", "servicegraph.enable_virtual_node_label",
                   "servicegraph.span_multiplier_key: unknown setting", 'servicegraph.dimensions: "client"'):
        assert needle in text, (needle, text)
    d = parse_servicegraph_config({}, "sg", [])
    assert d is not None and d.wait == 10 and d.max_items == 10_000
    assert d.histogram_buckets == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8]
    assert d.peer_attributes == ["peer.service", "db.name", "db.system"]
    assert parse_servicegraph_config({"wait": "2s", "workers": 4}, "sg", []).wait == 2.0
