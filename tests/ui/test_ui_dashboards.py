"""Dashboards in the browser: the shipped ones with their variables and every panel type, a new
dashboard built, saved, reopened and edited (with Grafana's version check between two tabs), a
Grafana JSON imported, self-monitoring, and a bad query failing only its own panel."""

from __future__ import annotations

import json
import re

import httpx
from playwright.sync_api import expect

from tests.ui.uikit import shot

SHOP_RATE = "sum by (status) (rate(shop_orders_total[5m]))"

GRAFANA_EXPORT = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus"}],
    "title": "Imported shop",
    "uid": "imported-shop",
    "schemaVersion": 39,
    "time": {"from": "now-1h", "to": "now"},
    "templating": {"list": [{
        "name": "status", "label": "Status", "type": "query", "datasource": "${DS_PROMETHEUS}",
        "query": "label_values(shop_orders_total, status)", "multi": False, "includeAll": True,
        "current": {"text": "All", "value": "$__all"},
    }]},
    "panels": [
        {"id": 1, "type": "graph", "title": "Orders placed", "datasource": "${DS_PROMETHEUS}",
         "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
         "targets": [{"refId": "A", "expr": 'sum by (status) (shop_orders_total{status=~"$status"})',
                      "legendFormat": "{{status}}"}]},
        {"id": 2, "type": "piechart", "title": "Share of orders", "datasource": "${DS_PROMETHEUS}",
         "gridPos": {"x": 12, "y": 0, "w": 12, "h": 8},
         "targets": [{"refId": "A", "expr": "sum by (status) (shop_orders_total)"}]},
    ],
}


def panel(page, title: str):
    return page.locator('[data-testid="panel"]').filter(
        has=page.locator(f'[data-testid="panel-title"]:text-is("{title}")')).first


def refresh_until_visible(page, locator, attempts: int = 30) -> None:
    """Data written moments ago (span metrics need two samples for a rate, self-monitoring
    records every 2 s) shows after a refresh or two: press the dashboard's refresh until it does."""
    for _ in range(attempts):
        if locator.count():
            break
        page.get_by_test_id("refresh-now").click()
        page.wait_for_timeout(1000)
    expect(locator.first).to_be_visible()


def expect_legend(locator, names: list[str]) -> None:
    """The chart in locator has drawn exactly these series (once its query answered)."""
    items = locator.locator('[data-testid="legend-item"] .legend-name')
    expect(items).to_have_count(len(names))
    assert sorted(items.all_inner_texts()) == names


def test_home_page_lists_dashboards_and_alerts(shop, page):
    page.goto(f"{shop.url}/ui/")
    links = page.get_by_test_id("home-dashboard-link")
    expect(links).to_have_count(2)
    assert links.all_inner_texts() == ["Lookout self-monitoring", "Service overview"]
    expect(page.get_by_test_id("firing-count")).to_have_text("0")
    expect(page.get_by_test_id("home-alerts")).to_have_attribute("href", "/ui/alerts")
    shot(page, "home")
    links.nth(1).click()
    page.wait_for_url("**/ui/d/service-overview")


