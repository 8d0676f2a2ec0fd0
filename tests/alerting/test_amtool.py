"""The v2 API against the real ``amtool``, and ExternalAlertmanager against a real Alertmanager.

Both binaries come from Debian's ``prometheus-alertmanager`` package; the tests skip (with the
reason) only when it is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from lookout.alerting.amconfig import parse_config
from lookout.alerting.model import Alert
from lookout.alerting.notify import ExternalAlertmanager, Notifier

AMTOOL = shutil.which("amtool")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
need_amtool = pytest.mark.skipif(AMTOOL is None, reason="amtool missing: apt-get install prometheus-alertmanager")

CONFIG = textwrap.dedent("""
    route:
      receiver: team
      group_by: [alertname]
      routes:
        - matchers: [severity=page]
          receiver: pager
    inhibit_rules:
      - source_matchers: [severity=page]
        target_matchers: [severity=warn]
        equal: [service]
    receivers:
      - name: team
        webhook_configs: [{url: 'http://127.0.0.1:9/hook?token=TOPSECRET'}]
      - name: pager
""")


class Server:
    """A Notifier's v2 API served by uvicorn on 127.0.0.1:0 in a background thread."""

    def __init__(self, db: Path) -> None:
        self.notifier = Notifier(parse_config(CONFIG), db, external_url="http://lookout:3000")

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
            await self.notifier.start()
            yield
            await self.notifier.stop()

        app = Starlette(routes=self.notifier.routes(), lifespan=lifespan)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "am.db")
    yield s
    s.stop()


