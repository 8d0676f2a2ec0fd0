"""Typed PromQL errors; ``error_type`` is what the Prometheus HTTP API puts in ``errorType``."""

from __future__ import annotations


class PromQLError(Exception):
    """A query failed. ``error_type`` is ``bad_data`` (parse/type errors, HTTP 400),
    ``execution`` (evaluation errors, HTTP 422), ``timeout`` or ``canceled`` (HTTP 503)."""

    def __init__(self, message: str, error_type: str = "execution") -> None:
        super().__init__(message)
        self.error_type = error_type


def bad_data(message: str) -> PromQLError:
    return PromQLError(message, "bad_data")


def execution(message: str) -> PromQLError:
    return PromQLError(message, "execution")


TOO_MANY_SAMPLES = "query processing would load too many samples into memory in query execution"
