"""The Grafana dashboard converter on realistic exports: a Node-exporter-like dashboard (rows,
graph, stat, table, a piechart, ${DS_PROMETHEUS} inputs, a datasource and label_values
variables), a Loki logs dashboard and a Tempo search dashboard."""

from __future__ import annotations

import copy

import pytest

from lookout.ui.dashboards.grafana import convert, unwrap
from lookout.ui.dashboards.model import normalize

PROM = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

NODE_EXPORTER = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus",
                  "pluginName": "Prometheus"}],
    "__requires": [{"type": "grafana", "id": "grafana", "version": "10.2.0"},
                   {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
                   {"type": "panel", "id": "piechart", "name": "Pie chart", "version": ""}],
    "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                              "enable": True, "name": "Annotations & Alerts", "type": "dashboard"}]},
    "editable": True, "graphTooltip": 1, "id": None, "links": [],
    "panels": [
        {"collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}, "id": 261, "panels": [],
         "title": "Quick CPU / Mem / Disk", "type": "row"},
        {"datasource": PROM, "fieldConfig": {"defaults": {"unit": "percent", "max": 100, "min": 0}, "overrides": []},
         "gridPos": {"h": 4, "w": 3, "x": 0, "y": 1}, "id": 20, "type": "gauge", "title": "CPU Busy",
         "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
         "targets": [{"datasource": PROM, "editorMode": "code", "refId": "A", "instant": True,
                      "expr": "100 * (1 - avg(rate(node_cpu_seconds_total{mode=\"idle\", instance=\"$node\"}"
                              "[$__rate_interval])))"}]},
        {"datasource": PROM, "fieldConfig": {"defaults": {"unit": "s"}, "overrides": []},
         "gridPos": {"h": 4, "w": 3, "x": 3, "y": 1}, "id": 15, "type": "stat", "title": "Uptime",
         "options": {"reduceOptions": {"calcs": ["max"]}},
         "targets": [{"refId": "A", "expr": "node_time_seconds{instance=\"$node\"} - "
                                            "node_boot_time_seconds{instance=\"$node\"}"}]},
        {"datasource": PROM, "gridPos": {"h": 4, "w": 6, "x": 6, "y": 1}, "id": 7, "type": "piechart",
         "title": "CPU", "targets": [{"refId": "A", "expr": "sum by (mode) (node_cpu_seconds_total)"}]},
        {"datasource": "${DS_PROMETHEUS}", "gridPos": {"h": 4, "w": 12, "x": 12, "y": 1}, "id": 16,
         "type": "graph", "title": "Memory (old graph)", "yaxes": [{"format": "bytes"}, {"format": "short"}],
         "targets": [{"refId": "A", "expr": "node_memory_MemTotal_bytes{instance=\"[[node]]\"}",
                      "legendFormat": "total"}]},
        {"collapsed": True, "gridPos": {"h": 1, "w": 24, "x": 0, "y": 5}, "id": 263, "title": "Basic CPU / Mem",
         "type": "row", "panels": [
             {"datasource": PROM, "gridPos": {"h": 7, "w": 12, "x": 0, "y": 6}, "id": 77, "type": "timeseries",
              "title": "CPU Basic", "fieldConfig": {"defaults": {"unit": "percentunit"}},
              "targets": [
                  {"refId": "A", "expr": "sum(irate(node_cpu_seconds_total{mode=\"system\"}[$__rate_interval]))",
                   "legendFormat": "Busy System"},
                  {"refId": "B", "expr": "sum(irate(node_cpu_seconds_total{mode=\"user\"}[$__rate_interval]))",
                   "legendFormat": "__auto"},
                  {"refId": "C", "expr": "up", "hide": True}]},
             {"datasource": PROM, "gridPos": {"h": 7, "w": 12, "x": 12, "y": 6}, "id": 78, "type": "table",
              "title": "Filesystems", "fieldConfig": {"defaults": {"unit": "decbytes"}},
              "targets": [{"refId": "A", "format": "table", "instant": True,
                           "expr": "node_filesystem_size_bytes{instance=\"$node\", fstype!=\"tmpfs\"}"}]},
         ]},
        {"collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": 6}, "id": 265, "title": "Network",
         "type": "row", "panels": []},
        {"datasource": PROM, "gridPos": {"h": 8, "w": 24, "x": 0, "y": 7}, "id": 84, "type": "timeseries",
         "title": "Network Traffic", "fieldConfig": {"defaults": {"unit": "bps"}},
         "targets": [{"refId": "A", "expr": "rate(node_network_receive_bytes_total{instance=\"$node\"}[5m])*8",
                      "legendFormat": "{{device}} in"}]},
    ],
    "refresh": "1m", "schemaVersion": 39, "tags": ["linux", "node-exporter"],
    "templating": {"list": [
        {"current": {"selected": False, "text": "default", "value": "default"}, "hide": 0, "includeAll": False,
         "label": "Datasource", "multi": False, "name": "datasource", "options": [], "query": "prometheus",
         "refresh": 1, "regex": "", "type": "datasource"},
        {"current": {}, "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "definition": "label_values(node_uname_info, job)", "hide": 0, "includeAll": False, "label": "Job",
         "multi": False, "name": "job", "options": [],
         "query": {"query": "label_values(node_uname_info, job)",
                   "refId": "PrometheusVariableQueryEditor-VariableQuery"},
         "refresh": 1, "regex": "", "sort": 1, "type": "query"},
        {"current": {"text": ["a", "b"], "value": ["a", "b"]}, "datasource": "${DS_PROMETHEUS}",
         "definition": "", "includeAll": True, "label": "Host", "multi": True, "name": "node", "options": [],
         "query": "label_values(node_uname_info{job=\"$job\"}, instance)", "refresh": 2, "regex": "/(.*):.*/",
         "type": "query"},
        {"current": {"text": "eth0", "value": "eth0"}, "name": "nic", "type": "custom",
         "query": "eth0, eth1,lo", "options": [{"text": "eth0", "value": "eth0", "selected": True}]},
        {"name": "smoothing", "type": "interval", "query": "1m,5m,10m", "current": {"text": "5m", "value": "5m"}},
        {"name": "region", "type": "constant", "query": "eu-west-1", "hide": 2},
        {"name": "filter", "type": "textbox", "query": "", "label": "Filter"},
        {"datasource": PROM, "filters": [], "name": "Filters", "type": "adhoc"},
    ]},
    "time": {"from": "now-24h", "to": "now"}, "timepicker": {}, "timezone": "browser",
    "title": "Node Exporter Full", "uid": "rYdddlPWk", "version": 92, "weekStart": "",
}

