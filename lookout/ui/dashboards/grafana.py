"""Grafana dashboard JSON -> the Lookout dashboard model, so existing dashboards come along.

Pure functions: :func:`unwrap` finds the dashboard in what was posted (the dashboard itself,
an API export ``{"dashboard", "meta"}``, or either under ``"dashboard"``), :func:`convert` maps it
and returns the warnings a person should read (what was skipped and why). Lookout answers the
Prometheus, Loki and Tempo APIs, so a query's language is its data source's type: prometheus ->
PromQL, loki -> LogQL, tempo -> TraceQL. The data source is found the way Grafana resolves it:
the target's, else the panel's, else the dashboard's only one; names and ``${DS_X}`` inputs are
resolved through ``__inputs``, ``__requires`` and datasource variables; as a last resort the
query text decides.
"""

from __future__ import annotations

import re
from typing import Any

from lookout.ui.dashboards.model import GRID_COLUMNS, JS_REGEX_RE, MAX_LIMIT, PANEL_LANGS, UID_RE

PANEL_TYPES = {
    "timeseries": "timeseries", "graph": "timeseries",
    "stat": "stat", "singlestat": "stat", "gauge": "stat", "bargauge": "stat",
    "table": "table", "table-old": "table",
    "logs": "logs",
    "traces": "traces",
    "text": "text",
}
DATASOURCE_LANGS = {"prometheus": "promql", "loki": "logql", "tempo": "traceql"}
UNITS = {"s": "s", "ms": "ms", "bytes": "bytes", "decbytes": "bytes", "percentunit": "percentunit",
         "percent": "percent", "reqps": "reqps", "short": "short", "none": None, "": None,
         "dtdurations": "s", "dtdurationms": "ms", "ops": "reqps", "rps": "reqps"}
REDUCERS = {"lastNotNull": "last", "last": "last", "mean": "mean", "max": "max", "min": "min", "sum": "sum",
            # singlestat's valueName
            "current": "last", "avg": "mean", "total": "sum"}
_SKIPPED_VARIABLES = ("datasource", "adhoc")
_LOGQL_HINT = re.compile(r"^\s*\{|\(\s*\{[^{}]*\}\s*(\||\[)|\}\s*(\|=|\|~|!=|!~|\|\s*(json|logfmt|regexp|pattern|"
                         r"line_format|label_format|unpack|decolorize)\b)")
_OLD_VAR_SYNTAX = re.compile(r"\[\[(\w+)(:\w+)?\]\]")  # [[var]] -> ${var}


def unwrap(body: dict[str, Any]) -> dict[str, Any]:
    """The Grafana dashboard in an import request body."""
    doc: Any = body
    for _ in range(2):  # {"dashboard": {"dashboard": ..., "meta": ...}} is an export posted whole
        inner = doc.get("dashboard") if isinstance(doc, dict) else None
        if isinstance(inner, dict):
            doc = inner
    if not isinstance(doc, dict) or not ("panels" in doc or "rows" in doc or "title" in doc):
        raise ValueError("no Grafana dashboard found: expected a JSON object with title and panels")
    return doc


