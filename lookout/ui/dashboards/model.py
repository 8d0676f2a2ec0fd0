"""The Lookout dashboard model: one JSON document per dashboard, checked and normalised here.

The UI, the store, the API and the Grafana importer all speak this one shape (smaller than
Grafana's: a panel has a type, a place on a 24-column grid, its queries and a unit). Every
dashboard goes through :func:`normalize` before it is stored or served, so every field is
present with its default and a bad one is refused with the JSON path that names it, e.g.
``panels[2].targets[0].lang: expected one of promql, logql, traceql, got "sql"``.
"""

from __future__ import annotations

import re
from typing import Any

from lookout.config import valid_tenant

PANEL_TYPES = ("timeseries", "stat", "table", "logs", "traces", "text")
VARIABLE_TYPES = ("query", "custom", "constant", "textbox", "interval")
QUERY_LANGS = ("promql", "logql", "traceql")
VARIABLE_LANGS = ("promql", "logql")
VARIABLE_REFRESH = ("load", "time")  # Grafana's refresh 1 (on dashboard load) and 2 (on time range change)
UNITS = ("s", "ms", "bytes", "percent", "percentunit", "reqps", "short")
REDUCERS = ("last", "mean", "max", "min", "sum")
# Which query languages each panel type can show (a text panel has no queries).
PANEL_LANGS = {
    "timeseries": ("promql", "logql"),
    "stat": ("promql", "logql"),
    "table": QUERY_LANGS,
    "logs": ("logql",),
    "traces": ("traceql",),
    "text": (),
}
GRID_COLUMNS = 24
MAX_LIMIT = 5000
DEFAULT_LIMIT = 100

UID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
_VARIABLE_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_REF_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,20}$")
_REFRESH_RE = re.compile(r"^[1-9][0-9]*(ms|s|m|h|d)$")
JS_REGEX_RE = re.compile(r"^/.*/[dgimsuy]*$", re.S)

_DASHBOARD_KEYS = {"uid", "title", "description", "tags", "tenant", "time", "refresh", "variables", "panels",
                   "version"}
_VARIABLE_KEYS = {"name", "label", "type", "lang", "query", "options", "multi", "includeAll", "current", "regex",
                  "refresh"}
_PANEL_KEYS = {"id", "title", "type", "gridPos", "targets", "unit", "description", "options"}
_TARGET_KEYS = {"refId", "lang", "expr", "legend"}


class ModelError(ValueError):
    """A dashboard that does not fit the model; the message starts with the JSON path."""


def _fail(path: str, message: str) -> ModelError:
    return ModelError(f"{path}: {message}" if path else message)


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value[:80]}"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _one_of(path: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _fail(path, f"expected one of {', '.join(allowed)}, got {_quote(value)}")
    return value


def _object(path: str, value: Any, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path or "dashboard", f"expected an object, got {_quote(value)}")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise _fail(f"{path}.{unknown[0]}" if path else unknown[0],
                    f"unknown field (expected {', '.join(sorted(keys))})")
    return value


def _string(path: str, value: Any, default: str = "", *, required: bool = False) -> str:
    if value is None and not required:
        return default
    if not isinstance(value, str):
        raise _fail(path, f"expected a string, got {_quote(value)}")
    if required and not value.strip():
        raise _fail(path, "must not be empty")
    return value