LOKI_LOGS = {
    "title": "App logs", "uid": "app-logs", "tags": ["loki"], "time": {"from": "now-6h", "to": "now"},
    "panels": [
        {"id": 1, "type": "logs", "title": "Errors", "datasource": "Loki",
         "gridPos": {"x": 0, "y": 0, "w": 24, "h": 10},
         "targets": [{"refId": "A", "expr": "{app=\"shop\"} |= \"error\" | json", "maxLines": 500}]},
        {"id": 2, "type": "timeseries", "title": "Lines by level", "gridPos": {"x": 0, "y": 10, "w": 12, "h": 8},
         "datasource": {"type": "loki", "uid": "P8E80F9AEF21F6940"},
         "targets": [{"refId": "A", "expr": "sum by (level) (count_over_time({app=\"shop\"} | logfmt [$__interval]))",
                      "legendFormat": "{{level}}"}]},
        {"id": 3, "type": "logs", "title": "No datasource", "gridPos": {"x": 12, "y": 10, "w": 12, "h": 8},
         "targets": [{"refId": "A", "expr": "{app=\"shop\"} |~ \"timeout|refused\""}]},
        {"id": 4, "type": "table", "title": "Elastic", "gridPos": {"x": 0, "y": 18, "w": 12, "h": 8},
         "datasource": {"type": "elasticsearch", "uid": "es"}, "targets": [{"refId": "A", "query": "status:500"}]},
    ],
    "templating": {"list": [
        {"name": "app", "type": "query", "datasource": {"type": "loki", "uid": "P8E80F9AEF21F6940"},
         "query": {"label": "app", "stream": "{namespace=\"prod\"}", "type": 1, "refId": "LokiVariableQueryEditor"},
         "definition": "label_values({namespace=\"prod\"}, app)"},
    ]},
}

