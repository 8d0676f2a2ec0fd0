"""The Loki HTTP API against the real server: log and metric queries, the index and metadata
endpoints Grafana calls, live tail over a websocket, and tenant isolation on every endpoint."""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import pytest
import websockets

from lookout.devserver import LookoutProcess
from lookout.logs.loki_push import encode_push_request
from tests.conftest import wait_for

NS = 1_000_000_000
NOW = time.time_ns()
BASE = (NOW // (60 * NS) - 10) * 60 * NS  # a minute boundary ten minutes ago
START, END = BASE - 60 * NS, BASE + 5 * 60 * NS

API = {"app": "api", "env": "prod"}
WEB = {"app": "web", "env": "dev"}
# api: logfmt, one line every 10 s for 3 minutes; levels cycle info, info, error
API_LINES = [(BASE + i * 10 * NS,
              f'level={("info", "info", "error")[i % 3]} msg="request {i}" status={(200, 200, 500)[i % 3]} '
              f"dur={i + 1}ms size={100 + i}")
             for i in range(18)]
# web: JSON, one line every 20 s
WEB_LINES = [(BASE + 5 * NS + i * 20 * NS,
              json.dumps({"level": ("warn", "debug")[i % 2], "user": {"id": str(i % 3)}, "latency": i / 10,
                          "path": f"/p/{i}"}))
             for i in range(9)]


def push(srv: LookoutProcess, streams, tenant: str | None = None) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    r = httpx.post(f"{srv.http}/loki/api/v1/push", content=encode_push_request(streams), headers=headers)
    assert r.status_code == 204, r.text


def get(srv: LookoutProcess, path: str, tenant: str | None = None, **params) -> httpx.Response:
    headers = {"X-Scope-OrgID": tenant} if tenant else {}
    return httpx.get(f"{srv.http}{path}", params=params, headers=headers, timeout=30)


def ok(srv: LookoutProcess, path: str, tenant: str | None = None, **params):
    r = get(srv, path, tenant, **params)
    assert r.status_code == 200, (path, params, r.status_code, r.text)
    return r.json()


def qr(srv: LookoutProcess, query: str, tenant: str | None = None, **params) -> dict:
    params.setdefault("start", str(START))
    params.setdefault("end", str(END))
    body = ok(srv, "/loki/api/v1/query_range", tenant, query=query, **params)
    assert body["status"] == "success"
    return body["data"]


def lines(data: dict) -> list[str]:
    assert data["resultType"] == "streams"
    return [v[1] for s in data["result"] for v in s["values"]]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = tmp_path_factory.mktemp("lokiapi")
    p = LookoutProcess(d / "data", {"logs": {"max_query_lines": 50, "max_query_range": "2h"}})
    p.start()
    push(p, [(API, [(t, ln, {}) for t, ln in API_LINES]), (WEB, [(t, ln, {}) for t, ln in WEB_LINES])])
    push(p, [({"app": "secret"}, [(BASE, "tenant b only", {})])], tenant="team-b")
    wait_for(lambda: len(lines(qr(p, '{app=~"api|web"}', limit=50))) == 27)
    yield p
    p.stop()


# ---- log queries ------------------------------------------------------------------------------


def test_query_range_shape_is_lokis(srv):
    body = ok(srv, "/loki/api/v1/query_range", query='{app="api"}', start=str(START), end=str(END), limit="2")
    assert set(body) == {"status", "data"}
    assert body["status"] == "success"
    data = body["data"]
    assert data["resultType"] == "streams"
    assert isinstance(data["stats"], dict)
    [stream] = data["result"]
    assert stream["stream"] == API
    for ts, line in stream["values"]:
        assert isinstance(ts, str) and ts.isdigit()
        assert isinstance(line, str)


def test_direction_and_limit(srv):
    back = qr(srv, '{app="api"}', limit="5")
    assert [int(v[0]) for v in back["result"][0]["values"]] == [t for t, _ in API_LINES[::-1][:5]]
    fwd = qr(srv, '{app="api"}', limit="5", direction="forward")
    assert [int(v[0]) for v in fwd["result"][0]["values"]] == [t for t, _ in API_LINES[:5]]
    assert lines(fwd) == [ln for _, ln in API_LINES[:5]]
    # limit applies across streams: the 4 newest entries of both streams together
    both = qr(srv, '{env=~"prod|dev"}', limit="4")
    newest = sorted([t for t, _ in API_LINES] + [t for t, _ in WEB_LINES])[-4:]
    assert sorted(int(v[0]) for s in both["result"] for v in s["values"]) == newest


def test_line_filters(srv):
    assert lines(qr(srv, '{app="api"} |= "level=error"', direction="forward")) == [
        ln for _, ln in API_LINES if "level=error" in ln]
    assert lines(qr(srv, '{app="api"} != "level=info"', direction="forward")) == [
        ln for _, ln in API_LINES if "level=info" not in ln]
    assert lines(qr(srv, '{app="api"} |~ "request 1[0-2]"', direction="forward")) == [
        ln for _, ln in API_LINES if re.search("request 1[0-2]", ln)]
    assert lines(qr(srv, '{app="api"} |= "no such text"')) == []


def test_logfmt_and_label_filters(srv):
    data = qr(srv, '{app="api"} | logfmt | status >= 500 and dur > 5ms', direction="forward")
    expected = [ln for i, (_, ln) in enumerate(API_LINES) if i % 3 == 2 and i + 1 > 5]
    assert lines(data) == expected
    # the extracted labels join the stream labels, as in Loki
    assert {s["stream"]["level"] for s in data["result"]} == {"error"}
    assert all(s["stream"]["app"] == "api" for s in data["result"])


def test_json_parser_and_line_format(srv):
    data = qr(srv, '{app="web"} | json | user_id="1" | line_format "{{.level}} {{.path}}"', direction="forward")
    expected = [f'{json.loads(ln)["level"]} {json.loads(ln)["path"]}' for _, ln in WEB_LINES
                if json.loads(ln)["user"]["id"] == "1"]
    assert lines(data) == expected
    assert expected  # not vacuous


def test_limit_over_max_query_lines_is_400(srv):
    r = get(srv, "/loki/api/v1/query_range", query='{app="api"}', limit="51", start=str(START), end=str(END))
    assert r.status_code == 400
    assert "max_query_lines" in r.text and "50" in r.text


def test_range_over_max_query_range_is_400(srv):
    r = get(srv, "/loki/api/v1/query_range", query='{app="api"}', start=str(END - 3 * 3600 * NS), end=str(END))
    assert r.status_code == 400
    assert "max_query_range" in r.text


def test_parse_error_is_400_with_position(srv):
    r = get(srv, "/loki/api/v1/query_range", query='{app="api"} |= ', start=str(START), end=str(END))
    assert r.status_code == 400
    assert re.search(r"parse error at line 1, col \d+", r.text), r.text
    r = get(srv, "/loki/api/v1/query_range", query='{app="api"', start=str(START), end=str(END))
    assert r.status_code == 400
    assert "parse error at line 1, col" in r.text


def test_instant_query(srv):
    # as Loki: log queries are range-only; metric queries give a vector
    r = get(srv, "/loki/api/v1/query", query='{app="api"}', time=str(END), limit="3")
    assert r.status_code == 400 and "range query" in r.text
    t = BASE // NS + 120
    body = ok(srv, "/loki/api/v1/query", query='count_over_time({app="api"}[1m])', time=str(t))
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    [sample] = body["data"]["result"]
    assert sample["metric"] == API
    assert sample["value"] == [t, str(len(window(API_LINES, t, 60)))]


# ---- metric queries ---------------------------------------------------------------------------


def matrix(data: dict) -> dict[tuple, dict[int, float]]:
    assert data["resultType"] == "matrix", data
    return {tuple(sorted(s["metric"].items())): {int(round(t)): float(v) for t, v in s["values"]}
            for s in data["result"]}


def window(lines_: list[tuple[int, str]], t_s: int, rng_s: int) -> list[tuple[int, str]]:
    """Loki's range: (t - range, t]."""
    return [(ts, ln) for ts, ln in lines_ if t_s * NS - rng_s * NS < ts <= t_s * NS]


def test_count_over_time_by_level_matches_hand_count(srv):
    start_s, end_s = BASE // NS, BASE // NS + 240
    data = qr(srv, 'sum by (level) (count_over_time({app="api"} | logfmt [1m]))', start=str(start_s),
              end=str(end_s), step="60")
    got = matrix(data)
    expected: dict[tuple, dict[int, float]] = {}
    for t in range(start_s, end_s + 1, 60):
        for level in ("info", "error"):
            n = sum(1 for _, ln in window(API_LINES, t, 60) if f"level={level} " in ln)
            if n:
                expected.setdefault((("level", level),), {})[t] = float(n)
    assert got == expected


def test_rate_and_bytes_over_time(srv):
    t = BASE // NS + 120
    data = qr(srv, 'rate({app="api"}[1m])', start=str(t), end=str(t), step="60")
    [(key, points)] = matrix(data).items()
    assert dict(key) == API
    assert points == {t: len(window(API_LINES, t, 60)) / 60}
    data = qr(srv, 'bytes_over_time({app="api"}[1m])', start=str(t), end=str(t), step="60")
    [(_, points)] = matrix(data).items()
    assert points == {t: float(sum(len(ln.encode()) for _, ln in window(API_LINES, t, 60)))}


def test_unwrap(srv):
    t = BASE // NS + 120
    data = qr(srv, 'sum(sum_over_time({app="api"} | logfmt | unwrap size [1m]))', start=str(t), end=str(t),
              step="60")
    expected = sum(100 + (ts - BASE) // (10 * NS) for ts, _ in window(API_LINES, t, 60))
    assert matrix(data) == {(): {t: float(expected)}}
    data = qr(srv, 'max(max_over_time({app="api"} | logfmt | unwrap duration(dur) [1m]))', start=str(t), end=str(t),
              step="60")
    [(_, points)] = matrix(data).items()
    last = max((ts - BASE) // (10 * NS) for ts, _ in window(API_LINES, t, 60))
    assert points == {t: (last + 1) / 1000}


# ---- labels, series, index --------------------------------------------------------------------


def test_labels_and_values(srv):
    body = ok(srv, "/loki/api/v1/labels", start=str(START), end=str(END))
    assert body == {"status": "success", "data": ["app", "env"]}
    body = ok(srv, "/loki/api/v1/label/app/values", start=str(START), end=str(END))
    assert body == {"status": "success", "data": ["api", "web"]}
    body = ok(srv, "/loki/api/v1/label/app/values", start=str(START), end=str(END), query='{env="dev"}')
    assert body["data"] == ["web"]
    body = ok(srv, "/loki/api/v1/label/nope/values", start=str(START), end=str(END))
    assert body == {"status": "success", "data": []}


def test_series(srv):
    r = httpx.get(f"{srv.http}/loki/api/v1/series",
                  params=[("match[]", '{app="api"}'), ("match[]", '{env="dev"}'), ("start", str(START)),
                          ("end", str(END))])
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "success", "data": [API, WEB]}
    r = httpx.post(f"{srv.http}/loki/api/v1/series", data={"match[]": '{app="web"}', "start": str(START),
                                                            "end": str(END)})
    assert r.json()["data"] == [WEB]
    assert get(srv, "/loki/api/v1/series").status_code == 400


def test_index_stats(srv):
    body = ok(srv, "/loki/api/v1/index/stats", query='{app="api"}', start=str(START), end=str(END))
    assert set(body) == {"streams", "chunks", "entries", "bytes"}
    assert body["streams"] == 1
    assert body["entries"] == len(API_LINES)
    assert body["bytes"] == sum(len(ln.encode()) for _, ln in API_LINES)


def test_index_volume(srv):
    body = ok(srv, "/loki/api/v1/index/volume", query='{env=~".+"}', start=str(START), end=str(END))
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    got = {json.dumps(r["metric"], sort_keys=True): r["value"][1] for r in body["data"]["result"]}
    assert got == {json.dumps({"env": "prod"}): str(sum(len(ln.encode()) for _, ln in API_LINES)),
                   json.dumps({"env": "dev"}): str(sum(len(ln.encode()) for _, ln in WEB_LINES))}
    for r in body["data"]["result"]:
        assert isinstance(r["value"][0], int | float) and isinstance(r["value"][1], str)


def test_detected_fields(srv):
    body = ok(srv, "/loki/api/v1/detected_fields", query='{app="api"}', start=str(START), end=str(END))
    fields = {f["label"]: f for f in body["fields"]}
    assert {"level", "msg", "status", "dur", "size"} <= set(fields)
    assert fields["level"]["cardinality"] == 2
    assert fields["status"]["type"] == "int"
    assert fields["dur"]["type"] == "duration"
    assert fields["level"]["parsers"] == ["logfmt"]
    body = ok(srv, "/loki/api/v1/detected_fields", query='{app="web"}', start=str(START), end=str(END))
    fields = {f["label"]: f for f in body["fields"]}
    assert fields["user_id"]["parsers"] == ["json"]
    assert fields["latency"]["type"] == "float"


def test_format_query_and_buildinfo(srv):
    body = ok(srv, "/loki/api/v1/format_query", query='{app="api"}|="x"')
    assert body["status"] == "success"
    assert body["data"] == '{app="api"} |= "x"'
    assert get(srv, "/loki/api/v1/format_query", query="{app=").status_code == 400
    info = ok(srv, "/loki/api/v1/status/buildinfo")
    assert isinstance(info["version"], str) and info["version"]


# ---- tenants ----------------------------------------------------------------------------------


def test_tenants_never_see_each_other(srv):
    assert lines(qr(srv, '{app="secret"}')) == []
    assert lines(qr(srv, '{app="secret"}', tenant="team-b")) == ["tenant b only"]
    assert lines(qr(srv, '{app="api"}', tenant="team-b")) == []
    assert ok(srv, "/loki/api/v1/labels", "team-b", start=str(START), end=str(END))["data"] == ["app"]
    assert ok(srv, "/loki/api/v1/label/app/values", "team-b", start=str(START), end=str(END))["data"] == ["secret"]
    assert "secret" not in ok(srv, "/loki/api/v1/label/app/values", start=str(START), end=str(END))["data"]
    assert ok(srv, "/loki/api/v1/series", "team-b", **{"match[]": '{app=~".+"}', "start": str(START),
                                                        "end": str(END)})["data"] == [{"app": "secret"}]
    assert ok(srv, "/loki/api/v1/index/stats", "team-b", query='{app=~".+"}', start=str(START),
              end=str(END))["entries"] == 1
    vol = ok(srv, "/loki/api/v1/index/volume", "team-b", query='{app=~".+"}', start=str(START), end=str(END))
    assert [r["metric"] for r in vol["data"]["result"]] == [{"app": "secret"}]
    data = qr(srv, 'sum(count_over_time({app=~".+"}[10m]))', tenant="team-b", start=str(END), end=str(END),
              step="60")
    assert [float(v) for _, v in data["result"][0]["values"]] == [1.0]
    assert get(srv, "/loki/api/v1/labels", "bad/tenant").status_code == 400


# ---- live tail --------------------------------------------------------------------------------


async def _tail(srv: LookoutProcess, query: str, tenant: str | None, expect: int, pushes,
                tenant_in_query: bool = False) -> list[dict]:
    url = srv.http.replace("http://", "ws://") + "/loki/api/v1/tail"
    headers = {"X-Scope-OrgID": tenant} if tenant and not tenant_in_query else {}
    params = {"query": query, "start": str(time.time_ns())}
    if tenant_in_query:
        params["X-Scope-OrgID"] = tenant
    frames: list[dict] = []
    async with websockets.connect(f"{url}?{httpx.QueryParams(params)}", additional_headers=headers) as ws:
        for fn in pushes:
            await asyncio.to_thread(fn)
        got = 0
        deadline = time.monotonic() + 20
        while got < expect and time.monotonic() < deadline:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=max(0.1, deadline - time.monotonic())))
            except TimeoutError:
                break
            frames.append(frame)
            got += sum(len(s["values"]) for s in frame["streams"])
    return frames


