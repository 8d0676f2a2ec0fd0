"""Parsing alertmanager.yml: defaults, inheritance inputs, validation paths, secrets."""

from __future__ import annotations

import datetime as dt
import logging
import textwrap

import pytest

from lookout.alerting.amconfig import ConfigError, parse_config, parse_duration
from lookout.alerting.notify.timeintervals import in_any

FULL = textwrap.dedent("""
    global:
      resolve_timeout: 2m
      smtp_from: am@example.org
      smtp_smarthost: mail.example.org:587
      smtp_auth_username: am
      smtp_auth_password: hunter2-smtp
      slack_api_url: https://hooks.slack.com/services/T000/B000/SLACKTOKEN
    route:
      receiver: default
      group_by: [alertname, cluster]
      routes:
        - matchers: ['severity="critical"', 'team=~"db|infra"']
          receiver: pager
          continue: true
          group_wait: 10s
        - match: {team: frontend}
          match_re: {env: "prod|staging"}
          receiver: slack
          group_by: ['...']
          mute_time_intervals: [nights]
          routes:
            - matchers: [svc=checkout]
              repeat_interval: 1h
    inhibit_rules:
      - source_matchers: [severity=critical]
        target_matchers: [severity=warning]
        equal: [alertname, cluster]
      - source_match: {alertname: NodeDown}
        target_match_re: {alertname: ".+"}
    time_intervals:
      - name: nights
        time_intervals:
          - times: [{start_time: "22:00", end_time: "24:00"}, {start_time: "00:00", end_time: "06:00"}]
            location: Europe/Berlin
    mute_time_intervals:
      - name: weekends
        time_intervals:
          - weekdays: [saturday, sunday]
    receivers:
      - name: default
        webhook_configs:
          - url: http://hook.example.org/alert?token=WEBHOOKTOKEN
            max_alerts: 5
      - name: pager
        pagerduty_configs:
          - routing_key: PDROUTINGKEY
            severity: critical
      - name: slack
        slack_configs:
          - channel: '#alerts'
            title: '{{ .CommonLabels.alertname }}'
        email_configs:
          - to: team@example.org
            require_tls: false
            headers: {subject: custom}
""")


def test_full_config() -> None:
    cfg = parse_config(FULL)
    g = cfg.global_
    assert g.resolve_timeout == 120 and g.smtp_require_tls is True
    r = cfg.route
    assert r.receiver == "default" and r.group_by == ["alertname", "cluster"]
    assert r.group_wait is None  # defaults are applied when the tree is built
    c0, c1 = r.routes
    assert [str(m) for m in c0.matchers] == ['severity="critical"', 'team=~"db|infra"']
    assert c0.continue_ and c0.group_wait == 10
    assert [str(m) for m in c1.matchers] == ['team="frontend"', 'env=~"prod|staging"']
    assert c1.group_by_all and c1.group_by == []
    assert c1.mute_time_intervals == ["nights"]
    assert c1.routes[0].repeat_interval == 3600
    assert len(cfg.inhibit_rules) == 2 and cfg.inhibit_rules[0].equal == ["alertname", "cluster"]
    assert set(cfg.time_intervals) == {"nights", "weekends"}
    wh = cfg.receivers["default"].webhook_configs[0]
    assert wh.send_resolved is True and wh.max_alerts == 5 and wh.url.value.endswith("WEBHOOKTOKEN")
    pd = cfg.receivers["pager"].pagerduty_configs[0]
    assert pd.url == "https://events.pagerduty.com/v2/enqueue" and pd.send_resolved and pd.severity == "critical"
    sl = cfg.receivers["slack"].slack_configs[0]
    assert sl.send_resolved is False and sl.api_url.value.endswith("SLACKTOKEN")
    em = cfg.receivers["slack"].email_configs[0]
    assert em.from_ == "am@example.org" and em.smarthost == "mail.example.org:587" and not em.require_tls
    assert em.auth_username == "am" and em.auth_password is not None and em.headers == {"Subject": "custom"}
    # Secrets never print and are redacted in the served config.
    for secret in ("hunter2-smtp", "SLACKTOKEN", "WEBHOOKTOKEN", "PDROUTINGKEY"):
        assert secret not in repr(cfg) and secret not in cfg.original
    assert "<secret>" in cfg.original


