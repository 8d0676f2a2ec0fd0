"""The metrics explorer: PromQL with autocomplete, graph and table of the seeded shop's metrics,
errors in the server's words, zoom and view state in the URL, exemplars that open their trace."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, quote, urlparse

import httpx
from playwright.sync_api import expect

from tests.ui.uikit import shot

ORDERS_BY_STATUS = "sum by (status) (shop_orders_total)"
P90_PAYMENTS = 'histogram_quantile(0.9, sum by (le) (traces_spanmetrics_latency_bucket{service="payments"}))'


def _open(page, shop, query: str = "", extra: str = ""):
    url = f"{shop.url}/ui/metrics"
    if query:
        url += f"?query={quote(query)}{extra}"
    page.goto(url)
    return page.get_by_test_id("query-input")


def _url_query(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def test_autocomplete_metric_names_labels_and_values(shop, page):
    editor = _open(page, shop)
    editor.click()
    editor.press_sequentially("shop_or")
    items = page.get_by_test_id("completion-item")
    orders = items.filter(has_text="shop_orders_total")
    expect(orders).to_have_count(1)
    expect(items.filter(has_text="shop_order_duration_milliseconds_bucket")).to_have_count(1)
    shot(page, "metrics-autocomplete")
    orders.click()
    expect(editor).to_have_value("shop_orders_total")
    expect(page.get_by_test_id("completions")).to_have_count(0)

    editor.press_sequentially("{st")  # label names of this metric (match[])
    expect(items.first).to_contain_text("status")
    page.keyboard.press("Tab")
    expect(editor).to_have_value("shop_orders_total{status")
    editor.press_sequentially('="')  # its values; the quote is closed on accept
    expect(items.locator(".label")).to_have_text(["declined", "ok"])
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")  # accepts the suggestion, does not run
    expect(editor).to_have_value('shop_orders_total{status="ok"')
    assert "query" not in _url_query(page)

    page.keyboard.press("Control+Space")
    expect(items.first).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("completions")).to_have_count(0)
    editor.press_sequentially("}")
    editor.press("Enter")  # no list open: runs the query
    page.wait_for_url(re.compile(r"query=shop_orders_total"))
    expect(page.get_by_test_id("legend-item")).to_have_count(1)
    expect(page.get_by_test_id("legend-item")).to_contain_text('shop_orders_total{instance=')


def test_graph_legend_table_and_url_round_trip(shop, page):
    _open(page, shop, ORDERS_BY_STATUS, "&from=now-5m")  # the seed's samples are all recent
    legend = page.get_by_test_id("legend-item")
    expect(legend).to_have_count(2)
    names = sorted(legend.locator(".legend-name").all_inner_texts())
    assert names == ['{status="declined"}', '{status="ok"}']
    values = dict(zip(legend.locator(".legend-name").all_inner_texts(),
                      legend.locator(".legend-value").all_inner_texts(), strict=True))
    assert values == {'{status="declined"}': "6", '{status="ok"}': "24"}
    # hovering the chart shows the values at the cursor
    box = page.locator(".ts-plot .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] - 4, box["y"] + box["height"] / 2)
    expect(page.get_by_test_id("chart-tooltip")).to_contain_text('{status="ok"}')
    # a legend click hides its series (and a second one shows it again)
    ok_item = legend.filter(has_text='{status="ok"}')
    ok_item.click()
    expect(ok_item).to_have_class(re.compile(r"\boff\b"))
    page.mouse.move(box["x"] + box["width"] - 4, box["y"] + box["height"] / 2 + 5)
    expect(page.get_by_test_id("chart-tooltip")).not_to_contain_text('{status="ok"}')
    ok_item.click()
    expect(ok_item).not_to_have_class(re.compile(r"\boff\b"))
    page.mouse.move(0, 0)
    shot(page, "metrics-graph")

    page.get_by_test_id("tab-table").click()
    page.wait_for_url(re.compile(r"tab=table"))
    rows = page.get_by_test_id("result-row")
    expect(rows).to_have_count(2)
    table = dict(zip(rows.get_by_test_id("result-series").all_inner_texts(),
                     rows.get_by_test_id("result-value").all_inner_texts(), strict=True))
    assert table == {'{status="declined"}': "6", '{status="ok"}': "24"}
    page.get_by_test_id("sort-value").click()  # largest first
    expect(rows.first.get_by_test_id("result-value")).to_have_text("24")
    shot(page, "metrics-table")

    url = page.url
    assert _url_query(page) == {"query": ORDERS_BY_STATUS, "from": "now-5m", "tab": "table"}
    page.goto(url)
    expect(page.get_by_test_id("query-input")).to_have_value(ORDERS_BY_STATUS)
    expect(page.get_by_test_id("tab-table")).to_have_class(re.compile("active"))
    expect(page.get_by_test_id("result-row")).to_have_count(2)


def test_bad_query_shows_parser_error_with_caret_and_empty_says_no_data(shop, page):
    editor = _open(page, shop)
    bad = "sum(rate(shop_orders_total[5m])"
    editor.fill(bad)
    editor.press("Escape")
    editor.press("Enter")
    error = page.get_by_test_id("query-error")
    expect(error).to_contain_text("unclosed left parenthesis")
    # the server says 1:4 (the "(" after sum): the caret sits under it
    pointer = page.get_by_test_id("query-error-pointer")
    expect(pointer).to_be_visible()
    assert pointer.inner_text() == f"{bad}\n   ^"
    shot(page, "metrics-error")

    editor.fill('shop_orders_total{status="nope"}')
    editor.press("Escape")
    editor.press("Enter")
    expect(page.get_by_test_id("no-data")).to_have_text("No data")
    expect(error).to_have_count(0)


def test_drag_zoom_sets_absolute_range_in_url(shop, page):
    before = int(time.time() * 1000)
    _open(page, shop, ORDERS_BY_STATUS)
    expect(page.get_by_test_id("legend-item")).to_have_count(2)
    box = page.locator(".ts-plot .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=5)
    page.mouse.up()
    page.wait_for_url(re.compile(r"from=\d{13}&?.*to=\d{13}|to=\d{13}&?.*from=\d{13}"))
    q = _url_query(page)
    start, end = int(q["from"]), int(q["to"])
    hour = 3600_000
    # the middle half of the last hour, give or take the page's own "now"
    assert before - hour * 0.8 < start < end < before + 60_000
    assert 0.4 * hour < end - start < 0.6 * hour
    expect(page.get_by_test_id("timerange")).not_to_contain_text("Last 1h")
    page.go_back()
    expect(page.get_by_test_id("timerange")).to_contain_text("Last 1h")


def test_exemplars_open_their_trace(shop, page):
    _open(page, shop, P90_PAYMENTS, "&exemplars=1&from=now-5m")
    marks = page.get_by_test_id("exemplar")
    expect(marks.first).to_be_attached()
    expect(page.get_by_test_id("exemplar-count")).to_contain_text("exemplars")
    trace_id = marks.last.get_attribute("data-trace-id")
    assert trace_id in shop.ok_trace_ids + shop.error_trace_ids
    marks.last.hover()
    shot(page, "metrics-exemplars")
    marks.last.click()
    page.wait_for_url(f"**/ui/traces/{trace_id}")


def _labels(page, module: str, fn: str, text: str, cursor: int | None = None) -> list[str]:
    """Run one completer in the page (the module as the browser loads it) -> suggested labels."""
    cursor = len(text) if cursor is None else cursor
    return page.evaluate("""async ([module, fn, text, cursor]) => {
        const m = await import(module);
        const r = await m[fn](text, cursor);
        return r ? r.items.map((i) => i.label) : [];
    }""", [module, fn, text, cursor])


def test_logql_and_traceql_completers(shop, page):
    page.goto(f"{shop.url}/ui/metrics")
    lib = "/ui/static/js/lib/completers.js"
    assert "service_name" in _labels(page, lib, "logqlCompleter", "{")
    assert _labels(page, lib, "logqlCompleter", '{service_name="pa') == ["payments"]
    assert _labels(page, lib, "logqlCompleter", '{service_name="payments"} | lo')[0] == "logfmt"
    assert "json" in _labels(page, lib, "logqlCompleter", '{service_name="payments"} |')
    assert _labels(page, lib, "logqlCompleter", "count_over")[0] == "count_over_time"
    attrs = _labels(page, lib, "traceqlCompleter", "{ resource.serv")
    assert attrs[:2] == ["resource.service.instance.id", "resource.service.name"]
    assert "duration" in _labels(page, lib, "traceqlCompleter", "{ dur")
    assert _labels(page, lib, "traceqlCompleter", '{ resource.service.name = "') == ["checkout", "frontend", "payments"]
    assert _labels(page, lib, "traceqlCompleter", "{ status = ") == ["unset", "ok", "error"]
    assert _labels(page, lib, "promqlCompleter", "rate(shop_orders_total[")[:2] == ["1m", "5m"]
    by_labels = _labels(page, lib, "promqlCompleter", "sum by (sta) (shop_orders_total)", len("sum by (sta"))
    assert by_labels == ["status", "instance"]  # the labels of the metric in the query only


def test_completers_narrow_values_by_what_is_typed_before(shop, page):
    """Label values inside a LogQL selector are those of the streams the matchers before select;
    TraceQL values those of the spans the &&-joined conditions before match (Tempo's q)."""
    now = str(time.time_ns())
    push = {"streams": [{"stream": {"uitest_app": "shop-a", "uitest_env": "prod"}, "values": [[now, "a"]]},
                        {"stream": {"uitest_app": "shop-b", "uitest_env": "dev"}, "values": [[now, "b"]]}]}
    assert httpx.post(f"{shop.url}/loki/api/v1/push", json=push).status_code == 204
    page.goto(f"{shop.url}/ui/metrics")
    lib = "/ui/static/js/lib/completers.js"
    assert _labels(page, lib, "logqlCompleter", '{uitest_env="') == ["dev", "prod"]
    assert _labels(page, lib, "logqlCompleter", '{uitest_app="shop-a", uitest_env="') == ["prod"]
    assert _labels(page, lib, "logqlCompleter", '{uitest_app=~"shop-.*", uitest_env=') == ["dev", "prod"]
    assert len(_labels(page, lib, "traceqlCompleter", "{ name = ")) == 6
    assert _labels(page, lib, "traceqlCompleter", '{ resource.service.name = "payments" && name = ') == ["charge"]
    assert _labels(page, lib, "traceqlCompleter", '{ kind = client && resource.service.name = "') == [
        "checkout", "frontend"]
    # with || the other branch may match other spans: no narrowing
    assert len(_labels(page, lib, "traceqlCompleter", '{ resource.service.name = "payments" || name = ')) == 6


def test_value_formatting_and_series_names(page, ui_node):
    page.goto(f"{ui_node.http}/ui/metrics")
    got = page.evaluate("""async () => {
        const c = await import('/ui/static/js/components/chart.js');
        const series = c.promMatrixToSeries([{metric: {__name__: 'up', job: 'a'}, values: [[1, '1'], [2, 'NaN']]},
                                             {metric: {service: 'x'}, values: [[1, '2']]}], '{{service}} p99');
        return {
          units: [c.formatValue(0.25, 's'), c.formatValue(1536, 'bytes'), c.formatValue(0.123, 'percentunit'),
                  c.formatValue(12345, 'reqps'), c.formatValue(90, 's'), c.formatValue(1500, 'short'),
                  c.formatValue(null)],
          names: [c.seriesName({__name__: 'up', job: 'a', b: '1'}), c.seriesName({}), series[0].name, series[1].name],
          points: series[0].points,
        };
    }""")
    assert got["units"] == ["250 ms", "1.5 KiB", "12.3%", "12.3k req/s", "1.5 min", "1.5k", ""]
    assert got["names"] == ['up{b="1", job="a"}', "{}", " p99", "x p99"]
    assert got["points"] == [[1, 1], [2, None]]


def test_many_series_are_capped_in_the_graph_and_virtualized_in_the_table(shop, page):
    everything = '{__name__=~".+"}'
    total = len(httpx.get(f"{shop.url}/api/v1/query", params={"query": everything}).json()["data"]["result"])
    assert total > 200
    _open(page, shop, everything, "&from=now-5m")
    expect(page.get_by_test_id("series-cap")).to_have_text(f"showing 200 of {total} series")
    expect(page.get_by_test_id("legend-item")).to_have_count(200)
    page.get_by_test_id("tab-table").click()
    rows = page.get_by_test_id("result-row")
    expect(rows.first).to_be_visible()
    assert rows.count() < 100  # only the rows in view are in the DOM
    expect(page.locator(".rt-count")).to_have_text(f"{total} rows")
    page.get_by_test_id("sort-name").click()
    page.get_by_test_id("result-rows").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(rows.last.get_by_test_id("result-series")).to_have_text(re.compile(r"^traces_spanmetrics_latency_sum"))


def test_bars_and_stacked_charts_render(page, ui_node):
    """The log-volume histogram (bars) and stacked panels draw with the same component."""
    page.goto(f"{ui_node.http}/ui/metrics")
    page.evaluate("""async () => {
        const { html, render } = await import('/ui/static/js/preact.js');
        const { TimeSeriesChart } = await import('/ui/static/js/components/chart.js');
        const now = Math.floor(Date.now() / 1000);
        const pts = (k) => Array.from({length: 30}, (_, i) => [now - 600 + i * 20, (i % 7) * k]);
        const series = [{name: 'info', labels: {}, points: pts(1)}, {name: 'error', labels: {}, points: pts(2)}];
        const charts = [['bars', {bars: true, stacked: true}], ['stacked', {stacked: true, unit: 'bytes'}]];
        for (const [id, props] of charts) {
          const el = document.createElement('div');
          el.id = `chart-${id}`;
          el.style.width = '800px';
          document.querySelector('main').appendChild(el);
          const range = {start: (now - 600) * 1000, end: now * 1000};
          render(html`<${TimeSeriesChart} series=${series} ...${range} ...${props} />`, el);
        }
    }""")
    for chart_id in ("chart-bars", "chart-stacked"):
        chart = page.locator(f"#{chart_id}")
        expect(chart.get_by_test_id("legend-item")).to_have_count(2)
        expect(chart.locator("canvas")).to_have_count(1)
    # stacked, the legend still shows each series' own last value (not the stacked sum), in its unit
    legend = page.locator("#chart-stacked").get_by_test_id("legend-item")
    expect(legend.last.locator(".legend-value")).to_have_text("2 B")
    expect(legend.first.locator(".legend-value")).to_have_text("1 B")


def test_an_hour_of_history_draws_a_rate_per_route(shop, page):
    """An hour of a counter (remote write, 15 s scrapes, three routes at different rates):
    rate() by route draws three lines whose legend values are the routes' rates."""
    import numpy as np

    from lookout.metrics.remote_write import encode_write_request

    now_ms = int(time.time() * 1000)
    t = np.arange(now_ms - 3_600_000, now_ms, 15_000, dtype=np.int64)
    wave = 1 + 0.3 * np.sin(np.arange(len(t)) / 20)
    rates = {"/checkout": 5.0, "/cart": 2.0, "/search": 1.0}
    series = [({"__name__": "http_server_requests_total", "job": "shop", "route": route}, t,
               np.cumsum(np.full(len(t), r * 15) * wave)) for route, r in rates.items()]
    r = httpx.post(f"{shop.url}/api/v1/write", content=encode_write_request(series),
                   headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"})
    assert r.status_code == 204, r.text

    _open(page, shop, "sum by (route) (rate(http_server_requests_total[5m]))", "&from=now-1h")
    items = page.get_by_test_id("legend-item")
    expect(items).to_have_count(3)
    legend = {item.locator(".legend-name").inner_text(): float(item.locator(".legend-value").inner_text())
              for item in items.all()}
    assert set(legend) == {'{route="/checkout"}', '{route="/cart"}', '{route="/search"}'}
    # the last 5 minutes' rate of each route, within the wave's swing
    for route, rate in rates.items():
        assert 0.7 * rate <= legend[f'{{route="{route}"}}'] <= 1.3 * rate
    shot(page, "metrics-graph-history")
