"""LogQL log queries over MemoryLogQuerier: filters, parsers, label filters with units, formatting,
direction and limit, and the Loki JSON shape of stream results."""

from __future__ import annotations

import numpy as np
import pytest

from lookout.logs.logql import LogQLEngine, LogQLError, result_to_json
from lookout.logs.logql.engine import hints_for
from lookout.logs.logql.parser import parse
from lookout.logs.model import MemoryLogQuerier

T0 = 1_767_225_600 * 10**9
S = 10**9


def _querier() -> MemoryLogQuerier:
    q = MemoryLogQuerier()
    q.push({"app": "api", "env": "prod"}, np.array([T0 + i * S for i in range(4)]),
           ['level=info status=200 took=15ms size=1KB msg="all good"',
            "level=error status=500 took=2s size=3MB msg=boom",
            "level=warn status=404 took=150ms size=10B",
            "level=error status=503 took=oops size=1KiB"],
           [{"trace_id": "0af7651916cd43dd8448eb211c80319c"}, {}, {}, {"region": "eu"}])
    q.push({"app": "web"}, np.array([T0 + S // 2, T0 + 3 * S // 2]),
           ['{"level":"info","req":{"method":"GET","path":"/"},"tags":["a"],"n":1.5}',
            "not json 10.1.2.3"])
    return q


def _run(query: str, **kw: object) -> dict:
    res = LogQLEngine().query_range(_querier(), query, T0, T0 + 10 * S, S, **kw)  # type: ignore[arg-type]
    return result_to_json(res)


def _lines(data: dict) -> list[str]:
    return [v[1] for s in data["result"] for v in s["values"]]


def test_line_filters() -> None:
    assert sorted(_lines(_run('{app="api"} |= "error" != "oops"'))) == [
        "level=error status=500 took=2s size=3MB msg=boom"]
    assert len(_lines(_run('{app="api"} |~ "status=5.."'))) == 2
    assert len(_lines(_run('{app="api"} |= "status=200" or "status=404"'))) == 2
    assert _lines(_run('{app=~".+"} |= ip("10.0.0.0/8")')) == ["not json 10.1.2.3"]
    assert len(_lines(_run('{app="api"} |> "level=<_> status=5<_>"'))) == 2
    assert len(_lines(_run('{app="api"} !> "level=<_> status=5<_>"'))) == 2


def test_direction_and_limit() -> None:
    data = _run('{app="api"}', limit=2)
    assert data["resultType"] == "streams"
    ts = [int(v[0]) for s in data["result"] for v in s["values"]]
    assert ts == [T0 + 3 * S, T0 + 2 * S]
    data = _run('{app="api"}', limit=2, direction="forward")
    ts = [int(v[0]) for s in data["result"] for v in s["values"]]
    assert ts == [T0, T0 + S]


def test_stream_labels_include_metadata_and_parsed() -> None:
    data = _run('{app="api"} | logfmt | level="info"')
    (stream,) = data["result"]
    assert stream["stream"] == {"app": "api", "env": "prod", "level": "info", "status": "200", "took": "15ms",
                                "size": "1KB", "msg": "all good", "trace_id": "0af7651916cd43dd8448eb211c80319c"}
    assert stream["values"] == [[str(T0), 'level=info status=200 took=15ms size=1KB msg="all good"']]


def test_label_filters_with_units_and_errors() -> None:
    assert len(_lines(_run('{app="api"} | logfmt | status >= 500'))) == 2
    # took=oops cannot convert: the line is kept and flagged, as Loki does for log queries
    data = _run('{app="api"} | logfmt | took > 1s')
    labels = [s["stream"] for s in data["result"]]
    assert any(lb.get("__error__") == "LabelFilterErr" and "invalid duration" in lb["__error_details__"]
               for lb in labels)
    assert len(_lines(_run('{app="api"} | logfmt | took > 1s | __error__=""'))) == 1
    assert len(_lines(_run('{app="api"} | logfmt | size > 1KB'))) == 2  # 3MB and 1KiB
    assert len(_lines(_run('{app="api"} | logfmt | level="error" or status == 404'))) == 3
    assert len(_lines(_run('{app="api"} | region="eu"'))) == 1  # structured metadata without a parser


def test_json_parser() -> None:
    data = _run('{app="web"} | json')
    streams = {s["values"][0][1]: s["stream"] for s in data["result"]}
    assert streams['{"level":"info","req":{"method":"GET","path":"/"},"tags":["a"],"n":1.5}'] == {
        "app": "web", "level": "info", "req_method": "GET", "req_path": "/", "n": "1.5"}
    assert streams["not json 10.1.2.3"]["__error__"] == "JSONParserErr"
    data = _run('{app="web"} | json m="req.method", t="tags[0]", missing="nope" | __error__=""')
    assert data["result"][0]["stream"] == {"app": "web", "m": "GET", "t": "a", "missing": ""}


def test_regexp_pattern_and_formatters() -> None:
    data = _run('{app="api"} | regexp "status=(?P<code>\\\\d+)" | line_format "{{.code | printf \\"%05s\\"}}"')
    assert sorted(_lines(data)) == ["00200", "00404", "00500", "00503"]
    data = _run('{app="api"} | pattern "level=<lvl> <_>" | label_format sev="{{ToUpper .lvl}}" | keep sev')
    assert sorted(s["stream"]["sev"] for s in data["result"]) == ["ERROR", "INFO", "WARN"]
    data = _run('{app="api"} | logfmt | drop took, size, msg, status, trace_id, region | line_format "{{__line__}}!"')
    assert all(v.endswith("!") for v in _lines(data))
    assert {tuple(sorted(s["stream"])) for s in data["result"]} == {("app", "env", "level")}


def test_hints() -> None:
    h = hints_for(parse('{app="a"} |= "x" |= "" | trace_id="0AF7651916CD43DD8448EB211C80319C" | logfmt |= "y"'))
    assert h.contains == ["x", "y"]
    assert h.trace_id == "0af7651916cd43dd8448eb211c80319c"
    h = hints_for(parse('{app="a"} | line_format "{{.a}}" |= "x"'))
    assert h.contains == []


def test_limits() -> None:
    with pytest.raises(LogQLError, match="max entries limit"):
        LogQLEngine(max_lines=10).query_range(_querier(), '{app="api"}', T0, T0 + S, S, limit=11)
    with pytest.raises(LogQLError, match="instant query"):
        LogQLEngine().query_instant(_querier(), '{app="api"}', T0)


def test_template_execution_error_flags_the_line() -> None:
    data = _run('{app="web"} | line_format `{{ div 1 0 }}`')
    assert all(s["stream"].get("__error__") == "TemplateFormatErr" for s in data["result"])
    assert "not json 10.1.2.3" in _lines(data)  # the line is left unchanged


def test_distinct() -> None:
    assert len(_lines(_run('{app="api"} | logfmt | distinct level'))) == 3