def test_service_overview_with_a_service_chosen(shop, page):
    page.goto(f"{shop.url}/ui/d/service-overview?from=now-5m")
    expect(page.get_by_test_id("dashboard-title")).to_have_text("Service overview")
    expect(page.get_by_test_id("shipped-badge")).to_be_visible()
    refresh_until_visible(page, panel(page, "Request rate by service").locator('[data-testid="legend-item"]'))
    expect_legend(panel(page, "Request rate by service"), ["checkout", "frontend", "payments"])
    # the service variable (multi-value, All selected): choose payments only
    page.get_by_test_id("var-service").click()
    page.get_by_test_id("var-service-options").get_by_text("payments", exact=True).click()
    page.wait_for_url("**var-service=payments**")
    expect(page.get_by_test_id("var-service")).to_contain_text("payments")
    rate = panel(page, "Request rate by service")
    expect(rate.locator('[data-testid="chart"] canvas')).to_have_count(1)
    expect_legend(rate, ["payments"])
    # the error panels show the declined payments: their log lines and their traces
    logs = panel(page, "Error logs")
    expect(logs).to_contain_text("payment declined for order")
    expect(logs).not_to_contain_text("No data")
    traces = panel(page, "Recent error traces").locator('[data-testid="trace-row"]')
    expect(traces).to_have_count(len(shop.error_trace_ids))
    table = panel(page, "Top operations").locator('[data-testid="panel-table"] tbody tr')
    expect(table).to_have_count(1)
    expect(table).to_contain_text("charge")
    page.locator("body").click(position={"x": 5, "y": 600})  # close the variable's popup
    shot(page, "dashboard-service-overview")
    # a drag across a chart zooms the whole dashboard: absolute from/to in the URL
    box = rate.locator(".u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 40, steps=5)
    page.mouse.up()
    page.wait_for_url(lambda url: bool(re.search(r"from=\d{13}", url) and re.search(r"to=\d{13}", url)))
    assert "var-service=payments" in page.url
    expect(page.get_by_test_id("timerange")).not_to_contain_text("Last")


def _add_panel(page, title: str, expr: str, *, kind: str | None = None, legend: str | None = None):
    page.get_by_test_id("add-panel").click()
    editor = page.get_by_test_id("panel-editor")
    if kind:
        editor.get_by_test_id("panel-type").select_option(kind)
    editor.get_by_test_id("panel-title-input").fill(title)
    editor.get_by_test_id("query-input").fill(expr)
    if legend:
        editor.get_by_test_id("target-legend").fill(legend)
    editor.get_by_test_id("query-input").press("Enter")
    return editor


def test_create_save_reopen_edit_and_version_conflict(shop, page):
    page.goto(f"{shop.url}/ui/dashboards")
    page.get_by_test_id("new-dashboard").click()
    page.wait_for_url("**/ui/d/new")
    editor = _add_panel(page, "Orders by status", SHOP_RATE, legend="{{status}}")
    preview = page.get_by_test_id("panel-preview")
    expect_legend(preview, ["declined", "ok"])
    shot(page, "dashboard-edit-panel")
    editor.get_by_test_id("panel-editor-close").click()
    _add_panel(page, "Orders", "sum(shop_orders_total)", kind="stat")
    expect(page.get_by_test_id("panel-preview").get_by_test_id("stat-value")).to_have_text("30")
    page.get_by_test_id("panel-editor-close").click()
    page.get_by_test_id("tab-settings").click()
    page.get_by_test_id("settings-title").fill("Shop orders")
    page.get_by_test_id("tab-panels").click()
    expect(page.get_by_test_id("unsaved")).to_be_visible()
    # leaving with unsaved changes asks first (declined here: the page stays)
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("header nav >> text=Dashboards")
    assert asked and "unsaved changes" in asked[0]
    assert page.url.endswith("/ui/d/new")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("save-as-title")).to_have_value("Shop orders")
    page.get_by_test_id("save-as-submit").click()
    page.wait_for_url("**/ui/d/shop-orders")

    # after a reload it is in the list, and opens with both panels
    page.reload()
    page.goto(f"{shop.url}/ui/dashboards")
    page.get_by_test_id("dashboard-search").fill("shop")
    page.wait_for_url("**query=shop**")
    rows = page.get_by_test_id("dashboard-row")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("v1")
    rows.get_by_test_id("dashboard-link").click()
    page.wait_for_url("**/ui/d/shop-orders")
    expect(page.get_by_test_id("panel")).to_have_count(2)
    expect_legend(panel(page, "Orders by status"), ["declined", "ok"])
    expect(panel(page, "Orders").get_by_test_id("stat-value")).to_have_text("30")

    # a second tab opens version 1 too
    other = page.context.new_page()
    other.goto(page.url)
    expect(other.get_by_test_id("panel")).to_have_count(2)

    # edit in the first tab and save: version 2
    page.get_by_test_id("edit").click()
    panel(page, "Orders by status").get_by_test_id("panel-edit").click()
    page.get_by_test_id("panel-title-input").fill("Orders per status")
    page.get_by_test_id("panel-editor-close").click()
    panel(page, "Orders").get_by_test_id("panel-wider").click()
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("save-status")).to_have_text("Saved as version 2.")
    expect(page.get_by_test_id("unsaved")).to_have_count(0)

    # the second tab still holds version 1: its save is refused, then may overwrite
    other.get_by_test_id("edit").click()
    panel(other, "Orders").get_by_test_id("panel-taller").click()
    other.get_by_test_id("save").click()
    expect(other.get_by_test_id("save-error")).to_contain_text("changed by someone else")
    other.get_by_test_id("save-overwrite").click()
    expect(other.get_by_test_id("save-status")).to_have_text("Saved as version 3.")
    other.close()

    saved = httpx.get(f"{shop.url}/lookout/api/v1/dashboards/shop-orders").json()
    assert saved["meta"]["version"] == 3
    assert [p["title"] for p in saved["dashboard"]["panels"]] == ["Orders by status", "Orders"]
    assert saved["dashboard"]["panels"][1]["gridPos"] == {"x": 0, "y": 8, "w": 12, "h": 9}  # the taller one won
    assert saved["dashboard"]["panels"][0]["targets"][0] == {"refId": "A", "lang": "promql", "expr": SHOP_RATE,
                                                             "legend": "{{status}}"}

    # delete it from the list (after confirming)
    page.goto(f"{shop.url}/ui/dashboards?query=shop")
    page.get_by_test_id("delete-dashboard").click()
    page.get_by_test_id("confirm-delete").click()
    expect(page.get_by_test_id("no-dashboards")).to_be_visible()


