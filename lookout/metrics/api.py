"""Prometheus HTTP API (``/api/v1/*``), so Grafana's Prometheus data source works unchanged.

Shapes, parameters and error types follow Prometheus' ``web/api/v1``: every answer is
``{"status": "success", "data": ...}`` or ``{"status": "error", "errorType": ..., "error": ...}``
with 400 for ``bad_data``, 422 for ``execution``, 503 for ``timeout``/``canceled``. Every endpoint
takes GET query parameters or a POST form, as Prometheus does.
"""

from __future__ import annotations

import asyncio
import math
import platform
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import promql_parser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lookout import __version__
from lookout.httpparams import FormError, request_params
from lookout.metrics.model import METRIC_NAME, Matcher
from lookout.metrics.promql import Engine, PromQLError, format_query, parse_query_json, result_to_json
from lookout.storage.durations import parse_duration

# Prometheus' "no bound" times (minTime/maxTime in web/api/v1), in milliseconds
MIN_TIME_MS = -(1 << 62) // 1000
MAX_TIME_MS = (1 << 62) // 1000
MAX_POINTS = 11_000  # per series in a range query, as Prometheus

_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}
_STATUS = {"bad_data": 400, "execution": 422, "timeout": 503, "canceled": 503, "not_found": 404,
           "internal": 500, "unavailable": 503}


class ApiError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


# Prometheus formats its "no bound" times so (minTimeFormatted/maxTimeFormatted); clients send them back
MIN_TIME_FORMATTED = "-292273086-05-16T16:47:06Z"
MAX_TIME_FORMATTED = "292277025-08-18T07:12:54.999999999Z"
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: str, name: str) -> int:
    """Unix seconds (float) or RFC 3339 with an offset, as Prometheus' parseTime; milliseconds out.

    Times beyond Prometheus' own bounds are clamped to them (clients send those bounds for "no
    limit"), so no later arithmetic on them overflows int64."""
    if value == MIN_TIME_FORMATTED:
        return MIN_TIME_MS
    if value == MAX_TIME_FORMATTED:
        return MAX_TIME_MS
    try:
        f = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(f):
            return min(MAX_TIME_MS, max(MIN_TIME_MS, int(round(f * 1000))))
        raise ApiError("bad_data", f'invalid parameter "{name}": cannot parse "{value}" to a valid timestamp')
    m = _RFC3339.match(value)
    if m:
        date, clock, frac, offset = m.groups()
        try:
            dt = datetime.fromisoformat(f"{date}T{clock}{'+00:00' if offset in 'Zz' else offset}")
        except ValueError:
            pass
        else:
            ms = (dt - _EPOCH) // timedelta(milliseconds=1)
            return ms + (int((frac[1:] + "00")[:3]) if frac else 0)
    raise ApiError("bad_data", f'invalid parameter "{name}": cannot parse "{value}" to a valid timestamp')


def parse_step(value: str, name: str) -> int:
    """Float seconds or a Prometheus duration (``15s``); milliseconds out."""
    try:
        f = float(value)
    except ValueError:
        try:
            return int(round(parse_duration(value) * 1000))
        except ValueError:
            raise ApiError("bad_data", f'invalid parameter "{name}": cannot parse "{value}" to a valid duration'
                           ) from None
    if not math.isfinite(f) or f * 1000 > 2**62:
        raise ApiError("bad_data", f'invalid parameter "{name}": cannot parse "{value}" to a valid duration')
    return int(round(f * 1000))


def parse_selector(text: str) -> list[list[Matcher]]:
    """A ``match[]`` series selector into matcher sets (several with ``or``)."""
    try:
        expr = promql_parser.parse(text)
    except ValueError as e:
        raise ApiError("bad_data", f'invalid parameter "match[]": {e}') from None
    if type(expr).__name__ != "VectorSelector":
        raise ApiError("bad_data", f'invalid parameter "match[]": expected a series selector, got "{text}"')
    return selector_matchers(expr)


def selector_matchers(selector: Any) -> list[list[Matcher]]:
    """The matcher sets of a parsed ``VectorSelector`` (its metric name becomes ``__name__=``)."""
    base = [Matcher(m.name, _OPS[str(m.op)], m.value) for m in selector.matchers.matchers]
    if selector.name:
        base.insert(0, Matcher(METRIC_NAME, "=", selector.name))
    ors = [[Matcher(m.name, _OPS[str(m.op)], m.value) for m in group] for group in selector.matchers.or_matchers]
    return [base + group for group in ors] if ors else [base]


def _selectors_of(expr: Any) -> list[list[Matcher]]:
    found: list[list[Matcher]] = []

    def visit(node: Any) -> None:
        if type(node).__name__ == "VectorSelector":
            found.extend(selector_matchers(node))

    promql_parser.walk(expr, visit, None)
    return found