def _bool(path: str, value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _fail(path, f"expected true or false, got {_quote(value)}")
    return value


def _int(path: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"expected an integer, got {_quote(value)}")
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise _fail(path, f"expected an integer {bound}, got {value}")
    return value


def _strings(path: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(path, f"expected a list of strings, got {_quote(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _fail(f"{path}[{i}]", f"expected a string, got {_quote(item)}")
    return list(value)


def slugify(title: str) -> str:
    """A uid from a title, as a readable URL part: "Service overview" -> "service-overview"."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug[:40].rstrip("-") or "dashboard"


def normalize(doc: Any) -> dict[str, Any]:
    """The dashboard ``doc`` with every field checked and defaulted; raises :class:`ModelError`.

    A missing uid is derived from the title (the store makes it unique); a missing version is
    left ``None`` (a new dashboard)."""
    d = _object("", doc, _DASHBOARD_KEYS)
    title = _string("title", d.get("title"), required=True).strip()
    uid = d.get("uid")
    if uid in (None, ""):
        uid = slugify(title)
    elif not isinstance(uid, str) or not UID_RE.match(uid):
        raise _fail("uid", f"expected 1 to 40 letters, digits, _ or -, got {_quote(uid)}")
    tenant = d.get("tenant")
    if tenant is not None and (not isinstance(tenant, str) or not valid_tenant(tenant)):
        raise _fail("tenant", f"expected null or a tenant id of letters, digits and !_.*'()-, got {_quote(tenant)}")
    version = d.get("version")
    if version is not None:
        version = _int("version", version, 0)
    variables = d.get("variables") or []
    if not isinstance(variables, list):
        raise _fail("variables", f"expected a list, got {_quote(variables)}")
    panels = d.get("panels") or []
    if not isinstance(panels, list):
        raise _fail("panels", f"expected a list, got {_quote(panels)}")
    return {
        "uid": uid,
        "title": title,
        "description": _string("description", d.get("description")),
        "tags": _strings("tags", d.get("tags")),
        "tenant": tenant,
        "time": _time(d.get("time")),
        "refresh": _refresh(d.get("refresh")),
        "variables": _variables(variables),
        "panels": _panels(panels),
        "version": version,
    }


def _time(value: Any) -> dict[str, str]:
    if value is None:
        return {"from": "now-1h", "to": "now"}
    t = _object("time", value, {"from", "to"})
    return {"from": _string("time.from", t.get("from"), required=True),
            "to": _string("time.to", t.get("to"), required=True)}


def _refresh(value: Any) -> str | None:
    if value in (None, "", False):
        return None
    if not isinstance(value, str) or not _REFRESH_RE.match(value):
        raise _fail("refresh", f'expected null or a duration like "30s" or "1m", got {_quote(value)}')
    return value


def _variables(items: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        path = f"variables[{i}]"
        v = _object(path, item, _VARIABLE_KEYS)
        name = _string(f"{path}.name", v.get("name"), required=True)
        if not _VARIABLE_NAME_RE.match(name):
            raise _fail(f"{path}.name",
                        f"expected letters, digits and _ (not starting with a digit), got {_quote(name)}")
        if name in seen:
            raise _fail(f"{path}.name", f'variable "{name}" is defined twice')
        seen.add(name)
        vtype = _one_of(f"{path}.type", v.get("type", "query"), VARIABLE_TYPES)
        lang = v.get("lang")
        if vtype == "query":
            lang = _one_of(f"{path}.lang", lang or "promql", VARIABLE_LANGS)
        elif lang is not None:
            lang = _one_of(f"{path}.lang", lang, VARIABLE_LANGS)
        current = v.get("current")
        if isinstance(current, list):
            current = _strings(f"{path}.current", current)
        elif current is not None and not isinstance(current, str):
            raise _fail(f"{path}.current", f"expected a string, a list of strings or null, got {_quote(current)}")
        out.append({
            "name": name,
            "label": _string(f"{path}.label", v.get("label")),
            "type": vtype,
            "lang": lang,
            "query": _string(f"{path}.query", v.get("query")),
            "options": _strings(f"{path}.options", v.get("options")),
            "multi": _bool(f"{path}.multi", v.get("multi")),
            "includeAll": _bool(f"{path}.includeAll", v.get("includeAll")),
            "current": current,
            "regex": _variable_regex(f"{path}.regex", v.get("regex")),
            "refresh": _one_of(f"{path}.refresh", v.get("refresh") or "load", VARIABLE_REFRESH),
        })
    return out


def _variable_regex(path: str, value: Any) -> str:
    """Grafana's option filter: ``/pattern/flags`` (JavaScript syntax, applied by the browser) or a
    bare pattern matched whole. Only the shape is checked here: Python cannot compile every
    JavaScript regex, and the browser names a pattern it cannot compile next to the variable."""
    regex = _string(path, value)
    if regex.startswith("/") and not JS_REGEX_RE.match(regex):
        raise _fail(path, f"expected /pattern/flags with flags from dgimsuy, got {_quote(regex)}")
    return regex


def _panels(items: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    ids: set[int] = set()
    for i, item in enumerate(items):
        path = f"panels[{i}]"
        p = _object(path, item, _PANEL_KEYS)
        if p.get("id") is not None:
            pid = _int(f"{path}.id", p.get("id"), 1)
            if pid in ids:
                raise _fail(f"{path}.id", f"panel id {pid} is used twice")
            ids.add(pid)
        ptype = p.get("type")
        if ptype not in PANEL_TYPES:
            raise _fail(f"{path}.type", f"unsupported panel type {_quote(ptype)} (supported: {', '.join(PANEL_TYPES)})")
        unit = p.get("unit")
        if unit is not None:
            unit = _one_of(f"{path}.unit", unit, UNITS)
        out.append({
            "id": p.get("id"),
            "title": _string(f"{path}.title", p.get("title")),
            "type": ptype,
            "gridPos": _grid_pos(f"{path}.gridPos", p.get("gridPos"), out),
            "targets": _targets(f"{path}.targets", p.get("targets"), ptype),
            "unit": unit,
            "description": _string(f"{path}.description", p.get("description")),
            "options": _options(f"{path}.options", p.get("options"), ptype),
        })
    next_id = max(ids, default=0) + 1
    for panel in out:  # panels without an id get the next free ones, in order
        if panel["id"] is None:
            panel["id"] = next_id
            next_id += 1
    return out


def _grid_pos(path: str, value: Any, before: list[dict[str, Any]]) -> dict[str, int]:
    """x, y, w, h on Grafana's 24-column grid; a missing one puts the panel below the others."""
    g = _object(path, value if value is not None else {}, {"x", "y", "w", "h"})
    below = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in before), default=0)
    w = _int(f"{path}.w", g.get("w", 12), 1, GRID_COLUMNS)
    x = _int(f"{path}.x", g.get("x", 0), 0, GRID_COLUMNS - 1)
    if x + w > GRID_COLUMNS:
        raise _fail(path, f"x + w must be at most {GRID_COLUMNS}, got {x} + {w}")
    return {"x": x, "y": _int(f"{path}.y", g.get("y", below), 0), "w": w, "h": _int(f"{path}.h", g.get("h", 8), 1)}


def _targets(path: str, value: Any, ptype: str) -> list[dict[str, Any]]:
    if value is None:
        value = []
    if not isinstance(value, list):
        raise _fail(path, f"expected a list, got {_quote(value)}")
    allowed = PANEL_LANGS[ptype]
    if value and not allowed:
        raise _fail(path, f"a {ptype} panel has no queries")
    out: list[dict[str, Any]] = []
    ref_ids: set[str] = set()
    for i, item in enumerate(value):
        tpath = f"{path}[{i}]"
        t = _object(tpath, item, _TARGET_KEYS)
        lang = _one_of(f"{tpath}.lang", t.get("lang"), QUERY_LANGS)
        if lang not in allowed:
            raise _fail(f"{tpath}.lang", f"a {ptype} panel shows {' or '.join(allowed)} queries, got {_quote(lang)}")
        ref_id = t.get("refId") or _ref_id(len(out))
        if not isinstance(ref_id, str) or not _REF_ID_RE.match(ref_id):
            raise _fail(f"{tpath}.refId", f"expected 1 to 20 letters, digits, _ or -, got {_quote(ref_id)}")
        if ref_id in ref_ids:
            raise _fail(f"{tpath}.refId", f'refId "{ref_id}" is used twice')
        ref_ids.add(ref_id)
        legend = t.get("legend")
        if legend is not None:
            legend = _string(f"{tpath}.legend", legend) or None
        out.append({"refId": ref_id, "lang": lang, "expr": _string(f"{tpath}.expr", t.get("expr"), required=True),
                    "legend": legend})
    return out


def _ref_id(index: int) -> str:
    """A, B, ..., Z, AA, AB, ... as Grafana names queries."""
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = chr(ord("A") + rem) + name
    return name


def _options(path: str, value: Any, ptype: str) -> dict[str, Any]:
    """The options of the panel's type, defaulted; other keys are kept as the UI wrote them."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise _fail(path, f"expected an object, got {_quote(value)}")
    opts = dict(value)
    if ptype == "stat":
        opts["reduce"] = _one_of(f"{path}.reduce", opts.get("reduce", "last"), REDUCERS)
    if ptype == "text":
        opts["content"] = _string(f"{path}.content", opts.get("content"))
    if ptype in ("logs", "traces"):
        opts["limit"] = _int(f"{path}.limit", opts.get("limit", DEFAULT_LIMIT), 1, MAX_LIMIT)
    return opts
