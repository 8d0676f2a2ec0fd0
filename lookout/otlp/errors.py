"""The one exception every OTLP decoding step raises.

Receivers turn it into HTTP 400 / gRPC ``INVALID_ARGUMENT`` with ``str(exc)`` as the message, so
the message must tell the client exactly what is wrong and where (a field path such as
``resource_spans[0].scope_spans[0].spans[3].trace_id: expected 16 bytes, got 15``). It subclasses
``ValueError`` so generic callers that already catch bad input keep working.
"""

from __future__ import annotations


class OtlpDecodeError(ValueError):
    """A request body that is not a valid OTLP request; the message names the problem."""