def test_live_tail_receives_new_lines(srv):
    def push_new():
        now = time.time_ns()
        push(srv, [({"app": "tailed"}, [(now, "first live", {}), (now + 1, "second live", {})]),
                   ({"app": "other"}, [(now, "not for the tail", {})])])

    frames = asyncio.run(_tail(srv, '{app="tailed"}', None, 2, [push_new]))
    assert frames, "no frame received"
    for f in frames:
        assert set(f) >= {"streams"}
        for s in f["streams"]:
            assert s["stream"] == {"app": "tailed"}
            assert all(isinstance(v[0], str) for v in s["values"])
    assert [v[1] for f in frames for s in f["streams"] for v in s["values"]] == ["first live", "second live"]


def test_live_tail_is_per_tenant(srv):
    def push_both():
        now = time.time_ns()
        push(srv, [({"app": "shared"}, [(now, "from default", {})])])
        push(srv, [({"app": "shared"}, [(now, "from team-b", {})])], tenant="team-b")

    frames = asyncio.run(_tail(srv, '{app="shared"}', "team-b", 1, [push_both]))
    got = [v[1] for f in frames for s in f["streams"] for v in s["values"]]
    assert got == ["from team-b"]
    # and the default tenant's line is there for the default tenant
    wait_for(lambda: lines(qr(srv, '{app="shared"}', start=str(NOW), end=str(time.time_ns()))) == ["from default"])


