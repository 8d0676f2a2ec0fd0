"""OTLP/gRPC receiver: ``TraceService``, ``MetricsService`` and ``LogsService`` ``Export``.

A generic handler with no request deserializer: grpc hands us the raw request bytes, which go
to the log as they are (no double parse; hot-path-measurements.md section 4). Refusals carry a
``google.rpc.Status`` with ``RetryInfo`` in ``grpc-status-details-bin`` so OTel exporters back
off as the spec says.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc import aio

from lookout.ingest.receiver import BadRequest, Overloaded, Receiver, TooLarge

SERVICES = {
    "opentelemetry.proto.collector.trace.v1.TraceService": "traces",
    "opentelemetry.proto.collector.metrics.v1.MetricsService": "metrics",
    "opentelemetry.proto.collector.logs.v1.LogsService": "logs",
}


def _retry_details(code: grpc.StatusCode, message: str, retry_after_s: float) -> bytes:
    info = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=int(retry_after_s), nanos=int(retry_after_s % 1 * 1e9)))
    detail = any_pb2.Any()
    detail.Pack(info)
    return status_pb2.Status(code=code.value[0], message=message, details=[detail]).SerializeToString()


def _handler(receiver: Receiver, signal: str):
    tenant_key = receiver.cfg.tenant_header.lower()

    async def export(request: bytes, context: aio.ServicerContext) -> bytes:
        tenant_value = None
        for key, value in context.invocation_metadata() or ():
            if key == tenant_key:
                tenant_value = value
                break
        try:
            await receiver.export(signal, tenant_value, request)
        except BadRequest as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except TooLarge as e:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
        except Overloaded as e:
            code = grpc.StatusCode.UNAVAILABLE if e.unavailable else grpc.StatusCode.RESOURCE_EXHAUSTED
            details = _retry_details(code, str(e), e.retry_after_s)
            await context.abort(code, str(e), trailing_metadata=(("grpc-status-details-bin", details),))
        return b""  # an empty Export*ServiceResponse: full success

    return grpc.unary_unary_rpc_method_handler(export)


def build_server(receiver: Receiver, host: str, port: int) -> tuple[aio.Server, int]:
    """Create (not start) the server; returns it with the bound port (port 0 picks one)."""
    limit = receiver.cfg.max_request_bytes
    server = aio.server(options=[("grpc.max_receive_message_length", limit),
                                 ("grpc.so_reuseport", 0)])
    for service, signal in SERVICES.items():
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(service, {"Export": _handler(receiver, signal)})])
    bound = server.add_insecure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the OTLP/gRPC listener to {host}:{port}")
    return server, bound
