"""What every receiver does once it holds a decoded-enough request: the transport-neutral core.

A request is checked (cheap upb parse, id lengths), charged against the in-flight memory budget,
appended raw to the durable log, and only then acknowledged. Each refusal is a typed exception
that the HTTP and gRPC front ends map onto their own status codes, so both transports give the
same answers and count the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from lookout.buffer.log import Log, LogFull
from lookout.config import Ingest, valid_tenant
from lookout.ingest import formats
from lookout.otlp import OtlpDecodeError, json_to_protobuf, validate_request
from lookout.pipeline.memory_limiter import MemoryLimitExceeded
from lookout.pipeline.request import ProcessingError, RequestPipeline
from lookout.selfmon.registry import Registry

log = logging.getLogger(__name__)

ITEM_NAME = {"traces": "spans", "metrics": "data_points", "logs": "log_records"}


class BadRequest(Exception):
    """Malformed input: never retryable (HTTP 400 / gRPC INVALID_ARGUMENT)."""


class TooLarge(Exception):
    """Request body over ``ingest.max_request_bytes`` (HTTP 413 / gRPC RESOURCE_EXHAUSTED)."""


class Overloaded(Exception):
    """Retryable refusal: memory budget or log full (HTTP 429/503 / gRPC RESOURCE_EXHAUSTED or
    UNAVAILABLE), with a hint of when to retry."""

    def __init__(self, message: str, retry_after_s: float, *, unavailable: bool = False,
                 reason: str = "overloaded") -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.unavailable = unavailable
        self.reason = reason


@dataclass(slots=True)
class Accepted:
    items: int
    offset: int


Validator = Callable[[bytes, str], int]
"""``(body, tenant)``: checks a body of one wire format and returns its item count; raises ValueError
naming the problem, or :class:`Overloaded` when a per-tenant limit refuses it."""

LimitCheck = Callable[[str, str, int], None]
"""``(signal, tenant, items)``: raises :class:`Overloaded` when a per-tenant limit refuses them."""


class InflightBudget:
    """Bounds the request bytes held in memory at once; over it, refuse instead of growing."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def try_acquire(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def release(self, n: int) -> None:
        self.used -= n