class PrometheusApi:
    def __init__(self, store: Any, engine: Engine, resolve_tenant) -> None:
        self.store = store
        self.engine = engine
        self.resolve_tenant = resolve_tenant  # Request -> tenant; raises an error with .status on bad input

    def routes(self) -> list[Route]:
        both = ["GET", "POST"]
        return [
            Route("/api/v1/query", self.query, methods=both),
            Route("/api/v1/query_range", self.query_range, methods=both),
            Route("/api/v1/series", self.series, methods=[*both, "DELETE"]),
            Route("/api/v1/labels", self.labels, methods=both),
            Route("/api/v1/label/{name}/values", self.label_values, methods=["GET"]),
            Route("/api/v1/metadata", self.metadata, methods=["GET"]),
            Route("/api/v1/query_exemplars", self.query_exemplars, methods=both),
            Route("/api/v1/format_query", self.format_query, methods=both),
            Route("/api/v1/parse_query", self.parse_query, methods=both),
            Route("/api/v1/status/buildinfo", self.buildinfo, methods=["GET"]),
            Route("/api/v1/status/tsdb", self.tsdb, methods=["GET"]),
        ]

    # ---- plumbing ---------------------------------------------------------------------------

    async def _params(self, request: Request) -> dict[str, list[str]]:
        try:
            return await request_params(request)
        except FormError as e:
            raise ApiError("bad_data", str(e)) from None

    async def _serve(self, request: Request, fn) -> Response:
        try:
            tenant = self.resolve_tenant(request)
            params = await self._params(request)
            data, extra = await fn(tenant, params)
            body: dict[str, Any] = {"status": "success", "data": data}
            body.update({k: v for k, v in extra.items() if v})
            return JSONResponse(body)
        except ApiError as e:
            return _error(e.error_type, str(e))
        except PromQLError as e:
            # Prometheus names the parameter of a query it cannot parse or type-check
            prefix = 'invalid parameter "query": ' if e.error_type == "bad_data" else ""
            return _error(e.error_type, prefix + str(e))
        except Exception as e:  # the tenant resolver's own error type
            status = getattr(e, "status", None)
            if status == 400:
                return _error("bad_data", str(e))
            raise

    # ---- queries ----------------------------------------------------------------------------

    def _timeout(self, params: dict[str, list[str]]) -> float | None:
        if "timeout" not in params:
            return None
        return parse_step(params["timeout"][0], "timeout") / 1000

    def _engine(self, timeout_s: float | None) -> Engine:
        """The engine, or a copy with the request's shorter ``timeout`` (never a longer one)."""
        if timeout_s is None or timeout_s >= self.engine.timeout_s:
            return self.engine
        return Engine(lookback_delta_ms=self.engine.lookback_delta_ms, max_samples=self.engine.max_samples,
                      timeout_s=timeout_s)

    async def query(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]):
            q = _required(p, "query")
            t = parse_time(p["time"][0], "time") if p.get("time") else _now_ms()
            querier = self.store.querier(tenant)
            engine = self._engine(self._timeout(p))
            result = await asyncio.to_thread(engine.instant_query, querier, q, t)
            return result_to_json(result), _notes(result)

        return await self._serve(request, run)

    async def query_range(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]):
            q = _required(p, "query")
            start = parse_time(_required(p, "start"), "start")
            end = parse_time(_required(p, "end"), "end")
            if end < start:
                raise ApiError("bad_data", 'invalid parameter "end": end timestamp must not be before start time')
            step = parse_step(_required(p, "step"), "step")
            if step <= 0:
                raise ApiError("bad_data", 'invalid parameter "step": zero or negative query resolution step '
                               "widths are not accepted. Try a positive integer")
            if (end - start) // step > MAX_POINTS:  # integer division, as Prometheus
                raise ApiError("bad_data", "exceeded maximum resolution of 11,000 points per timeseries. "
                               "Try decreasing the query resolution (?step=XX)")
            querier = self.store.querier(tenant)
            engine = self._engine(self._timeout(p))
            result = await asyncio.to_thread(engine.range_query, querier, q, start, end, step)
            return result_to_json(result), _notes(result)

        return await self._serve(request, run)

    # ---- metadata about series --------------------------------------------------------------

    def _range(self, p: dict[str, list[str]]) -> tuple[int, int]:
        start = parse_time(p["start"][0], "start") if p.get("start") else MIN_TIME_MS
        end = parse_time(p["end"][0], "end") if p.get("end") else MAX_TIME_MS
        if end < start:
            raise ApiError("bad_data", 'invalid parameter "end": end timestamp must not be before start time')
        return start, end

    def _matchers(self, p: dict[str, list[str]]) -> list[list[Matcher]]:
        return [ms for text in p.get("match[]", []) for ms in parse_selector(text)]

    async def series(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]):
            if request.method == "DELETE":
                raise ApiError("bad_data", "deleting series is not supported; use retention")
            if not p.get("match[]"):
                raise ApiError("bad_data", "no match[] parameter provided")
            start, end = self._range(p)
            sets = self._matchers(p)
            found = await asyncio.to_thread(self.store.querier(tenant).series, sets, start, end)
            return _limited(found, p, "series")

        return await self._serve(request, run)

    async def labels(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]):
            start, end = self._range(p)
            names = await asyncio.to_thread(self.store.querier(tenant).label_names, self._matchers(p), start, end)
            return _limited(names, p, "labels")

        return await self._serve(request, run)

    async def label_values(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]):
            name = _unescape_label(request.path_params["name"])
            start, end = self._range(p)
            values = await asyncio.to_thread(self.store.querier(tenant).label_values, name, self._matchers(p),
                                             start, end)
            return _limited(values, p, "values")

        return await self._serve(request, run)

    async def metadata(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]):
            metric = p["metric"][0] if p.get("metric") else None
            limit = _int(p, "limit", -1)
            per_metric = _int(p, "limit_per_metric", -1)
            if limit == 0 or per_metric == 0:  # as Prometheus: a zero limit returns nothing
                return {}, {}
            data = await asyncio.to_thread(self.store.metadata, tenant, metric, limit)
            if per_metric > 0:
                data = {k: v[:per_metric] for k, v in data.items()}
            return data, {}

        return await self._serve(request, run)

    async def query_exemplars(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]):
            q = _required(p, "query")
            start, end = self._range(p)
            try:
                expr = promql_parser.parse(q)
            except ValueError as e:
                raise ApiError("bad_data", f'invalid parameter "query": {e}') from None
            sets = _selectors_of(expr)
            return await asyncio.to_thread(self.store.exemplars, tenant, sets, start, end), {}

        return await self._serve(request, run)

    async def format_query(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]):
            return format_query(_required(p, "query")), {}

        return await self._serve(request, run)

    async def parse_query(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]):
            return parse_query_json(_required(p, "query")), {}

        return await self._serve(request, run)

    async def buildinfo(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]):
            return {"version": __version__, "revision": "", "branch": "main", "buildUser": "lookout",
                    "buildDate": "", "goVersion": f"python{platform.python_version()}"}, {}

        return await self._serve(request, run)

    async def tsdb(self, request: Request) -> Response:
        async def run(tenant: str, p: dict[str, list[str]]):
            limit = _int(p, "limit", 10)
            if limit <= 0:
                raise ApiError("bad_data", 'invalid parameter "limit": limit must be a positive number')
            return await asyncio.to_thread(self.store.tsdb_status, tenant, limit), {}

        return await self._serve(request, run)


