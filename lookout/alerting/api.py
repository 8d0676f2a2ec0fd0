"""HTTP routes of the rule evaluator: Prometheus' rules and alerts views, and Loki's ruler API.

* ``GET /api/v1/rules`` and ``GET /api/v1/alerts`` answer exactly as Prometheus'
  ``web/api/v1`` does (also under ``/prometheus/api/v1/*``, where Loki and Mimir serve them), so
  Grafana's alerting pages list Lookout's rules and alerts unchanged.
* ``/loki/api/v1/rules[/{namespace}[/{group}]]`` (and the legacy ``/api/prom/rules``) manage rule
  groups over HTTP as Loki's ruler does (the same API Cortex and Mimir have): YAML in and out,
  ``202 Accepted`` with a JSON ack on writes, plain-text errors. Groups are validated with the
  rule file parser, stored in SQLite and applied at once; the namespace plays the part of the
  file, so ``/api/v1/rules`` shows it as ``file``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from lookout.alerting.evaluator import RuleManager
from lookout.alerting.state import AlertState

ERR_NO_RULE_GROUPS = "no rule groups found"
ERR_GROUP_NOT_FOUND = "group does not exist"
ERR_NAMESPACE_NOT_FOUND = "group namespace does not exist"
ERR_BAD_RULE_GROUP = "unable to decoded rule group"  # sic: Cortex' and Loki's message
MAX_RULE_GROUP_BYTES = 1 << 20
_ACK = {"status": "success", "data": None, "errorType": "", "error": ""}


class _BadRequest(Exception):
    pass


def _prom_error(error_type: str, message: str, status: int) -> Response:
    return JSONResponse({"status": "error", "errorType": error_type, "error": message}, status_code=status)


def _yaml(obj: Any) -> Response:
    text = yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return Response(text, media_type="application/yaml")


def _parse_bool(value: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise _BadRequest(f'invalid parameter "exclude_alerts": strconv.ParseBool: parsing "{value}": invalid syntax')


class AlertingApi:
    def __init__(self, mgr: RuleManager, resolve_tenant: Callable[[Request], str], store: AlertState, *,
                 parse_fn: Callable[[str, str], list[Any]] | None = None,
                 dump_fn: Callable[[list[Any]], str] | None = None) -> None:
        self.mgr = mgr
        self.resolve_tenant = resolve_tenant  # raises an error with .status (400) on a bad tenant
        self.store = store
        self._parse_fn = parse_fn
        self._dump_fn = dump_fn

    def routes(self) -> list[Route]:
        routes = []
        for prefix in ("/api/v1", "/prometheus/api/v1"):
            routes.append(Route(f"{prefix}/rules", self.rules, methods=["GET"]))
            routes.append(Route(f"{prefix}/alerts", self.alerts, methods=["GET"]))
        for prefix in ("/loki/api/v1/rules", "/api/prom/rules"):
            routes.append(Route(prefix, self.list_all, methods=["GET"]))
            routes.append(Route(prefix + "/{namespace}", self.namespace, methods=["GET", "POST", "DELETE"]))
            routes.append(Route(prefix + "/{namespace}/{group}", self.group, methods=["GET", "DELETE"]))
        return routes

    # ---- rule file functions (another module; imported when first needed) -------------------

    def _parse(self, text: str, source: str) -> list[Any]:
        if self._parse_fn is None:
            from lookout.alerting.rulefile import parse_rule_file

            self._parse_fn = parse_rule_file
        return self._parse_fn(text, source)

    def _dump(self, groups: list[Any]) -> str:
        if self._dump_fn is None:
            from lookout.alerting.rulefile import dump_groups

            self._dump_fn = dump_groups
        return self._dump_fn(groups)

    # ---- Prometheus views -------------------------------------------------------------------

    async def rules(self, request: Request) -> Response:
        try:
            tenant = self.resolve_tenant(request)
            q = request.query_params
            typ = q.get("type", "").lower()
            if typ not in ("", "alert", "record"):
                raise _BadRequest(f'invalid parameter "type": not supported value "{typ}"')
            exclude = _parse_bool(q["exclude_alerts"]) if q.get("exclude_alerts") else False
            matcher_sets = None
            if q.getlist("match[]"):
                from lookout.metrics.api import ApiError as PromApiError
                from lookout.metrics.api import parse_selector

                matcher_sets = []
                for text in q.getlist("match[]"):
                    try:
                        matcher_sets.extend(parse_selector(text))
                    except PromApiError as e:
                        raise _BadRequest(str(e)) from None
            data = self.mgr.rules_json(tenant, typ or None, rule_names=q.getlist("rule_name[]"),
                                       group_names=q.getlist("rule_group[]"), files=q.getlist("file[]"),
                                       exclude_alerts=exclude, matcher_sets=matcher_sets)
        except _BadRequest as e:
            return _prom_error("bad_data", str(e), 400)
        except Exception as e:
            return self._tenant_error(e, json=True)
        return JSONResponse({"status": "success", "data": data})

    async def alerts(self, request: Request) -> Response:
        try:
            tenant = self.resolve_tenant(request)
        except Exception as e:
            return self._tenant_error(e, json=True)
        return JSONResponse({"status": "success", "data": self.mgr.alerts_json(tenant)})

    @staticmethod
    def _tenant_error(e: Exception, json: bool) -> Response:
        status = getattr(e, "status", None)
        if not isinstance(status, int):
            raise e
        if json:
            return _prom_error("bad_data" if status < 500 else "internal", str(e), status)
        return PlainTextResponse(str(e) + "\n", status_code=status)

    # ---- Loki ruler API ---------------------------------------------------------------------

    def _group_obj(self, text: str) -> dict[str, Any]:
        """A stored group (a one-group rule file) as the mapping the ruler API prints."""
        return (yaml.safe_load(text) or {}).get("groups", [{}])[0]

    async def _reload(self, tenant: str) -> None:
        await asyncio.to_thread(self.mgr.load_api_groups, tenant)

    async def list_all(self, request: Request) -> Response:
        try:
            tenant = self.resolve_tenant(request)
        except Exception as e:
            return self._tenant_error(e, json=False)
        return self._listing(self.store.list_groups(tenant))

    def _listing(self, rows: list[tuple[str, str, str]]) -> Response:
        if not rows:
            return PlainTextResponse(ERR_NO_RULE_GROUPS + "\n", status_code=404)
        out: dict[str, list[dict[str, Any]]] = {}
        for namespace, _, text in rows:
            out.setdefault(namespace, []).append(self._group_obj(text))
        return _yaml(out)

    async def namespace(self, request: Request) -> Response:
        try:
            tenant = self.resolve_tenant(request)
        except Exception as e:
            return self._tenant_error(e, json=False)
        namespace = request.path_params["namespace"]
        if request.method == "GET":
            return self._listing(self.store.list_groups(tenant, namespace))
        if request.method == "DELETE":
            if self.store.delete_namespace(tenant, namespace) == 0:
                return PlainTextResponse(ERR_NAMESPACE_NOT_FOUND + "\n", status_code=404)
            await self._reload(tenant)
            return JSONResponse(_ACK, status_code=202)
        return await self._create(request, tenant, namespace)

    async def _create(self, request: Request, tenant: str, namespace: str) -> Response:
        body = await request.body()
        if len(body) > MAX_RULE_GROUP_BYTES:
            return PlainTextResponse(f"rule group of {len(body)} bytes exceeds {MAX_RULE_GROUP_BYTES} bytes\n",
                                     status_code=400)
        try:
            obj = yaml.safe_load(body.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            obj = None
        if not isinstance(obj, dict):
            return PlainTextResponse(ERR_BAD_RULE_GROUP + "\n", status_code=400)
        text = yaml.safe_dump({"groups": [obj]}, sort_keys=False, allow_unicode=True)
        try:
            groups = self._parse(text, namespace)
        except Exception as e:
            problems = getattr(e, "problems", None)
            msg = ", ".join(str(p) for p in problems) if problems else str(e)
            return PlainTextResponse(msg + "\n", status_code=400)
        if len(groups) != 1:
            return PlainTextResponse(ERR_BAD_RULE_GROUP + "\n", status_code=400)
        group = groups[0]
        self.store.put_group(tenant, namespace, group.name, self._dump([group]))
        await self._reload(tenant)
        return JSONResponse(_ACK, status_code=202)

    async def group(self, request: Request) -> Response:
        try:
            tenant = self.resolve_tenant(request)
        except Exception as e:
            return self._tenant_error(e, json=False)
        namespace, name = request.path_params["namespace"], request.path_params["group"]
        if request.method == "DELETE":
            if not self.store.delete_group(tenant, namespace, name):
                return PlainTextResponse(ERR_GROUP_NOT_FOUND + "\n", status_code=404)
            await self._reload(tenant)
            return JSONResponse(_ACK, status_code=202)
        text = self.store.get_group(tenant, namespace, name)
        if text is None:
            return PlainTextResponse(ERR_GROUP_NOT_FOUND + "\n", status_code=404)
        return _yaml(self._group_obj(text))
