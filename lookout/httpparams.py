"""Query parameters of a GET or an urlencoded POST, as Prometheus and Loki read them.

Their APIs accept the same parameters in the URL or as an ``application/x-www-form-urlencoded``
body (Grafana POSTs long queries), repeated keys included (``match[]``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

MAX_FORM_BYTES = 4 << 20


class FormError(ValueError):
    pass


async def request_params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        params.setdefault(k, []).append(v)
    if request.method == "POST":
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype in ("", "application/x-www-form-urlencoded"):
            body = await request.body()
            if len(body) > MAX_FORM_BYTES:
                raise FormError(f"form body of {len(body)} bytes exceeds {MAX_FORM_BYTES} bytes")
            try:
                pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            except UnicodeDecodeError:
                raise FormError("form body is not valid UTF-8") from None
            for k, v in pairs:
                params.setdefault(k, []).append(v)
    return params