def test_import_grafana_dashboard(shop, page):
    page.goto(f"{shop.url}/ui/dashboards")
    expect(page.get_by_test_id("dashboard-row")).to_have_count(2)
    page.get_by_test_id("import-dashboard").click()
    page.get_by_test_id("import-json").fill(json.dumps(GRAFANA_EXPORT, indent=1))
    page.get_by_test_id("import-submit").click()
    warnings = page.get_by_test_id("import-warnings")
    expect(warnings).to_contain_text("Share of orders")
    expect(warnings).to_contain_text("piechart")
    shot(page, "dashboard-import")
    page.get_by_test_id("import-open").click()
    page.wait_for_url("**/ui/d/imported-shop")
    expect(page.get_by_test_id("dashboard-title")).to_have_text("Imported shop")
    orders = panel(page, "Orders placed")
    expect_legend(orders, ["declined", "ok"])
    # its variable came along: choosing one status narrows the panel
    page.get_by_test_id("var-status").select_option("declined")
    page.wait_for_url("**var-status=declined**")
    expect_legend(orders, ["declined"])
    page.goto(f"{shop.url}/ui/dashboards")
    expect(page.get_by_test_id("dashboard-row")).to_have_count(3)
    expect(page.get_by_test_id("dashboard-row").nth(2)).to_contain_text("Imported shop")
    shot(page, "dashboards-list")


def test_self_monitoring_dashboard_has_data(shop, page):
    page.goto(f"{shop.url}/ui/d/lookout-self-monitoring?from=now-15m")
    expect(page.get_by_test_id("dashboard-title")).to_have_text("Lookout self-monitoring")
    # the node records itself every 2 s in tenant "lookout": refresh until the rates have data
    refresh_until_visible(page, panel(page, "Accepted items/s by signal").locator('[data-testid="legend-item"]'))
    expect(panel(page, "Disk used").get_by_test_id("stat-value")).to_contain_text("%")
    expect(panel(page, "Head size").locator('[data-testid="chart"] canvas')).to_have_count(1)
    expect(panel(page, "Resident memory").locator('[data-testid="legend-item"]')).to_have_count(1)
    expect(page.get_by_test_id("panel-error")).to_have_count(0)
    shot(page, "dashboard-self-monitoring")
    # shipped means read-only: a copy keeps its tenant and can be changed
    page.get_by_test_id("save-copy").click()
    expect(page.get_by_test_id("save-as-title")).to_have_value("Lookout self-monitoring (copy)")
    page.get_by_test_id("save-as-submit").click()
    page.wait_for_url("**/ui/d/lookout-self-monitoring-copy**")
    expect(page.get_by_test_id("shipped-badge")).to_have_count(0)
    expect(panel(page, "Disk used").get_by_test_id("stat-value")).to_contain_text("%")
    copy = httpx.get(f"{shop.url}/lookout/api/v1/dashboards/lookout-self-monitoring-copy").json()
    assert copy["dashboard"]["tenant"] == "lookout" and copy["meta"]["shipped"] is False


