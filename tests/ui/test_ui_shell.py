"""The app shell: served by the main listener with no Node.js, every view has a URL."""

from __future__ import annotations

import httpx

from lookout.ui.routes import STATIC_DIR
from tests.ui.uikit import shot


def test_static_assets_and_spa_fallback(ui_node):
    base = ui_node.http
    r = httpx.get(f"{base}/", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/ui/"
    for path in ("/ui/", "/ui/traces/0123456789abcdef0123456789abcdef", "/ui/d/some-dashboard"):
        r = httpx.get(base + path)
        assert r.status_code == 200 and '<div id="app">' in r.text, path
    r = httpx.get(f"{base}/ui/static/js/app.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert httpx.get(f"{base}/ui/static/nope.js").status_code == 404
    # the APIs keep their paths next to the UI
    assert httpx.get(f"{base}/api/v1/query", params={"query": "1"}).json()["status"] == "success"
    # vendored libraries come with their licenses
    for name in ("htm-LICENSE", "preact-LICENSE", "uplot-LICENSE"):
        assert (STATIC_DIR / "vendor" / "licenses" / name).stat().st_size > 500


def test_navigation_between_views(ui_node, page):
    page.goto(f"{ui_node.http}/ui/")
    for label, path in (("Metrics", "/ui/metrics"), ("Logs", "/ui/logs"), ("Traces", "/ui/traces"),
                        ("Service map", "/ui/services"), ("Dashboards", "/ui/dashboards"), ("Alerts", "/ui/alerts")):
        page.click(f"header nav >> text={label}")
        page.wait_for_url(f"**{path}")
        assert page.locator("header nav a.active").inner_text() == label
    page.go_back()
    page.wait_for_url("**/ui/dashboards")
    page.goto(f"{ui_node.http}/ui/no/such/page")
    assert "There is no page at /ui/no/such/page" in page.locator("main").inner_text()
    shot(page, "not-found")
