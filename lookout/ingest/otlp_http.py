"""OTLP/HTTP receiver: ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs``.

A raw ASGI app rather than Starlette: this is the hottest route and the framework layer measured
~20 % on small requests (hot-path-measurements.md section 4). Behaviour follows the OTLP spec
and the Collector's reference receiver: protobuf and JSON on the same path, gzip, 405/415/413,
400 with a ``google.rpc.Status`` body in the request's encoding, 429/503 with ``Retry-After``.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from google.rpc import status_pb2

from lookout.ingest.receiver import BadRequest, Overloaded, Receiver, TooLarge

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PATHS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return None


def _gunzip(body: bytes, limit: int) -> bytes:
    """Inflate with a hard output bound so a gzip bomb cannot exceed the size limit."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as e:
        raise BadRequest(f"invalid gzip body: {e}") from e
    if len(out) > limit:
        raise TooLarge(f"request body exceeds the limit of {limit} bytes after decompression "
                       "(ingest.max_request_bytes)")
    if not d.eof:
        raise BadRequest("invalid gzip body: truncated stream")
    return out


class OtlpHttpApp:
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.tenant_header = receiver.cfg.tenant_header.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        signal = PATHS.get(scope["path"])
        if signal is None:
            await _plain(send, 404, f"404 page not found: {scope['path']}")
            return
        if scope["method"] != "POST":
            await _plain(send, 405, f"{scope['method']} method not allowed, supported: [POST]",
                         [(b"allow", b"POST")])
            return
        ctype = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if ctype not in (PROTOBUF, JSON):
            await _plain(send, 415, f'415 unsupported media type "{ctype}", supported: [{JSON}, {PROTOBUF}]')
            return
        await self._export(scope, receive, send, signal, ctype)

    async def _export(self, scope: Scope, receive: Receive, send: Send, signal: str, ctype: str) -> None:
        rcv = self.receiver
        tenant_value = _header(scope, self.tenant_header)
        try:
            try:
                body = await _read_body(receive, rcv.cfg.max_request_bytes)
                encoding = (_header(scope, b"content-encoding") or "").strip().lower()
                if encoding == "gzip":
                    body = _gunzip(body, rcv.cfg.max_request_bytes)
                elif encoding not in ("", "identity"):
                    raise BadRequest(f'unsupported Content-Encoding "{encoding}", supported: gzip')
            except (BadRequest, TooLarge) as e:
                rcv.refuse(signal, "unknown", "too_large" if isinstance(e, TooLarge) else "malformed", 0)
                raise
            await rcv.export(signal, tenant_value, body, is_json=ctype == JSON)
        except BadRequest as e:
            await _status(send, ctype, 400, 3, str(e))
        except TooLarge as e:
            await _status(send, ctype, 413, 8, str(e))
        except Overloaded as e:
            code, grpc_code = (503, 14) if e.unavailable else (429, 8)
            await _status(send, ctype, code, grpc_code, str(e), retry_after=e.retry_after_s)
        else:
            await _respond(send, 200, ctype, b"{}" if ctype == JSON else b"")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise BadRequest("client disconnected before sending the whole body")
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body exceeds the limit of {limit} bytes (ingest.max_request_bytes)")
        chunks.append(chunk)
        if not msg.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, ctype: str, body: bytes,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


async def _plain(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await _respond(send, status, "text/plain; charset=utf-8", text.encode(), extra)


async def _status(send: Send, ctype: str, status: int, grpc_code: int, message: str,
                  retry_after: float | None = None) -> None:
    """An OTLP failure: a ``google.rpc.Status`` in the request's encoding."""
    if ctype == JSON:
        body = json.dumps({"code": grpc_code, "message": message}).encode()
    else:
        body = status_pb2.Status(code=grpc_code, message=message).SerializeToString()
    extra = [(b"retry-after", str(max(1, math.ceil(retry_after))).encode())] if retry_after else None
    await _respond(send, status, ctype, body, extra)
