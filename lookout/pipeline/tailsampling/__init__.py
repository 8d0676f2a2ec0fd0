"""Tail sampling with the OpenTelemetry Collector's ``tail_sampling`` semantics.

``parse_config`` validates the Collector's config block, ``TailSampler`` holds spans per trace
and decides them ``decision_wait`` after their first span (``processor.py``), with vectorized
policy evaluators (``policies.py``). Behaviour, quirks included, follows
``/work/shared/conformance/tailsampling/NOTES.md`` so Collector configs keep their meaning.
"""

from lookout.pipeline.tailsampling.config import PolicyConfig, TailSamplingConfig, parse_config
from lookout.pipeline.tailsampling.processor import TailSampler

__all__ = ["PolicyConfig", "TailSampler", "TailSamplingConfig", "parse_config"]
