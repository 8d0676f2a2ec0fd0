"""Receivers against local servers: webhook, Slack, PagerDuty (HTTP) and email (SMTP)."""

from __future__ import annotations

import asyncio
import email
import hashlib
import json
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lookout.alerting.amconfig import parse_config
from lookout.alerting.model import Alert
from lookout.alerting.notify import Notifier
from tests.alerting.test_dispatcher import FakeClock


class Sink:
    """A tiny HTTP server recording JSON bodies; ``fail_first`` requests get a 500."""

    def __init__(self, fail_first: int = 0, status: int = 200) -> None:
        self.bodies: list[tuple[str, dict]] = []
        self.fail_first = fail_first
        self.status = status
        sink = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"null")
                sink.bodies.append((self.path, body))
                code = 500 if len(sink.bodies) <= sink.fail_first else sink.status
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"boom")

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


def notifier(tmp_path, receivers_yaml: str, clock: FakeClock, **route: str) -> Notifier:  # type: ignore[no-untyped-def]
    extra = "".join(f"\n  {k}: {v}" for k, v in route.items())
    cfg = parse_config(textwrap.dedent("""
        route:
          receiver: r
          group_by: [alertname]
          group_wait: 0s
          group_interval: 1s""") + extra + "\nreceivers:\n" + textwrap.indent(textwrap.dedent(receivers_yaml), "  "))
    return Notifier(cfg, tmp_path / "am.db", external_url="http://lookout.example:3000", clock=clock,
                    backoff_initial=0.02, backoff_max=0.1)


def two_alerts(clock: FakeClock) -> list[Alert]:
    return [Alert(labels={"alertname": "HighLatency", "service": s, "env": "prod"},
                  annotations={"summary": f"{s} is slow", "runbook": "r"}, starts_at=clock() - 5,
                  ends_at=clock() + 3600, generator_url=f"http://lookout/graph?{s}") for s in ("api", "web")]


def test_webhook_payload_and_resolve(tmp_path, sink: Sink) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        clock = FakeClock()
        n = notifier(tmp_path, f"""
            - name: r
              webhook_configs: [{{url: '{sink.url}/hook', max_alerts: 1}}]
        """, clock)
        alerts = two_alerts(clock)
        n.put(alerts)
        await n.flush_due()
        path, body = sink.bodies[0]
        assert path == "/hook"
        assert body["version"] == "4" and body["receiver"] == "r" and body["status"] == "firing"
        assert body["groupKey"] == '{}:{alertname="HighLatency"}'
        assert body["groupLabels"] == {"alertname": "HighLatency"}
        assert body["commonLabels"] == {"alertname": "HighLatency", "env": "prod"}
        assert body["commonAnnotations"] == {"runbook": "r"}
        assert body["externalURL"] == "http://lookout.example:3000"
        assert body["truncatedAlerts"] == 1 and len(body["alerts"]) == 1
        a = body["alerts"][0]
        assert set(a) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
        assert a["status"] == "firing" and a["endsAt"] == "0001-01-01T00:00:00Z"
        assert a["startsAt"] == "2023-11-14T22:13:15.000Z" and a["fingerprint"] == alerts[0].fingerprint
        # Resolve both: one resolved notification (webhook send_resolved defaults to true).
        clock.t += 10
        for x in alerts:
            x.ends_at = clock()
        n.put(alerts)
        clock.t += 1
        await n.flush_due()
        body = sink.bodies[-1][1]
        assert body["status"] == "resolved" and body["alerts"][0]["endsAt"] == "2023-11-14T22:13:30.000Z"
        assert n.stats()["receivers"]["r"]["sent"] == 2
        await n.stop()

    asyncio.run(main())


def test_failing_receiver_is_retried_with_backoff() -> None:
    sink = Sink(fail_first=2)

    async def main(tmp_path) -> None:  # type: ignore[no-untyped-def]
        clock = FakeClock()
        n = notifier(tmp_path, f"""
            - name: r
              webhook_configs: [{{url: '{sink.url}/hook?token=SEKRIT'}}]
        """, clock)
        n.put(two_alerts(clock))
        await n.flush_due()
        assert len(sink.bodies) == 3  # two 500s, then success
        st = n.stats()["receivers"]["r"]
        assert st["sent"] == 1 and st["failed"] == 0
        assert st["integrations"]["webhook[0]"]["attempts"] == 3
        await n.stop()

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(main(Path(d)))
    sink.close()