def amtool(server: Server, *args: str) -> str:
    assert AMTOOL is not None
    p = subprocess.run([AMTOOL, f"--alertmanager.url={server.url}", *args], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def post_alerts(server: Server, alerts: list[dict]) -> None:
    r = httpx.post(f"{server.url}/api/v2/alerts", json=alerts)
    assert r.status_code == 200, r.text


def test_api_shapes(server: Server) -> None:
    post_alerts(server, [{"labels": {"alertname": "Disk", "severity": "page", "service": "db"},
                          "annotations": {"summary": "disk full"}, "generatorURL": "http://x/graph"},
                         {"labels": {"alertname": "Slow", "severity": "warn", "service": "db"}}])
    st = httpx.get(f"{server.url}/api/v2/status").json()
    assert st["cluster"]["status"] == "disabled" and "TOPSECRET" not in st["config"]["original"]
    assert set(st) == {"cluster", "versionInfo", "config", "uptime"}
    assert httpx.get(f"{server.url}/api/v2/receivers").json() == [{"name": "team"}, {"name": "pager"}]
    alerts = httpx.get(f"{server.url}/api/v2/alerts").json()
    by = {a["labels"]["alertname"]: a for a in alerts}
    assert set(by["Disk"]) == {"annotations", "endsAt", "fingerprint", "receivers", "startsAt", "status",
                               "updatedAt", "generatorURL", "labels"}
    assert by["Disk"]["receivers"] == [{"name": "pager"}] and by["Disk"]["status"]["state"] == "active"
    assert by["Slow"]["status"] == {"state": "suppressed", "silencedBy": [],
                                    "inhibitedBy": [by["Disk"]["fingerprint"]]}
    q = httpx.get(f"{server.url}/api/v2/alerts", params={"inhibited": "false"}).json()
    assert [a["labels"]["alertname"] for a in q] == ["Disk"]
    q = httpx.get(f"{server.url}/api/v2/alerts", params=[("filter", 'alertname=~"S.*"')]).json()
    assert [a["labels"]["alertname"] for a in q] == ["Slow"]
    q = httpx.get(f"{server.url}/api/v2/alerts", params={"receiver": "pag"}).json()
    assert q == []
    groups = httpx.get(f"{server.url}/api/v2/alerts/groups").json()
    assert sorted((g["receiver"]["name"], g["labels"]["alertname"]) for g in groups) == [
        ("pager", "Disk"), ("team", "Slow")]
    r = httpx.get(f"{server.url}/api/v2/alerts", params={"filter": "a=~("})
    assert r.status_code == 400
    r = httpx.post(f"{server.url}/api/v2/alerts", json=[{"labels": {}}])
    assert r.status_code == 400
    r = httpx.post(f"{server.url}/api/v2/silences", json={"matchers": [{"name": "a", "value": "b", "isRegex": False}],
                                                          "startsAt": "2020-01-01T00:00:00Z",
                                                          "endsAt": "2020-01-02T00:00:00Z"})
    assert r.status_code == 400 and "past" in r.json()
    assert httpx.get(f"{server.url}/api/v2/silence/nope").status_code == 404
    assert httpx.delete(f"{server.url}/api/v2/silence/nope").status_code == 404


@need_amtool
def test_amtool_alerts_and_silences(server: Server) -> None:
    post_alerts(server, [{"labels": {"alertname": "X", "severity": "warn", "service": "web"},
                          "annotations": {"summary": "x happened"}},
                         {"labels": {"alertname": "Y", "service": "web"}}])
    out = amtool(server, "alert", "query", "-o", "json")
    names = sorted(a["labels"]["alertname"] for a in json.loads(out))
    assert names == ["X", "Y"]
    out = amtool(server, "alert", "query")
    lines = out.strip().splitlines()
    assert lines[0].split()[0] == "Alertname" and any(ln.startswith("X ") and "x happened" in ln for ln in lines)
    out = amtool(server, "config", "routes", "test", "severity=page")
    assert out.strip() == "pager"
    out = amtool(server, "alert", "query", "alertname=Y")
    assert [ln.split()[0] for ln in out.strip().splitlines()[1:]] == ["Y"]

    sid = amtool(server, "silence", "add", "alertname=X", "--comment=deploy", "--author=alice",
                 "--duration=1h").strip()
    assert len(sid) == 36  # a UUID
    out = amtool(server, "silence", "query")
    rows = out.strip().splitlines()
    assert rows[0].split()[:2] == ["ID", "Matchers"]
    assert rows[1].startswith(sid) and 'alertname="X"' in rows[1] and "alice" in rows[1] and "deploy" in rows[1]
    assert amtool(server, "silence", "query", "-q").split() == [sid]
    js = json.loads(amtool(server, "silence", "query", "-o", "json"))
    assert js[0]["status"]["state"] == "active" and js[0]["createdBy"] == "alice"
    # The silenced alert is suppressed and hidden from `alert query` (which asks silenced=false).
    out = amtool(server, "alert", "query", "-o", "json")
    assert sorted(a["labels"]["alertname"] for a in json.loads(out)) == ["Y"]
    out = amtool(server, "alert", "query", "--silenced", "-o", "json")
    x = [a for a in json.loads(out) if a["labels"]["alertname"] == "X"]
    assert x and x[0]["status"]["silencedBy"] == [sid]

    amtool(server, "silence", "expire", sid)
    assert amtool(server, "silence", "query", "-q").split() == []
    out = amtool(server, "silence", "query", "--expired", "-o", "json")
    assert json.loads(out)[0]["status"]["state"] == "expired"
    assert sorted(a["labels"]["alertname"] for a in json.loads(amtool(server, "alert", "query", "-o", "json"))) == [
        "X", "Y"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(ALERTMANAGER is None, reason="prometheus-alertmanager not installed")
def test_external_alertmanager(tmp_path: Path) -> None:
    cfg = tmp_path / "am.yml"
    cfg.write_text("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
    port = _free_port()
    assert ALERTMANAGER is not None
    proc = subprocess.Popen([ALERTMANAGER, f"--config.file={cfg}", f"--storage.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None:
                pytest.fail(f"alertmanager exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.1)

        async def main() -> None:
            ext = ExternalAlertmanager([url])
            await ext.start()
            now = time.time()
            ext.put([Alert(labels={"alertname": "FromLookout", "severity": "warn"},
                           annotations={"summary": "hello"}, starts_at=now - 60, ends_at=now + 600,
                           generator_url="http://lookout/graph")])
            for _ in range(50):
                if ext.stats()["alertmanagers"][url]["sent"]:
                    break
                await asyncio.sleep(0.05)
            await ext.stop()
            assert ext.stats()["alertmanagers"][url] == {"sent": 1, "failed": 0, "last_error": ""}

        asyncio.run(main())
        got = httpx.get(f"{url}/api/v2/alerts").json()
        assert [(a["labels"]["alertname"], a["annotations"]["summary"], a["generatorURL"]) for a in got] == [
            ("FromLookout", "hello", "http://lookout/graph")]
        assert got[0]["status"]["state"] == "active"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
