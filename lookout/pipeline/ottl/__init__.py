"""OTTL (OpenTelemetry Transformation Language) boolean conditions, evaluated vectorized.

Processors (filter, tail sampling, routing) take conditions in the Collector's language so that
configs carry over; :func:`compile_condition` checks one at config load and
:meth:`Condition.evaluate` runs it over a whole batch (a :class:`~lookout.pipeline.values.Context`)
at once.
"""

from lookout.pipeline.ottl.evaluate import Condition, ValueKinds, compile_condition, hex_strings
from lookout.pipeline.ottl.parser import OttlError

__all__ = ["Condition", "OttlError", "ValueKinds", "compile_condition", "hex_strings"]
