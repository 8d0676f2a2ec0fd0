"""What the UI tests share besides fixtures (tests import it as ``tests.ui.uikit``; a
``conftest`` module name is ambiguous in a whole-suite run): the seeded shop and ``shot``.

``seed_shop(node)`` sends a small shop's traces, logs and metrics through the real OpenTelemetry
SDK exporters (span metrics and the service graph are generated from the traces);
``shot(page, name)`` saves a screenshot in the test output folder (test-output/ui/, or
$LOOKOUT_TEST_OUTPUT).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lookout.devserver import LookoutProcess

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("LOOKOUT_TEST_OUTPUT", ROOT / "test-output")) / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

UI_CONFIG = {
    "storage": {"flush_interval": "1s"},
    "selfmon": {"interval": "2s"},
    "pipeline": {"traces": [{"spanmetrics": {"collection_interval": "1s"}}, {"servicegraph": {}}]},
}


@dataclass
class Shop:
    """What the seed sent, for tests to look for in the UI."""

    node: LookoutProcess
    ok_trace_ids: list[str] = field(default_factory=list)
    error_trace_ids: list[str] = field(default_factory=list)
    services: tuple[str, ...] = ("frontend", "checkout", "payments")
    log_marker: str = "payment declined for order"

    @property
    def url(self) -> str:
        return self.node.http


def _providers(endpoint: str, service: str):
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service, "service.namespace": "shop",
                                "deployment.environment": "test"})
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    lp = LoggerProvider(resource=resource)
    lp.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")))
    return tp, lp


def seed_shop(node: LookoutProcess, orders: int = 30) -> Shop:
    """frontend -> checkout -> payments (+ a postgres call), every 5th order declined (an error
    trace with an ERROR log line carrying its trace id); plus an OTel SDK counter/histogram."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk._logs import LoggingHandler
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.trace import SpanKind, Status, StatusCode

    shop = Shop(node=node)
    endpoint = node.otlp_http
    providers = {s: _providers(endpoint, s) for s in shop.services}
    tracers = {s: tp.get_tracer("shop") for s, (tp, _) in providers.items()}
    loggers = {}
    for s, (_, lp) in providers.items():
        lg = logging.getLogger(f"lookout.ui-test.{s}")
        lg.propagate = False
        lg.setLevel(logging.DEBUG)
        lg.handlers = [LoggingHandler(level=logging.DEBUG, logger_provider=lp)]
        loggers[s] = lg
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"),
                                           export_interval_millis=3_600_000)
    meters = MeterProvider(resource=Resource.create({"service.name": "frontend"}), metric_readers=[reader])
    orders_total = meters.get_meter("shop").create_counter("shop_orders", unit="1", description="orders placed")
    latency = meters.get_meter("shop").create_histogram("shop_order_duration", unit="ms")

    for i in range(orders):
        declined = i % 5 == 4
        with tracers["frontend"].start_as_current_span("GET /checkout", kind=SpanKind.SERVER,
                                                       attributes={"http.method": "GET", "http.route": "/checkout",
                                                                   "order.id": f"o-{i}"}) as root:
            loggers["frontend"].info("checkout page requested for order o-%d", i)
            with tracers["frontend"].start_as_current_span("POST checkout", kind=SpanKind.CLIENT):
                with tracers["checkout"].start_as_current_span("POST /api/checkout", kind=SpanKind.SERVER) as cs:
                    with tracers["checkout"].start_as_current_span("SELECT orders", kind=SpanKind.CLIENT,
                                                                   attributes={"db.system": "postgresql",
                                                                               "db.name": "orders"}):
                        time.sleep(0.001)
                    with tracers["checkout"].start_as_current_span("POST charge", kind=SpanKind.CLIENT):
                        with tracers["payments"].start_as_current_span("charge", kind=SpanKind.SERVER) as ps:
                            time.sleep(0.002)
                            if declined:
                                ps.set_status(Status(StatusCode.ERROR, "card declined"))
                                ps.add_event("exception", {"exception.type": "CardDeclined",
                                                           "exception.message": "card declined"})
                                loggers["payments"].error("%s o-%d: card declined", shop.log_marker, i)
                            else:
                                loggers["payments"].info("charged order o-%d", i)
                    if declined:
                        cs.set_status(Status(StatusCode.ERROR, "payment failed"))
                        loggers["checkout"].warning("payment failed for order o-%d", i)
                if declined:
                    root.set_status(Status(StatusCode.ERROR))
            tid = f"{root.get_span_context().trace_id:032x}"
            (shop.error_trace_ids if declined else shop.ok_trace_ids).append(tid)
        orders_total.add(1, {"status": "declined" if declined else "ok"})
        latency.record(20 + i, {"status": "declined" if declined else "ok"})
    for tp, lp in providers.values():
        assert tp.force_flush(10_000) and lp.force_flush(10_000)
        tp.shutdown()
        lp.shutdown()
    assert reader.force_flush(10_000)
    meters.shutdown()
    trace.get_tracer_provider()  # keep the global provider untouched
    _wait_searchable(shop)
    return shop


def _wait_searchable(shop: Shop, timeout: float = 60.0) -> None:
    """Until every signal answers: the traces by id, the ERROR lines, the SDK counter and the
    service-graph edges (generated every second from the spans)."""
    base = shop.url
    checks = {
        "traces": lambda c: all(c.get(f"{base}/api/traces/{t}").status_code == 200
                                for t in shop.ok_trace_ids[-1:] + shop.error_trace_ids[-1:]),
        "logs": lambda c: len(_loki_lines(c, base, '{service_name="payments"} |= "declined"')) == len(
            shop.error_trace_ids),
        "metrics": lambda c: _prom(c, base, "shop_orders_total"),
        "service graph": lambda c: _prom(c, base, 'traces_service_graph_request_total{server="payments"}'),
        "span metrics": lambda c: _prom(c, base, 'traces_spanmetrics_calls_total{service="payments"}'),
    }
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10) as c:
        for name, check in checks.items():
            while not check(c):
                if time.monotonic() > deadline:
                    raise AssertionError(f"seeded {name} not queryable in {timeout}s:\n{shop.node.log()[-3000:]}")
                time.sleep(0.25)


def _loki_lines(client: httpx.Client, base: str, query: str) -> list:
    r = client.get(f"{base}/loki/api/v1/query_range", params={"query": query, "limit": 1000,
                                                              "start": int((time.time() - 3600) * 1e9)})
    if r.status_code != 200:
        return []
    return [v for s in r.json()["data"]["result"] for v in s["values"]]


def _prom(client: httpx.Client, base: str, query: str) -> bool:
    r = client.get(f"{base}/api/v1/query", params={"query": query})
    return r.status_code == 200 and bool(r.json()["data"]["result"])


def shot(page, name: str) -> Path:
    """Save a full-page screenshot as test-output/ui/<name>.png."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
