"""How a metrics or logs payload says what it is, once it sits in the write-ahead log.

Several wire formats feed one signal's log (OTLP and Prometheus remote write for metrics, OTLP
and the Loki push API for logs), and the consumer must know how to decode each record. So every
metrics and logs record starts with one format byte; traces have only OTLP and carry none.
"""

from __future__ import annotations

OTLP = "otlp"  # ExportMetricsServiceRequest / ExportLogsServiceRequest protobuf
PROM_REMOTE_WRITE = "prom_rw"  # prometheus.WriteRequest, snappy block-compressed, as received
LOKI_PUSH = "loki_push"  # logproto.PushRequest protobuf, snappy block-compressed, as received
LOKI_JSON = "loki_json"  # the Loki push API's JSON body, uncompressed

_TAGS = {OTLP: 1, PROM_REMOTE_WRITE: 2, LOKI_PUSH: 3, LOKI_JSON: 4}
_FORMATS = {v: k for k, v in _TAGS.items()}
TAGGED_SIGNALS = frozenset({"metrics", "logs"})


def wrap(signal: str, fmt: str, body: bytes) -> bytes:
    """The log payload for ``body``: tagged for metrics and logs, as is for traces."""
    if signal not in TAGGED_SIGNALS:
        return body
    return bytes((_TAGS[fmt],)) + body


def unwrap(payload: bytes) -> tuple[str, bytes]:
    """``(format, body)`` of a metrics or logs log record."""
    if not payload:
        raise ValueError("empty log record: no format byte")
    fmt = _FORMATS.get(payload[0])
    if fmt is None:
        raise ValueError(f"unknown payload format byte {payload[0]}")
    return fmt, payload[1:]
