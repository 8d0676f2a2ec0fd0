"""The processing layer end to end, on the real server: tail sampling over a 100,000-trace
workload of known shape, filtering, enrichment, exact span metrics, late spans, redaction that
leaves no secret in any byte of the data directory, replay after ``kill -9``, the memory
limiter, and config errors named by ``lookout check-config``."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from bench.sampling_workload import PII, expected_kept, generate, late_span_request
from lookout.storage.blocks import BlockStore
from tests.conftest import SHARED, metric_value, wait_for

PCT = 10.0
THRESHOLD_MS = 1000
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def sampling_config(decision_wait: str = "2s", extra: list | None = None) -> dict:
    return {
        "storage": {"flush_interval": "500ms"},
        "selfmon": {"interval": 0},
        "pipeline": {"traces": [
            {"filter/healthz": {"error_mode": "ignore",
                                "traces": {"span": ['attributes["http.route"] == "/healthz"']}}},
            {"resource/env": {"attributes": [{"key": "deployment.environment", "value": "production",
                                              "action": "upsert"}]}},
            {"attributes/team": {"actions": [{"key": "team", "value": "checkout", "action": "insert"}]}},
            *(extra or []),
            {"spanmetrics": {"collection_interval": "1s"}},
            {"servicegraph": {"max_items": 200000}},
            {"tail_sampling": {"decision_wait": decision_wait, "num_traces": 200000, "policies": [
                {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
                {"name": "slow", "type": "latency", "latency": {"threshold_ms": THRESHOLD_MS}},
                {"name": "some", "type": "probabilistic", "probabilistic": {"sampling_percentage": PCT}},
            ]}},
        ]},
    }


def send_all(url: str, bodies: list[bytes], threads: int = 4) -> None:
    errors: list[str] = []

    def worker(part: list[bytes]) -> None:
        with httpx.Client(timeout=60) as client:
            for body in part:
                for _ in range(50):
                    r = client.post(url, content=body, headers=PROTOBUF)
                    if r.status_code == 200:
                        break
                    if r.status_code not in (429, 503):
                        errors.append(f"{r.status_code} {r.text[:200]}")
                        return
                    time.sleep(float(r.headers.get("Retry-After", "0.2")))

    # keep each trace's two halves in order: thread k sends requests k, k+threads, ... in order
    parts = [bodies[k::threads] for k in range(threads)]
    ts = [threading.Thread(target=worker, args=(p,)) for p in parts]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]


def stored_spans(data_dir: Path, tenant: str = "default", columns: list[str] | None = None) -> pa.Table:
    """Every span in the committed trace blocks (read after a clean shutdown)."""
    store = BlockStore(data_dir)
    store.load()
    parts = []
    for meta in store.list_blocks(tenant, "traces"):
        for path in store.data_files(meta):
            parts.append(pq.read_table(path, columns=columns, filesystem=store.filesystem))
    if not parts:
        return pa.table({c: pa.array([], pa.binary()) for c in (columns or ["trace_id"])})
    return pa.concat_tables(parts)


def stored_trace_ids(data_dir: Path) -> set[bytes]:
    t = stored_spans(data_dir, columns=["trace_id"])
    return set(pc.unique(t.column("trace_id")).to_pylist())


def promql(node, q: str) -> dict[tuple, float]:
    r = httpx.get(f"{node.http}/api/v1/query", params={"query": q}, timeout=30)
    assert r.status_code == 200, r.text
    return {tuple(sorted(x["metric"].items())): float(x["value"][1]) for x in r.json()["data"]["result"]}


def test_tail_sampling_keeps_every_error_and_slow_trace_of_100k(lookout_factory, tmp_path):
    wl = generate(100_000, health_rate=0.05)
    node = lookout_factory(sampling_config(), data_dir=tmp_path / "node")
    send_all(f"{node.otlp_http}/v1/traces", wl.requests)

    non_health = [t for t in wl.traces if not t.health]
    # span metrics count every span that passed the filter, before sampling, exactly
    expected_calls = {"frontend": 2 * len(non_health), "backend": 2 * len(non_health)}
    errors = sum(t.error for t in non_health)

    def calls_match():
        got = promql(node, "sum by (service) (traces_spanmetrics_calls_total)")
        return {dict(k)["service"]: v for k, v in got.items()} == expected_calls or None

    wait_for(calls_match, timeout=120, interval=1.0)
    got_err = promql(node, 'sum(traces_spanmetrics_calls_total{status_code="STATUS_CODE_ERROR"})')
    assert list(got_err.values()) == [float(errors)]
    edges = promql(node, "sum by (client, server) (traces_service_graph_request_total)")
    edges = {(dict(k)["client"], dict(k)["server"]): v for k, v in edges.items()}
    assert edges == {("user", "frontend"): len(non_health), ("frontend", "backend"): len(non_health),
                     ("backend", "orders"): len(non_health)}, edges
    failed = promql(node, 'sum(traces_service_graph_request_failed_total{client="frontend",server="backend"})')
    assert list(failed.values()) == [float(errors)]

    # every trace decided (decision_wait 2 s); then a late span of kept and dropped traces
    wait_for(lambda: metric_value(node.metrics(), "lookout_tail_sampling_pending_traces") == 0
             and metric_value(node.metrics(), "lookout_processor_decided_traces_total") >= len(non_health),
             timeout=120, interval=0.5)
    kept = [t for t in non_health if expected_kept(t, percentage=PCT, threshold_ms=THRESHOLD_MS)]
    dropped = [t for t in non_health if not expected_kept(t, percentage=PCT, threshold_ms=THRESHOLD_MS)]
    late = kept[:5] + dropped[:5]
    for t in late:
        r = httpx.post(f"{node.otlp_http}/v1/traces", content=late_span_request(t), headers=PROTOBUF, timeout=30)
        assert r.status_code == 200
    wait_for(lambda: metric_value(node.metrics(), "lookout_processor_late_spans_total") >= len(late), timeout=30)
    # exemplars on the latency histogram point only at traces the sampler kept
    kept_hex = {t.trace_id.hex() for t in kept}

    def exemplar_trace_ids():
        r = httpx.get(f"{node.http}/api/v1/query_exemplars", timeout=30,
                      params={"query": "traces_spanmetrics_latency_bucket", "start": time.time() - 3600,
                              "end": time.time() + 60})
        assert r.status_code == 200, r.text
        return [e["labels"]["trace_id"] for s in r.json()["data"] for e in s["exemplars"]]

    ex_ids = wait_for(exemplar_trace_ids, timeout=30)
    assert set(ex_ids) <= kept_hex, "an exemplar points at a trace that was not kept"
    assert node.terminate() == 0

    ids = stored_trace_ids(tmp_path / "node")
    assert all(t.trace_id in ids for t in non_health if t.error), "an error trace was not kept"
    assert all(t.trace_id in ids for t in non_health if t.slow), "a slow trace was not kept"
    assert not any(t.trace_id in ids for t in wl.traces if t.health), "a health check survived the filter"
    assert ids == {t.trace_id for t in kept}, "kept traces differ from the deterministic expectation"
    rest = [t for t in non_health if not t.error and not t.slow]
    frac = sum(t.trace_id in ids for t in rest) / len(rest)
    sigma = math.sqrt(PCT / 100 * (1 - PCT / 100) / len(rest))
    assert abs(frac - PCT / 100) < 4 * sigma, f"kept {frac:.4f} of the rest, expected {PCT / 100} ± {4 * sigma:.4f}"

    spans = stored_spans(tmp_path / "node", columns=["trace_id", "name", "attrs_str", "res_attrs_str"])
    late_names = spans.filter(pc.equal(spans.column("name"), "late job")).column("trace_id").to_pylist()
    assert sorted(late_names) == sorted(t.trace_id for t in kept[:5]), "late spans must follow their trace"
    env = pc.map_lookup(spans.column("res_attrs_str"), "deployment.environment", "first")
    team = pc.map_lookup(spans.column("attrs_str"), "team", "first")
    assert pc.all(pc.equal(env, "production")).as_py(), "resource processor enrichment missing"
    assert pc.all(pc.equal(team, "checkout")).as_py(), "attributes processor enrichment missing"


def files_containing(root: Path, needles: dict[str, str]) -> dict[str, list[str]]:
    """Which needles occur in which file under ``root``: raw bytes, and for Parquet files also
    every decompressed value (a compressed column would hide a secret from a plain grep)."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        blobs = [path.read_bytes()]
        if path.suffix == ".parquet":
            blobs.append(repr(pq.read_table(path).to_pylist()).encode())
        for name, needle in needles.items():
            if any(needle.encode() in b for b in blobs):
                found.setdefault(name, []).append(str(path.relative_to(root)))
    return found


