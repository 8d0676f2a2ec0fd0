"""Lookout: a self-hosted, OpenTelemetry-native observability platform."""
__version__ = "0.1.0"
