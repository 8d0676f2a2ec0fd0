"""Alerting end to end on the real server: a rule over metrics sent by the OTel SDK goes pending,
fires, is delivered to a local webhook once per group with the right grouping, is silenced
through the API (and seen by the real ``amtool``), resolves with a resolved notification, and
keeps its state across a restart; and, configured so, alerts go to a real Alertmanager."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import wait_for


class Hook:
    """A webhook receiver on 127.0.0.1:0 that keeps every payload."""

    def __init__(self) -> None:
        self.payloads: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.payloads.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()


class Gauge:
    """queue_depth per queue, exported by the real OTel SDK every 300 ms."""

    def __init__(self, endpoint: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.metrics import Observation
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource

        self.values = {"orders": 0.0, "payments": 0.0}
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint), export_interval_millis=300)
        self.provider = MeterProvider(resource=Resource.create({"service.name": "shop"}), metric_readers=[reader])
        self.provider.get_meter("test").create_observable_gauge(
            "queue_depth", callbacks=[lambda _: [Observation(v, {"queue": q}) for q, v in self.values.items()]])

    def close(self) -> None:
        self.provider.shutdown()


RULES = """
groups:
  - name: queues
    interval: 1s
    rules:
      - alert: QueueBacklog
        expr: queue_depth > 10
        for: 3s
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.queue }} queue holds {{ $value }} items"
      - record: queue:depth:sum
        expr: sum(queue_depth)
"""


def am_config(hook_url: str) -> str:
    return yaml.safe_dump({
        "route": {"receiver": "hook", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "2s",
                  "repeat_interval": "1h"},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": hook_url, "send_resolved": True}]}],
    })


def alerts(node) -> list[dict]:
    r = httpx.get(f"{node.http}/api/v1/alerts", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"]["alerts"]


def amtool(node, *args: str) -> str:
    out = subprocess.run(["amtool", f"--alertmanager.url={node.http}", *args], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(shutil.which("amtool") is None, reason="make test installs prometheus-alertmanager (amtool)")
def test_rule_fires_notifies_is_silenced_resolves_and_survives_restart(lookout_factory, tmp_path):
    hook = Hook()
    (tmp_path / "rules.yml").write_text(RULES)
    (tmp_path / "am.yml").write_text(am_config(hook.url))
    cfg = {"selfmon": {"interval": 0}, "alerting": {
        "rule_files": [str(tmp_path / "rules.yml")],
        "alertmanager_config": str(tmp_path / "am.yml"), "evaluation_interval": "1s"}}
    node = lookout_factory(cfg, data_dir=tmp_path / "node")
    gauge = Gauge(f"{node.otlp_http}/v1/metrics")
    try:
        gauge.values.update(orders=15.0, payments=12.0)
        pending = wait_for(lambda: [a for a in alerts(node) if a["state"] == "pending"], timeout=30)
        assert {a["labels"]["queue"] for a in pending} <= {"orders", "payments"}
        firing = wait_for(lambda: (lambda f: f if len(f) == 2 else None)(
            [a for a in alerts(node) if a["state"] == "firing"]), timeout=30)
        assert firing[0]["annotations"]["summary"].endswith("items")
        active_at = {a["labels"]["queue"]: a["activeAt"] for a in firing}

        # one notification for the group, holding both alerts (group_by alertname)
        wait_for(lambda: any(len(p["alerts"]) == 2 for p in hook.payloads), timeout=30)
        time.sleep(5)  # two more group intervals: nothing changed, nothing is re-sent (repeat 1h)
        firing_payloads = [p for p in hook.payloads if p["status"] == "firing"]
        assert len(firing_payloads) <= 2, f"re-sent within repeat_interval: {len(firing_payloads)}"
        last = firing_payloads[-1]
        assert last["groupLabels"] == {"alertname": "QueueBacklog"} and last["receiver"] == "hook"
        assert {a["labels"]["queue"] for a in last["alerts"]} == {"orders", "payments"}

        # recording rule and ALERTS series are queryable
        def q(expr: str) -> list:
            return httpx.get(f"{node.http}/api/v1/query", params={"query": expr}, timeout=10).json()["data"]["result"]

        wait_for(lambda: q('ALERTS{alertname="QueueBacklog", alertstate="firing"}'), timeout=30)
        wait_for(lambda: q("queue:depth:sum == 27"), timeout=30)

        # amtool sees the alerts; silence payments through the API; amtool lists the silence
        assert "QueueBacklog" in amtool(node, "alert", "query")
        r = httpx.post(f"{node.http}/api/v2/silences", timeout=10, json={
            "matchers": [{"name": "queue", "value": "payments", "isRegex": False, "isEqual": True}],
            "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "test", "comment": "payments is being drained"})
        assert r.status_code == 200, r.text
        silence_id = r.json()["silenceID"]
        assert silence_id in amtool(node, "silence", "query", "-q")
        silenced = httpx.get(f"{node.http}/api/v2/alerts", params={"silenced": "true", "active": "false"},
                             timeout=10).json()
        assert [a["labels"]["queue"] for a in silenced] == ["payments"]

        # restart: the firing state and its activeAt survive (the `for` clock does not start over)
        assert node.terminate() == 0
        node = lookout_factory(cfg, data_dir=tmp_path / "node")
        gauge.close()
        gauge = Gauge(f"{node.otlp_http}/v1/metrics")
        gauge.values.update(orders=15.0, payments=12.0)
        after = wait_for(lambda: [a for a in alerts(node) if a["labels"]["queue"] == "orders"], timeout=30)
        assert after[0]["activeAt"] == active_at["orders"]
        assert after[0]["state"] == "firing", "a restored alert must not go back to pending"

        # resolve: the orders queue drains; a resolved notification follows
        hook.payloads.clear()
        gauge.values.update(orders=0.0)
        wait_for(lambda: any(p["status"] == "resolved" or any(a["status"] == "resolved" for a in p["alerts"])
                             for p in hook.payloads), timeout=60)
        resolved = [a for p in hook.payloads for a in p["alerts"] if a["status"] == "resolved"]
        assert {a["labels"]["queue"] for a in resolved} == {"orders"}
    finally:
        gauge.close()
        hook.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None,
                    reason="make test installs prometheus-alertmanager")
def test_alerts_go_to_a_real_alertmanager(lookout_factory, tmp_path):
    port = free_port()
    (tmp_path / "am.yml").write_text("route: {receiver: x}\nreceivers: [{name: x}]\n")
    am = subprocess.Popen(["prometheus-alertmanager", f"--config.file={tmp_path / 'am.yml'}",
                           f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
                           "--cluster.listen-address="], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ok(f"{url}/-/ready"), timeout=30)
        rules = tmp_path / "always.yml"
        rules.write_text("groups: [{name: g, interval: 1s, rules: [{alert: AlwaysOn, expr: vector(1), "
                         "labels: {team: core}}]}]\n")
        node = lookout_factory({"selfmon": {"interval": 0}, "alerting": {
            "rule_files": [str(rules)], "alertmanagers": [url], "evaluation_interval": "1s",
            "builtin_rules": False}}, data_dir=tmp_path / "node")
        got = wait_for(lambda: [a for a in httpx.get(f"{url}/api/v2/alerts", timeout=10).json()
                                if a["labels"].get("alertname") == "AlwaysOn"], timeout=30)
        assert got[0]["labels"]["team"] == "core"
        assert node.http  # the node is still up
    finally:
        am.terminate()
        am.wait(10)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_check_config_names_rule_file_errors(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n")
    cfg = tmp_path / "lookout.yaml"
    cfg.write_text(yaml.safe_dump({"alerting": {"rule_files": [str(bad)]}}))
    out = subprocess.run([sys.executable, "-m", "lookout.cli", "check-config", str(cfg)], capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 1
    assert f"{bad}:5:15" in out.stderr or f"{bad}:5" in out.stderr, out.stderr
    assert 'group "g"' in out.stderr and 'alert "A"' in out.stderr


def test_logql_rule_ruler_api_reload_and_builtin_rules(lookout_factory, tmp_path):
    rules = tmp_path / "logs.yml"
    rules.write_text("""