def test_redaction_leaves_no_secret_in_any_byte_of_the_data_dir(lookout_factory, tmp_path):
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    redaction = {"redaction": {"allow_all_keys": True}}
    cfg = {"storage": {"flush_interval": "300ms"}, "selfmon": {"interval": 0},
           "pipeline": {"traces": [redaction], "logs": [redaction]}}
    node = lookout_factory(cfg, data_dir=tmp_path / "node")
    marker = "visible-marker-7c1d"  # not a secret: proves the search sees through WAL and Parquet

    resource = Resource.create({"service.name": "shop"})
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{node.otlp_http}/v1/traces")))
    tracer = tp.get_tracer("test")
    with tracer.start_as_current_span(f"checkout for {PII['email']}") as span:
        span.set_attribute("user.email", PII["email"])
        span.set_attribute("note", f"paid with {PII['card']} ({marker})")
        span.set_attribute("http.request.header.authorization", PII["token"])
        span.set_attribute("url.full", f"https://shop.example.com/pay?card={PII['card'].replace(' ', '')}")
        span.add_event("charged", {"customer": PII["email"]})
    tp.shutdown()

    lp = LoggerProvider(resource=resource)
    lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{node.otlp_http}/v1/logs")))
    import logging

    logger = logging.getLogger("pii-test")
    logger.propagate = False
    logger.addHandler(LoggingHandler(logger_provider=lp))
    logger.warning("order placed by %s with card %s, auth %s (%s)", PII["email"], PII["card"], PII["token"], marker)
    lp.shutdown()

    wait_for(lambda: metric_value(node.metrics(), "lookout_decoded_items_total", signal="traces") >= 1
             and metric_value(node.metrics(), "lookout_processor_redacted_values_total") > 0, timeout=30)
    text = node.metrics()
    assert metric_value(text, "lookout_processor_redacted_values_total", rule="email") >= 2
    assert metric_value(text, "lookout_processor_redacted_values_total", rule="credit_card") >= 2
    assert PII["email"] not in text and "4111" not in text, "counters must never carry the values"
    assert node.terminate() == 0

    needles = {**PII, "card_digits": PII["card"].replace(" ", ""), "marker": marker}
    found = files_containing(tmp_path / "node", needles)
    assert "marker" in found, "the search must see the stored data (WAL and Parquet)"
    assert set(found) == {"marker"}, f"secrets found on disk: { {k: v for k, v in found.items() if k != 'marker'} }"
    assert PII["email"] not in (tmp_path / "node.log").read_text(), "secrets must not reach the log either"