TEMPO = {
    "dashboard": {
        "title": "Slow traces", "uid": "slow-traces", "refresh": "",
        "panels": [
            {"id": 1, "type": "table", "title": "Slow checkout traces",
             "datasource": {"type": "tempo", "uid": "tempo"}, "gridPos": {"x": 0, "y": 0, "w": 24, "h": 10},
             "targets": [{"refId": "A", "queryType": "traceql", "limit": 50,
                          "query": "{ resource.service.name = \"checkout\" && duration > 500ms }"}]},
            {"id": 2, "type": "table", "title": "Search form",
             "datasource": {"type": "tempo", "uid": "tempo"}, "gridPos": {"x": 0, "y": 10, "w": 12, "h": 8},
             "targets": [{"refId": "A", "queryType": "traceqlSearch", "limit": 20, "filters": [
                 {"id": "service-name", "tag": "service.name", "operator": "=", "scope": "resource",
                  "value": ["frontend", "checkout"], "valueType": "string"},
                 {"id": "status", "tag": "status", "operator": "=", "scope": "intrinsic", "value": "error",
                  "valueType": "keyword"},
                 {"id": "min-duration", "tag": "duration", "operator": ">", "value": "100ms", "valueType": "duration"},
                 {"id": "empty", "tag": "http.route", "operator": "=", "scope": "span"}]}]},
            {"id": 3, "type": "timeseries", "title": "TraceQL metrics",
             "datasource": {"type": "tempo", "uid": "tempo"}, "gridPos": {"x": 12, "y": 10, "w": 12, "h": 8},
             "targets": [{"refId": "A", "queryType": "traceql", "query": "{} | rate()"}]},
        ],
    },
    "meta": {"type": "db", "slug": "slow-traces", "version": 3},
}


def _panel(doc, title):
    return next(p for p in doc["panels"] if p["title"] == title)


