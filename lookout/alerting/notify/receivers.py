"""Receivers: turn one group notification into webhook / Slack / email / PagerDuty requests.

Payloads are what Alertmanager sends, so existing consumers work unchanged: the webhook body is
Alertmanager's version "4" message; Slack gets an incoming-webhook message with one attachment;
PagerDuty gets an Events API v2 event whose ``dedup_key`` is the SHA-256 of the group key, so a
later ``resolve`` closes the incident the ``trigger`` opened; email goes through ``smtplib`` in a
worker thread (STARTTLS when ``require_tls``, implicit TLS on port 465).

Delivery retries with exponential backoff (1s doubling to 60s by default) until the deadline the
dispatcher gives (the group's next ``group_interval``), then gives up; 5xx, 429 and network
errors are retried, other 4xx are not (retrying a rejected request only repeats the rejection).
Every outcome lands in per-receiver counters read by :meth:`ReceiverSet.stats`: a receiver that
is down is reported there and in the log, never raised into the dispatcher. Error messages are
scrubbed of secret values (URLs with tokens, routing keys, passwords).

Templates: Alertmanager's Go templates are not run. ``title``/``text``/headers accept a small
subset — ``{{ .Status }}``, ``{{ .CommonLabels.x }}``, ``{{ .GroupLabels.x }}``,
``{{ .CommonAnnotations.x }}``, ``{{ .ExternalURL }}``, ``{{ .Receiver }}``, pipes ``toUpper``,
``toLower``, ``title``, ``len``, and ``{{ range .Alerts }}`` (also ``.Alerts.Firing`` /
``.Alerts.Resolved``) with ``.Labels.x``/``.Annotations.x``/``.Status`` inside — and anything
else (including ``{{ template "..." . }}``) falls back to Lookout's built-in text.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import hashlib
import json
import logging
import re
import smtplib
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx

from lookout.alerting.amconfig import (
    EmailConfig,
    PagerdutyConfig,
    Receiver,
    Secret,
    SlackConfig,
    WebhookConfig,
)
from lookout.alerting.model import Alert

log = logging.getLogger(__name__)

__all__ = ["DeliveryError", "Integration", "Notification", "ReceiverSet", "format_time", "alert_json"]


def format_time(ts: float) -> str:
    """RFC 3339 with milliseconds, UTC, as Alertmanager's API and webhooks print times; 0 → Go's zero time."""
    if not ts:
        return "0001-01-01T00:00:00Z"
    d = dt.datetime.fromtimestamp(ts, dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


@dataclass(slots=True)
class Notification:
    """One flush of one aggregation group for one receiver (Alertmanager's template ``Data``).

    ``alerts`` are copies: firing ones carry ``ends_at = 0`` exactly like Alertmanager's flush,
    so a notification never claims a firing alert has an end time."""

    receiver: str
    group_key: str
    group_labels: dict[str, str]
    alerts: list[Alert]
    external_url: str
    now: float
    truncated: int = 0

    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if not a.resolved(self.now)]

    def resolved_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.resolved(self.now)]

    @property
    def status(self) -> str:
        return "firing" if self.firing() else "resolved"

    def common_labels(self) -> dict[str, str]:
        return _common([a.labels for a in self.alerts])

    def common_annotations(self) -> dict[str, str]:
        return _common([a.annotations for a in self.alerts])


def _common(dicts: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    out = dict(dicts[0])
    for d in dicts[1:]:
        for k in list(out):
            if d.get(k) != out[k]:
                del out[k]
    return out


def alert_json(a: Alert, now: float) -> dict[str, Any]:
    """One alert in the webhook payload."""
    return {
        "status": "resolved" if a.resolved(now) else "firing",
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "startsAt": format_time(a.starts_at),
        "endsAt": format_time(a.ends_at),
        "generatorURL": a.generator_url,
        "fingerprint": a.fingerprint,
    }


# ---- the tiny template subset ---------------------------------------------------------------

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)


class _Unsupported(Exception):
    pass


def _lookup(path: str, ctx: Mapping[str, Any]) -> Any:
    if path == ".":
        return ctx.get(".")
    if not path.startswith("."):
        raise _Unsupported(path)
    cur: Any = ctx
    for part in path[1:].split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, Mapping) and cur.get("__labels__"):
            cur = ""  # a missing label renders empty, as Go's map lookup does
        else:
            raise _Unsupported(path)
    return cur


def _eval(expr: str, ctx: Mapping[str, Any]) -> Any:
    parts = [p.strip() for p in expr.split("|")]
    head = parts[0].split()
    if len(head) == 2 and head[0] == "len":
        val: Any = len(_lookup(head[1], ctx))
    elif len(head) == 1:
        val = _lookup(head[0], ctx)
    else:
        raise _Unsupported(expr)
    for fn in parts[1:]:
        if fn == "toUpper":
            val = str(val).upper()
        elif fn == "toLower":
            val = str(val).lower()
        elif fn == "title":
            val = str(val).title()
        elif fn == "len":
            val = len(val)
        else:
            raise _Unsupported(fn)
    return val


def _labels_view(d: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(d)
    out["__labels__"] = True
    return out


def _render_seq(nodes: list[Any], ctx: Mapping[str, Any]) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif node[0] == "expr":
            v = _eval(node[1], ctx)
            if isinstance(v, dict):
                v = " ".join(f"{k}={v[k]}" for k in sorted(v) if k != "__labels__")
            out.append(str(v))
        else:  # range
            items = _lookup(node[1], ctx)
            for item in items:
                sub = dict(ctx)
                sub.update(item)
                out.append(_render_seq(node[2], sub))
    return "".join(out)


def render_template(tmpl: str, n: Notification) -> str:
    """Render the supported Go-template subset; raises :class:`_Unsupported` otherwise."""
    pos = 0
    root: list[Any] = []
    stack: list[list[Any]] = [root]
    for m in _ACTION.finditer(tmpl):
        stack[-1].append(tmpl[pos : m.start()])
        pos = m.end()
        act = m.group(1)
        if act.startswith("range "):
            node = ("range", act[6:].strip(), [])
            stack[-1].append(node)
            stack.append(node[2])
        elif act == "end":
            if len(stack) == 1:
                raise _Unsupported("end")
            stack.pop()
        elif act.startswith(("if ", "else", "template ", "define ", "with ", "block ")):
            raise _Unsupported(act)
        else:
            stack[-1].append(("expr", act))
    if len(stack) != 1:
        raise _Unsupported("unclosed range")
    stack[-1].append(tmpl[pos:])

    def alert_ctx(a: Alert) -> dict[str, Any]:
        return {"Status": "resolved" if a.resolved(n.now) else "firing", "Labels": _labels_view(a.labels),
                "Annotations": _labels_view(a.annotations), "StartsAt": format_time(a.starts_at),
                "EndsAt": format_time(a.ends_at), "GeneratorURL": a.generator_url, "Fingerprint": a.fingerprint}

    alerts = [alert_ctx(a) for a in n.alerts]
    ctx: dict[str, Any] = {
        "Receiver": n.receiver, "Status": n.status, "ExternalURL": n.external_url,
        "GroupLabels": _labels_view(n.group_labels), "CommonLabels": _labels_view(n.common_labels()),
        "CommonAnnotations": _labels_view(n.common_annotations()),
        "Alerts": {"__iter__": alerts, "Firing": [x for x in alerts if x["Status"] == "firing"],
                   "Resolved": [x for x in alerts if x["Status"] == "resolved"]},
    }

    class _Alerts(dict):
        def __iter__(self):  # type: ignore[override]
            return iter(self["__iter__"])

        def __len__(self) -> int:
            return len(self["__iter__"])

    ctx["Alerts"] = _Alerts(ctx["Alerts"])
    return _render_seq(root, ctx)


def render(tmpl: str, n: Notification, default: str) -> str:
    if not tmpl:
        return default
    try:
        return render_template(tmpl, n)
    except (_Unsupported, TypeError, KeyError):
        return default


def default_title(n: Notification) -> str:
    """Alertmanager's ``*.default.title``: ``[FIRING:2] <group label values> (<other common values>)``."""
    head = f"[{n.status.upper()}" + (f":{len(n.firing())}]" if n.status == "firing" else "]")
    out = head + " " + " ".join(n.group_labels[k] for k in sorted(n.group_labels))
    common = n.common_labels()
    extra = [common[k] for k in sorted(common) if k not in n.group_labels]
    if extra:
        out += " (" + " ".join(extra) + ")"
    return out.rstrip()


def default_text(n: Notification) -> str:
    lines = []
    for title, alerts in (("Firing", n.firing()), ("Resolved", n.resolved_alerts())):
        if not alerts:
            continue
        lines.append(f"{title}:")
        for a in alerts:
            summary = a.annotations.get("summary") or a.annotations.get("description") or ""
            labels = ", ".join(f"{k}={a.labels[k]}" for k in sorted(a.labels))
            lines.append(f"- {labels}" + (f": {summary}" if summary else ""))
            if a.generator_url:
                lines.append(f"  source: {a.generator_url}")
    return "\n".join(lines)


# ---- integrations ---------------------------------------------------------------------------


class DeliveryError(Exception):
    """A failed delivery; ``retryable`` says whether trying again can help."""

    def __init__(self, msg: str, retryable: bool) -> None:
        super().__init__(msg)
        self.retryable = retryable


def _check_status(resp: httpx.Response) -> None:
    if 200 <= resp.status_code < 300:
        return
    body = resp.text[:200].strip()
    retry = resp.status_code >= 500 or resp.status_code == 429
    raise DeliveryError(f"unexpected status code {resp.status_code}" + (f": {body}" if body else ""), retry)


async def _post(client: httpx.AsyncClient, url: str, payload: Any, timeout: float) -> None:
    try:
        resp = await client.post(url, json=payload, timeout=timeout)
    except httpx.TransportError as e:
        raise DeliveryError(f"{type(e).__name__}: {e}", True) from None
    _check_status(resp)


@dataclass(slots=True)
class Integration:
    """One ``*_configs`` entry of a receiver."""

    receiver: str
    kind: str  # webhook | slack | email | pagerduty
    index: int
    conf: WebhookConfig | SlackConfig | EmailConfig | PagerdutyConfig

    @property
    def name(self) -> str:
        return f"{self.kind}[{self.index}]"

    @property
    def send_resolved(self) -> bool:
        return self.conf.send_resolved

    def secrets(self) -> list[str]:
        out = []
        for attr in ("url", "api_url", "routing_key", "auth_password"):
            v = getattr(self.conf, attr, None)
            if isinstance(v, Secret) and v.value:
                out.append(v.value)
        return out


def webhook_payload(n: Notification, max_alerts: int = 0) -> dict[str, Any]:
    alerts = n.alerts
    truncated = n.truncated
    if max_alerts and len(alerts) > max_alerts:
        truncated += len(alerts) - max_alerts
        alerts = alerts[:max_alerts]
    return {
        "receiver": n.receiver,
        "status": n.status,
        "alerts": [alert_json(a, n.now) for a in alerts],
        "groupLabels": dict(n.group_labels),
        "commonLabels": n.common_labels(),
        "commonAnnotations": n.common_annotations(),
        "externalURL": n.external_url,
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": truncated,
    }


def slack_payload(c: SlackConfig, n: Notification) -> dict[str, Any]:
    title = render(c.title, n, default_title(n))
    link = render(c.title_link, n, f"{n.external_url}/#/alerts?receiver={httpx.QueryParams({'r': n.receiver})['r']}")
    text = render(c.text, n, default_text(n))
    color = render(c.color, n, "danger" if n.status == "firing" else "good")
    att = {"title": title, "title_link": link, "text": text, "fallback": f"{title} | {link}", "color": color,
           "mrkdwn_in": ["fallback", "pretext", "text"]}
    payload: dict[str, Any] = {"username": c.username or "Lookout", "attachments": [att]}
    if c.channel:
        payload["channel"] = c.channel
    if c.icon_emoji:
        payload["icon_emoji"] = c.icon_emoji
    if c.icon_url:
        payload["icon_url"] = c.icon_url
    return payload


def pagerduty_payload(c: PagerdutyConfig, n: Notification) -> dict[str, Any]:
    action = "trigger" if n.status == "firing" else "resolve"
    msg: dict[str, Any] = {
        "routing_key": c.routing_key.value,
        "event_action": action,
        "dedup_key": hashlib.sha256(n.group_key.encode()).hexdigest(),
        "client": c.client,
        "client_url": c.client_url or n.external_url,
    }
    if action == "trigger":
        summary = render(c.description, n, default_title(n))
        if len(summary) > 1024:
            summary = summary[:1023] + "…"
        details = {k: render(v, n, v) for k, v in c.details.items()} or {
            "firing": "\n".join(_alert_line(a) for a in n.firing()),
            "resolved": "\n".join(_alert_line(a) for a in n.resolved_alerts()),
            "num_firing": str(len(n.firing())), "num_resolved": str(len(n.resolved_alerts())),
        }
        payload: dict[str, Any] = {"summary": summary, "source": render(c.source, n, c.client) or c.client,
                                   "severity": render(c.severity, n, "error"), "custom_details": details}
        for k, v in (("component", c.component), ("group", c.group), ("class", c.class_)):
            if v:
                payload[k] = render(v, n, v)
        msg["payload"] = payload
    return msg


def _alert_line(a: Alert) -> str:
    return ", ".join(f"{k}={a.labels[k]}" for k in sorted(a.labels))


def email_message(c: EmailConfig, n: Notification) -> EmailMessage:
    msg = EmailMessage()
    headers = {"Subject": default_title(n), "To": c.to, "From": c.from_}
    for k, v in c.headers.items():
        headers[k] = render(v, n, v)
    for k, v in headers.items():
        msg[k] = v
    msg["Date"] = email.utils.formatdate(n.now)
    msg["Message-Id"] = email.utils.make_msgid(domain=c.hello or "localhost")
    body = render(c.text, n, default_text(n) + (f"\n\n{n.external_url}" if n.external_url else ""))
    msg.set_content(body)
    if c.html:
        msg.add_alternative(render(c.html, n, body), subtype="html")
    return msg


def _send_email_sync(c: EmailConfig, msg: EmailMessage, timeout: float) -> None:
    host, port = c.host_port
    try:
        if port == 465:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, local_hostname=c.hello, timeout=timeout,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, port, local_hostname=c.hello, timeout=timeout)
        with smtp:
            smtp.ehlo()
            if port != 465 and c.require_tls:
                if not smtp.has_extn("starttls"):
                    raise DeliveryError(f"'require_tls' is true (default) but {host}:{port} does not advertise "
                                        "the STARTTLS extension", False)
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if c.auth_username:
                pw = c.auth_password.value if c.auth_password else ""
                smtp.login(c.auth_username, pw)
            to = [a.strip() for a in c.to.split(",") if a.strip()]
            smtp.send_message(msg, from_addr=email.utils.parseaddr(c.from_)[1],
                              to_addrs=[email.utils.parseaddr(a)[1] for a in to])
    except DeliveryError:
        raise
    except smtplib.SMTPResponseException as e:
        raise DeliveryError(f"SMTP error {e.smtp_code}: {e.smtp_error!r}", 400 <= e.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError) as e:
        raise DeliveryError(f"{type(e).__name__}: {e}", True) from None