def test_kill9_replay_gives_the_same_sampling_decisions(lookout_factory, tmp_path):
    wl = generate(20_000, seed=11)
    cfg = sampling_config(decision_wait="3s")
    node = lookout_factory(cfg, data_dir=tmp_path / "node")
    half = len(wl.requests) // 2
    send_all(f"{node.otlp_http}/v1/traces", wl.requests[:half])
    # the first half gets decided and flushed; the second half is pending when the process dies
    wait_for(lambda: metric_value(node.metrics(), "lookout_processor_decided_traces_total") >= 10_000,
             timeout=60, interval=0.2)
    time.sleep(1.0)
    send_all(f"{node.otlp_http}/v1/traces", wl.requests[half:])
    assert metric_value(node.metrics(), "lookout_tail_sampling_pending_traces") > 0
    node.kill9()

    node2 = lookout_factory(cfg, data_dir=tmp_path / "node")
    wait_for(lambda: metric_value(node2.metrics(), "lookout_tail_sampling_pending_traces") == 0
             and metric_value(node2.metrics(), "lookout_processor_decided_traces_total") > 0,
             timeout=60, interval=0.5)
    assert node2.terminate() == 0
    expected = {t.trace_id for t in wl.traces if expected_kept(t, percentage=PCT, threshold_ms=THRESHOLD_MS)}
    ids = stored_trace_ids(tmp_path / "node")
    assert ids == expected, (f"{len(expected - ids)} kept traces missing, {len(ids - expected)} unexpected "
                             "after kill -9 and replay")
    spans = stored_spans(tmp_path / "node", columns=["trace_id", "span_id"])
    per_trace = pc.value_counts(spans.column("trace_id")).field("counts")
    assert pc.min(per_trace).as_py() >= 4, "a kept trace lost spans in the crash"


