"""HTTP API of dashboards under /lookout/api/v1/dashboards, for the UI (and scripts).

Shaped after Grafana's dashboard API, so its habits carry over: POST saves (create or update)
and answers 412 ``version-mismatch`` or ``name-exists`` unless ``overwrite`` is set, every save
increments the version, and ``/import`` takes a Grafana dashboard JSON as exported. Dashboards
belong to the tenant of the X-Scope-OrgID header; the shipped ones are listed for every tenant
and cannot be changed. Errors are ``{"status": ..., "message": ...}``; nothing is changed by a
request that fails.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lookout.ui.dashboards.grafana import convert, unwrap
from lookout.ui.dashboards.model import ModelError, normalize
from lookout.ui.dashboards.store import Conflict, Dashboard, DashboardStore, ReadOnly

PREFIX = "/lookout/api/v1/dashboards"
MAX_BODY_BYTES = 5 << 20


class _Refused(Exception):
    def __init__(self, code: int, message: str, status: str = "error") -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _url(uid: str) -> str:
    return f"/ui/d/{uid}"


def _read_only(uid: str) -> _Refused:
    return _Refused(400, f"dashboard {uid} is shipped with Lookout and read-only; "
                         "save it as a copy with a new uid")


def _not_found(uid: str) -> _Refused:
    return _Refused(404, f"dashboard {uid} not found", "not-found")


class DashboardsApi:
    def __init__(self, store: DashboardStore, resolve_tenant: Callable[[Request], str]) -> None:
        self.store = store
        self.resolve_tenant = resolve_tenant  # raises an error with .status (400) on a bad tenant

    def routes(self) -> list[Route]:
        return [
            Route(PREFIX, self._handler(self.list_dashboards), methods=["GET"]),
            Route(PREFIX, self._handler(self.save_dashboard), methods=["POST"]),
            Route(f"{PREFIX}/import", self._handler(self.import_grafana), methods=["POST"]),
            Route(PREFIX + "/{uid}", self._handler(self.get_dashboard), methods=["GET"]),
            Route(PREFIX + "/{uid}", self._handler(self.delete_dashboard), methods=["DELETE"]),
        ]

    def _handler(self, fn: Callable[[Request, str], Any]) -> Callable[[Request], Any]:
        """Resolve the tenant, run ``fn`` and turn every refusal into its JSON error."""
        async def handle(request: Request) -> Response:
            try:
                tenant = self.resolve_tenant(request)
                return JSONResponse(await fn(request, tenant))
            except _Refused as e:
                return JSONResponse({"status": e.status, "message": str(e)}, status_code=e.code)
            except Exception as e:
                status = getattr(e, "status", None)  # the tenant header's error
                if not isinstance(status, int):
                    raise
                return JSONResponse({"status": "error", "message": str(e)}, status_code=status)

        return handle

    # ---- handlers -------------------------------------------------------------------------------

    async def list_dashboards(self, request: Request, tenant: str) -> dict[str, Any]:
        query = request.query_params.get("query", "").strip().lower()
        tags = set(request.query_params.getlist("tag"))
        found = await asyncio.to_thread(self.store.list, tenant)
        return {"dashboards": [d.summary() for d in found
                               if query in d.doc["title"].lower() and tags <= set(d.doc["tags"])]}

    async def get_dashboard(self, request: Request, tenant: str) -> dict[str, Any]:
        uid = request.path_params["uid"]
        found = await asyncio.to_thread(self.store.get, tenant, uid)
        if found is None:
            raise _not_found(uid)
        return {"dashboard": {**found.doc, "version": found.version},
                "meta": {"shipped": found.shipped, "version": found.version, "created": found.created,
                         "updated": found.updated, "url": _url(uid)}}

    async def save_dashboard(self, request: Request, tenant: str) -> dict[str, Any]:
        body = await _json_body(request)
        doc = body.get("dashboard")
        if not isinstance(doc, dict):
            raise _Refused(400, 'expected a JSON object with the dashboard under "dashboard"')
        saved = await self._save(tenant, doc, body)
        return {"uid": saved.doc["uid"], "version": saved.version, "url": _url(saved.doc["uid"]),
                "status": "success"}

    async def import_grafana(self, request: Request, tenant: str) -> dict[str, Any]:
        body = await _json_body(request)
        try:
            doc, warnings = convert(unwrap(body))
        except ValueError as e:
            raise _Refused(400, f"cannot import: {e}") from None
        saved = await self._save(tenant, doc, body)
        return {"uid": saved.doc["uid"], "version": saved.version, "url": _url(saved.doc["uid"]),
                "status": "success", "warnings": warnings}

    async def delete_dashboard(self, request: Request, tenant: str) -> dict[str, Any]:
        uid = request.path_params["uid"]
        try:
            deleted = await asyncio.to_thread(self.store.delete, tenant, uid)
        except ReadOnly:
            raise _read_only(uid) from None
        if not deleted:
            raise _not_found(uid)
        return {"message": f"dashboard {uid} deleted"}

    async def _save(self, tenant: str, doc: dict[str, Any], body: dict[str, Any]) -> Dashboard:
        overwrite = body.get("overwrite", False)
        if not isinstance(overwrite, bool):
            raise _Refused(400, f"overwrite: expected true or false, got {json.dumps(overwrite)}")
        try:
            normalized = normalize(doc)
        except ModelError as e:
            raise _Refused(400, str(e)) from None
        try:
            return await asyncio.to_thread(self.store.save, tenant, normalized, overwrite=overwrite,
                                           new_uid=not doc.get("uid"))
        except ReadOnly:
            raise _read_only(normalized["uid"]) from None
        except Conflict as e:
            raise _Refused(412, str(e), e.status) from None


async def _json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; 413 past :data:`MAX_BODY_BYTES`, 400 naming what is wrong."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise _Refused(400, "request body is empty: expected a JSON object")
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise _Refused(400, "request body is not UTF-8 text: expected a JSON object") from None
    except json.JSONDecodeError as e:
        raise _Refused(400, f"request body is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    if not isinstance(body, dict):
        kind = {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(body), "a number")
        raise _Refused(400, f"request body must be a JSON object, got {kind}")
    return body


def _too_large() -> _Refused:
    return _Refused(413, f"request body is larger than {MAX_BODY_BYTES >> 20} MB")
