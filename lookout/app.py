"""Wires one Lookout node from its config: the only module that knows every package.

Lifecycle: recover storage (delete partial blocks and blocks past the last log commit), open the
listeners (health says 503 meanwhile), replay the log into the head, then mark ready and accept
writes. SIGTERM stops the listeners, drains the log into the head, flushes it to blocks,
commits, and exits within ``shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import threading
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from lookout.alerting.runtime import AlertingRuntime
from lookout.buffer.wal import WriteAheadLog
from lookout.config import Config, parse_hostport
from lookout.ingest import formats
from lookout.ingest.limits import TenantRateLimit
from lookout.ingest.otlp_grpc import build_server
from lookout.ingest.otlp_http import OtlpHttpApp
from lookout.ingest.push_http import PushApi
from lookout.ingest.receiver import BadRequest, Receiver
from lookout.logs.api import LokiApi
from lookout.logs.logql import LogQLEngine
from lookout.logs.sink import LogSink, LokiPushValidator, ingest_options, log_limits
from lookout.logs.store import LogStore
from lookout.metrics.api import PrometheusApi
from lookout.metrics.generated import run_generated_push
from lookout.metrics.promql import Engine
from lookout.metrics.remote_write import encode_write_request
from lookout.metrics.sink import MetricsSink, RemoteWriteValidator, metrics_limits, translation_options
from lookout.metrics.store import MetricsStore
from lookout.pipeline.config import parse_pipelines
from lookout.pipeline.consumer import LogConsumer
from lookout.pipeline.runtime import Pipelines
from lookout.selfmon.process import collect_process
from lookout.selfmon.registry import Registry
from lookout.selfmon.scrape import run_self_scrape
from lookout.storage.blocks import BlockStore
from lookout.traces.api import ApiError, TempoApi
from lookout.traces.store import TraceStore
from lookout.ui.dashboards.api import DashboardsApi
from lookout.ui.dashboards.store import DashboardStore, read_shipped
from lookout.ui.routes import ui_routes

log = logging.getLogger("lookout")

HEAD_GROUP = "head"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the node owns SIGTERM for all listeners."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def _bind(addr: str) -> socket.socket:
    host, port = parse_hostport(addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Linux copies TCP_NODELAY to accepted sockets: without it a keep-alive response written in
    # two parts waits ~40 ms for the client's delayed ACK (Nagle).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {addr}: {e.strerror}") from e
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class Node:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.data_dir = Path(cfg.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.registry = Registry()
        self.wal = WriteAheadLog(self.data_dir / "wal", segment_bytes=cfg.wal.segment_size,
                                 max_bytes=cfg.wal.max_size, commit_interval_s=cfg.wal.commit_interval,
                                 fsync=cfg.wal.fsync)
        self.blocks = BlockStore(self.data_dir)
        self.traces = TraceStore(self.blocks, cfg.storage, self.registry)
        self.metrics = MetricsStore(self.blocks, cfg.storage, self.registry, limits=metrics_limits(cfg.metrics))
        self.logs = LogStore(self.blocks, cfg.storage, self.registry, limits=log_limits(cfg.logs))
        self.receiver = Receiver(self.wal, cfg.ingest, self.registry)
        self._register_formats()
        problems: list[str] = []
        self.pipelines = Pipelines(parse_pipelines(cfg.pipeline, problems))  # load_config validated it
        self.receiver.pipelines = self.pipelines.request
        self.registry.add_collector(self.pipelines.collect)
        sinks = {"traces": self.pipelines.wrap_trace_store(self.traces),
                 "metrics": MetricsSink(self.metrics, translation_options(cfg.metrics), self.registry),
                 "logs": LogSink(self.logs, ingest_options(cfg.logs), self.registry)}
        self.consumers = {signal: LogConsumer(self.wal, signal, HEAD_GROUP, sink,
                                              head_max_bytes=cfg.storage.head_max_size)
                          for signal, sink in sinks.items()}
        self.promql = Engine(lookback_delta_ms=int(cfg.metrics.lookback_delta * 1000),
                             max_samples=cfg.metrics.query_max_samples, timeout_s=cfg.metrics.query_timeout)
        self.logql = LogQLEngine(max_lines=cfg.logs.max_query_lines, max_series=cfg.logs.max_query_series,
                                 max_range_ns=int(cfg.logs.max_query_range * 1e9))
        self.alerting = AlertingRuntime(cfg.alerting, self.data_dir / "state.db", self._rule_query,
                                        self._append_rule_series, selfmon_tenant=cfg.selfmon.tenant)
        self.registry.add_collector(self.alerting.collect)
        self.dashboards = DashboardStore(self.data_dir / "state.db", read_shipped(cfg.selfmon.tenant))
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ready = False
        self.listening: dict[str, str] = {}
        self._stop = asyncio.Event()
        self._maintenance_stop = threading.Event()
        self.registry.add_collector(self._collect)
        self.registry.add_collector(collect_process)

    def _register_formats(self) -> None:
        """Teach the receiver the non-OTLP push formats and the per-tenant limits."""
        rcv, cfg = self.receiver, self.cfg
        rcv.register_format("metrics", formats.PROM_REMOTE_WRITE, RemoteWriteValidator(self.metrics))
        loki = LokiPushValidator(ingest_options(cfg.logs), cfg.logs.reject_old_samples_max_age)
        rcv.register_format("logs", formats.LOKI_PUSH, loki.protobuf)
        rcv.register_format("logs", formats.LOKI_JSON, loki.json)
        rcv.add_limit(TenantRateLimit("metrics", cfg.metrics.max_samples_per_second,
                                      2 * cfg.metrics.max_samples_per_second, "metrics.max_samples_per_second",
                                      "samples"))
        rcv.add_limit(TenantRateLimit("logs", cfg.logs.max_lines_per_second, 2 * cfg.logs.max_lines_per_second,
                                      "logs.max_lines_per_second", "lines"))

    # ---- alerting glue ----------------------------------------------------------------------

    def _rule_query(self, tenant: str, lang: str, expr: str, t_s: float) -> list[tuple[dict[str, str], float]]:
        """An instant query for a rule: PromQL over the metrics store, LogQL over the log store."""
        if lang == "logql":
            res = self.logql.query_instant(self.logs.querier(tenant), expr, int(t_s * 1e9))
            if res.result_type == "scalar" and res.scalar is not None:
                return [({}, float(res.scalar.values[0]))]
            m = res.matrix
            if m is None:
                raise ValueError(f"rule result is not a vector or scalar: {res.result_type}")
            return [(m.labels[i], float(m.values[i, -1])) for i in range(len(m)) if m.present[i, -1]]
        res = self.promql.instant_query(self.metrics.querier(tenant), expr, int(t_s * 1000))
        if res.result_type == "vector":
            return [(labels, float(v[0])) for labels, _, v in res.series]
        if res.result_type == "scalar" and res.scalar is not None:
            return [({}, float(res.scalar[1]))]
        raise ValueError(f"rule result is not a vector or scalar: {res.result_type}")

    def _append_rule_series(self, tenant: str, samples: list[tuple[dict[str, str], float, float]]) -> None:
        """ALERTS, ALERTS_FOR_STATE and recording-rule results go in as remote write does: through
        the receiver into the log, so they are durable and limited like any series."""
        if not samples or self._loop is None:
            return
        import numpy as np

        body = encode_write_request([(labels, np.array([int(t * 1000)], np.int64), np.array([v], np.float64))
                                     for labels, t, v in samples])
        coro = self.receiver.export("metrics", tenant, body, fmt=formats.PROM_REMOTE_WRITE)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:  # called on the loop itself: don't wait for it there
            task = self._loop.create_task(coro)
            task.add_done_callback(_log_task_error)
            return
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def reload(self) -> list[str]:
        problems = self.alerting.reload()
        for p in problems:
            log.error("reload refused: %s", p)
        if not problems:
            log.info("reloaded rule files and the Alertmanager config")
        return problems

    # ---- HTTP apps --------------------------------------------------------------------------

    def resolve_tenant(self, request: Request) -> str:
        header = request.headers.get(self.cfg.ingest.tenant_header)
        if header is None and request.scope["type"] == "websocket":
            # Browsers cannot set headers on a WebSocket: the UI's live tail names its tenant in
            # the query string instead (the same trust as the header).
            header = request.query_params.get(self.cfg.ingest.tenant_header)
        try:
            return self.receiver.resolve_tenant(header)
        except BadRequest as e:
            raise ApiError(400, str(e)) from None

    def main_app(self) -> Starlette:
        async def metrics(request: Request) -> Response:
            return PlainTextResponse(self.registry.render(), media_type="text/plain; version=0.0.4")

        async def ready(request: Request) -> Response:
            if self.ready:
                return PlainTextResponse("ready")
            return PlainTextResponse("replaying the write-ahead log", status_code=503)

        async def healthz(request: Request) -> Response:
            return PlainTextResponse("ok")

        async def reload(request: Request) -> Response:
            problems = await asyncio.to_thread(self.reload)
            if problems:
                return PlainTextResponse("failed to reload config: " + "; ".join(problems), status_code=500)
            return PlainTextResponse("")

        routes = [Route("/metrics", metrics), Route("/ready", ready), Route("/healthz", healthz),
                  Route("/-/reload", reload, methods=["POST", "PUT"]),
                  *self.alerting.routes(self.resolve_tenant),
                  *PushApi(self.receiver).routes(),
                  *TempoApi(self.traces, self.resolve_tenant).routes(),
                  *PrometheusApi(self.metrics, self.promql, self.resolve_tenant).routes(),
                  *LokiApi(self.logs, self.logql, self.resolve_tenant,
                           max_query_range_ns=int(self.cfg.logs.max_query_range * 1e9),
                           max_query_limit=self.cfg.logs.max_query_lines).routes(),
                  *DashboardsApi(self.dashboards, self.resolve_tenant).routes(),
                  *ui_routes()]
        return Starlette(routes=routes)

    def health_app(self) -> Starlette:
        async def health(request: Request) -> Response:
            body = {"status": "Server available" if self.ready else "Server not available"}
            return Response(json.dumps(body), status_code=200 if self.ready else 503,
                            media_type="application/json")

        return Starlette(routes=[Route("/", health)])

    # ---- lifecycle --------------------------------------------------------------------------

    def recover(self) -> None:
        report = self.blocks.recover()
        removed = sum(self.blocks.delete_blocks_after(self.wal.committed(HEAD_GROUP, signal), signal=signal)
                      for signal in self.consumers)
        log.info("storage recovery: %s; removed %d block(s) past the last log commit", report, removed)

    async def run(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, self.reload))
        self.recover()
        self.alerting.load_rules()  # load_config validated the files; a race is an error here
        self.pipelines.start()
        listen = self.cfg.listen
        servers: list[_Server] = []
        tasks = []
        for name, addr, app in (("http", listen.http, self.main_app()),
                                ("otlp_http", listen.otlp_http, OtlpHttpApp(self.receiver)),
                                ("health", listen.health, self.health_app())):
            sock = _bind(addr)
            host, port = sock.getsockname()[:2]
            self.listening[name] = f"{host}:{port}"
            server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                            timeout_graceful_shutdown=5))
            servers.append(server)
            tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
        host, port = parse_hostport(listen.otlp_grpc)
        grpc_server, grpc_port = build_server(self.receiver, host, port)
        self.listening["otlp_grpc"] = f"{host}:{grpc_port}"
        await grpc_server.start()
        self._announce()
        self._write_listening_file()

        replayed = await asyncio.gather(*(asyncio.to_thread(c.replay) for c in self.consumers.values()))
        log.info("replayed %d log record(s); ready", sum(replayed))
        for consumer in self.consumers.values():
            consumer.start()
        maintenance = threading.Thread(target=self._maintenance, name="maintenance", daemon=True)
        maintenance.start()
        self.receiver.ready = self.ready = True
        self._write_listening_file()
        if self.cfg.selfmon.interval > 0:
            tasks.append(asyncio.create_task(run_self_scrape(
                self.registry, self.receiver, tenant=self.cfg.selfmon.tenant, interval_s=self.cfg.selfmon.interval,
                instance=self.listening["http"], stop=self._stop)))

        tasks.append(asyncio.create_task(self.alerting.run(self._stop)))
        if self.pipelines.generators:
            tasks.append(asyncio.create_task(run_generated_push(
                self.pipelines.generated_series, self.receiver,
                interval_s=self.pipelines.specs["traces"].collection_interval, stop=self._stop)))

        await self._stop.wait()
        log.info("shutting down: draining and flushing (timeout %.0fs)", self.cfg.shutdown_timeout)
        self.receiver.ready = self.ready = False
        await grpc_server.stop(grace=min(5.0, self.cfg.shutdown_timeout))
        for s in servers:
            s.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        self._maintenance_stop.set()
        await asyncio.to_thread(maintenance.join, self.cfg.shutdown_timeout)  # let a compaction finish
        try:
            await asyncio.wait_for(asyncio.gather(*(asyncio.to_thread(c.stop, True)
                                                    for c in self.consumers.values())),
                                   self.cfg.shutdown_timeout)
        except TimeoutError:
            log.error("drain did not finish within %.0fs; the log keeps the rest for the next start",
                      self.cfg.shutdown_timeout)
        self.pipelines.stop()
        self.dashboards.close()
        self.wal.close()
        log.info("stopped")

    def _announce(self) -> None:
        for name, addr in self.listening.items():
            log.info("listening: %s on %s", name, addr)

    def _write_listening_file(self) -> None:
        """``<data_dir>/listening.json``: the bound addresses and whether replay is done, written
        when the listeners are up and again once ready (for scripts that start on port 0)."""
        tmp = self.data_dir / "listening.json.tmp"
        tmp.write_text(json.dumps({**self.listening, "pid": os.getpid(), "ready": self.ready}))
        tmp.replace(self.data_dir / "listening.json")

    def _maintenance(self) -> None:
        """Compaction, retention and log trimming, off the ingest and query paths."""
        interval = self.cfg.storage.compaction_interval
        while not self._maintenance_stop.wait(interval):
            for store in (self.traces, self.metrics, self.logs):
                try:
                    store.compact()
                    store.apply_retention()
                except Exception:
                    log.exception("maintenance of %s failed; will retry", type(store).__name__)
            try:
                self.wal.trim()
            except Exception:
                log.exception("log trim failed; will retry")

    def _collect(self):
        stats = self.wal.stats()
        yield ("lookout_log_consumer_lag_bytes", "gauge", "Bytes appended to the log not yet consumed.",
               [("lookout_log_consumer_lag_bytes", {"signal": signal, "group": HEAD_GROUP}, c.lag())
                for signal, c in self.consumers.items()])
        per_signal = stats.get("signals", {})
        for name, key, kind, help_text in (
            ("lookout_log_bytes", "bytes", "gauge", "Bytes of the write-ahead log on disk."),
            ("lookout_log_segments", "segments", "gauge", "Segment files of the write-ahead log."),
            ("lookout_log_appended_records_total", "appended_records", "counter", "Records appended to the log."),
            ("lookout_log_fsyncs_total", "fsyncs", "counter", "Group-commit fsyncs of the log."),
            ("lookout_log_fsync_seconds_total", "fsync_seconds_sum", "counter", "Time spent in log fsyncs."),
            ("lookout_log_torn_tail_records_total", "torn_tail_records", "counter",
             "Torn records cut from the log tail at startup (a crash mid-append)."),
            ("lookout_log_corrupt_records_total", "corrupt_records", "counter",
             "Records skipped for a bad checksum or header."),
        ):
            yield (name, kind, help_text,
                   [(name, {"signal": sig}, s.get(key, 0)) for sig, s in sorted(per_signal.items())])
        yield ("lookout_consumer_errors_total", "counter", "Consumer rounds that failed and were retried.",
               [("lookout_consumer_errors_total", {"signal": signal}, c.errors)
                for signal, c in self.consumers.items()])
        yield ("lookout_ready", "gauge", "1 once log replay is done.",
               [("lookout_ready", {}, 1.0 if self.ready else 0.0)])
        disk = shutil.disk_usage(self.data_dir)
        yield ("lookout_data_disk_free_bytes", "gauge", "Free bytes on the data directory's filesystem.",
               [("lookout_data_disk_free_bytes", {}, float(disk.free))])
        yield ("lookout_data_disk_size_bytes", "gauge", "Size of the data directory's filesystem.",
               [("lookout_data_disk_size_bytes", {}, float(disk.total))])


def _log_task_error(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("writing rule results failed: %s", task.exception())