@pytest.mark.parametrize(
    "patch, path",
    [
        ({"route": {"receiver": "default", "routes": [{"receiver": "default"}, {"matchers": ['a=~"("']}]}},
         "route.routes[1].matchers[0]:"),
        ({"route": {"receiver": "nope"}}, "route.receiver: undefined receiver"),
        ({"route": {"receiver": "default", "group_wait": "5x"}}, "route.group_wait:"),
        ({"route": {"receiver": "default", "group_by": ["...", "a"]}}, "route.group_by[0]"),
        ({"route": {"receiver": "default", "routes": [{"mute_time_intervals": ["nope"]}]}},
         "route.routes[0].mute_time_intervals[0]"),
        ({"route": {"receiver": "default", "matchers": ["a=b"]}}, "route.matchers:"),
        ({"route": {}}, "route.receiver:"),
        ({"route": {"receiver": "default", "frobnicate": 1}}, "route.frobnicate"),
        ({"receivers": [{"name": "default"}, {"name": "default"}]}, "receivers[1].name"),
        ({"receivers": [{"name": "default", "opsgenie_configs": [{}]}]}, "receivers[0].opsgenie_configs"),
        ({"receivers": [{"name": "default", "webhook_configs": [{"url": "ftp://x/SECRETPATH"}]}]},
         "receivers[0].webhook_configs[0].url"),
        ({"receivers": [{"name": "default", "slack_configs": [{"channel": "#x"}]}]},
         "receivers[0].slack_configs[0].api_url"),
        ({"receivers": [{"name": "default", "email_configs": [{"to": "a@b"}]}]}, "receivers[0].email_configs[0]"),
        ({"inhibit_rules": [{"source_matchers": ["a=b"], "target_matchers": ["{c="], "equal": ["x"]}]},
         "inhibit_rules[0].target_matchers[0]"),
        ({"time_intervals": [{"name": "t", "time_intervals": [{"times": [{"start_time": "25:00",
                                                                          "end_time": "26:00"}]}]}]},
         "time_intervals[0].time_intervals[0].times[0]"),
        ({"time_intervals": [{"name": "t", "time_intervals": [{"weekdays": ["funday"]}]}]},
         "time_intervals[0].time_intervals[0].weekdays[0]"),
    ],
)
def test_errors_name_the_path(patch: dict, path: str) -> None:
    import yaml

    base = {"route": {"receiver": "default"}, "receivers": [{"name": "default"}]}
    base.update(patch)
    with pytest.raises(ConfigError) as ei:
        parse_config(yaml.safe_dump(base))
    assert str(ei.value).startswith(path) or path in str(ei.value), str(ei.value)
    assert "SECRETPATH" not in str(ei.value)


def test_secret_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = parse_config(FULL)
    logging.getLogger("x").info("config %s %r", cfg.receivers["pager"].pagerduty_configs[0].routing_key, cfg)
    assert "PDROUTINGKEY" not in caplog.text


def test_durations() -> None:
    assert parse_duration("1h30m", "x") == 5400
    assert parse_duration("0", "x") == 0
    assert parse_duration("1d", "x") == 86400
    assert parse_duration("500ms", "x") == 0.5
    with pytest.raises(ConfigError):
        parse_duration("1.5h", "x")


def _ts(s: str, tz: str = "UTC") -> float:
    from zoneinfo import ZoneInfo

    return dt.datetime.fromisoformat(s).replace(tzinfo=ZoneInfo(tz)).timestamp()


def test_time_intervals() -> None:
    cfg = parse_config(textwrap.dedent("""
        route: {receiver: r}
        receivers: [{name: r}]
        time_intervals:
          - name: biz
            time_intervals:
              - weekdays: ['monday:friday']
                times: [{start_time: '09:00', end_time: '17:00'}]
          - name: month_end
            time_intervals:
              - days_of_month: ['-3:-1']
                months: ['january', '3:4']
                years: ['2024:2025']
          - name: berlin_night
            time_intervals:
              - times: [{start_time: '22:00', end_time: '24:00'}]
                location: Europe/Berlin
    """))
    biz, me, bn = (cfg.time_intervals[n] for n in ("biz", "month_end", "berlin_night"))
    assert in_any(biz, _ts("2024-05-15T09:00:00"))  # a Wednesday
    assert not in_any(biz, _ts("2024-05-15T17:00:00"))  # end is exclusive
    assert not in_any(biz, _ts("2024-05-18T10:00:00"))  # Saturday
    assert in_any(me, _ts("2024-01-29T00:00:00")) and in_any(me, _ts("2024-01-31T23:59:00"))
    assert not in_any(me, _ts("2024-01-28T12:00:00"))
    assert not in_any(me, _ts("2024-02-29T12:00:00"))  # February not listed
    assert in_any(me, _ts("2024-04-30T12:00:00")) and not in_any(me, _ts("2026-01-31T12:00:00"))
    assert in_any(bn, _ts("2024-05-15T23:30:00", "Europe/Berlin"))
    assert not in_any(bn, _ts("2024-05-15T23:30:00", "UTC"))  # 01:30 in Berlin
