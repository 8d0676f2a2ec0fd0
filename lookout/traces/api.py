"""Tempo-compatible HTTP API, so Grafana's Tempo data source works against Lookout unchanged.

Shapes follow Tempo: ``/api/traces/<id>`` answers ``{"batches": [...]}`` (OTLP JSON, or the
protobuf ``Trace`` when asked with ``Accept: application/protobuf``), ``/api/v2/traces/<id>``
``{"trace": {"resourceSpans": [...]}}``; search answers ``{"traces": [...], "metrics": {...}}``
with ``spanSet``/``spanSets`` per trace; errors are plain-text 400/404 as Tempo sends them.
"""

from __future__ import annotations

import asyncio
import shlex
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from lookout import __version__
from lookout.otlp import message_to_otlp_json, spans_to_request
from lookout.storage.durations import parse_duration
from lookout.traces import search as search_mod
from lookout.traces.filters import FilterError, tags_filter, traceql_filter
from lookout.traces.store import TraceStore

PROTOBUF_TYPES = ("application/protobuf", "application/x-protobuf")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_trace_id(text: str) -> bytes:
    """Tempo accepts up to 32 hex characters and left-pads shorter ids with zeros."""
    t = text.strip().lower()
    if not t or len(t) > 32 or any(c not in "0123456789abcdef" for c in t):
        raise ApiError(400, f'invalid trace id "{text[:40]}": expected up to 32 hex characters')
    return bytes.fromhex(t.rjust(32, "0"))


