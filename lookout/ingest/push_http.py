"""The push APIs of other systems on the main HTTP listener: Prometheus remote write
(``POST /api/v1/write``) and the Loki push API (``POST /loki/api/v1/push``).

Same core as OTLP: the body is checked by its signal's decoder (registered on the receiver),
charged against the in-flight budget and per-tenant limits, durably appended with its format
tag, and only then answered ``204 No Content`` as Prometheus and Loki do. Errors are plain text,
as those servers send them: 400 (never retried by their clients), 413, 429/503 with Retry-After.
"""

from __future__ import annotations

import math

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from lookout.ingest import formats, snappy
from lookout.ingest.otlp_http import _gunzip
from lookout.ingest.receiver import BadRequest, Overloaded, Receiver, TooLarge

PROTOBUF = ("application/x-protobuf", "application/protobuf")


class PushApi:
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def routes(self) -> list[Route]:
        return [Route("/api/v1/write", self.remote_write, methods=["POST"]),
                Route("/loki/api/v1/push", self.loki_push, methods=["POST"])]

    async def _body(self, request: Request, signal: str) -> bytes:
        limit = self.receiver.cfg.max_request_bytes
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    self.receiver.refuse(signal, self._tenant_or_unknown(request), "too_large", size)
                    raise TooLarge(f"request body exceeds the limit of {limit} bytes (ingest.max_request_bytes)")
                chunks.append(chunk)
        except ClientDisconnect:
            raise BadRequest("client disconnected before sending the whole body") from None
        return b"".join(chunks)

    def _tenant_or_unknown(self, request: Request) -> str:
        """The tenant a refusal is counted under (``unknown`` when the header itself is bad)."""
        try:
            return self.receiver.resolve_tenant(request.headers.get(self.receiver.cfg.tenant_header))
        except BadRequest:
            return "unknown"

    def _check_uncompressed(self, request: Request, signal: str, length: int | None) -> None:
        """``ingest.max_request_bytes`` bounds the *uncompressed* request, as for OTLP: a small
        snappy body may declare (and would expand to) far more; refuse it before decompressing."""
        limit = self.receiver.cfg.max_request_bytes
        if length is None or length <= limit:
            return
        self.receiver.refuse(signal, self._tenant_or_unknown(request), "too_large", length)
        raise TooLarge(f"request body decompresses to {length} bytes, over the limit of {limit} bytes "
                       "(ingest.max_request_bytes)")

    def _unsupported(self, request: Request, signal: str, message: str) -> Response:
        """415, counted like every other refusal (the body is never read)."""
        self.receiver.refuse(signal, self._tenant_or_unknown(request), "unsupported_media_type", 0)
        return PlainTextResponse(message, status_code=415)

    async def _export(self, request: Request, signal: str, body: bytes, fmt: str) -> Response:
        tenant = request.headers.get(self.receiver.cfg.tenant_header)
        await self.receiver.export(signal, tenant, body, fmt=fmt)
        return Response(status_code=204)

    async def remote_write(self, request: Request) -> Response:
        async def run() -> Response:
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            version = request.headers.get("x-prometheus-remote-write-version", "0.1.0")
            proto = request.headers.get("content-type", "")
            if "io.prometheus.write.v2.Request" in proto or version.startswith("2."):
                return self._unsupported(request, "metrics", "remote write 2.0 is not supported yet; send "
                                         "prometheus.WriteRequest (remote write 1.0)\n")
            if ctype and ctype not in PROTOBUF:
                return self._unsupported(request, "metrics",
                                         f'unsupported Content-Type "{ctype}", expected application/x-protobuf\n')
            encoding = request.headers.get("content-encoding", "snappy").strip().lower()
            if encoding != "snappy":
                return self._unsupported(request, "metrics",
                                         f'unsupported Content-Encoding "{encoding}", expected snappy\n')
            body = await self._body(request, "metrics")
            try:
                declared: int | None = snappy.declared_length(body)
            except ValueError:
                declared = None  # the decoder names the problem
            self._check_uncompressed(request, "metrics", declared)
            return await self._export(request, "metrics", body, formats.PROM_REMOTE_WRITE)

        return await _guard(run)

    async def loki_push(self, request: Request) -> Response:
        async def run() -> Response:
            ctype = request.headers.get("content-type", "application/x-protobuf").split(";")[0].strip().lower()
            body = await self._body(request, "logs")
            encoding = request.headers.get("content-encoding", "").strip().lower()
            if ctype == "application/json":
                if encoding == "gzip":
                    body = _gunzip(body, self.receiver.cfg.max_request_bytes)
                elif encoding not in ("", "identity"):
                    raise BadRequest(f'unsupported Content-Encoding "{encoding}", supported: gzip')
                return await self._export(request, "logs", body, formats.LOKI_JSON)
            if ctype in PROTOBUF:
                return await self._export(request, "logs", body, formats.LOKI_PUSH)
            return PlainTextResponse(f'unsupported Content-Type "{ctype}", expected application/x-protobuf '
                                     "(snappy) or application/json\n", status_code=415)

        return await _guard(run)


async def _guard(run) -> Response:
    try:
        return await run()
    except BadRequest as e:
        return PlainTextResponse(f"{e}\n", status_code=400)
    except TooLarge as e:
        return PlainTextResponse(f"{e}\n", status_code=413)
    except Overloaded as e:
        return PlainTextResponse(f"{e}\n", status_code=503 if e.unavailable else 429,
                                 headers={"Retry-After": str(max(1, math.ceil(e.retry_after_s)))})
