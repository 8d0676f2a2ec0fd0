"""Parse an Alertmanager ``alertmanager.yml`` into typed config for Lookout's notifier.

Users bring their existing Alertmanager config, so the field names, defaults and inheritance
rules are Alertmanager's (``config/config.go``): ``group_wait`` 30s, ``group_interval`` 5m,
``repeat_interval`` 4h, ``resolve_timeout`` 5m; ``send_resolved`` defaults to true for webhook
and PagerDuty, false for Slack and email; SMTP/Slack/PagerDuty settings fall back to ``global``.

Errors name the path of the offending node (``route.routes[1].matchers[0]: ...``) so a bad line
in a long config is found at once, and never contain a secret: secret fields are held in
:class:`Secret`, whose ``str``/``repr`` is ``<secret>``, and the config text served by
``/api/v2/status`` is re-dumped with those fields replaced.

Integrations Lookout does not implement (OpsGenie, VictorOps, ...) are rejected with a clear
error instead of being dropped silently: a config that loads is a config that delivers.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import yaml

from lookout.alerting.matchers import Matcher, MatcherError, MatchType, parse_matchers
from lookout.storage.durations import parse_prometheus_duration

if TYPE_CHECKING:
    from lookout.alerting.notify.timeintervals import TimeInterval

log = logging.getLogger(__name__)

__all__ = [
    "AlertmanagerConfig", "ConfigError", "EmailConfig", "GlobalConfig", "InhibitRule", "PagerdutyConfig",
    "Receiver", "RouteConfig", "Secret", "SlackConfig", "WebhookConfig", "load_config", "parse_config",
    "parse_duration", "format_duration",
]

DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
DEFAULT_PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"


class ConfigError(ValueError):
    """An invalid Alertmanager config; the message starts with the path of the bad node."""


class Secret(str):
    """A string that never prints itself, so secrets cannot leak through errors, logs or reprs."""

    def __repr__(self) -> str:
        return "Secret('<secret>')"

    def __str__(self) -> str:
        return "<secret>"

    def __format__(self, spec: str) -> str:
        return "<secret>"

    @property
    def value(self) -> str:
        """The real value, for the one place that needs it (the outgoing request)."""
        return str.__str__(self)


def parse_duration(s: object, path: str) -> float:
    """Prometheus duration (``1h30m``, ``90s``, ``0``) → seconds."""
    text = str(s).strip()
    try:
        return parse_prometheus_duration(text)
    except ValueError:
        raise ConfigError(f"{path}: not a valid duration string: {text!r}") from None


def format_duration(sec: float) -> str:
    """Seconds → Prometheus duration string (``4h``, ``5m``, ``1m30s``)."""
    if sec == 0:
        return "0s"
    ms = round(sec * 1000)
    out = []
    for unit, n in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)):
        if ms >= n:
            out.append(f"{ms // n}{unit}")
            ms %= n
    return "".join(out)


# ---- config types -------------------------------------------------------------------------


@dataclass(slots=True)
class GlobalConfig:
    resolve_timeout: float = 300.0
    smtp_from: str = ""
    smtp_smarthost: str = ""
    smtp_hello: str = "localhost"
    smtp_auth_username: str = ""
    smtp_auth_password: Secret | None = None
    smtp_require_tls: bool = True
    slack_api_url: Secret | None = None
    pagerduty_url: str = DEFAULT_PAGERDUTY_URL


@dataclass(slots=True)
class RouteConfig:
    """One node of the routing tree as written (inheritance is resolved by the dispatcher)."""

    receiver: str | None = None
    group_by: list[str] | None = None
    group_by_all: bool = False
    matchers: list[Matcher] = field(default_factory=list)
    continue_: bool = False
    routes: list[RouteConfig] = field(default_factory=list)
    group_wait: float | None = None
    group_interval: float | None = None
    repeat_interval: float | None = None
    mute_time_intervals: list[str] = field(default_factory=list)
    active_time_intervals: list[str] = field(default_factory=list)


@dataclass(slots=True)
class InhibitRule:
    source_matchers: list[Matcher] = field(default_factory=list)
    target_matchers: list[Matcher] = field(default_factory=list)
    equal: list[str] = field(default_factory=list)


@dataclass(slots=True)
class WebhookConfig:
    url: Secret
    send_resolved: bool = True
    max_alerts: int = 0


@dataclass(slots=True)
class SlackConfig:
    api_url: Secret
    channel: str = ""
    username: str = ""
    title: str = ""
    title_link: str = ""
    text: str = ""
    color: str = ""
    icon_emoji: str = ""
    icon_url: str = ""
    send_resolved: bool = False


@dataclass(slots=True)
class EmailConfig:
    to: str
    from_: str
    smarthost: str  # host:port
    hello: str = "localhost"
    auth_username: str = ""
    auth_password: Secret | None = None
    require_tls: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
    html: str = ""
    send_resolved: bool = False

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.smarthost.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(slots=True)
class PagerdutyConfig:
    routing_key: Secret
    url: str = DEFAULT_PAGERDUTY_URL
    severity: str = "error"
    client: str = "Lookout"
    client_url: str = ""
    description: str = ""
    source: str = ""
    component: str = ""
    group: str = ""
    class_: str = ""
    details: dict[str, str] = field(default_factory=dict)
    send_resolved: bool = True


@dataclass(slots=True)
class Receiver:
    name: str
    webhook_configs: list[WebhookConfig] = field(default_factory=list)
    slack_configs: list[SlackConfig] = field(default_factory=list)
    email_configs: list[EmailConfig] = field(default_factory=list)
    pagerduty_configs: list[PagerdutyConfig] = field(default_factory=list)

    def integrations(self) -> list[tuple[str, int, object]]:
        """(kind, index, config) for every configured integration, in a stable order."""
        out: list[tuple[str, int, object]] = []
        for kind, confs in (("webhook", self.webhook_configs), ("slack", self.slack_configs),
                            ("email", self.email_configs), ("pagerduty", self.pagerduty_configs)):
            out.extend((kind, i, c) for i, c in enumerate(confs))
        return out


@dataclass(slots=True)
class AlertmanagerConfig:
    global_: GlobalConfig = field(default_factory=GlobalConfig)
    route: RouteConfig = field(default_factory=lambda: RouteConfig(receiver="default"))
    inhibit_rules: list[InhibitRule] = field(default_factory=list)
    receivers: dict[str, Receiver] = field(default_factory=dict)
    time_intervals: dict[str, list[TimeInterval]] = field(default_factory=dict)
    original: str = ""  # the YAML, secrets replaced by <secret>, for /api/v2/status


# ---- parsing ------------------------------------------------------------------------------

_SECRET_KEYS = {"smtp_auth_password", "smtp_auth_secret", "auth_password", "auth_secret", "slack_api_url",
                "routing_key", "service_key", "api_key", "password", "bearer_token", "credentials",
                "client_secret", "api_url"}


def _redact(node: Any, parent_key: str = "") -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "url" and parent_key == "webhook_configs" and isinstance(v, str):
                # Webhook URLs often carry tokens, but amtool (0.25) re-validates the scheme of this
                # field when it parses /api/v2/status, so keep a valid URL that reveals nothing.
                out[k] = f"{urlparse(v).scheme or 'http'}://redacted.invalid/"
                continue
            secret = k in _SECRET_KEYS
            out[k] = "<secret>" if secret and v not in (None, "") else _redact(v, str(k))
        return out
    if isinstance(node, list):
        return [_redact(v, parent_key) for v in node]
    return node


def _mapping(obj: object, path: str) -> Mapping[str, Any]:
    if obj is None:
        return {}
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{path}: expected a mapping, got {type(obj).__name__}")
    return obj


def _list(obj: object, path: str) -> list[Any]:
    if obj is None:
        return []
    if not isinstance(obj, list):
        raise ConfigError(f"{path}: expected a list, got {type(obj).__name__}")
    return obj


def _check_keys(m: Mapping[str, Any], known: set[str], path: str) -> None:
    for k in m:
        if k not in known:
            where = f"{path}." if path else ""
            raise ConfigError(f"{where}{k}: field {k} not found in type (unknown or unsupported field)")


def _str(m: Mapping[str, Any], key: str, path: str, default: str = "") -> str:
    v = m.get(key)
    if v is None:
        return default
    if isinstance(v, (dict, list)):
        raise ConfigError(f"{path}.{key}: expected a string")
    return str(v)


def _bool(m: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    v = m.get(key)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise ConfigError(f"{path}.{key}: expected true or false")
    return v


def _secret_url(v: str, path: str) -> Secret:
    u = urlparse(v)
    if u.scheme not in ("http", "https") or not u.netloc:
        # The value itself may hold a token: never echo it.
        raise ConfigError(f"{path}: unsupported scheme or missing host in URL (value hidden)")
    return Secret(v)


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _matchers(m: Mapping[str, Any], path: str, key: str = "matchers", match_key: str | None = "match",
              match_re_key: str | None = "match_re") -> list[Matcher]:
    out: list[Matcher] = []
    if match_key:
        for k, v in sorted(_mapping(m.get(match_key), f"{path}.{match_key}").items()):
            out.append(Matcher.create(str(k), MatchType.EQ, "" if v is None else str(v)))
    if match_re_key:
        for k, v in sorted(_mapping(m.get(match_re_key), f"{path}.{match_re_key}").items()):
            try:
                out.append(Matcher.create(str(k), MatchType.RE, "" if v is None else str(v)))
            except MatcherError as e:
                raise ConfigError(f"{path}.{match_re_key}.{k}: {e}") from None
    for i, s in enumerate(_list(m.get(key), f"{path}.{key}")):
        try:
            out.extend(parse_matchers(str(s)))
        except MatcherError as e:
            raise ConfigError(f"{path}.{key}[{i}]: {e}") from None
    return out


def _parse_global(m: Mapping[str, Any]) -> GlobalConfig:
    p = "global"
    _check_keys(m, {"resolve_timeout", "smtp_from", "smtp_smarthost", "smtp_hello", "smtp_auth_username",
                    "smtp_auth_password", "smtp_auth_identity", "smtp_auth_secret", "smtp_require_tls",
                    "slack_api_url", "pagerduty_url", "http_config", "opsgenie_api_url", "opsgenie_api_key",
                    "wechat_api_url", "victorops_api_url", "telegram_api_url", "webex_api_url",
                    "slack_api_url_file", "smtp_auth_password_file"}, p)
    g = GlobalConfig()
    if "resolve_timeout" in m:
        g.resolve_timeout = parse_duration(m["resolve_timeout"], f"{p}.resolve_timeout")
    g.smtp_from = _str(m, "smtp_from", p)
    g.smtp_smarthost = _str(m, "smtp_smarthost", p)
    g.smtp_hello = _str(m, "smtp_hello", p, "localhost")
    g.smtp_auth_username = _str(m, "smtp_auth_username", p)
    if m.get("smtp_auth_password"):
        g.smtp_auth_password = Secret(str(m["smtp_auth_password"]))
    g.smtp_require_tls = _bool(m, "smtp_require_tls", p, True)
    if m.get("slack_api_url"):
        g.slack_api_url = _secret_url(str(m["slack_api_url"]), f"{p}.slack_api_url")
    g.pagerduty_url = _str(m, "pagerduty_url", p, DEFAULT_PAGERDUTY_URL)
    if "http_config" in m:
        log.warning("alertmanager config: global.http_config is not supported and is ignored")
    return g


_ROUTE_KEYS = {"receiver", "group_by", "continue", "matchers", "match", "match_re", "routes", "group_wait",
               "group_interval", "repeat_interval", "mute_time_intervals", "active_time_intervals"}


def _parse_route(m: Mapping[str, Any], path: str) -> RouteConfig:
    _check_keys(m, _ROUTE_KEYS, path)
    r = RouteConfig()
    r.receiver = _str(m, "receiver", path) or None
    if "group_by" in m and m["group_by"] is not None:
        gb = [str(x) for x in _list(m["group_by"], f"{path}.group_by")]
        seen: set[str] = set()
        for i, ln in enumerate(gb):
            if ln == "...":
                if len(gb) != 1:
                    raise ConfigError(f"{path}.group_by[{i}]: cannot have wildcard group_by (`...`) and other labels")
                r.group_by_all = True
            elif not _LABEL_NAME.match(ln):
                raise ConfigError(f"{path}.group_by[{i}]: invalid label name {ln!r}")
            if ln in seen:
                raise ConfigError(f"{path}.group_by[{i}]: duplicated label {ln!r}")
            seen.add(ln)
        r.group_by = [] if r.group_by_all else gb
    r.matchers = _matchers(m, path)
    r.continue_ = _bool(m, "continue", path, False)
    for k in ("group_wait", "group_interval", "repeat_interval"):
        if m.get(k) is not None:
            v = parse_duration(m[k], f"{path}.{k}")
            if k != "group_wait" and v == 0:
                raise ConfigError(f"{path}.{k}: {k} cannot be zero")
            setattr(r, k, v)
    r.mute_time_intervals = [str(x) for x in _list(m.get("mute_time_intervals"), f"{path}.mute_time_intervals")]
    r.active_time_intervals = [str(x) for x in _list(m.get("active_time_intervals"),
                                                     f"{path}.active_time_intervals")]
    for i, sub in enumerate(_list(m.get("routes"), f"{path}.routes")):
        r.routes.append(_parse_route(_mapping(sub, f"{path}.routes[{i}]"), f"{path}.routes[{i}]"))
    return r


def _parse_receiver(m: Mapping[str, Any], path: str, g: GlobalConfig) -> Receiver:
    supported = {"name", "webhook_configs", "slack_configs", "email_configs", "pagerduty_configs"}
    for k in m:
        if k not in supported:
            if str(k).endswith("_configs"):
                raise ConfigError(f"{path}.{k}: this integration is not supported by Lookout "
                                  "(supported: webhook, slack, email, pagerduty)")
            raise ConfigError(f"{path}.{k}: unknown field")
    name = _str(m, "name", path)
    if not name:
        raise ConfigError(f"{path}.name: missing name in receiver")
    r = Receiver(name=name)
    for i, c in enumerate(_list(m.get("webhook_configs"), f"{path}.webhook_configs")):
        p = f"{path}.webhook_configs[{i}]"
        c = _mapping(c, p)
        _check_keys(c, {"url", "send_resolved", "max_alerts", "http_config", "url_file"}, p)
        if not c.get("url"):
            raise ConfigError(f"{p}.url: one of url or url_file must be configured")
        ma = c.get("max_alerts", 0) or 0
        if not isinstance(ma, int) or ma < 0:
            raise ConfigError(f"{p}.max_alerts: must be a non-negative integer")
        r.webhook_configs.append(WebhookConfig(url=_secret_url(str(c["url"]), f"{p}.url"),
                                               send_resolved=_bool(c, "send_resolved", p, True), max_alerts=ma))
    for i, c in enumerate(_list(m.get("slack_configs"), f"{path}.slack_configs")):
        p = f"{path}.slack_configs[{i}]"
        c = _mapping(c, p)
        _check_keys(c, {"api_url", "channel", "username", "title", "title_link", "text", "color", "icon_emoji",
                        "icon_url", "send_resolved", "http_config", "pretext", "fallback", "footer",
                        "short_fields", "link_names", "mrkdwn_in", "actions", "fields", "image_url",
                        "thumb_url", "callback_id", "api_url_file"}, p)
        url = _secret_url(str(c["api_url"]), f"{p}.api_url") if c.get("api_url") else g.slack_api_url
        if url is None:
            raise ConfigError(f"{p}.api_url: no global Slack API URL set either")
        r.slack_configs.append(SlackConfig(
            api_url=url, channel=_str(c, "channel", p), username=_str(c, "username", p),
            title=_str(c, "title", p), title_link=_str(c, "title_link", p), text=_str(c, "text", p),
            color=_str(c, "color", p), icon_emoji=_str(c, "icon_emoji", p), icon_url=_str(c, "icon_url", p),
            send_resolved=_bool(c, "send_resolved", p, False)))
    for i, c in enumerate(_list(m.get("email_configs"), f"{path}.email_configs")):
        p = f"{path}.email_configs[{i}]"
        c = _mapping(c, p)
        _check_keys(c, {"to", "from", "smarthost", "hello", "auth_username", "auth_password", "auth_identity",
                        "auth_secret", "require_tls", "headers", "html", "text", "send_resolved", "tls_config",
                        "auth_password_file"}, p)
        to = _str(c, "to", p)
        if not to:
            raise ConfigError(f"{p}.to: missing to address in email config")
        frm = _str(c, "from", p, g.smtp_from)
        if not frm:
            raise ConfigError(f"{p}.from: no global SMTP from set either")
        smarthost = _str(c, "smarthost", p, g.smtp_smarthost)
        if not smarthost or ":" not in smarthost or not smarthost.rpartition(":")[2].isdigit():
            raise ConfigError(f"{p}.smarthost: need host:port (no global smtp_smarthost set either)")
        headers = {}
        for hk, hv in _mapping(c.get("headers"), f"{p}.headers").items():
            norm = "-".join(w.capitalize() for w in str(hk).split("-"))
            if norm in headers:
                raise ConfigError(f"{p}.headers.{hk}: duplicate header")
            headers[norm] = str(hv)
        pw = c.get("auth_password")
        r.email_configs.append(EmailConfig(
            to=to, from_=frm, smarthost=smarthost, hello=_str(c, "hello", p, g.smtp_hello),
            auth_username=_str(c, "auth_username", p, g.smtp_auth_username),
            auth_password=Secret(str(pw)) if pw else g.smtp_auth_password,
            require_tls=_bool(c, "require_tls", p, g.smtp_require_tls), headers=headers,
            text=_str(c, "text", p), html=_str(c, "html", p), send_resolved=_bool(c, "send_resolved", p, False)))
    for i, c in enumerate(_list(m.get("pagerduty_configs"), f"{path}.pagerduty_configs")):
        p = f"{path}.pagerduty_configs[{i}]"
        c = _mapping(c, p)
        _check_keys(c, {"routing_key", "service_key", "url", "severity", "client", "client_url", "description",
                        "details", "source", "component", "group", "class", "send_resolved", "http_config",
                        "images", "links", "routing_key_file"}, p)
        if c.get("service_key"):
            raise ConfigError(f"{p}.service_key: PagerDuty Events API v1 is not supported; use routing_key")
        if not c.get("routing_key"):
            raise ConfigError(f"{p}.routing_key: missing routing_key in PagerDuty config")
        url = _str(c, "url", p, g.pagerduty_url)
        _secret_url(url, f"{p}.url")
        r.pagerduty_configs.append(PagerdutyConfig(
            routing_key=Secret(str(c["routing_key"])), url=url, severity=_str(c, "severity", p, "error"),
            client=_str(c, "client", p, "Lookout"), client_url=_str(c, "client_url", p),
            description=_str(c, "description", p), source=_str(c, "source", p),
            component=_str(c, "component", p), group=_str(c, "group", p), class_=_str(c, "class", p),
            details={str(k): str(v) for k, v in _mapping(c.get("details"), f"{p}.details").items()},
            send_resolved=_bool(c, "send_resolved", p, True)))
    return r


def _check_route_refs(r: RouteConfig, path: str, receivers: Mapping[str, Receiver],
                      intervals: Mapping[str, object]) -> None:
    if r.receiver is not None and r.receiver not in receivers:
        raise ConfigError(f"{path}.receiver: undefined receiver {r.receiver!r} used in route")
    for k in ("mute_time_intervals", "active_time_intervals"):
        for i, n in enumerate(getattr(r, k)):
            if n not in intervals:
                raise ConfigError(f"{path}.{k}[{i}]: undefined time interval {n!r} used in route")
    for i, sub in enumerate(r.routes):
        _check_route_refs(sub, f"{path}.routes[{i}]", receivers, intervals)


def parse_config(text: str) -> AlertmanagerConfig:
    """Parse and validate Alertmanager YAML. Raises :class:`ConfigError` naming the bad path."""
    from lookout.alerting.notify.timeintervals import TimeIntervalError, parse_time_interval

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "yaml"
        raise ConfigError(f"{where}: invalid YAML: {getattr(e, 'problem', None) or 'parse error'}") from None
    top = _mapping(raw, "config")
    _check_keys(top, {"global", "route", "inhibit_rules", "receivers", "templates", "time_intervals",
                      "mute_time_intervals"}, "")
    cfg = AlertmanagerConfig()
    cfg.global_ = _parse_global(_mapping(top.get("global"), "global"))
    if top.get("templates"):
        log.warning("alertmanager config: 'templates' files are not supported; built-in texts are used")

    for key in ("mute_time_intervals", "time_intervals"):
        for i, ti in enumerate(_list(top.get(key), key)):
            p = f"{key}[{i}]"
            ti = _mapping(ti, p)
            _check_keys(ti, {"name", "time_intervals"}, p)
            name = _str(ti, "name", p)
            if not name:
                raise ConfigError(f"{p}.name: missing name in time interval")
            if name in cfg.time_intervals:
                raise ConfigError(f"{p}.name: time interval {name!r} is defined more than once")
            try:
                cfg.time_intervals[name] = [parse_time_interval(x, f"{p}.time_intervals[{j}]")
                                            for j, x in enumerate(_list(ti.get("time_intervals"),
                                                                        f"{p}.time_intervals"))]
            except TimeIntervalError as e:
                raise ConfigError(str(e)) from None

    for i, rc in enumerate(_list(top.get("receivers"), "receivers")):
        rec = _parse_receiver(_mapping(rc, f"receivers[{i}]"), f"receivers[{i}]", cfg.global_)
        if rec.name in cfg.receivers:
            raise ConfigError(f"receivers[{i}].name: notification config name {rec.name!r} is not unique")
        cfg.receivers[rec.name] = rec

    if top.get("route") is None:
        raise ConfigError("route: no route provided in config")
    root = _parse_route(_mapping(top["route"], "route"), "route")
    if not root.receiver:
        raise ConfigError("route.receiver: root route must specify a default receiver")
    if root.matchers:
        raise ConfigError("route.matchers: root route must not have any matchers")
    if root.mute_time_intervals or root.active_time_intervals:
        raise ConfigError("route.mute_time_intervals: root route must not have any mute or active time intervals")
    _check_route_refs(root, "route", cfg.receivers, cfg.time_intervals)
    cfg.route = root

    for i, ir in enumerate(_list(top.get("inhibit_rules"), "inhibit_rules")):
        p = f"inhibit_rules[{i}]"
        ir = _mapping(ir, p)
        _check_keys(ir, {"source_matchers", "target_matchers", "source_match", "source_match_re", "target_match",
                         "target_match_re", "equal"}, p)
        equal = [str(x) for x in _list(ir.get("equal"), f"{p}.equal")]
        for j, ln in enumerate(equal):
            if not _LABEL_NAME.match(ln):
                raise ConfigError(f"{p}.equal[{j}]: invalid label name {ln!r}")
        cfg.inhibit_rules.append(InhibitRule(
            source_matchers=_matchers(ir, p, "source_matchers", "source_match", "source_match_re"),
            target_matchers=_matchers(ir, p, "target_matchers", "target_match", "target_match_re"),
            equal=equal))

    cfg.original = yaml.safe_dump(_redact(copy.deepcopy(top)), sort_keys=False)
    return cfg


def load_config(path: str | Path) -> AlertmanagerConfig:
    return parse_config(Path(path).read_text())