groups:
  - name: api-logs
    interval: 1s
    rules:
      - alert: ApiErrors
        expr: sum by (service_name) (count_over_time({service_name="api"} |= "error" [1m])) > 2
        annotations: {summary: "{{ $value }} errors in a minute"}
""")
    node = lookout_factory({"selfmon": {"interval": "1s"}, "alerting": {"rule_files": [str(rules)],
                                                                       "evaluation_interval": "1s"}},
                           data_dir=tmp_path / "node")
    now = time.time_ns()
    lines = [[str(now - i * 10**9), f"GET /x failed with error {i}"] for i in range(4)]
    r = httpx.post(f"{node.http}/loki/api/v1/push", timeout=10, json={
        "streams": [{"stream": {"service_name": "api"}, "values": lines}]})
    assert r.status_code == 204, r.text
    firing = wait_for(lambda: [a for a in alerts(node) if a["labels"]["alertname"] == "ApiErrors"
                               and a["state"] == "firing"], timeout=30)
    assert firing[0]["labels"]["service_name"] == "api"
    assert firing[0]["annotations"]["summary"] == "4 errors in a minute"

    # a group posted through the Loki ruler API is evaluated too
    r = httpx.post(f"{node.http}/loki/api/v1/rules/team-a", timeout=10, headers={"Content-Type": "application/yaml"},
                   content="name: always\ninterval: 1s\nrules:\n  - alert: Always\n    expr: vector(1)\n")
    assert r.status_code == 202, r.text
    wait_for(lambda: [a for a in alerts(node) if a["labels"]["alertname"] == "Always"], timeout=30)

    # reload: a rule added to the file appears without a restart
    rules.write_text(rules.read_text() + "      - record: api:errors:count1m\n"
                     "        expr: sum(count_over_time({service_name=\"api\"} |= \"error\" [1m]))\n")
    assert httpx.post(f"{node.http}/-/reload", timeout=30).status_code == 200

    def rule_names(tenant: str | None = None) -> set[str]:
        headers = {"X-Scope-OrgID": tenant} if tenant else {}
        data = httpx.get(f"{node.http}/api/v1/rules", headers=headers, timeout=10).json()["data"]
        return {r["name"] for g in data["groups"] for r in g["rules"]}

    assert {"ApiErrors", "Always", "api:errors:count1m"} <= rule_names()
    bad = rules.read_text() + "      - alert: Broken\n        expr: sum(\n"
    rules.write_text(bad)
    r = httpx.post(f"{node.http}/-/reload", timeout=30)
    assert r.status_code == 500 and "Broken" in r.text, r.text
    assert "api:errors:count1m" in rule_names(), "a failed reload must keep the rules that were running"

    # Lookout's own rules are loaded in the self-monitoring tenant
    assert {"LookoutIngestionStalled", "LookoutRefusalsRising", "LookoutWriteAheadLogLagGrowing",
            "LookoutDiskNearlyFull", "LookoutCompactionFailing", "LookoutRuleFailing"} <= rule_names("lookout")
