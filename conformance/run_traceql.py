"""TraceQL conformance runner over Tempo's parser fixture (read in place, never copied: AGPL).

Every ``valid`` query must parse, validate and round-trip through ``str()``; every
``parse_fails`` query must raise a parse error; every ``validate_fails`` query a validation
error; every ``unsupported`` query must parse and then be refused as unsupported. Also counts
how many valid queries the search engine can execute today (planned to SQL). Prints
``N passed, M failed`` and the failures; exits non-zero on any failure."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lookout.traces.traceql import (  # noqa: E402
    TraceQLParseError,
    TraceQLUnsupportedError,
    TraceQLValidationError,
    parse,
    validate,
)
from lookout.traces.traceql.sql import plan  # noqa: E402


def check(section: str, query: str) -> str | None:
    """None when the query behaves as its section says, else what went wrong."""
    try:
        tree = parse(query)
    except TraceQLParseError as e:
        return None if section == "parse_fails" else f"parse error: {e}"
    if section == "parse_fails":
        return "parsed, expected a parse error"
    try:
        validate(tree)
    except TraceQLValidationError as e:
        return None if section == "validate_fails" else f"validation error: {e}"
    except TraceQLUnsupportedError as e:
        return None if section == "unsupported" else f"unsupported: {e}"
    if section in ("validate_fails", "unsupported"):
        return f"validated, expected {section}"
    if parse(str(tree)) != tree:
        return f"does not round-trip: {tree}"
    return None


def main(fixture: Path) -> int:
    data = yaml.safe_load(fixture.read_text())
    passed, failures, executable = 0, [], 0
    for section in ("valid", "parse_fails", "validate_fails", "unsupported"):
        for query in data.get(section) or []:
            problem = check(section, query)
            if problem is None:
                passed += 1
            else:
                failures.append(f"[{section}] {query!r}: {problem}")
            if section == "valid":
                try:
                    plan(parse(query))
                    executable += 1
                except (TraceQLUnsupportedError, TraceQLValidationError):
                    pass
    for f in failures:
        print("FAIL", f)
    print(f"traceql: {executable} of {len(data.get('valid') or [])} valid queries executable by search today")
    print(f"traceql: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[2] / "shared/conformance/traceql/tempo-agpl/test_examples.yaml"
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else default))
