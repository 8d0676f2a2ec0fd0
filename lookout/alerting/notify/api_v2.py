"""The Alertmanager v2 HTTP API (``api/v2/openapi.yaml``) over Lookout's notifier.

It exists so the tools people already use — ``amtool``, Grafana's Alertmanager data source,
Prometheus's ``alerting.alertmanagers`` — talk to Lookout unchanged. JSON shapes and status codes
follow the OpenAPI spec and Alertmanager's handlers: errors are a JSON string body with 400
(bad input), 404 (unknown silence) or 500; times are RFC 3339 with milliseconds; alert status is
``{state: active|suppressed|unprocessed, silencedBy, inhibitedBy}``, computed at request time
from the current silences and inhibition rules, as Alertmanager's handler does.

``filter`` (also accepted as ``filter[]``) takes matchers in the same syntax as amtool;
``receiver`` is a fully anchored regex over an alert's receivers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lookout.alerting.matchers import Matcher, MatcherError, matches_all, parse_matchers
from lookout.alerting.model import Alert
from lookout.alerting.notify.receivers import format_time
from lookout.alerting.notify.silences import Silence, SilenceError, SilenceNotFound

if TYPE_CHECKING:
    from lookout.alerting.notify import Notifier

__all__ = ["make_routes", "parse_time", "silence_json"]

_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")


def parse_time(s: object) -> float:
    """RFC 3339 (any fraction length, Z or offset) → Unix seconds; Go's zero time → 0."""
    if s is None or s == "":
        return 0.0
    if not isinstance(s, str):
        raise ValueError(f"invalid time {s!r}")
    m = _TIME_RE.match(s.strip())
    if not m:
        raise ValueError(f"invalid RFC 3339 time {s!r}")
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    if y == "0001":
        return 0.0
    off = dt.UTC
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        off = dt.timezone(sign * dt.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    base = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec), tzinfo=off).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def _err(msg: str, code: int) -> JSONResponse:
    return JSONResponse(msg, status_code=code)


def _bool_param(req: Request, name: str, default: bool = True) -> bool:
    v = req.query_params.get(name)
    if v is None or v == "":
        return default
    if v.lower() in ("true", "1"):
        return True
    if v.lower() in ("false", "0"):
        return False
    raise ValueError(f"{name}: invalid boolean {v!r}")


def _filters(req: Request) -> list[Matcher]:
    out: list[Matcher] = []
    for key in ("filter", "filter[]"):
        for f in req.query_params.getlist(key):
            try:
                out.extend(parse_matchers(f))
            except MatcherError as e:
                raise ValueError(f"bad matcher format: {f}: {e}") from None
    return out


def _receiver_re(req: Request) -> re.Pattern[str] | None:
    r = req.query_params.get("receiver")
    if not r:
        return None
    try:
        return re.compile(f"^(?:{r})$")
    except re.error as e:
        raise ValueError(f"failed to parse receiver param: {e}") from None


