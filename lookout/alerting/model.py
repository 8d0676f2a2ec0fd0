"""The alert as it travels from rule evaluation to notification (Alertmanager's model).

The evaluator produces these for firing (``ends_at`` in the future: Prometheus sends
``now + 4 * max(eval interval, resend delay)``) and resolved alerts (``ends_at`` = resolution
time); the dispatcher groups, inhibits, silences and routes them; the Alertmanager v2 API and
the webhook payload serialize them. Times are Unix seconds (float).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def fingerprint(labels: dict[str, str]) -> str:
    """A stable 16-hex-digit id of a label set (Alertmanager's is FNV-64a over sorted pairs;
    only stability and uniqueness matter to users)."""
    h = hashlib.blake2b(digest_size=8)
    for k in sorted(labels):
        h.update(k.encode())
        h.update(b"\xff")
        h.update(labels[k].encode())
        h.update(b"\xfe")
    return h.hexdigest()


@dataclass(slots=True)
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: float = 0.0
    ends_at: float = 0.0  # 0: unknown (still firing, no end given)
    generator_url: str = ""
    updated_at: float = 0.0

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    def resolved(self, now: float) -> bool:
        return self.ends_at != 0.0 and self.ends_at <= now
