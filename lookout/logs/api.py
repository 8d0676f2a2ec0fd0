"""Loki HTTP API (``/loki/api/v1/*``), so Grafana's Loki data source works against Lookout unchanged.

Parameters and shapes follow Loki's ``pkg/loghttp``: times are Unix nanoseconds, seconds (ten
digits or fewer, or with a fraction) or RFC 3339; ``step`` is seconds or a duration; query
errors are plain-text 400s like Loki's ("parse error at line 1, col 5: ...").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from datetime import UTC, datetime
from typing import Any

import pyarrow.compute as pc
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from lookout import __version__
from lookout.httpparams import FormError, request_params
from lookout.logs.logql import LogQLEngine, LogQLError, format_query, parse, result_to_json
from lookout.logs.logql.ast import LogExpr
from lookout.logs.model import LabelMatcher, SelectHints
from lookout.storage.durations import parse_duration

NS = 1_000_000_000
DEFAULT_LOOKBACK_NS = 3600 * NS  # query_range without start: the last hour, as Loki
LABELS_LOOKBACK_NS = 6 * 3600 * NS  # labels/series without start: the last 6 hours, as Loki
TRACE_ID = re.compile(r"^[0-9a-fA-F]{1,32}$")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_time(value: str | None, default: int, name: str) -> int:
    """Loki's parseTimestamp: ``1700000000`` (s), ``1700000000.5`` (s), ``1700000000000000000`` (ns), RFC 3339."""
    if value in (None, ""):
        return default
    if "." in value:
        with contextlib.suppress(ValueError):
            f = float(value)
            if math.isfinite(f):
                return int(round(f * 1000)) * 1_000_000
    try:
        n = int(value)
    except ValueError:
        try:
            return _rfc3339_ns(value)
        except ValueError:
            raise ApiError(400, f'invalid {name}: cannot parse "{value}" as a timestamp') from None
    return n * NS if len(value.lstrip("-")) <= 10 else n


_FRACTION = re.compile(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)$")


def _rfc3339_ns(value: str) -> int:
    """RFC 3339 with up to nanosecond fractions, in integer arithmetic (no float rounding)."""
    text = value.strip().replace("z", "Z").replace("Z", "+00:00")
    frac_ns = 0
    m = _FRACTION.match(text)
    if m:
        text = m.group(1) + m.group(3)
        frac_ns = int(m.group(2)[:9].ljust(9, "0"))
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    whole = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (whole.days * 86400 + whole.seconds) * NS + frac_ns