class Receiver:
    def __init__(self, log_: Log, cfg: Ingest, registry: Registry) -> None:
        self.log = log_
        self.cfg = cfg
        self.budget = InflightBudget(cfg.max_inflight_bytes)
        self.ready = False
        self._validators: dict[tuple[str, str], Validator] = {}
        self._limits: list[LimitCheck] = []
        self.pipelines: dict[str, RequestPipeline] = {}
        self._received_items = registry.counter(
            "lookout_receiver_accepted_items_total", "Items (spans, data points, log records) accepted.")
        self._received_bytes = registry.counter(
            "lookout_receiver_accepted_bytes_total", "Request bytes (uncompressed protobuf) accepted.")
        self._refused = registry.counter(
            "lookout_receiver_refused_requests_total", "Requests refused, by reason.")
        self._refused_bytes = registry.counter(
            "lookout_receiver_refused_bytes_total", "Request bytes refused, by reason.")
        registry.add_collector(self._collect)

    def _collect(self):
        yield ("lookout_receiver_inflight_bytes", "gauge", "Request bytes held in memory now.",
               [("lookout_receiver_inflight_bytes", {}, self.budget.used)])

    def register_format(self, signal: str, fmt: str, validate: Validator) -> None:
        """Accept ``fmt`` bodies for ``signal`` (remote write, Loki push); the signal packages own
        their decoders, so the receiver only learns them here, from app.py."""
        self._validators[(signal, fmt)] = validate

    def add_limit(self, check: LimitCheck) -> None:
        self._limits.append(check)

    def resolve_tenant(self, header_value: str | None) -> str:
        tenant = (header_value or "").strip() or self.cfg.default_tenant
        if not valid_tenant(tenant):
            raise BadRequest(f'{self.cfg.tenant_header}: invalid tenant id "{tenant[:64]}" (expected 1-150 '
                             "characters of letters, digits and !_.*'()-)")
        return tenant

    def refuse(self, signal: str, tenant: str, reason: str, nbytes: int) -> None:
        self._refused.inc(signal=signal, tenant=tenant, reason=reason)
        self._refused_bytes.inc(nbytes, signal=signal, tenant=tenant, reason=reason)

    def check_size(self, signal: str, nbytes: int) -> None:
        if nbytes > self.cfg.max_request_bytes:
            raise TooLarge(f"request body of {nbytes} bytes exceeds the limit of "
                           f"{self.cfg.max_request_bytes} bytes (ingest.max_request_bytes)")

    async def export(self, signal: str, tenant_value: str | None, body: bytes, *, is_json: bool = False,
                     fmt: str = formats.OTLP) -> Accepted:
        """Resolve the tenant, check and durably append one request; every refusal is counted
        here, once, by reason. ``body`` is the uncompressed request."""
        tenant = "unknown"
        try:
            tenant = self.resolve_tenant(tenant_value)
            self.check_size(signal, len(body))
            if is_json:
                try:
                    body = json_to_protobuf(signal, body)
                except OtlpDecodeError as e:
                    raise BadRequest(str(e)) from e
            return await self._accept(signal, tenant, body, fmt)
        except BadRequest:
            self.refuse(signal, tenant, "malformed", len(body))
            raise
        except TooLarge:
            self.refuse(signal, tenant, "too_large", len(body))
            raise
        except Overloaded as e:
            self.refuse(signal, tenant, e.reason, len(body))
            raise

    async def _accept(self, signal: str, tenant: str, body: bytes, fmt: str) -> Accepted:
        if not self.ready:
            raise Overloaded("Lookout is starting up (replaying its write-ahead log)", 1.0,
                             unavailable=True, reason="not_ready")
        if not self.budget.try_acquire(len(body)):
            raise Overloaded(f"in-flight request memory is over its limit of {self.budget.limit} bytes "
                             "(ingest.max_inflight_bytes)", 1.0, reason="memory_limit")
        charged = len(body)
        try:
            items = self._validate(signal, fmt, body, tenant)
            if items == 0:
                return Accepted(0, -1)  # nothing to store; OTLP says succeed
            for check in self._limits:
                check(signal, tenant, items)
            pipeline = self.pipelines.get(signal)
            if pipeline is not None:
                body, items = await self._process(pipeline, body, tenant, items, fmt)
                if body is None:
                    return Accepted(0, -1)  # every item was filtered out: success, nothing stored
            try:
                offset = await self.log.append(signal, tenant, formats.wrap(signal, fmt, body))
            except LogFull as e:
                raise Overloaded(str(e), e.retry_after_s, reason="log_full") from e
        finally:
            self.budget.release(charged)
        self._received_items.inc(items, signal=signal, tenant=tenant)
        self._received_bytes.inc(len(body), signal=signal, tenant=tenant)
        return Accepted(items, offset)

    @staticmethod
    async def _process(pipeline: RequestPipeline, body: bytes, tenant: str,
                       items: int, fmt: str = formats.OTLP) -> tuple[bytes | None, int]:
        """The request processors (memory limiter, filter, attributes, redaction) before the
        log; the decode/encode runs off the event loop. Loki push and remote-write bodies
        (already validated) get the redaction processors only, in their own format."""
        try:
            pipeline.admit(items)
        except MemoryLimitExceeded as e:
            raise Overloaded(str(e), e.retry_after_s, reason="memory_limiter") from e
        if not pipeline.transforms:
            return body, items
        if fmt != formats.OTLP:  # push formats get only redaction (RequestPipeline.process_push)
            if not pipeline.redacts_push:
                return body, items
            try:
                return await asyncio.to_thread(pipeline.process_push, fmt, body, tenant)
            except ValueError as e:  # the format's decoder, should the validated body still fail
                raise BadRequest(str(e)) from e
        try:
            return await asyncio.to_thread(pipeline.process, body, tenant)
        except ProcessingError as e:
            raise BadRequest(str(e)) from e

    def _validate(self, signal: str, fmt: str, body: bytes, tenant: str) -> int:
        if fmt == formats.OTLP:
            try:
                return validate_request(signal, body)
            except OtlpDecodeError as e:
                raise BadRequest(str(e)) from e
        validate = self._validators.get((signal, fmt))
        if validate is None:
            raise BadRequest(f"{fmt} payloads are not accepted for {signal}")
        try:
            return validate(body, tenant)
        except ValueError as e:
            raise BadRequest(str(e)) from e