def test_down_receiver_is_reported_not_fatal(tmp_path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    sink = Sink(fail_first=10_000)

    async def main() -> None:
        clock = FakeClock()
        n = notifier(tmp_path, f"""
            - name: r
              webhook_configs: [{{url: '{sink.url}/hook?token=SEKRIT'}}]
            - name: gone
              webhook_configs: [{{url: 'http://127.0.0.1:1/nothing-listens?token=SEKRIT'}}]
        """, clock)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        n.put(two_alerts(clock))
        await n.flush_due()
        elapsed = loop.time() - t0
        # Gave up within the group_interval (1s) after several backed-off attempts.
        assert 0.1 < elapsed < 3
        assert 3 <= len(sink.bodies) <= 12
        st = n.stats()["receivers"]["r"]
        assert st["sent"] == 0 and st["failed"] == 1 and "500" in st["last_error"]
        # The notification was not logged as sent: the next tick tries again.
        clock.t += 1
        await n.flush_due()
        assert n.stats()["receivers"]["r"]["failed"] == 2
        await n.stop()

    asyncio.run(main())
    sink.close()
    assert "SEKRIT" not in caplog.text


def test_unreachable_receiver_reports_error(tmp_path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        clock = FakeClock()
        n = notifier(tmp_path, """
            - name: r
              webhook_configs: [{url: 'http://127.0.0.1:1/x?token=SEKRIT'}]
        """, clock)
        n.put(two_alerts(clock))
        await n.flush_due()
        st = n.stats()["receivers"]["r"]
        assert st["failed"] == 1 and st["last_error"] and "SEKRIT" not in st["last_error"]
        await n.stop()

    asyncio.run(main())
    assert "SEKRIT" not in caplog.text


def test_slack(tmp_path, sink: Sink) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        clock = FakeClock()
        n = notifier(tmp_path, f"""
            - name: r
              slack_configs:
                - api_url: '{sink.url}/services/T/B/X'
                  channel: '#ops'
                  text: '{{{{ range .Alerts }}}}* {{{{ .Annotations.summary }}}}{{{{ end }}}}'
        """, clock)
        n.put(two_alerts(clock))
        await n.flush_due()
        path, body = sink.bodies[0]
        assert path == "/services/T/B/X" and body["channel"] == "#ops"
        att = body["attachments"][0]
        assert att["title"] == "[FIRING:2] HighLatency (prod)"
        assert att["text"] == "* api is slow* web is slow"
        assert att["color"] == "danger" and att["title_link"].startswith("http://lookout.example:3000/#/alerts")
        await n.stop()

    asyncio.run(main())


def test_pagerduty_trigger_and_resolve(tmp_path, sink: Sink) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        clock = FakeClock()
        n = notifier(tmp_path, f"""
            - name: r
              pagerduty_configs: [{{routing_key: RK123, url: '{sink.url}/v2/enqueue', severity: critical}}]
        """, clock)
        alerts = two_alerts(clock)
        n.put(alerts)
        await n.flush_due()
        _, ev = sink.bodies[0]
        dedup = hashlib.sha256(b'{}:{alertname="HighLatency"}').hexdigest()
        assert ev["routing_key"] == "RK123" and ev["event_action"] == "trigger" and ev["dedup_key"] == dedup
        assert ev["payload"]["severity"] == "critical" and ev["payload"]["summary"].startswith("[FIRING:2]")
        assert ev["payload"]["source"] and ev["client_url"] == "http://lookout.example:3000"
        for a in alerts:
            a.ends_at = clock()
        n.put(alerts)
        clock.t += 1
        await n.flush_due()
        _, ev = sink.bodies[1]
        assert ev["event_action"] == "resolve" and ev["dedup_key"] == dedup
        await n.stop()

    asyncio.run(main())


class SMTPSink:
    """A minimal SMTP server (EHLO/HELO, MAIL, RCPT, DATA, QUIT) on asyncio, recording messages."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        def say(s: str) -> None:
            w.write(s.encode() + b"\r\n")

        say("220 sink ESMTP")
        frm, rcpt = "", []
        while line := await r.readline():
            cmd = line.decode().strip()
            up = cmd.upper()
            if up.startswith("EHLO"):
                say("250-sink")
                say("250 8BITMIME")
            elif up.startswith("HELO"):
                say("250 sink")
            elif up.startswith("MAIL FROM:"):
                frm, rcpt = cmd[10:].strip("<> "), []
                say("250 ok")
            elif up.startswith("RCPT TO:"):
                rcpt.append(cmd[8:].strip("<> "))
                say("250 ok")
            elif up == "DATA":
                say("354 go ahead")
                data = b""
                while (ln := await r.readline()) != b".\r\n":
                    data += ln[1:] if ln.startswith(b"..") else ln
                self.messages.append((frm, rcpt, data))
                say("250 queued")
            elif up == "QUIT":
                say("221 bye")
                await w.drain()
                break
            else:
                say("250 ok")
            await w.drain()
        w.close()


def test_email(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        smtp = SMTPSink()
        server = await asyncio.start_server(smtp.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        clock = FakeClock()
        n = notifier(tmp_path, f"""
            - name: r
              email_configs:
                - to: 'ops@example.org, dev@example.org'
                  from: 'Lookout <am@example.org>'
                  smarthost: '127.0.0.1:{port}'
                  require_tls: false
                  headers: {{X-Team: '{{{{ .CommonLabels.env }}}}'}}
            - name: tls
              email_configs:
                - {{to: a@b.c, from: a@b.c, smarthost: '127.0.0.1:{port}'}}
        """, clock)
        n.put(two_alerts(clock))
        await n.flush_due()
        assert len(smtp.messages) == 1
        frm, rcpt, data = smtp.messages[0]
        assert frm == "am@example.org" and rcpt == ["ops@example.org", "dev@example.org"]
        msg = email.message_from_bytes(data)
        assert msg["Subject"] == "[FIRING:2] HighLatency (prod)" and msg["X-Team"] == "prod"
        assert "api is slow" in msg.get_payload(decode=True).decode()
        # require_tls (the default) against a server without STARTTLS fails, and is reported.
        n.reload(parse_config(n.cfg.original.replace("<secret>", "x").replace("receiver: r", "receiver: tls")))
        clock.t += 1
        await n.flush_due()
        st = n.stats()["receivers"]["tls"]
        assert st["failed"] == 1 and "STARTTLS" in st["last_error"]
        await n.stop()
        server.close()

    asyncio.run(main())
