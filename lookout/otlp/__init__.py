"""OTLP decoding: request validation, OTLP/JSON conversion, and spans ⇄ the Arrow span table.

The receiver calls :func:`validate_request` (cheap, on the request path) and
:func:`json_to_protobuf` (JSON bodies); the pipeline calls :func:`decode_traces` on batches of
raw request bytes; the query side calls :func:`spans_to_request` and :func:`message_to_otlp_json`
to answer in OTLP.
"""

from lookout.otlp.encode import spans_to_request
from lookout.otlp.errors import OtlpDecodeError
from lookout.otlp.json import json_to_protobuf, message_to_otlp_json
from lookout.otlp.traces import decode_traces, decode_traces_reference
from lookout.otlp.validate import validate_request

__all__ = [
    "OtlpDecodeError",
    "decode_traces",
    "decode_traces_reference",
    "json_to_protobuf",
    "message_to_otlp_json",
    "spans_to_request",
    "validate_request",
]