def test_memory_limiter_refuses_with_429_and_counts(lookout_factory, tmp_path):
    cfg = {"selfmon": {"interval": 0},
           "pipeline": {"traces": [{"memory_limiter": {"check_interval": "100ms", "limit_mib": 8}}]}}
    node = lookout_factory(cfg, data_dir=tmp_path / "node")
    body = generate(10).requests[0]
    r = httpx.post(f"{node.otlp_http}/v1/traces", content=body, headers=PROTOBUF, timeout=30)
    assert r.status_code == 429, r.text
    assert "memory_limiter" in r.text and r.headers.get("Retry-After")
    text = node.metrics()
    assert metric_value(text, "lookout_processor_refused_items_total", processor="memory_limiter") == 20
    assert metric_value(text, "lookout_receiver_refused_requests_total", reason="memory_limiter") == 1
    # other signals have no limiter in this config and are unaffected
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.add().body.string_value = "hello"
    r = httpx.post(f"{node.otlp_http}/v1/logs", content=logs.SerializeToString(), headers=PROTOBUF, timeout=30)
    assert r.status_code == 200


def check_config(tmp_path: Path, cfg: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "lookout.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "lookout.cli", "check-config", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_check_config_names_pipeline_errors(tmp_path):
    testdata = SHARED / "conformance" / "tailsampling" / "testdata"
    good = yaml.safe_load((testdata / "tail_sampling_config.yaml").read_text())["tail_sampling"]
    r = check_config(tmp_path, {"pipeline": {"traces": [{"tail_sampling": good}]}})
    assert r.returncode == 0, r.stderr

    bad = yaml.safe_load((testdata / "numeric_attribute_with_minvalue_greather_than_maxvalue.yaml").read_text())
    r = check_config(tmp_path, {"pipeline": {
        "traces": [{"tail_sampling": bad["tail_sampling"]},
                   {"filter/x": {"traces": {"span": ['attributes["a" == 1']}}},
                   {"sampler": {}}],
        "logs": [{"spanmetrics": {}}, {"redaction": {"detectors": ["email", "horoscope"]}}]}})
    assert r.returncode == 1
    err = r.stderr
    assert "pipeline.traces[0].tail_sampling" in err and "numeric" in err.lower()
    assert "pipeline.traces[1].filter/x.traces.span[0]" in err
    assert 'unknown processor type "sampler"' in err
    assert "pipeline.logs[0]: spanmetrics works on spans" in err
    assert "horoscope" in err


def test_logs_pipeline_drops_debug_in_production_and_enriches(lookout_factory, tmp_path):
    import logging

    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    debug_in_production = ('severity_number < SEVERITY_NUMBER_INFO and '
                           'resource.attributes["deployment.environment"] == "production"')
    cfg = {"selfmon": {"interval": 0}, "pipeline": {"logs": [
        {"filter/debug": {"logs": {"log_record": [debug_in_production]}}},
        {"resource/team": {"attributes": [{"key": "team", "value": "payments", "action": "insert"}]}},
    ]}}
    node = lookout_factory(cfg, data_dir=tmp_path / "node")
    for env in ("production", "staging"):
        lp = LoggerProvider(resource=Resource.create({"service.name": f"shop-{env}", "deployment.environment": env}))
        lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{node.otlp_http}/v1/logs")))
        logger = logging.getLogger(f"pipeline-{env}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(LoggingHandler(logger_provider=lp))
        logger.debug("cache miss for key 42")
        logger.info("order accepted")
        logger.error("payment declined")
        lp.shutdown()

    def lines(query: str) -> list[str]:
        r = httpx.get(f"{node.http}/loki/api/v1/query_range", timeout=30,
                      params={"query": query, "start": time.time_ns() - 3600 * 10**9, "end": time.time_ns()})
        assert r.status_code == 200, r.text
        return sorted(v[1] for s in r.json()["data"]["result"] for v in s["values"])

    wait_for(lambda: len(lines('{service_name="shop-staging"}')) == 3, timeout=30)
    assert lines('{service_name="shop-production"}') == ["order accepted", "payment declined"]
    assert lines('{service_name="shop-staging"}') == ["cache miss for key 42", "order accepted", "payment declined"]
    assert len(lines('{service_name=~"shop-.*"} | team="payments"')) == 5, "the resource processor's team is missing"
    text = node.metrics()
    assert metric_value(text, "lookout_processor_dropped_items_total", processor="filter/debug", signal="logs") == 1