def parse_step(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        f = float(value)
    except ValueError:
        try:
            return int(parse_duration(value) * NS)
        except ValueError:
            raise ApiError(400, f'invalid {name}: cannot parse "{value}" as seconds or a duration') from None
    if not math.isfinite(f):
        raise ApiError(400, f'invalid {name}: cannot parse "{value}" as seconds or a duration')
    return int(f * NS)


def default_step_ns(start_ns: int, end_ns: int) -> int:
    """Loki's default resolution: about 250 points, at least one second."""
    return max(1, math.floor((end_ns - start_ns) / NS / 250)) * NS


class LokiApi:
    def __init__(self, store: Any, engine: LogQLEngine, resolve_tenant, *, max_query_range_ns: int | None = None,
                 max_query_limit: int = 5000, tail_poll_s: float = 1.0, tail_late_s: float = 60.0) -> None:
        self.store = store
        self.engine = engine
        self.resolve_tenant = resolve_tenant
        self.max_query_range_ns = max_query_range_ns
        self.max_query_limit = max_query_limit
        self.tail_poll_s = tail_poll_s
        self.tail_late_s = tail_late_s

    def routes(self) -> list[Route | WebSocketRoute]:
        both = ["GET", "POST"]
        return [
            Route("/loki/api/v1/query", self.query, methods=both),
            Route("/loki/api/v1/query_range", self.query_range, methods=both),
            Route("/loki/api/v1/labels", self.labels, methods=both),
            Route("/loki/api/v1/label", self.labels, methods=both),
            Route("/loki/api/v1/label/{name}/values", self.label_values, methods=both),
            Route("/loki/api/v1/series", self.series, methods=both),
            Route("/loki/api/v1/index/stats", self.index_stats, methods=both),
            Route("/loki/api/v1/index/volume", self.index_volume, methods=both),
            Route("/loki/api/v1/detected_fields", self.detected_fields, methods=both),
            Route("/loki/api/v1/format_query", self.format_query, methods=both),
            Route("/loki/api/v1/status/buildinfo", self.buildinfo, methods=["GET"]),
            Route("/lookout/api/v1/traces/{trace_id}/logs", self.trace_logs, methods=["GET"]),
            WebSocketRoute("/loki/api/v1/tail", self.tail),
        ]

    # ---- plumbing ---------------------------------------------------------------------------

    async def _params(self, request: Request) -> dict[str, list[str]]:
        try:
            return await request_params(request)
        except FormError as e:
            raise ApiError(400, str(e)) from None

    async def _serve(self, request: Request, fn) -> Response:
        try:
            tenant = self.resolve_tenant(request)
            params = await self._params(request)
            return JSONResponse(await fn(tenant, params))
        except ApiError as e:
            return PlainTextResponse(f"{e}\n", status_code=e.status)
        except LogQLError as e:
            return PlainTextResponse(f"{e}\n", status_code=getattr(e, "status", 400))
        except Exception as e:
            if getattr(e, "status", None) == 400:  # the tenant resolver's error
                return PlainTextResponse(f"{e}\n", status_code=400)
            raise

    def _limit(self, p: dict[str, list[str]], default: int = 100) -> int:
        raw = _one(p, "limit")
        if raw is None:
            return min(default, self.max_query_limit)  # a small logs.max_query_lines lowers the default
        try:
            n = int(raw)
        except ValueError:
            raise ApiError(400, f'invalid limit: cannot parse "{raw}" as an integer') from None
        if n <= 0:
            raise ApiError(400, "limit must be a positive value")
        if n > self.max_query_limit:
            raise ApiError(400, f"max entries limit per query exceeded, limit > max_entries_limit "
                           f"({n} > {self.max_query_limit}) (logs.max_query_lines)")
        return n

    def _direction(self, p: dict[str, list[str]]) -> str:
        d = (_one(p, "direction") or "backward").lower()
        if d not in ("forward", "backward"):
            raise ApiError(400, f'invalid direction "{d}": expected forward or backward')
        return d

    def _range(self, p: dict[str, list[str]], lookback_ns: int) -> tuple[int, int]:
        now = time.time_ns()
        end = parse_time(_one(p, "end"), now, "end")
        start = parse_time(_one(p, "start"), end - lookback_ns, "start")
        if _one(p, "since") and not _one(p, "start"):
            start = end - (parse_step(_one(p, "since"), "since") or lookback_ns)
        if end < start:
            raise ApiError(400, "end timestamp must not be before or equal to start time")
        if self.max_query_range_ns and end - start > self.max_query_range_ns:
            raise ApiError(400, f"the query time range exceeds the limit (query length: {_dur(end - start)}, "
                           f"limit: {_dur(self.max_query_range_ns)}) (logs.max_query_range)")
        return start, end

    def _matchers(self, query: str | None) -> list[LabelMatcher]:
        if not query:
            return []
        expr = parse(query)
        if not isinstance(expr, LogExpr):
            raise ApiError(400, f'expected a stream selector like {{app="foo"}}, got "{query[:100]}"')
        return list(expr.matchers)

    # ---- queries ----------------------------------------------------------------------------

    async def query(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]) -> dict:
            q = _required(p, "query")
            t = parse_time(_one(p, "time"), time.time_ns(), "time")
            result = await asyncio.to_thread(self.engine.query_instant, self.store.querier(tenant), q, t,
                                             limit=self._limit(p), direction=self._direction(p))
            return {"status": "success", "data": result_to_json(result)}

        return await self._serve(request, run)

    async def query_range(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]) -> dict:
            q = _required(p, "query")
            start, end = self._range(p, DEFAULT_LOOKBACK_NS)
            step = parse_step(_one(p, "step"), "step")
            if step is None:
                step = default_step_ns(start, end)
            if step <= 0:
                raise ApiError(400, "zero or negative query resolution step widths are not accepted. "
                               "Try a positive integer")
            if (end - start) / step > 11_000:
                raise ApiError(400, "exceeded maximum resolution of 11,000 points per timeseries. "
                               "Try decreasing the query resolution (?step=XX)")
            interval = parse_step(_one(p, "interval"), "interval")
            result = await asyncio.to_thread(self.engine.query_range, self.store.querier(tenant), q, start, end,
                                             step, limit=self._limit(p), direction=self._direction(p),
                                             interval_ns=interval)
            return {"status": "success", "data": result_to_json(result)}

        return await self._serve(request, run)

    # ---- labels, series, index --------------------------------------------------------------

    async def labels(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]) -> dict:
            start, end = self._range(p, LABELS_LOOKBACK_NS)
            querier = self.store.querier(tenant)
            if _one(p, "query"):
                streams = await asyncio.to_thread(querier.streams, self._matchers(_one(p, "query")), start, end)
                names = sorted({n for lb in streams.values() for n in lb})
            else:
                names = await asyncio.to_thread(querier.label_names, start, end)
            return {"status": "success", "data": names}

        return await self._serve(request, run)

    async def label_values(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]) -> dict:
            start, end = self._range(p, LABELS_LOOKBACK_NS)
            name = request.path_params["name"]
            values = await asyncio.to_thread(self.store.querier(tenant).label_values, name, start, end,
                                             self._matchers(_one(p, "query")))
            return {"status": "success", "data": values}

        return await self._serve(request, run)

    async def series(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]) -> dict:
            selectors = p.get("match[]", []) + p.get("match", [])
            if not selectors:
                raise ApiError(400, "missing match[] parameter: a stream selector is required")
            start, end = self._range(p, LABELS_LOOKBACK_NS)
            querier = self.store.querier(tenant)
            found: dict[int, dict[str, str]] = {}
            for sel in selectors:
                found.update(await asyncio.to_thread(querier.streams, self._matchers(sel), start, end))
            data = sorted(found.values(), key=lambda lb: sorted(lb.items()))
            return {"status": "success", "data": data}

        return await self._serve(request, run)

    async def index_stats(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]) -> dict:
            start, end = self._range(p, DEFAULT_LOOKBACK_NS)
            matchers = self._matchers(_required(p, "query"))
            return await asyncio.to_thread(self.store.stats, tenant, matchers, start, end)

        return await self._serve(request, run)

    async def index_volume(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]) -> dict:
            start, end = self._range(p, DEFAULT_LOOKBACK_NS)
            matchers = self._matchers(_required(p, "query"))
            targets = [t for t in (_one(p, "targetLabels") or "").split(",") if t]
            aggregate_by = _one(p, "aggregateBy") or "series"
            if aggregate_by not in ("series", "labels"):
                raise ApiError(400, f'invalid aggregateBy "{aggregate_by}": expected series or labels')
            rows = await asyncio.to_thread(self.store.volume, tenant, matchers, start, end, target_labels=targets,
                                           aggregate_by=aggregate_by, limit=self._limit(p))
            ts = end / NS
            result = [{"metric": r["metric"], "value": [ts, str(r["volume"])]} for r in rows]
            return {"status": "success", "data": {"resultType": "vector", "result": result}}

        return await self._serve(request, run)

    async def detected_fields(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]) -> dict:
            start, end = self._range(p, DEFAULT_LOOKBACK_NS)
            line_limit = _positive_int(p, "line_limit", 1000)
            field_limit = _positive_int(p, "field_limit", 1000)
            q = _required(p, "query")
            result = await asyncio.to_thread(self.engine.query_range, self.store.querier(tenant), q, start, end,
                                             default_step_ns(start, end), limit=min(line_limit, self.max_query_limit),
                                             direction="backward")
            data = result_to_json(result)
            if data.get("resultType") != "streams":
                raise ApiError(400, "detected_fields needs a log query, not a metric query")
            lines = [v[1] for s in data["result"] for v in s["values"]]
            return {"fields": detect_fields(lines)[:field_limit], "limit": field_limit}

        return await self._serve(request, run)

    async def format_query(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]) -> dict:
            return {"status": "success", "data": format_query(_required(p, "query"))}

        return await self._serve(request, run)

    async def buildinfo(self, request: Request) -> Response:
        return JSONResponse({"version": __version__, "revision": "", "branch": "main", "buildUser": "lookout",
                             "buildDate": "", "goVersion": ""})

    async def trace_logs(self, request: Request) -> Response:
        """The log lines of one trace, for the trace view: every stream, pruned by the trace-id index."""
        async def run(tenant: str, p: dict[str, list[str]]) -> dict:
            tid = request.path_params["trace_id"].lower()
            if not TRACE_ID.match(tid):
                raise ApiError(400, f'invalid trace id "{tid[:40]}": expected up to 32 hex characters')
            start, end = self._range(p, 30 * 86400 * NS)
            hints = SelectHints(trace_id=tid.rjust(32, "0"), limit=self._limit(p, 1000), direction="forward")
            sel = await asyncio.to_thread(self.store.querier(tenant).select, [], start, end, hints)
            return {"status": "success", "data": {"resultType": "streams", "result": _trace_streams(sel, hints)}}

        return await self._serve(request, run)

    # ---- live tail --------------------------------------------------------------------------

    async def tail(self, ws: WebSocket) -> None:
        """Loki's tail: every ``tail_poll_s`` send the entries not sent yet (see below)."""
        try:
            tenant = self.resolve_tenant(ws)
            q = ws.query_params.get("query") or ""
            limit = self._limit({k: [v] for k, v in ws.query_params.items()})
            delay_ns = int(float(ws.query_params.get("delay_for") or 0) * NS)
            since = parse_time(ws.query_params.get("start"), time.time_ns() - 3600 * NS, "start")
            self._matchers(q)  # reject a bad query before accepting
        except (ApiError, LogQLError, ValueError) as e:
            await ws.close(code=1008, reason=str(e)[:120])
            return
        except Exception as e:
            if getattr(e, "status", None) == 400:
                await ws.close(code=1008, reason=str(e)[:120])
                return
            raise
        await ws.accept()
        # Lines are tailed by arrival, not only by timestamp: a line may be acknowledged (or carry a
        # timestamp) a little in the past of what was already sent, so each poll looks back
        # ``tail_late_s`` and sends what it has not sent yet, remembered for as long as it lies in
        # that window. The first poll sends the newest ``limit`` entries since ``start``, as Loki.
        seen: set[tuple[str, str, str]] = set()
        first = True
        try:
            while True:
                end = time.time_ns() - delay_ns
                lo = since if first else max(since, end - int(self.tail_late_s * NS))
                if end > lo:
                    result = await asyncio.to_thread(self.engine.query_range, self.store.querier(tenant), q,
                                                     lo, end, default_step_ns(lo, end), limit=self.max_query_limit,
                                                     direction="backward")
                    data = result_to_json(result)
                    fresh = _unseen(data.get("result", []) if data.get("resultType") == "streams" else [], seen)
                    if first:
                        fresh = fresh[-limit:]
                    horizon = end - int(self.tail_late_s * NS)
                    seen.difference_update([k for k in seen if int(k[1]) < horizon])
                    if fresh:
                        await ws.send_text(json.dumps({"streams": _group_entries(fresh), "dropped_entries": None}))
                first = False
                await asyncio.sleep(self.tail_poll_s)
        except (WebSocketDisconnect, RuntimeError):
            return
        except LogQLError as e:
            with contextlib.suppress(Exception):
                await ws.close(code=1008, reason=str(e)[:120])