def test_bad_query_fails_only_its_panel_and_text_is_safe(shop, page):
    dashboard = {
        "title": "Mixed", "uid": "mixed",
        "variables": [{"name": "win", "type": "custom", "options": ["5m", "10m"], "current": "10m"}],
        "panels": [
            {"id": 1, "title": "Good", "type": "stat", "gridPos": {"x": 0, "y": 0, "w": 8, "h": 4},
             "targets": [{"refId": "A", "lang": "promql", "expr": "sum(shop_orders_total)"}]},
            {"id": 2, "title": "Broken", "type": "timeseries", "gridPos": {"x": 8, "y": 0, "w": 8, "h": 6},
             "targets": [{"refId": "A", "lang": "promql", "expr": "sum(rate(shop_orders_total[$win])"}]},
            {"id": 3, "title": "Notes", "type": "text", "gridPos": {"x": 16, "y": 0, "w": 8, "h": 6},
             "options": {"content": "## Runbook\nCheck **payments** first. <b>raw html</b>\n\n"
                                    "- [logs](/ui/logs)\n- two"}},
            {"id": 4, "title": "Nothing", "type": "stat", "gridPos": {"x": 0, "y": 4, "w": 8, "h": 4},
             "targets": [{"refId": "A", "lang": "promql", "expr": 'shop_orders_total{status="none"}'}]},
        ],
    }
    r = httpx.post(f"{shop.url}/lookout/api/v1/dashboards", json={"dashboard": dashboard})
    assert r.status_code == 200, r.text
    page.goto(f"{shop.url}/ui/d/mixed")
    expect(panel(page, "Good").get_by_test_id("stat-value")).to_have_text("30")
    broken = panel(page, "Broken")
    expect(broken.get_by_test_id("query-error")).to_contain_text("unclosed")
    # the variable was interpolated into the query the error points at
    expect(broken.get_by_test_id("query-error-pointer")).to_contain_text("shop_orders_total[10m])")
    expect(page.get_by_test_id("query-error")).to_have_count(1)
    expect(panel(page, "Nothing").get_by_test_id("panel-nodata")).to_have_text("No data")
    notes = panel(page, "Notes")
    expect(notes.locator("strong")).to_have_text("payments")
    expect(notes).to_contain_text("<b>raw html</b>")
    expect(notes.locator("li a")).to_have_attribute("href", "/ui/logs")


INTERPOLATION_CASES = """
const vars = {
  one: {name: 'one', values: ['a.b'], options: ['a.b', 'c'], multi: false, includeAll: false, isAll: false},
  many: {name: 'many', values: ['x', 'y'], options: ['x', 'y', 'z'], multi: true, includeAll: true, isAll: false},
  all: {name: 'all', values: [], options: ['p', 'q'], multi: true, includeAll: true, isAll: true},
  none: {name: 'none', values: [], options: [], multi: false, includeAll: true, isAll: true},
};
const b = m.builtinVariables({start: 0, end: 3600000}, 30);
return [
  m.interpolate('up{a="$one", b=~"${many}", c=~"[[all]]", d=~"$none"}', vars, b),
  m.interpolate('rate(x[$__rate_interval]) $__interval $__range $__range_s ${many:csv} $missing', vars, b),
  m.interpolate('{job=~"$many"}', {many: {...vars.many, values: ['a.b', 'c|d']}}, b),
];
"""