def _error(error_type: str, message: str) -> Response:
    return JSONResponse({"status": "error", "errorType": error_type, "error": message},
                        status_code=_STATUS.get(error_type, 500))


def _required(p: dict[str, list[str]], name: str) -> str:
    values = p.get(name)
    if not values or values[0] == "":
        raise ApiError("bad_data", f'invalid parameter "{name}": missing or empty')
    return values[0]


def _int(p: dict[str, list[str]], name: str, default: int) -> int:
    if not p.get(name):
        return default
    try:
        return int(p[name][0])
    except ValueError:
        raise ApiError("bad_data", f'invalid parameter "{name}": cannot parse "{p[name][0]}" to an integer') from None


def _limited(items: list, p: dict[str, list[str]], what: str) -> tuple[list, dict]:
    limit = _int(p, "limit", 0)
    if limit < 0:
        raise ApiError("bad_data", 'invalid parameter "limit": limit must be non-negative')
    if limit and len(items) > limit:
        return items[:limit], {"warnings": [f"results truncated due to limit ({what})"]}
    return items, {}


def _notes(result: Any) -> dict[str, list[str]]:
    return {"warnings": list(getattr(result, "warnings", []) or []),
            "infos": list(getattr(result, "infos", []) or [])}


def _now_ms() -> int:
    return int(time.time() * 1000)


_U_ESCAPE = re.compile(r"_([0-9a-fA-F]+)_")


def _unescape_label(name: str) -> str:
    """Prometheus 3 path escaping of UTF-8 label names: ``U__`` prefix, ``_XX_`` code points."""
    if not name.startswith("U__"):
        return name
    return _U_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), name[3:]).replace("__", "_")