def test_node_exporter_dashboard():
    doc, warnings = convert(unwrap(copy.deepcopy(NODE_EXPORTER)))
    normalize(doc)  # the result fits the model
    assert (doc["uid"], doc["title"], doc["tags"]) == ("rYdddlPWk", "Node Exporter Full", ["linux", "node-exporter"])
    assert doc["time"] == {"from": "now-24h", "to": "now"} and doc["refresh"] == "1m"
    assert [p["title"] for p in doc["panels"]] == ["CPU Busy", "Uptime", "Memory (old graph)", "CPU Basic",
                                                    "Filesystems", "Network Traffic"]
    assert 'panel 7 "CPU" (type piechart) is not supported and was skipped' in warnings

    cpu = _panel(doc, "CPU Busy")
    assert (cpu["type"], cpu["unit"], cpu["options"]) == ("stat", "percent", {"reduce": "last"})
    assert cpu["targets"] == [{"refId": "A", "lang": "promql", "legend": None,
                               "expr": NODE_EXPORTER["panels"][1]["targets"][0]["expr"]}]
    assert _panel(doc, "Uptime")["options"] == {"reduce": "max"}
    memory = _panel(doc, "Memory (old graph)")
    assert (memory["type"], memory["unit"], memory["targets"][0]["legend"]) == ("timeseries", "bytes", "total")
    assert memory["targets"][0]["expr"] == 'node_memory_MemTotal_bytes{instance="${node}"}'

    basic = _panel(doc, "CPU Basic")  # inside the collapsed row
    assert [(t["refId"], t["legend"]) for t in basic["targets"]] == [("A", "Busy System"), ("B", None)]
    assert basic["unit"] == "percentunit"
    fs = _panel(doc, "Filesystems")
    assert (fs["type"], fs["unit"]) == ("table", "bytes")
    assert any('unit "bps" is not supported' in w for w in warnings)

    # Rows are flattened: each row's panels below the previous ones, side by side as in Grafana.
    pos = {p["title"]: p["gridPos"] for p in doc["panels"]}
    assert pos["CPU Busy"] == {"x": 0, "y": 0, "w": 3, "h": 4}
    assert pos["Memory (old graph)"] == {"x": 12, "y": 0, "w": 12, "h": 4}
    assert pos["CPU Basic"] == {"x": 0, "y": 4, "w": 12, "h": 7}
    assert pos["Filesystems"] == {"x": 12, "y": 4, "w": 12, "h": 7}
    assert pos["Network Traffic"] == {"x": 0, "y": 11, "w": 24, "h": 8}
    assert [p["id"] for p in doc["panels"]] == [20, 15, 16, 77, 78, 84]


def test_node_exporter_variables():
    doc, warnings = convert(unwrap({"dashboard": copy.deepcopy(NODE_EXPORTER), "overwrite": True}))
    variables = {v["name"]: v for v in normalize(doc)["variables"]}
    assert list(variables) == ["job", "node", "nic", "smoothing", "region", "filter"]
    assert variables["job"] == {"name": "job", "label": "Job", "type": "query", "lang": "promql",
                                     "query": "label_values(node_uname_info, job)", "options": [], "multi": False,
                                     "includeAll": False, "current": None, "regex": "", "refresh": "load"}
    node = variables["node"]
    assert (node["query"], node["multi"], node["includeAll"], node["current"], node["regex"], node["refresh"]) == (
        'label_values(node_uname_info{job="$job"}, instance)', True, True, ["a", "b"], "/(.*):.*/", "time")
    assert variables["nic"]["options"] == ["eth0", "eth1", "lo"] and variables["nic"]["current"] == "eth0"
    assert variables["smoothing"]["options"] == ["1m", "5m", "10m"]
    assert variables["region"]["current"] == "eu-west-1"
    assert any(w.startswith('variable "datasource" (type datasource) is not supported') for w in warnings)
    assert any(w.startswith('variable "Filters" (type adhoc) is not supported') for w in warnings)
    assert not [w for w in warnings if "regex" in w]  # the browser applies Grafana's variable regex


def test_a_malformed_variable_regex_is_dropped_with_a_warning():
    dashboard = copy.deepcopy(NODE_EXPORTER)
    dashboard["templating"]["list"][2]["regex"] = "/(.*):.*"
    doc, warnings = convert(unwrap(dashboard))
    node = next(v for v in normalize(doc)["variables"] if v["name"] == "node")
    assert node["regex"] == ""
    assert 'variable "node": the regex filter /(.*):.* is not /pattern/flags and was dropped' in warnings


def test_loki_dashboard():
    doc, warnings = convert(unwrap(copy.deepcopy(LOKI_LOGS)))
    normalize(doc)
    errors = _panel(doc, "Errors")
    assert errors["type"] == "logs" and errors["options"] == {"limit": 500}
    assert errors["targets"][0]["lang"] == "logql"  # told by the data source's name
    by_level = _panel(doc, "Lines by level")
    assert (by_level["type"], by_level["targets"][0]["lang"], by_level["targets"][0]["legend"]) == (
        "timeseries", "logql", "{{level}}")
    assert _panel(doc, "No datasource")["targets"][0]["lang"] == "logql"  # guessed from the query
    assert "Elastic" not in [p["title"] for p in doc["panels"]]
    assert 'panel 4 "Elastic": query A uses a data source of type elasticsearch, which Lookout does not serve; ' \
        "skipped" in warnings
    assert 'panel 4 "Elastic" has no query Lookout can run and was skipped' in warnings
    assert doc["variables"][0]["lang"] == "logql"
    assert doc["variables"][0]["query"] == 'label_values({namespace="prod"}, app)'


