"""Metrics: Prometheus series from OTLP and remote write, the series store, PromQL, the Prometheus API."""
