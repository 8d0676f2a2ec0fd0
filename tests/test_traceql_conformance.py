"""Tempo's TraceQL parser fixture as a conformance suite, read in place (AGPL: never copied)."""

from __future__ import annotations

import pytest

from lookout.traces.traceql import (
    TraceQLError,
    TraceQLParseError,
    TraceQLUnsupportedError,
    TraceQLValidationError,
    parse,
    validate,
)
from tests.conftest import SHARED

FIXTURE = SHARED / "conformance/traceql/tempo-agpl/test_examples.yaml"

pytestmark = pytest.mark.skipif(
    not FIXTURE.exists(), reason=f"Tempo's test_examples.yaml not found at {FIXTURE}"
)


def _load() -> dict[str, list[str]]:
    if not FIXTURE.exists():
        return {}
    import yaml

    data = yaml.safe_load(FIXTURE.read_text())
    return {k: list(v or []) for k, v in data.items()}


EXAMPLES = _load()


def _ids(section: str) -> list[str]:
    return EXAMPLES.get(section, [])


@pytest.mark.parametrize("query", _ids("valid"))
def test_valid_parses_validates_and_round_trips(query: str) -> None:
    try:
        tree = parse(query)
    except TraceQLUnsupportedError:
        return
    validate(tree)  # valid queries pass validation: neither invalid nor unsupported
    assert parse(str(tree)) == tree, str(tree)


@pytest.mark.parametrize("query", _ids("parse_fails"))
def test_parse_fails(query: str) -> None:
    with pytest.raises(TraceQLParseError) as info:
        parse(query)
    assert str(info.value).startswith("parse error at line ")


@pytest.mark.parametrize("query", _ids("validate_fails"))
def test_validate_fails(query: str) -> None:
    tree = parse(query)
    assert parse(str(tree)) == tree
    with pytest.raises(TraceQLValidationError):
        validate(tree)


@pytest.mark.parametrize("query", _ids("unsupported"))
def test_unsupported(query: str) -> None:
    tree = parse(query)
    assert parse(str(tree)) == tree
    with pytest.raises(TraceQLUnsupportedError):
        validate(tree)


def test_conformance_summary(capsys: pytest.CaptureFixture[str]) -> None:
    counts: dict[str, int] = {}
    valid = EXAMPLES.get("valid", [])
    counts["valid_parsed"] = 0
    counts["valid_validated"] = 0
    for q in valid:
        try:
            tree = parse(q)
        except TraceQLUnsupportedError:
            continue
        counts["valid_parsed"] += 1
        try:
            validate(tree)
            counts["valid_validated"] += 1
        except TraceQLError:
            pass
    counts["validate_fails_rejected"] = 0
    for q in EXAMPLES.get("validate_fails", []):
        try:
            validate(parse(q))
        except TraceQLValidationError:
            counts["validate_fails_rejected"] += 1
    with capsys.disabled():
        print(
            f"\nTempo test_examples.yaml: {counts['valid_parsed']}/{len(valid)} valid queries parse, "
            f"{counts['valid_validated']} validate; {counts['validate_fails_rejected']}/"
            f"{len(EXAMPLES.get('validate_fails', []))} validate_fails raise TraceQLValidationError"
        )
    assert counts["valid_parsed"] == len(valid)
    assert counts["validate_fails_rejected"] == len(EXAMPLES.get("validate_fails", []))
