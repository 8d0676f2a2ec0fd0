"""Inhibition: a firing *source* alert mutes *target* alerts that share the ``equal`` labels.

Alertmanager semantics (``inhibit/inhibit.go``): for each rule, every firing alert matching the
source matchers is remembered; a label set is inhibited when it matches the target matchers and
some remembered, still-firing source has the same value for every ``equal`` label (a label
missing on both sides counts as equal). When an alert matches both the source and the target
matchers of a rule, sources that also match the target side are skipped, so such an alert can
never inhibit itself or its twins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lookout.alerting.amconfig import InhibitRule
from lookout.alerting.matchers import matches_all
from lookout.alerting.model import Alert, fingerprint

__all__ = ["Inhibitor"]


class Inhibitor:
    def __init__(self, rules: Iterable[InhibitRule]) -> None:
        self.rules = list(rules)
        # Per rule: fingerprint -> source alert. Kept current by observe(); resolved sources are
        # filtered at query time because resolution is a matter of the clock, not of an event.
        self._sources: list[dict[str, Alert]] = [{} for _ in self.rules]

    def observe(self, alert: Alert) -> None:
        """Record a new or updated alert (called for every alert the notifier ingests)."""
        fp = alert.fingerprint
        for rule, cache in zip(self.rules, self._sources, strict=True):
            if matches_all(rule.source_matchers, alert.labels):
                cache[fp] = alert
            else:
                cache.pop(fp, None)

    def forget(self, fingerprints: Iterable[str]) -> None:
        fps = set(fingerprints)
        for cache in self._sources:
            for fp in fps & cache.keys():
                del cache[fp]

    def mutes(self, labels: Mapping[str, str], now: float) -> list[str]:
        """Fingerprints of the firing source alerts that inhibit ``labels`` (empty: not inhibited)."""
        out: set[str] = set()
        own_fp = None
        for rule, cache in zip(self.rules, self._sources, strict=True):
            if not matches_all(rule.target_matchers, labels):
                continue
            two_sided = matches_all(rule.source_matchers, labels)
            for fp, src in cache.items():
                if src.resolved(now):
                    continue
                if two_sided and matches_all(rule.target_matchers, src.labels):
                    continue
                if all(src.labels.get(n, "") == labels.get(n, "") for n in rule.equal):
                    if own_fp is None:
                        own_fp = fingerprint(dict(labels))
                    if fp != own_fp:
                        out.add(fp)
                        break
        return sorted(out)
