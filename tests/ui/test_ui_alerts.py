"""The alerting page on a node of its own with a rule that fires at once: the firing alert with
its summary, a silence made from the alert's "Silence" button (pre-filled matchers) that the
Alertmanager API then applies, expiring it from the UI, and a bad matcher regex answered with
the server's words."""

from __future__ import annotations

import time
from urllib.parse import unquote

import httpx
import pytest
from playwright.sync_api import expect

from lookout.devserver import LookoutProcess
from tests.ui.uikit import shot

RULES = """
groups:
  - name: always
    interval: 1s
    rules:
      - alert: AlwaysFiring
        expr: vector(1) > 0
        for: 0s
        labels: {severity: page}
        annotations:
          summary: Everything is on fire
          description: A test alert that fires at once
      - alert: NeverFiring
        expr: vector(0) > 1
        labels: {severity: info}
"""


@pytest.fixture(scope="module")
def alert_node(tmp_path_factory):
    root = tmp_path_factory.mktemp("alerts-ui")
    (root / "rules.yml").write_text(RULES)
    cfg = {"selfmon": {"interval": 0},
           "alerting": {"rule_files": [str(root / "rules.yml")], "evaluation_interval": "1s"}}
    node = LookoutProcess(root / "data", cfg).start()
    try:
        _wait(lambda: any(a["labels"]["alertname"] == "AlwaysFiring" for a in _am_alerts(node)), "the alert to fire")
        yield node
    finally:
        node.stop()


def _am_alerts(node) -> list[dict]:
    r = httpx.get(f"{node.http}/api/v2/alerts", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _wait(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return result


def _rule(page, name: str):
    return page.locator(f'[data-testid="alert-rule"][data-alertname="{name}"]')


def test_alerts_tab_lists_rules_with_their_state(alert_node, page):
    page.goto(f"{alert_node.http}/ui/alerts")
    firing = _rule(page, "AlwaysFiring")
    expect(firing).to_have_attribute("data-state", "firing")
    instance = firing.get_by_test_id("alert-instance")
    expect(instance).to_have_count(1)
    expect(instance.get_by_test_id("alert-summary")).to_have_text("Everything is on fire")
    expect(instance).to_contain_text("A test alert that fires at once")
    expect(instance).to_contain_text("severity=page")
    expr = firing.get_by_test_id("alert-expr")
    expect(expr).to_have_text("vector(1) > 0")
    assert unquote(expr.get_attribute("href")) == "/ui/metrics?query=vector(1) > 0"
    expect(_rule(page, "NeverFiring")).to_have_attribute("data-state", "inactive")
    expect(page.get_by_test_id("state-filter-firing")).to_contain_text("1")
    shot(page, "alerts")

    # the state filter is in the URL
    page.get_by_test_id("state-filter-inactive").click()
    expect(_rule(page, "NeverFiring")).to_have_count(0)
    assert "state=firing%2Cpending" in page.url or "state=firing,pending" in page.url
    expect(_rule(page, "AlwaysFiring")).to_be_visible()


def test_silence_an_alert_from_its_button_then_expire_it(alert_node, page):
    page.goto(f"{alert_node.http}/ui/alerts")
    _rule(page, "AlwaysFiring").get_by_test_id("silence-alert").click()
    page.wait_for_url("**/ui/alerts?tab=silences&new=1&matchers=*")
    rows = page.get_by_test_id("matcher-row")
    expect(rows).to_have_count(2)
    prefilled = {(rows.nth(i).get_by_test_id("matcher-name").input_value(),
                  rows.nth(i).get_by_test_id("matcher-op").input_value(),
                  rows.nth(i).get_by_test_id("matcher-value").input_value()) for i in range(2)}
    assert prefilled == {("alertname", "=", "AlwaysFiring"), ("severity", "=", "page")}
    expect(page.get_by_test_id("affected-alerts")).to_contain_text("Silences 1 alert now")
    page.get_by_test_id("silence-duration").fill("1h")
    expect(page.get_by_test_id("silence-window")).to_contain_text("(1h0m)")
    page.get_by_test_id("silence-created-by").fill("oncall@example.com")
    page.get_by_test_id("silence-comment").fill("deploying the fix")
    shot(page, "silence-new")
    page.get_by_test_id("silence-submit").click()

    expect(page.get_by_test_id("silence-created")).to_be_visible()
    active = page.get_by_test_id("silences-active").get_by_test_id("silence")
    expect(active).to_have_count(1)
    silence_id = active.get_attribute("data-silence-id")
    expect(active).to_contain_text("deploying the fix")
    expect(active).to_contain_text("oncall@example.com")
    chips = active.get_by_test_id("silence-matchers").locator(".chip")
    assert sorted(chips.all_inner_texts()) == ['alertname="AlwaysFiring"', 'severity="page"']
    shot(page, "silences")

    # the Alertmanager API applies it
    r = httpx.get(f"{alert_node.http}/api/v2/silence/{silence_id}", timeout=10).json()
    assert r["status"]["state"] == "active" and r["comment"] == "deploying the fix"
    assert 3590 <= _seconds(r["endsAt"]) - _seconds(r["startsAt"]) <= 3610
    alert = next(a for a in _am_alerts(alert_node) if a["labels"]["alertname"] == "AlwaysFiring")
    assert alert["status"]["state"] == "suppressed" and alert["status"]["silencedBy"] == [silence_id]

    # ... and the alerts tab says so
    page.get_by_test_id("tab-alerts").click()
    expect(_rule(page, "AlwaysFiring").get_by_test_id("silenced-badge")).to_be_visible()

    page.get_by_test_id("tab-silences").click()
    page.get_by_test_id("silences-active").get_by_test_id("expire-silence").click()
    expired = page.locator(f'[data-testid="silences-expired"] [data-silence-id="{silence_id}"]')
    expect(expired).to_have_attribute("data-state", "expired")
    expect(page.get_by_test_id("silences-active")).to_contain_text("No active silences.")
    alert = next(a for a in _am_alerts(alert_node) if a["labels"]["alertname"] == "AlwaysFiring")
    assert alert["status"]["state"] == "active" and alert["status"]["silencedBy"] == []


def test_bad_matcher_regex_shows_the_servers_words(alert_node, page):
    page.goto(f"{alert_node.http}/ui/alerts?tab=silences&new=1")
    row = page.get_by_test_id("matcher-row")
    row.get_by_test_id("matcher-name").fill("alertname")
    row.get_by_test_id("matcher-op").select_option("=~")
    row.get_by_test_id("matcher-value").fill("(")
    page.get_by_test_id("silence-created-by").fill("me")
    page.get_by_test_id("silence-submit").click()
    error = page.get_by_test_id("silence-error")
    expect(error).to_contain_text("Failed to parse silence: invalid regular expression '('")
    assert not error.inner_text().startswith('"')
    # nothing was created
    silences = httpx.get(f"{alert_node.http}/api/v2/silences", timeout=10).json()
    assert all(s["status"]["state"] == "expired" for s in silences)

    # and a duration the form cannot read is named before anything is sent
    row.get_by_test_id("matcher-value").fill("AlwaysFiring")
    page.get_by_test_id("silence-duration").fill("two hours")
    page.get_by_test_id("silence-submit").click()
    expect(error).to_have_text('cannot read the duration "two hours": use e.g. 30m, 2h or 1d')


def _seconds(rfc3339: str) -> float:
    from lookout.alerting.notify.api_v2 import parse_time

    return parse_time(rfc3339)