def silence_json(s: Silence, now: float) -> dict[str, Any]:
    return {
        "id": s.id,
        "status": {"state": s.state(now)},
        "updatedAt": format_time(s.updated_at),
        "matchers": [m.to_api() for m in s.matchers],
        "startsAt": format_time(s.starts_at),
        "endsAt": format_time(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
    }


def _sort_silences(sils: list[Silence], now: float) -> list[Silence]:
    """Alertmanager's order: active by end asc, then pending by start asc, then expired by end desc."""
    def key(s: Silence) -> tuple[int, float]:
        st = s.state(now)
        if st == "active":
            return (0, s.ends_at)
        if st == "pending":
            return (1, s.starts_at)
        return (2, -s.ends_at)

    return sorted(sils, key=key)


def make_routes(notifier: Notifier) -> list[Route]:
    """Starlette routes for ``/api/v2/*``; mount them on any app (the UI listener does)."""

    def alert_json(a: Alert, receivers: list[str], status: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "annotations": dict(a.annotations),
            "endsAt": format_time(a.ends_at),
            "fingerprint": a.fingerprint,
            "receivers": [{"name": r} for r in receivers],
            "startsAt": format_time(a.starts_at),
            "status": dict(status),
            "updatedAt": format_time(a.updated_at),
            "generatorURL": a.generator_url,
            "labels": dict(a.labels),
        }

    def select(req: Request) -> list[tuple[Alert, list[str], dict[str, Any]]]:
        d = notifier.dispatcher
        matchers = _filters(req)
        rre = _receiver_re(req)
        active, silenced = _bool_param(req, "active"), _bool_param(req, "silenced")
        inhibited, unprocessed = _bool_param(req, "inhibited"), _bool_param(req, "unprocessed")
        now = notifier.clock()
        out = []
        for a in d.active_alerts():
            receivers = d.receivers_for(a.labels)
            if rre is not None and not any(rre.match(r) for r in receivers):
                continue
            st = d.status(a, now)
            if not active and st["state"] == "active":
                continue
            if not unprocessed and st["state"] == "unprocessed":
                continue
            if not silenced and st["silencedBy"]:
                continue
            if not inhibited and st["inhibitedBy"]:
                continue
            if not matches_all(matchers, a.labels):
                continue
            out.append((a, receivers, st))
        out.sort(key=lambda t: t[0].fingerprint)
        return out

    async def get_status(req: Request) -> Response:
        return JSONResponse({
            "cluster": {"name": "", "status": "disabled", "peers": []},
            "versionInfo": {"branch": "", "buildDate": "", "buildUser": "lookout", "goVersion": "",
                            "revision": "", "version": notifier.version},
            "config": {"original": notifier.cfg.original},
            "uptime": format_time(notifier.started_at),
        })

    async def get_receivers(req: Request) -> Response:
        return JSONResponse([{"name": n} for n in notifier.cfg.receivers])

    async def get_alerts(req: Request) -> Response:
        try:
            sel = select(req)
        except ValueError as e:
            return _err(str(e), 400)
        return JSONResponse([alert_json(a, r, s) for a, r, s in sel])

    async def post_alerts(req: Request) -> Response:
        try:
            body = await req.json()
        except ValueError:
            return _err("invalid JSON body", 400)
        if not isinstance(body, list):
            return _err("body must be a list of alerts", 400)
        now = notifier.clock()
        good: list[Alert] = []
        errs: list[str] = []
        for i, pa in enumerate(body):
            try:
                good.append(_postable(pa, now))
            except ValueError as e:
                errs.append(f"alert {i}: {e}")
        if good:
            notifier.put(good)
        if errs:
            return _err("; ".join(errs), 400)
        return Response(status_code=200)

    async def get_groups(req: Request) -> Response:
        try:
            sel = select(req)
        except ValueError as e:
            return _err(str(e), 400)
        by_fp = {a.fingerprint: (a, r, s) for a, r, s in sel}
        rre = _receiver_re(req)
        out = []
        for g in list(notifier.dispatcher.groups.values()):
            if rre is not None and not rre.match(g.route.receiver):
                continue
            alerts = [by_fp[fp] for fp in sorted(g.alerts) if fp in by_fp]
            if not alerts:
                continue
            out.append({"labels": dict(g.labels), "receiver": {"name": g.route.receiver},
                        "alerts": [alert_json(a, r, s) for a, r, s in alerts]})
        out.sort(key=lambda x: (x["receiver"]["name"], sorted(x["labels"].items())))
        return JSONResponse(out)

    async def get_silences(req: Request) -> Response:
        try:
            matchers = _filters(req)
        except ValueError as e:
            return _err(str(e), 400)
        now = notifier.clock()
        sils = _sort_silences(notifier.silences.query(matchers=matchers), now)
        return JSONResponse([silence_json(s, now) for s in sils])

    async def post_silences(req: Request) -> Response:
        try:
            body = await req.json()
            if not isinstance(body, dict):
                raise ValueError("body must be a silence object")
            ms = body.get("matchers")
            if not isinstance(ms, list):
                raise ValueError("matchers: required list")
            sil = Silence(matchers=[Matcher.from_api(m) for m in ms], starts_at=parse_time(body.get("startsAt")),
                          ends_at=parse_time(body.get("endsAt")), created_by=str(body.get("createdBy") or ""),
                          comment=str(body.get("comment") or ""), id=str(body.get("id") or ""))
        except (ValueError, MatcherError, TypeError, AttributeError) as e:
            return _err(f"Failed to parse silence: {e}", 400)
        if sil.starts_at >= sil.ends_at:
            return _err("Failed to create silence: start time must be before end time", 400)
        if sil.ends_at < notifier.clock():
            return _err("Failed to create silence: end time can't be in the past", 400)
        try:
            sid = notifier.silences.set(sil)
        except SilenceNotFound:
            return _err("silence not found", 404)
        except SilenceError as e:
            return _err(f"Failed to create silence: {e}", 400)
        return JSONResponse({"silenceID": sid})

    async def get_silence(req: Request) -> Response:
        try:
            s = notifier.silences.get(req.path_params["id"])
        except SilenceNotFound:
            return _err("silence not found", 404)
        return JSONResponse(silence_json(s, notifier.clock()))

    async def delete_silence(req: Request) -> Response:
        try:
            notifier.silences.expire(req.path_params["id"])
        except SilenceNotFound:
            return _err("silence not found", 404)
        except SilenceError as e:
            return _err(str(e), 500)
        return Response(status_code=200)

    return [
        Route("/api/v2/status", get_status, methods=["GET"]),
        Route("/api/v2/receivers", get_receivers, methods=["GET"]),
        Route("/api/v2/alerts", get_alerts, methods=["GET"]),
        Route("/api/v2/alerts", post_alerts, methods=["POST"]),
        Route("/api/v2/alerts/groups", get_groups, methods=["GET"]),
        Route("/api/v2/silences", get_silences, methods=["GET"]),
        Route("/api/v2/silences", post_silences, methods=["POST"]),
        Route("/api/v2/silence/{id}", get_silence, methods=["GET"]),
        Route("/api/v2/silence/{id}", delete_silence, methods=["DELETE"]),
    ]


def _postable(pa: object, now: float) -> Alert:
    """A ``postableAlert`` → :class:`Alert`, validated like Alertmanager's ``Validate``."""
    if not isinstance(pa, dict):
        raise ValueError("alert must be an object")
    labels = pa.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise ValueError("at least one label pair required")
    for k, v in labels.items():
        if not isinstance(k, str) or not k or not isinstance(v, str):
            raise ValueError(f"invalid label set: {k!r}")
        if not v:
            raise ValueError(f"invalid label set: empty value for label {k!r}")
    ann = pa.get("annotations") or {}
    if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
        raise ValueError("annotations must map strings to strings")
    starts, ends = parse_time(pa.get("startsAt")), parse_time(pa.get("endsAt"))
    if starts and ends and ends < starts:
        raise ValueError("start time must be before end time")
    gen = pa.get("generatorURL") or ""
    if not isinstance(gen, str):
        raise ValueError("generatorURL must be a string")
    return Alert(labels={str(k): str(v) for k, v in labels.items()}, annotations={str(k): str(v) for k, v in
                 ann.items()}, starts_at=starts, ends_at=ends, generator_url=gen, updated_at=now)