def _seconds_ns(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(float(value) * 1e9)
    except ValueError:
        raise ApiError(400, f'invalid {name} "{value}": expected unix epoch seconds') from None


def _duration_ns(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(parse_duration(value) * 1e9)
    except ValueError as e:
        raise ApiError(400, f"invalid {name}: {e}") from None


def _int_param(value: str | None, name: str, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        n = int(value)
    except ValueError:
        raise ApiError(400, f'invalid {name} "{value}": expected a positive integer') from None
    if n <= 0:
        raise ApiError(400, f'invalid {name} "{value}": expected a positive integer')
    return n


def _attr(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


class TempoApi:
    def __init__(self, store: TraceStore, resolve_tenant) -> None:
        self.store = store
        self.resolve_tenant = resolve_tenant  # Request -> tenant, raises ApiError(400) if invalid

    def routes(self) -> list[Route]:
        return [
            Route("/api/traces/{trace_id}", self.trace_v1, methods=["GET"]),
            Route("/api/v2/traces/{trace_id}", self.trace_v2, methods=["GET"]),
            Route("/api/search", self.search, methods=["GET"]),
            Route("/api/search/tags", self.tags_v1, methods=["GET"]),
            Route("/api/v2/search/tags", self.tags_v2, methods=["GET"]),
            Route("/api/search/tag/{tag}/values", self.tag_values_v1, methods=["GET"]),
            Route("/api/v2/search/tag/{tag:path}/values", self.tag_values_v2, methods=["GET"]),
            Route("/api/echo", self.echo, methods=["GET"]),
            Route("/api/status/buildinfo", self.buildinfo, methods=["GET"]),
        ]

    async def _guard(self, request: Request, fn):
        try:
            tenant = self.resolve_tenant(request)
            return await fn(request, tenant)
        except ApiError as e:
            return PlainTextResponse(str(e) + "\n", status_code=e.status)
        except FilterError as e:
            return PlainTextResponse(str(e) + "\n", status_code=400)

    # ---- trace by id ------------------------------------------------------------------------

    async def _trace(self, request: Request, v2: bool) -> Response:
        async def run(request: Request, tenant: str) -> Response:
            tid = parse_trace_id(request.path_params["trace_id"])
            start = _seconds_ns(request.query_params.get("start"), "start")
            end = _seconds_ns(request.query_params.get("end"), "end")
            table = await asyncio.to_thread(self.store.find_trace, tenant, tid, start, end)
            if table is None:
                return PlainTextResponse("trace not found\n", status_code=404)
            msg = spans_to_request(table)
            accept = request.headers.get("accept", "")
            if any(t in accept for t in PROTOBUF_TYPES):
                return Response(msg.SerializeToString(), media_type="application/protobuf")
            resource_spans = message_to_otlp_json(msg).get("resourceSpans", [])
            body = {"trace": {"resourceSpans": resource_spans}} if v2 else {"batches": resource_spans}
            return JSONResponse(body)

        return await self._guard(request, run)

    async def trace_v1(self, request: Request) -> Response:
        return await self._trace(request, v2=False)

    async def trace_v2(self, request: Request) -> Response:
        return await self._trace(request, v2=True)

    # ---- search -----------------------------------------------------------------------------

    async def search(self, request: Request) -> Response:
        async def run(request: Request, tenant: str) -> Response:
            qp = request.query_params
            q, tags = qp.get("q"), qp.get("tags")
            if q:
                flt = traceql_filter(q)
            elif tags:
                flt = tags_filter(_parse_logfmt(tags))
            else:
                flt = search_mod.SpanFilter()
            started = time.monotonic()
            rows = await asyncio.to_thread(
                search_mod.search, self.store, tenant, flt,
                start_ns=_seconds_ns(qp.get("start"), "start"), end_ns=_seconds_ns(qp.get("end"), "end"),
                min_duration_ns=_duration_ns(qp.get("minDuration"), "minDuration"),
                max_duration_ns=_duration_ns(qp.get("maxDuration"), "maxDuration"),
                limit=_int_param(qp.get("limit"), "limit", 20),
                spans_per_set=_int_param(qp.get("spss"), "spss", 3))
            traces = [_trace_summary(r) for r in rows]
            return JSONResponse({"traces": traces, "metrics": {
                "inspectedTraces": len(traces), "completedJobs": 1, "totalJobs": 1,
                "elapsedMs": int((time.monotonic() - started) * 1000)}})

        return await self._guard(request, run)

    # ---- tags -------------------------------------------------------------------------------

    async def tags_v1(self, request: Request) -> Response:
        async def run(request: Request, tenant: str) -> Response:
            scopes = await asyncio.to_thread(search_mod.tag_names, self.store, tenant,
                                             *self._range(request), request.query_params.get("scope"))
            names = sorted({k for ks in scopes.values() for k in ks})
            return JSONResponse({"tagNames": names, "metrics": {}})

        return await self._guard(request, run)

    async def tags_v2(self, request: Request) -> Response:
        async def run(request: Request, tenant: str) -> Response:
            scope = request.query_params.get("scope")
            if scope not in (None, "", "all", "span", "resource", "intrinsic"):
                raise ApiError(400, f'invalid scope "{scope}": expected span, resource, intrinsic or all')
            out = []
            if scope in (None, "", "all", "span", "resource"):
                by_scope = await asyncio.to_thread(search_mod.tag_names, self.store, tenant,
                                                   *self._range(request), scope or None)
                out += [{"name": s, "tags": tags} for s, tags in by_scope.items()]
            if scope in (None, "", "all", "intrinsic"):
                out.append({"name": "intrinsic", "tags": search_mod.INTRINSICS})
            return JSONResponse({"scopes": out, "metrics": {}})

        return await self._guard(request, run)

    async def tag_values_v1(self, request: Request) -> Response:
        async def run(request: Request, tenant: str) -> Response:
            start, end = self._range(request)
            values = await asyncio.to_thread(search_mod.tag_values, self.store, tenant, None,
                                             request.path_params["tag"], start_ns=start, end_ns=end)
            return JSONResponse({"tagValues": sorted({v["value"] for v in values}), "metrics": {}})

        return await self._guard(request, run)

    async def tag_values_v2(self, request: Request) -> Response:
        async def run(request: Request, tenant: str) -> Response:
            scope, key = _split_tag(request.path_params["tag"])
            start, end = self._range(request)
            values = await asyncio.to_thread(search_mod.tag_values, self.store, tenant, scope, key,
                                             start_ns=start, end_ns=end, flt=_values_filter(request))
            return JSONResponse({"tagValues": values, "metrics": {}})

        return await self._guard(request, run)

    def _range(self, request: Request) -> tuple[int | None, int | None]:
        qp = request.query_params
        return _seconds_ns(qp.get("start"), "start"), _seconds_ns(qp.get("end"), "end")

    # ---- misc -------------------------------------------------------------------------------

    async def echo(self, request: Request) -> Response:
        return PlainTextResponse("echo")

    async def buildinfo(self, request: Request) -> Response:
        return JSONResponse({"version": __version__, "revision": "", "branch": "main", "buildUser": "",
                             "buildDate": "", "goVersion": ""})


def _values_filter(request: Request) -> search_mod.SpanFilter | None:
    """Tempo's ``q`` for tag values: the spans whose values to list. It is what an editor has typed
    so far, often unfinished, so a query that does not parse lists every value (as Tempo)."""
    q = (request.query_params.get("q") or "").strip()
    if not q or q == "{}":
        return None
    try:
        return traceql_filter(q)
    except FilterError:
        return None


def _split_tag(tag: str) -> tuple[str | None, str]:
    """``span.http.method`` -> (span, http.method); ``.x`` -> (None, x); ``name`` -> (None, name)."""
    for scope in ("span", "resource"):
        if tag.startswith(scope + "."):
            return scope, tag[len(scope) + 1:]
    if tag.startswith("."):
        return None, tag[1:]
    return None, tag


def _parse_logfmt(text: str) -> list[tuple[str, str]]:
    try:
        parts = shlex.split(text)
    except ValueError as e:
        raise ApiError(400, f"invalid tags: {e}") from None
    out = []
    for p in parts:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise ApiError(400, f'invalid tags: expected key=value pairs, got "{p}"')
        out.append((key, value))
    return out


def _trace_summary(row: dict) -> dict:
    spans = [{"spanID": s["span_id"].hex(), "startTimeUnixNano": str(s["start"]),
              "durationNanos": str(s["duration"]), "attributes": [_attr("service.name", s["service"] or "")]}
             for s in (row["spans"] or [])]
    span_set = {"spans": spans, "matched": int(row["matched"] or 0)}
    return {
        "traceID": row["trace_id"].hex(),
        "rootServiceName": row["root_service"] if row["root_service"] is not None
        else "<root span not yet received>",
        "rootTraceName": row["root_name"] or "",
        "startTimeUnixNano": str(row["t_start"]),
        "durationMs": int((row["t_end"] - row["t_start"]) // 1_000_000),
        "spanSet": span_set,
        "spanSets": [span_set],
    }