def test_tempo_dashboard_from_api_export():
    doc, warnings = convert(unwrap(copy.deepcopy(TEMPO)))
    normalize(doc)
    assert doc["uid"] == "slow-traces" and doc["refresh"] is None
    slow = _panel(doc, "Slow checkout traces")
    assert slow["type"] == "traces" and slow["options"] == {"limit": 50}
    assert slow["targets"][0] == {"refId": "A", "lang": "traceql", "legend": None,
                                  "expr": '{ resource.service.name = "checkout" && duration > 500ms }'}
    form = _panel(doc, "Search form")
    assert form["targets"][0]["expr"] == \
        '{ resource.service.name =~ "frontend|checkout" && status = error && duration > 100ms }'
    assert "TraceQL metrics" not in [p["title"] for p in doc["panels"]]
    assert 'panel 3 "TraceQL metrics": query A (traceql) cannot be shown in a timeseries panel and was skipped' \
        in warnings


def test_mixed_datasources_guess_the_language_from_the_query():
    grafana = {"title": "Mixed", "panels": [
        {"id": 1, "type": "timeseries", "title": "Both", "datasource": {"type": "datasource", "uid": "-- Mixed --"},
         "targets": [{"refId": "A", "expr": "sum(rate(http_requests_total[5m]))"},
                     {"refId": "B", "expr": "sum(rate({app=\"web\"} |= \"GET\" [5m]))"}]}]}
    doc, _ = convert(grafana)
    assert [t["lang"] for t in doc["panels"][0]["targets"]] == ["promql", "logql"]
    assert doc["panels"][0]["gridPos"] == {"x": 0, "y": 0, "w": 12, "h": 8}
    assert "uid" not in doc  # the store makes one from the title


def test_text_panel_and_old_rows_schema():
    grafana = {"title": "Old", "uid": "not a valid uid!", "rows": [
        {"height": "250px", "panels": [
            {"id": 1, "type": "text", "title": "Read me", "span": 12, "mode": "markdown", "content": "# Hello"},
            {"id": 2, "type": "singlestat", "title": "Up", "span": 6, "format": "none", "valueName": "avg",
             "datasource": "prometheus", "targets": [{"refId": "A", "expr": "up"}]},
            {"id": 3, "type": "singlestat", "title": "Down", "span": 6, "datasource": "prometheus",
             "targets": [{"refId": "A", "expr": "1 - up"}]}]},
    ]}
    doc, warnings = convert(grafana)
    normalize(doc)
    assert "uid" not in doc and warnings == []
    text, up, down = doc["panels"]
    assert (text["type"], text["options"], text["targets"]) == ("text", {"content": "# Hello"}, [])
    assert (up["type"], up["unit"], up["options"]) == ("stat", None, {"reduce": "mean"})
    assert [p["gridPos"] for p in doc["panels"]] == [{"x": 0, "y": 0, "w": 24, "h": 8},
                                                     {"x": 0, "y": 8, "w": 12, "h": 8},
                                                     {"x": 12, "y": 8, "w": 12, "h": 8}]


@pytest.mark.parametrize("body", [{"dashboard": [1]}, {"meta": {}}, {"dashboard": {"meta": {}}}])
def test_unwrap_refuses_what_is_no_dashboard(body):
    with pytest.raises(ValueError, match="no Grafana dashboard found"):
        unwrap(body)