def test_live_tail_tenant_from_the_query_string(srv):
    """Browsers cannot set headers on a WebSocket, so the UI names the tenant in the query string."""
    def push_both():
        now = time.time_ns()
        push(srv, [({"app": "qs"}, [(now, "from default", {})])])
        push(srv, [({"app": "qs"}, [(now, "from team-c", {})])], tenant="team-c")

    frames = asyncio.run(_tail(srv, '{app="qs"}', "team-c", 1, [push_both], tenant_in_query=True))
    assert [v[1] for f in frames for s in f["streams"] for v in s["values"]] == ["from team-c"]


def test_live_tail_delivers_late_lines_and_initial_history(srv):
    """A line stamped in the past of what the tail already sent still arrives (Loki tails by
    arrival), and so do two lines with the same timestamp sent one after the other."""
    stamp = time.time_ns() - 30 * NS
    push(srv, [({"app": "late"}, [(stamp - 2 * NS, "history", {})])])
    wait_for(lambda: lines(qr(srv, '{app="late"}', start=str(stamp - 10 * NS), end=str(time.time_ns()))) == [
        "history"])

    async def run() -> list[str]:
        url = srv.http.replace("http://", "ws://") + "/loki/api/v1/tail"
        got: list[str] = []
        params = httpx.QueryParams(query='{app="late"}', start=str(stamp - 10 * NS), limit="5")
        async with websockets.connect(f"{url}?{params}") as ws:
            got += [v[1] for s in json.loads(await asyncio.wait_for(ws.recv(), 20))["streams"] for v in s["values"]]
            await asyncio.to_thread(push, srv, [({"app": "late"}, [(time.time_ns(), "now", {})])])
            got += [v[1] for s in json.loads(await asyncio.wait_for(ws.recv(), 20))["streams"] for v in s["values"]]
            await asyncio.to_thread(push, srv, [({"app": "late"}, [(stamp, "late by 30 s", {})])])
            got += [v[1] for s in json.loads(await asyncio.wait_for(ws.recv(), 20))["streams"] for v in s["values"]]
            await asyncio.to_thread(push, srv, [({"app": "late"}, [(stamp, "same stamp, later", {})])])
            got += [v[1] for s in json.loads(await asyncio.wait_for(ws.recv(), 20))["streams"] for v in s["values"]]
        return got

    assert asyncio.run(run()) == ["history", "now", "late by 30 s", "same stamp, later"]