def convert(grafana: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The Lookout dashboard for a Grafana dashboard, and warnings about what did not fit."""
    warnings: list[str] = []
    sources = _Datasources(grafana)
    title = grafana.get("title") if isinstance(grafana.get("title"), str) and grafana["title"].strip() else None
    uid = grafana.get("uid")
    doc: dict[str, Any] = {
        "title": title or "Imported dashboard",
        "description": grafana.get("description") if isinstance(grafana.get("description"), str) else "",
        "tags": [t for t in grafana.get("tags") or [] if isinstance(t, str)],
        "tenant": None,
        "time": _time(grafana.get("time")),
        "refresh": grafana.get("refresh") if isinstance(grafana.get("refresh"), str) and grafana["refresh"] else None,
        "variables": _variables(grafana, sources, warnings),
        "panels": _panels(grafana, sources, warnings),
    }
    if isinstance(uid, str) and UID_RE.match(uid):
        doc["uid"] = uid
    return doc, warnings


def _time(value: Any) -> dict[str, str]:
    if isinstance(value, dict) and isinstance(value.get("from"), str) and isinstance(value.get("to"), str):
        return {"from": value["from"], "to": value["to"]}
    return {"from": "now-1h", "to": "now"}


# ---- data sources --------------------------------------------------------------------------------


class _Datasources:
    """Resolves a Grafana datasource reference to a plugin type (prometheus, loki, tempo...)."""

    def __init__(self, grafana: dict[str, Any]) -> None:
        self.refs: dict[str, str] = {}  # ${DS_X} inputs and datasource variables -> plugin type
        for item in grafana.get("__inputs") or []:
            if isinstance(item, dict) and item.get("type") == "datasource" and item.get("name"):
                self.refs[item["name"]] = str(item.get("pluginId", ""))
        for var in _templating(grafana):
            if var.get("type") == "datasource" and var.get("name") and isinstance(var.get("query"), str):
                self.refs[var["name"]] = var["query"]
        plugins = {str(r.get("id")) for r in grafana.get("__requires") or []
                   if isinstance(r, dict) and r.get("type") == "datasource"}
        plugins |= set(self.refs.values())
        known = plugins & set(DATASOURCE_LANGS)
        self.default = known.pop() if len(known) == 1 else None

    def plugin(self, ds: Any) -> str | None:
        """The plugin type of a datasource reference, or None if it cannot be told."""
        if isinstance(ds, dict):
            if isinstance(ds.get("type"), str) and ds["type"] not in ("", "datasource"):
                return ds["type"]
            ds = ds.get("uid")
        if not isinstance(ds, str) or not ds or ds in ("default", "-- Mixed --", "-- Dashboard --"):
            return None
        var = re.fullmatch(r"\$\{?(\w+)(?::\w+)?\}?", ds)
        if var:
            return self.refs.get(var.group(1))
        name = ds.lower()
        for hint, plugin in (("loki", "loki"), ("tempo", "tempo"), ("prom", "prometheus"), ("mimir", "prometheus"),
                             ("cortex", "prometheus"), ("thanos", "prometheus")):
            if hint in name:
                return plugin
        return None

    def lang(self, target: dict[str, Any], panel: dict[str, Any]) -> tuple[str | None, str | None]:
        """(lang, plugin): the query language of a target, and the plugin type it was told by."""
        plugin = self.plugin(target.get("datasource")) or self.plugin(panel.get("datasource")) or self.default
        if plugin is not None:
            return DATASOURCE_LANGS.get(plugin), plugin
        if isinstance(target.get("expr"), str):
            return ("logql" if _LOGQL_HINT.search(target["expr"]) else "promql"), None
        if "query" in target or "queryType" in target:
            return "traceql", None
        return None, None


# ---- panels --------------------------------------------------------------------------------------


def _label(panel: dict[str, Any]) -> str:
    return f'panel {panel.get("id", "?")} "{panel.get("title") or ""}"'


def _sections(grafana: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Panels in groups of one layout each: the top-level ones before the first row, then each
    row's (inside a collapsed row, or following an expanded one). Old dashboards keep panels
    in ``rows[].panels`` instead."""
    if isinstance(grafana.get("rows"), list) and not grafana.get("panels"):
        return [_old_row_panels(row) for row in grafana["rows"] if isinstance(row, dict)]
    top = [p for p in grafana.get("panels") or [] if isinstance(p, dict)]
    top.sort(key=lambda p: (_grid(p).get("y", 0), _grid(p).get("x", 0)))
    sections: list[list[dict[str, Any]]] = [[]]
    for panel in top:
        if panel.get("type") == "row":  # a collapsed row holds its panels; what follows is another layout
            sections.append([p for p in panel.get("panels") or [] if isinstance(p, dict)])
            sections.append([])
        else:
            sections[-1].append(panel)
    return [s for s in sections if s]


def _old_row_panels(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Pre-5.0 rows: panels with a span (of 12) side by side, the row's height in pixels."""
    panels, x, y = [], 0, 0
    pixels = re.match(r"\s*(\d+)", str(row.get("height", "")))
    height = max(3, round(int(pixels.group(1)) / 30)) if pixels else 8
    for p in row.get("panels") or []:
        if isinstance(p, dict):
            span = p.get("span")
            w = max(1, min(GRID_COLUMNS, round(span * 2))) if isinstance(span, (int, float)) else GRID_COLUMNS
            if x + w > GRID_COLUMNS:
                x, y = 0, y + height
            panels.append({**p, "gridPos": {"x": x, "y": y, "w": w, "h": height}})
            x += w
    return panels


def _grid(panel: dict[str, Any]) -> dict[str, Any]:
    g = panel.get("gridPos")
    return g if isinstance(g, dict) else {}


def _panels(grafana: dict[str, Any], sources: _Datasources, warnings: list[str]) -> list[dict[str, Any]]:
    """Every convertible panel, rows flattened: each section keeps its own layout and is placed
    below the one before it."""
    out: list[dict[str, Any]] = []
    used_ids: set[int] = set()
    top = 0
    for section in _sections(grafana):
        first = min(_int(_grid(p).get("y"), 0) for p in section)
        bottom = top
        for panel in section:
            converted = _panel(panel, sources, warnings)
            if converted is None:
                continue
            g = _grid(panel)
            w = max(1, min(GRID_COLUMNS, _int(g.get("w"), 12)))
            x = max(0, min(GRID_COLUMNS - w, _int(g.get("x"), 0)))
            h = max(1, _int(g.get("h"), 8))
            y = top + max(0, _int(g.get("y"), first) - first)
            converted["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
            pid = panel.get("id")
            if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 and pid not in used_ids:
                converted["id"] = pid
                used_ids.add(pid)
            out.append(converted)
            bottom = max(bottom, y + h)
        top = bottom
    return out


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _panel(panel: dict[str, Any], sources: _Datasources, warnings: list[str]) -> dict[str, Any] | None:
    gtype = panel.get("type")
    ptype = PANEL_TYPES.get(gtype) if isinstance(gtype, str) else None
    if ptype is None:
        warnings.append(f"{_label(panel)} (type {gtype}) is not supported and was skipped")
        return None
    out: dict[str, Any] = {"title": panel.get("title") if isinstance(panel.get("title"), str) else "",
                           "type": ptype,
                           "description": panel.get("description") if isinstance(panel.get("description"), str)
                           else "",
                           "unit": _unit(panel, warnings),
                           "options": {}}
    if ptype == "text":
        options = panel.get("options") if isinstance(panel.get("options"), dict) else {}
        content = options.get("content", panel.get("content", ""))
        out["options"]["content"] = content if isinstance(content, str) else ""
        out["targets"] = []
        return out
    targets = _targets(panel, sources, warnings)
    if ptype == "table" and targets and all(t["lang"] == "traceql" for t in targets):
        ptype = out["type"] = "traces"  # a Tempo search shown as a table
    kept = []
    for t in targets:
        if t["lang"] in PANEL_LANGS[ptype]:
            kept.append(t)
        else:
            warnings.append(f'{_label(panel)}: query {t["refId"]} ({t["lang"]}) cannot be shown in a {ptype} '
                            "panel and was skipped")
    if not kept:
        warnings.append(f"{_label(panel)} has no query Lookout can run and was skipped")
        return None
    out["targets"] = kept
    if ptype == "stat":
        out["options"]["reduce"] = _reduce(panel, warnings)
    if ptype in ("logs", "traces"):
        limit = _target_limit(panel)
        if limit:
            out["options"]["limit"] = max(1, min(MAX_LIMIT, limit))
    return out


def _target_limit(panel: dict[str, Any]) -> int | None:
    """Loki's maxLines or Tempo's limit of the panel's first query that sets one."""
    for t in panel.get("targets") or []:
        if isinstance(t, dict):
            for key in ("maxLines", "limit"):
                if _int(t.get(key), 0) > 0:
                    return t[key]
    return None


def _unit(panel: dict[str, Any], warnings: list[str]) -> str | None:
    defaults = ((panel.get("fieldConfig") or {}).get("defaults") or {}) if isinstance(panel.get("fieldConfig"),
                                                                                     dict) else {}
    unit = defaults.get("unit")
    if unit is None and isinstance(panel.get("yaxes"), list) and panel["yaxes"]:  # old graph panel
        unit = (panel["yaxes"][0] or {}).get("format")
    if unit is None:
        unit = panel.get("format")  # old singlestat
    if unit is None:
        return None
    if unit in UNITS:
        return UNITS[unit]
    warnings.append(f'{_label(panel)}: unit "{unit}" is not supported; values are shown without a unit')
    return None


def _reduce(panel: dict[str, Any], warnings: list[str]) -> str:
    options = panel.get("options") if isinstance(panel.get("options"), dict) else {}
    calcs = (options.get("reduceOptions") or {}).get("calcs") if isinstance(options.get("reduceOptions"), dict) \
        else None
    calc = calcs[0] if isinstance(calcs, list) and calcs else panel.get("valueName")
    if calc is None:
        return "last"
    if calc in REDUCERS:
        return REDUCERS[calc]
    warnings.append(f'{_label(panel)}: calculation "{calc}" is not supported; the last value is shown')
    return "last"


def _targets(panel: dict[str, Any], sources: _Datasources, warnings: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    ref_ids: set[str] = set()
    for t in panel.get("targets") or []:
        if not isinstance(t, dict) or t.get("hide") is True:
            continue
        lang, plugin = sources.lang(t, panel)
        ref = t.get("refId") if isinstance(t.get("refId"), str) else "?"
        if lang is None:
            source = f"a data source of type {plugin}" if plugin else "a data source of unknown type"
            warnings.append(f"{_label(panel)}: query {ref} uses {source}, which Lookout does not serve; skipped")
            continue
        expr = _tempo_query(t) if lang == "traceql" else t.get("expr")
        if not isinstance(expr, str) or not expr.strip():
            continue
        legend = t.get("legendFormat")
        target = {"lang": lang, "expr": _OLD_VAR_SYNTAX.sub(r"${\1\2}", expr),
                  "legend": legend if isinstance(legend, str) and legend not in ("", "__auto") else None}
        if re.fullmatch(r"[a-zA-Z0-9_-]{1,20}", ref) and ref not in ref_ids:
            target["refId"] = ref
            ref_ids.add(ref)
        out.append(target)
    _fill_ref_ids(out, ref_ids)
    return out


def _fill_ref_ids(targets: list[dict[str, Any]], used: set[str]) -> None:
    letters = (chr(c) for c in range(ord("A"), ord("Z") + 1))
    for t in targets:
        if "refId" not in t:
            t["refId"] = next(r for r in letters if r not in used)


def _tempo_query(target: dict[str, Any]) -> str | None:
    """TraceQL of a Tempo target: the query itself, or one built from the search form."""
    query = target.get("query")
    if isinstance(query, str) and query.strip() and target.get("queryType") in (None, "", "traceql"):
        return query
    conditions = []
    for f in target.get("filters") or []:  # traceqlSearch
        if isinstance(f, dict) and f.get("tag") and f.get("value") not in (None, "", []):
            conditions.append(_condition(f))
    for key, attr in (("serviceName", "resource.service.name"), ("spanName", "name")):  # nativeSearch
        if isinstance(target.get(key), str) and target[key]:
            conditions.append(f'{attr} = "{target[key]}"')
    for key, op in (("minDuration", ">"), ("maxDuration", "<")):
        if isinstance(target.get(key), str) and target[key]:
            conditions.append(f"duration {op} {target[key]}")
    if conditions:
        return "{ " + " && ".join(conditions) + " }"
    return query if isinstance(query, str) and query.strip() else "{}"


def _condition(f: dict[str, Any]) -> str:
    """One filter of Tempo's search form as a TraceQL condition: ``resource.service.name = "x"``."""
    tag, scope = str(f["tag"]), f.get("scope")
    if scope == "unscoped":
        tag = "." + tag
    elif scope not in (None, "", "intrinsic") and not tag.startswith(f"{scope}."):
        tag = f"{scope}.{tag}"
    op = f.get("operator") or "="
    values = f["value"] if isinstance(f["value"], list) else [f["value"]]
    if len(values) > 1:  # a multi-select: any of them
        op = "=~" if op in ("=", "=~") else "!~"
        return f'{tag} {op} "{"|".join(str(v) for v in values)}"'
    value_type = f.get("valueType") or ("keyword" if tag in ("status", "kind") else "string")
    return f'{tag} {op} "{values[0]}"' if value_type == "string" else f"{tag} {op} {values[0]}"


# ---- variables -----------------------------------------------------------------------------------


def _templating(grafana: dict[str, Any]) -> list[dict[str, Any]]:
    templating = grafana.get("templating")
    items = templating.get("list") if isinstance(templating, dict) else None
    return [v for v in items or [] if isinstance(v, dict)]


def _variables(grafana: dict[str, Any], sources: _Datasources, warnings: list[str]) -> list[dict[str, Any]]:
    out = []
    for var in _templating(grafana):
        name, vtype = var.get("name"), var.get("type")
        if vtype in _SKIPPED_VARIABLES:
            warnings.append(f'variable "{name}" (type {vtype}) is not supported and was skipped; queries '
                            "run on Lookout's own data")
            continue
        converted = _variable(var, sources, warnings)
        if converted is not None:
            out.append(converted)
    return out


def _variable(var: dict[str, Any], sources: _Datasources, warnings: list[str]) -> dict[str, Any] | None:
    name, vtype = var.get("name"), var.get("type")
    out: dict[str, Any] = {"name": name, "label": var.get("label") if isinstance(var.get("label"), str) else "",
                           "type": vtype, "multi": bool(var.get("multi")), "includeAll": bool(var.get("includeAll")),
                           "current": _current(var.get("current"))}
    text = var.get("query")
    if vtype == "query":
        plugin = sources.plugin(var.get("datasource")) or sources.default
        lang = DATASOURCE_LANGS.get(plugin or "prometheus")
        if lang not in ("promql", "logql"):
            warnings.append(f'variable "{name}" queries a data source of type {plugin}, which Lookout cannot '
                            "list values from; skipped")
            return None
        query = _variable_query(text, var.get("definition"))
        if not query:
            warnings.append(f'variable "{name}" has no query and was skipped')
            return None
        regex = var.get("regex") if isinstance(var.get("regex"), str) else ""
        if regex.startswith("/") and not JS_REGEX_RE.match(regex):
            warnings.append(f'variable "{name}": the regex filter {regex} is not /pattern/flags and was dropped')
            regex = ""
        refresh = "time" if var.get("refresh") == 2 else "load"  # 0 (never) lists again on load: none is saved
        return {**out, "lang": lang, "query": query, "options": [], "regex": regex, "refresh": refresh}
    if vtype in ("custom", "interval"):
        options = [o.strip() for o in text.split(",") if o.strip()] if isinstance(text, str) else []
        return {**out, "query": text if isinstance(text, str) else "", "options": options}
    if vtype in ("constant", "textbox"):
        value = text if isinstance(text, str) else ""
        return {**out, "query": value, "options": [], "current": out["current"] or value}
    warnings.append(f'variable "{name}" (type {vtype}) is not supported and was skipped')
    return None


def _variable_query(query: Any, definition: Any) -> str | None:
    """The query of a query variable: a string, or the query editors' objects of Grafana 10+
    (Prometheus ``{"query": ...}``, Loki ``{"type": 1, "label": ..., "stream": ...}``)."""
    if isinstance(query, dict):
        if isinstance(query.get("query"), str) and query["query"].strip():
            return query["query"]
        label, stream = query.get("label"), query.get("stream")
        if query.get("type") == 1 and isinstance(label, str) and label:
            return f"label_values({stream}, {label})" if isinstance(stream, str) and stream else \
                f"label_values({label})"
        query = None
    if isinstance(query, str) and query.strip():
        return query
    return definition if isinstance(definition, str) and definition.strip() else None


def _current(current: Any) -> str | list[str] | None:
    """The selected value(s) (``$__all`` for All, as Grafana writes it)."""
    if not isinstance(current, dict):
        return None
    value = current.get("value")
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value) if isinstance(value, (str, int, float)) else None
