"""The logs explorer: LogQL over the seeded shop's logs, the lines with their severity and fields,
the link from a line to its trace, the volume histogram, errors and empty results in words, live
tail over the WebSocket, and 10,000 lines that stay fast because only the visible rows exist."""

from __future__ import annotations

import re
import time
import urllib.parse
import uuid

import httpx
from playwright.sync_api import expect

from tests.ui.uikit import shot

DECLINED = '{service_name="payments"} |= "declined"'
BIG = 10_000


def logs_url(base: str, query: str, **params) -> str:
    return f"{base}/ui/logs?" + urllib.parse.urlencode({"query": query, **params})


def push(base: str, stream: dict, values: list, tenant: str | None = None) -> None:
    r = httpx.post(f"{base}/loki/api/v1/push", json={"streams": [{"stream": stream, "values": values}]},
                   headers={"X-Scope-OrgID": tenant} if tenant else {}, timeout=30)
    assert r.status_code == 204, r.text


def wait_lines(base: str, query: str, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{base}/loki/api/v1/query_range", params={"query": query, "limit": BIG}, timeout=30)
        if r.status_code == 200 and sum(len(s["values"]) for s in r.json()["data"]["result"]) >= count:
            return
        assert time.monotonic() < deadline, f"{count} lines of {query} not queryable: {r.text[:300]}"
        time.sleep(0.25)


def test_declined_payments_lines_fields_and_trace_link(shop, page):
    page.goto(logs_url(shop.url, DECLINED))
    rows = page.locator("[data-testid=log-line]")
    expect(rows).to_have_count(6)
    expect(page.get_by_test_id("log-count")).to_have_text("6 lines")
    for i in range(6):
        row = rows.nth(i)
        expect(row).to_contain_text(shop.log_marker)
        expect(row).to_have_attribute("data-level", "error")
        expect(row.get_by_test_id("log-level")).to_have_class(re.compile(r"\bsev-error\b"))
    # the volume histogram over the range, by level
    volume = page.get_by_test_id("log-volume")
    expect(volume).to_contain_text("error 6")
    expect(volume.locator("canvas").first).to_be_visible()
    shot(page, "logs-explorer")

    rows.first.click()
    details = page.get_by_test_id("log-details")
    expect(details).to_contain_text(shop.log_marker)
    expect(details.get_by_test_id("log-labels").locator("[data-field=service_name]")).to_contain_text("payments")
    metadata = details.get_by_test_id("log-metadata")
    expect(metadata.locator("[data-field=severity_text]")).to_contain_text("ERROR")
    trace_id = metadata.locator("[data-field=trace_id] td").inner_text().strip()
    assert trace_id in shop.error_trace_ids
    shot(page, "logs-expanded")

    details.get_by_test_id("trace-link").click()
    page.wait_for_url(f"**/ui/traces/{trace_id}")


def test_direction_and_zoom_on_the_volume(shop, page):
    page.goto(logs_url(shop.url, DECLINED))
    rows = page.locator("[data-testid=log-line]")
    expect(rows.first).to_contain_text("order o-29:")  # newest first
    page.get_by_test_id("direction").select_option("forward")
    expect(rows.first).to_contain_text("order o-4:")
    assert "direction=forward" in page.url
    # a drag over the histogram's second half zooms the range to it (absolute times in the URL)
    box = page.get_by_test_id("log-volume").locator(".u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=5)
    page.mouse.move(box["x"] + box["width"] - 1, y, steps=5)
    page.mouse.up()
    page.wait_for_url(re.compile(r"from=\d{13}&to=\d{13}"))
    expect(rows).to_have_count(6)


def test_label_browser_builds_a_selector(shop, page):
    page.goto(f"{shop.url}/ui/logs")
    browser = page.get_by_test_id("label-browser")
    browser.get_by_test_id("label-name").filter(has_text=re.compile("^service_name$")).click()
    browser.get_by_test_id("label-value").filter(has_text=re.compile("^payments$")).click()
    expect(browser.get_by_test_id("label-selector")).to_have_text('{service_name="payments"}')
    browser.get_by_test_id("label-browser-run").click()
    expect(page.get_by_test_id("log-count")).to_have_text("30 lines")  # 24 charged + 6 declined
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["query"] == ['{service_name="payments"}']


def test_metric_query_draws_a_chart(shop, page):
    page.goto(logs_url(shop.url, 'sum by (service_name) (count_over_time({service_name=~".+"}[5m]))'))
    chart = page.get_by_test_id("logs-metric")
    expect(chart.locator("canvas").first).to_be_visible()
    expect(page.locator("[data-testid=log-line]")).to_have_count(0)


def test_bad_query_and_no_match_say_so(shop, page):
    page.goto(logs_url(shop.url, '{service_name="payments"'))
    error = page.get_by_test_id("query-error")
    expect(error).to_contain_text("parse error")
    pointer = page.get_by_test_id("query-error-pointer")
    expect(pointer).to_contain_text("^")
    # the caret sits under column 25, just past the unclosed selector
    m = re.fullmatch(r'\{service_name="payments"\n?( *)\^', pointer.text_content())
    assert m and len(m.group(1)) == 24, pointer.text_content()
    shot(page, "logs-error")

    page.get_by_test_id("query-input").fill('{service_name="payments"} |= "no such words anywhere"')
    page.get_by_test_id("run-query").click()
    expect(page.get_by_test_id("logs-empty")).to_have_text("No logs match this query in the selected time range.")
    expect(page.get_by_test_id("query-error")).to_have_count(0)


def test_live_tail_shows_new_lines(shop, page):
    """In a tenant of its own: browsers cannot send X-Scope-OrgID on a WebSocket, so the page puts
    the tenant in the tail's query string."""
    tenant = f"tail-{uuid.uuid4().hex[:8]}"
    page.goto(f"{shop.url}/ui/")
    page.evaluate(f"localStorage.setItem('lookout.tenant', '{tenant}')")
    page.goto(logs_url(shop.url, '{job="shop-refunds"}'))
    expect(page.get_by_test_id("logs-empty")).to_be_visible()
    page.get_by_test_id("live").click()
    expect(page.get_by_test_id("live-status")).to_have_text("Live tail connected.")

    def push_line(text: str) -> None:
        push(shop.url, {"job": "shop-refunds"}, [[str(time.time_ns()), text]], tenant=tenant)

    first = f"order o-999 refunded {uuid.uuid4().hex}"
    push_line(f'level=warn msg="{first}"')
    row = page.locator("[data-testid=log-line]", has_text=first)
    expect(row).to_have_count(1, timeout=20_000)
    expect(row).to_have_attribute("data-level", "warn")
    shot(page, "logs-tail")

    page.get_by_test_id("live-pause").click()
    expect(page.get_by_test_id("live-status")).to_contain_text("paused")
    second = f"order o-1000 refunded {uuid.uuid4().hex}"
    push_line(f'level=info msg="{second}"')
    page.get_by_test_id("live-pause").click()  # resume: what arrived meanwhile shows, newest on top
    rows = page.locator("[data-testid=log-line]")
    expect(rows.first).to_contain_text(second, timeout=20_000)
    expect(rows.nth(1)).to_contain_text(first)

    page.get_by_test_id("live").click()  # stop
    expect(page.get_by_test_id("live-status")).to_have_count(0)


def test_ten_thousand_lines_are_virtualized(shop, page):
    job = f"bulk-{uuid.uuid4().hex[:8]}"
    t0 = time.time_ns() - 20 * 60 * 10**9
    values = [[str(t0 + i * 10**6), f"bulk line {i:05d} " + "x" * 60] for i in range(BIG)]
    push(shop.url, {"job": job}, values)
    query = f'{{job="{job}"}}'
    wait_lines(shop.url, query, BIG)

    page.goto(logs_url(shop.url, query, limit=BIG))
    expect(page.get_by_test_id("log-count")).to_have_text("10,000 lines")
    rows = page.locator("[data-testid=log-line]")
    expect(rows.first).to_contain_text(f"bulk line {BIG - 1:05d}")  # newest first
    assert 0 < rows.count() < 300
    shot(page, "logs-10k")

    page.get_by_test_id("log-lines").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    oldest = page.locator("[data-testid=log-line]", has_text="bulk line 00000 ")
    expect(oldest).to_be_visible()
    assert rows.count() < 300