def test_bad_parameters_are_400(srv):
    r = get(srv, "/loki/api/v1/query_range", query='count_over_time({app="api"}[1m])', start=str(START),
            end=str(END), step="0")
    assert r.status_code == 400 and "step" in r.text
    r = get(srv, "/loki/api/v1/query_range", query='{app="api"}', start="yesterday")
    assert r.status_code == 400 and "start" in r.text
    r = get(srv, "/loki/api/v1/detected_fields", query='{app="api"}', line_limit="lots")
    assert r.status_code == 400 and "line_limit" in r.text
    r = get(srv, "/loki/api/v1/query_range", query='{app="api"}', direction="sideways")
    assert r.status_code == 400 and "direction" in r.text


def test_rfc3339_nanosecond_bounds_are_exact(srv):
    from datetime import UTC, datetime

    def rfc(ns: int) -> str:
        return datetime.fromtimestamp(ns // NS, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % NS:09d}Z"

    # Loki: entries with start <= ts < end; a bound off by a nanosecond changes the answer
    t3, t5 = API_LINES[3][0], API_LINES[5][0]
    data = qr(srv, '{app="api"}', start=rfc(t3 + 1), end=rfc(t5 + 1), direction="forward")
    assert lines(data) == [API_LINES[4][1], API_LINES[5][1]]
    data = qr(srv, '{app="api"}', start=rfc(t3), end=rfc(t5), direction="forward")
    assert lines(data) == [API_LINES[3][1], API_LINES[4][1]]