@dataclass(slots=True)
class _Stats:
    sent: int = 0
    failed: int = 0
    attempts: int = 0
    last_error: str = ""
    last_error_at: float = 0.0
    last_success_at: float = 0.0


@dataclass(slots=True)
class ReceiverSet:
    """All configured receivers, a shared HTTP client, and delivery statistics.

    ``backoff_initial``/``backoff_max`` are Alertmanager-like defaults; tests shrink them."""

    receivers: dict[str, Receiver]
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    request_timeout: float = 10.0
    client: httpx.AsyncClient | None = None
    _stats: dict[str, dict[str, _Stats]] = field(default_factory=dict)

    def integrations(self, receiver: str) -> list[Integration]:
        r = self.receivers.get(receiver)
        if r is None:
            return []
        return [Integration(receiver, kind, i, conf) for kind, i, conf in r.integrations()]  # type: ignore[arg-type]

    def _client(self) -> httpx.AsyncClient:
        if self.client is None:
            self.client = httpx.AsyncClient(headers={"User-Agent": "Lookout-Alertmanager/0.1"})
        return self.client

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def send_once(self, integ: Integration, n: Notification) -> None:
        """One delivery attempt; raises :class:`DeliveryError`."""
        c = integ.conf
        if isinstance(c, WebhookConfig):
            await _post(self._client(), c.url.value, webhook_payload(n, c.max_alerts), self.request_timeout)
        elif isinstance(c, SlackConfig):
            await _post(self._client(), c.api_url.value, slack_payload(c, n), self.request_timeout)
        elif isinstance(c, PagerdutyConfig):
            await _post(self._client(), c.url, pagerduty_payload(c, n), self.request_timeout)
        elif isinstance(c, EmailConfig):
            await asyncio.to_thread(_send_email_sync, c, email_message(c, n), self.request_timeout)
        else:  # pragma: no cover - config parsing admits no other kind
            raise DeliveryError(f"unsupported integration {integ.kind}", False)

    async def deliver(self, integ: Integration, n: Notification, timeout: float) -> bool:
        """Send with retries until success, a permanent error, or ``timeout`` seconds; never raises."""
        st = self._stats.setdefault(integ.receiver, {}).setdefault(integ.name, _Stats())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        backoff = self.backoff_initial
        attempt = 0
        while True:
            attempt += 1
            st.attempts += 1
            try:
                await asyncio.wait_for(self.send_once(integ, n), timeout=max(deadline - loop.time(), 0.001))
                st.sent += 1
                st.last_success_at = time.time()
                return True
            except asyncio.CancelledError:
                raise
            except (DeliveryError, TimeoutError) as e:
                retryable = isinstance(e, TimeoutError) or e.retryable
                err = self._scrub(integ, str(e) or type(e).__name__)
            except Exception as e:  # a bug or an odd transport error: report, don't kill the dispatcher
                retryable = True
                err = self._scrub(integ, f"{type(e).__name__}: {e}")
            remaining = deadline - loop.time()
            if not retryable or remaining <= backoff:
                st.failed += 1
                st.last_error = err
                st.last_error_at = time.time()
                log.warning("notify %s/%s failed after %d attempt(s): %s", integ.receiver, integ.name, attempt, err)
                return False
            log.info("notify %s/%s attempt %d failed, retrying in %.2fs: %s", integ.receiver, integ.name, attempt,
                     backoff, err)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max)

    @staticmethod
    def _scrub(integ: Integration, msg: str) -> str:
        for s in integ.secrets():
            msg = msg.replace(s, "<secret>")
        return msg

    def stats(self) -> dict[str, Any]:
        """``{receiver: {sent, failed, last_error, integrations: {"webhook[0]": {...}}}}``."""
        out: dict[str, Any] = {}
        for name in self.receivers:
            integ = self._stats.get(name, {})
            last = max(integ.values(), key=lambda s: s.last_error_at, default=None)
            out[name] = {
                "sent": sum(s.sent for s in integ.values()),
                "failed": sum(s.failed for s in integ.values()),
                "last_error": last.last_error if last and last.last_error_at else "",
                "integrations": {k: {"sent": s.sent, "failed": s.failed, "attempts": s.attempts,
                                     "last_error": s.last_error, "last_error_at": s.last_error_at,
                                     "last_success_at": s.last_success_at} for k, s in integ.items()},
            }
        return out

    def dump(self) -> str:
        return json.dumps(self.stats(), indent=2)
