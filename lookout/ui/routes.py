"""Serve the UI: static files under /ui/static/, index.html for every other /ui/ path.

Every page of the app has its own URL (/ui/metrics?query=..., /ui/traces/<id>, /ui/d/<uid>) so a
link can be pasted into a chat at 2 AM; the browser router renders it, the server only has to
answer index.html for any path it does not know.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
INDEX = STATIC_DIR / "index.html"


class _StaticFiles(StaticFiles):
    """Static files that browsers revalidate (ETag/Last-Modified) instead of caching blindly,
    so an upgrade of Lookout is picked up on the next load."""

    def file_response(self, *args, **kwargs) -> Response:
        resp = super().file_response(*args, **kwargs)
        resp.headers["Cache-Control"] = "no-cache"
        return resp


async def _index(request: Request) -> Response:
    return FileResponse(INDEX, headers={"Cache-Control": "no-cache"})


async def _to_ui(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=302)


def ui_routes() -> list[BaseRoute]:
    """Routes of the UI, to be placed after every API route of the main listener."""
    return [
        Route("/", _to_ui, methods=["GET"]),
        Route("/ui", _to_ui, methods=["GET"]),
        Mount("/ui/static", app=_StaticFiles(directory=STATIC_DIR), name="ui-static"),
        Route("/ui/{path:path}", _index, methods=["GET"]),
    ]
