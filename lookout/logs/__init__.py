"""Logs: streams from OTLP and the Loki push API, the log store, LogQL, the Loki API."""