def _unseen(streams: list[dict], seen: set[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The entries of ``streams`` not in ``seen`` as (labels JSON, ts, line), oldest first; adds
    every entry of ``streams`` to ``seen``."""
    out = []
    for s in streams:
        key = json.dumps(s["stream"], sort_keys=True)
        for ts, line in s["values"]:
            k = (key, ts, line)
            if k not in seen:
                seen.add(k)
                out.append(k)
    out.sort(key=lambda k: int(k[1]))
    return out


def _group_entries(entries: list[tuple[str, str, str]]) -> list[dict]:
    streams: dict[str, dict] = {}
    for key, ts, line in entries:
        streams.setdefault(key, {"stream": json.loads(key), "values": []})["values"].append([ts, line])
    return list(streams.values())


def _trace_streams(sel: Any, hints: SelectHints) -> list[dict]:
    """Streams of the trace's lines. Each value carries the line's structured metadata (span_id,
    severity_text, ...) as Loki 3 writes it with categorized labels, ``[ts, line,
    {"structuredMetadata": {...}}]``, so the trace view can place a line on its span and show its
    level. At most ``limit`` lines, so the loop over them is bounded."""
    table = sel.entries
    if table.num_rows == 0:
        return []
    md = table["metadata"]
    tid = pc.map_lookup(md, "trace_id", "first")
    table = table.filter(pc.fill_null(pc.equal(pc.utf8_lower(tid), hints.trace_id), False))
    out: dict[int, dict] = {}
    for sid, ts, line, meta in zip(table["stream_id"].to_pylist(), table["ts"].to_pylist(),
                                   table["line"].to_pylist(), table["metadata"].to_pylist(), strict=True):
        entry = out.setdefault(sid, {"stream": sel.streams.get(sid, {}), "values": []})
        entry["values"].append([str(ts), line, {"structuredMetadata": dict(meta or ())}] if meta else [str(ts), line])
    return list(out.values())


_LOGFMT = re.compile(r'([A-Za-z_][\w.\-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def detect_fields(lines: list[str]) -> list[dict]:
    """Loki's detected_fields over a bounded sample of lines: names, guessed types, cardinality,
    and which parser finds them. A Python pass over at most ``line_limit`` lines (not a hot path)."""
    fields: dict[str, dict[str, Any]] = {}
    for line in lines:
        parsed: dict[str, Any] = {}
        parser = "logfmt"
        stripped = line.lstrip()
        if stripped.startswith("{"):
            with contextlib.suppress(ValueError):
                obj = json.loads(stripped)
                if isinstance(obj, dict):
                    parsed, parser = _flatten(obj), "json"
        if not parsed:
            parsed = {k: v.strip('"') for k, v in _LOGFMT.findall(line)}
        for k, v in parsed.items():
            f = fields.setdefault(k, {"values": set(), "types": set(), "parsers": set()})
            f["values"].add(str(v))
            f["types"].add(_guess_type(v))
            f["parsers"].add(parser)
    out = []
    for name in sorted(fields):
        f = fields[name]
        types = f["types"]
        kind = types.pop() if len(types) == 1 else "string"
        out.append({"label": name, "type": kind, "cardinality": len(f["values"]), "parsers": sorted(f["parsers"])})
    return out


def _flatten(obj: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}_{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(_flatten(v, key))
        elif not isinstance(v, list):
            out[key] = v
    return out


_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_BYTES = re.compile(r"^\d+(\.\d+)?\s?([KMGTPE]i?B|B)$", re.IGNORECASE)


def _guess_type(v: Any) -> str:
    if isinstance(v, bool) or str(v).lower() in ("true", "false"):
        return "boolean"
    s = str(v)
    try:
        int(s)
        return "int"
    except ValueError:
        pass
    try:
        float(s)
        return "float"
    except ValueError:
        pass
    if _DURATION.match(s):
        return "duration"
    if _BYTES.match(s):
        return "bytes"
    return "string"


def _one(p: dict[str, list[str]], name: str) -> str | None:
    values = p.get(name)
    return values[0] if values else None


def _positive_int(p: dict[str, list[str]], name: str, default: int) -> int:
    raw = _one(p, name)
    if raw in (None, ""):
        return default
    try:
        n = int(raw)
    except ValueError:
        raise ApiError(400, f'invalid {name}: cannot parse "{raw}" as an integer') from None
    if n <= 0:
        raise ApiError(400, f"{name} must be a positive value")
    return n


def _required(p: dict[str, list[str]], name: str) -> str:
    value = _one(p, name)
    if not value:
        raise ApiError(400, f"missing {name} parameter")
    return value


def _dur(ns: int) -> str:
    hours = ns / NS / 3600
    return f"{hours:.0f}h" if hours >= 1 else f"{ns / NS:.0f}s"