def test_variable_interpolation_rules(shop, page):
    page.goto(f"{shop.url}/ui/dashboards")
    got = page.evaluate("async () => { const m = await import('/ui/static/js/components/panels/interpolate.js');"
                        + INTERPOLATION_CASES + "}")
    assert got[0] == 'up{a="a.b", b=~"(x|y)", c=~"(p|q)", d=~".*"}'
    assert got[1] == "rate(x[1m]) 30s 3600s 3600 x,y $missing"
    assert got[2] == r'{job=~"(a\\.b|c\\|d)"}'


REGEX_CASES = """
return [
  m.applyRegex(['host-1:9100', 'host-2:9100', 'db'], '/(.*):.*/'),
  m.applyRegex(['ok', 'declined', 'okay'], 'ok'),
  m.applyRegex(['a=1,b=2', 'c=3'], '/(?<value>[a-z])=/'),
  m.applyRegex(['a=1,b=2', 'c=3'], '/([a-z])=/g'),
  m.applyRegex(['Ok', 'OK', 'no'], '/^ok$/i'),
  m.applyRegex(['x'], ''),
];
"""


def test_variable_regex_rules(shop, page):
    """Grafana's variable regex: first capture group, bare patterns match whole, named value
    group, every match with g, flags, and no regex keeps the values."""
    page.goto(f"{shop.url}/ui/dashboards")
    got = page.evaluate("async () => { const m = await import('/ui/static/js/components/panels/variables.js');"
                        + REGEX_CASES + "}")
    assert got == [["host-1", "host-2"], ["ok"], ["a", "c"], ["a", "b", "c"], ["Ok", "OK"], ["x"]]


def test_query_variables_refresh_on_load_or_on_time_range_change(shop, page):
    """A query variable with refresh "time" lists its options again when the time range changes;
    one with "load" keeps the options it listed when the dashboard opened. Both filter through
    their regex."""
    query = "label_values(shop_orders_total, status)"
    stat = {"refId": "A", "lang": "promql", "expr": 'sum(shop_orders_total{status=~"$bytime"})'}
    dashboard = {"title": "Variable refresh", "uid": "variable-refresh", "variables": [
        {"name": "bytime", "type": "query", "query": query, "refresh": "time", "regex": "/^(?<value>d.*)$/"},
        {"name": "byload", "type": "query", "query": query, "refresh": "load", "regex": "/(o)k/"}],
        "panels": [{"id": 1, "title": "Orders", "type": "stat", "gridPos": {"x": 0, "y": 0, "w": 8, "h": 4},
                    "targets": [stat]}]}
    r = httpx.post(f"{shop.url}/lookout/api/v1/dashboards", json={"dashboard": dashboard})
    assert r.status_code == 200, r.text
    try:
        page.goto(f"{shop.url}/ui/d/variable-refresh?from=now-1h&to=now")
        expect(page.get_by_test_id("var-bytime").locator("option")).to_have_text(["declined"])
        expect(page.get_by_test_id("var-byload").locator("option")).to_have_text(["o"])
        # a range before any data: only the time-refreshed variable asks again (and has nothing)
        page.get_by_test_id("timerange").click()
        page.locator(".timerange-popup input[name=from]").fill("now-30d")
        page.locator(".timerange-popup input[name=to]").fill("now-20d")
        page.locator(".timerange-popup button[type=submit]").click()
        page.wait_for_url("**from=now-30d**")
        expect(page.get_by_test_id("var-bytime").locator("option")).to_have_count(0)
        expect(page.get_by_test_id("var-byload").locator("option")).to_have_text(["o"])
        # and back: the options return without a reload
        page.get_by_test_id("timerange").click()
        page.locator(".timerange-popup").get_by_text("Last 1h").click()
        expect(page.get_by_test_id("var-bytime").locator("option")).to_have_text(["declined"])
        shot(page, "dashboard-variable-refresh")
    finally:
        httpx.delete(f"{shop.url}/lookout/api/v1/dashboards/variable-refresh")
