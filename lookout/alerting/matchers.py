"""Alertmanager label matchers: ``a="b"``, ``a!="b"``, ``a=~"re"``, ``a!~"re"`` and ``{...}`` lists.

The grammar is Alertmanager's UTF-8 matcher grammar (``matchers/parse``): a token is ``{``, ``}``,
``,``, an operator, a double-quoted string (Go escapes) or an unquoted run of any characters that
are not whitespace or one of ``{}!=~,"'``` ``. Label names and values may each be quoted or not, so
``alertname=Foo``, ``"service name"="a b"`` and ``{env=~"prod|staging",}`` all parse, just as
``amtool`` accepts them. Regexes are fully anchored (``^(?:re)$``), as Alertmanager compiles them,
so ``job=~"api"`` does not match ``api-2``.

Shared by routing, inhibition, silences and the v2 API's ``filter[]`` so a matcher means the same
thing everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from lookout.gocompat import UnquoteError, unquote

__all__ = ["MatchType", "Matcher", "MatcherError", "parse_matcher", "parse_matchers", "matches_all"]


class MatcherError(ValueError):
    """A matcher that does not parse or whose regex does not compile."""


class MatchType(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"

    def __str__(self) -> str:
        return self.value


_RESERVED = set("{}!=~,\"'`")


def _is_reserved(ch: str) -> bool:
    return ch.isspace() or ch in _RESERVED


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher. Frozen so matchers can be dict keys and compared for silence updates."""

    name: str
    type: MatchType
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def create(cls, name: str, type_: MatchType | str, value: str) -> Matcher:
        """Build a matcher, compiling (and validating) its anchored regex once."""
        t = MatchType(type_)
        rx = None
        if t in (MatchType.RE, MatchType.NRE):
            try:
                rx = re.compile(f"^(?:{value})$")
            except re.error as e:
                raise MatcherError(f"invalid regular expression {value!r}: {e}") from None
        return cls(name, t, value, rx)

    @property
    def is_regex(self) -> bool:
        return self.type in (MatchType.RE, MatchType.NRE)

    @property
    def is_equal(self) -> bool:
        """True for ``=`` and ``=~`` (the v2 API's ``isEqual``)."""
        return self.type in (MatchType.EQ, MatchType.RE)

    def matches(self, value: str) -> bool:
        """Match one label value; a missing label is the empty string, as in Prometheus."""
        if self.type is MatchType.EQ:
            return value == self.value
        if self.type is MatchType.NE:
            return value != self.value
        assert self._regex is not None
        hit = self._regex.match(value) is not None
        return hit if self.type is MatchType.RE else not hit

    def matches_labels(self, labels: Mapping[str, str]) -> bool:
        return self.matches(labels.get(self.name, ""))

    def __str__(self) -> str:
        name = self.name if _plain_name(self.name) else _quote(self.name)
        return f"{name}{self.type.value}{_quote(self.value)}"

    def to_api(self) -> dict[str, object]:
        """The v2 API's matcher object."""
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}

    @classmethod
    def from_api(cls, obj: Mapping[str, object]) -> Matcher:
        """Parse the v2 API's matcher object (``isEqual`` defaults to true, as in Alertmanager)."""
        name = obj.get("name")
        value = obj.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            raise MatcherError("matcher needs string 'name' and 'value'")
        is_regex = bool(obj.get("isRegex", False))
        is_equal = obj.get("isEqual", True)
        is_equal = True if is_equal is None else bool(is_equal)
        t = {(False, True): MatchType.EQ, (False, False): MatchType.NE, (True, True): MatchType.RE,
             (True, False): MatchType.NRE}[(is_regex, is_equal)]
        return cls.create(name, t, value)


_PLAIN = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")


def _plain_name(s: str) -> bool:
    return bool(_PLAIN.match(s))


def _quote(s: str) -> str:
    # json.dumps gives Go-compatible escapes for the characters that matter (\" \\ \n \t, \uXXXX).
    return json.dumps(s, ensure_ascii=False)


def _unquote(tok: str, pos: int) -> str:
    """Go ``strconv.Unquote`` for a double-quoted string (the token includes the quotes)."""
    try:
        return unquote(tok[1:-1])
    except UnquoteError as e:
        raise MatcherError(f"{pos}: {e} {'of' if e.at_end else 'in'} {tok}") from None


def _tokens(s: str) -> list[tuple[str, str, int]]:
    """Split into (kind, text, column) tokens; kinds: ``{ } , op q u``."""
    toks: list[tuple[str, str, int]] = []
    i, n = 0, len(s)
    while i < n:
        ch = s[i]
        if ch.isspace():
            i += 1
        elif ch in "{},":
            toks.append((ch, ch, i))
            i += 1
        elif ch in "=!":
            if ch == "!":
                if i + 1 >= n or s[i + 1] not in "=~":
                    raise MatcherError(f"{i}:{i + 1}: {s[i:i + 2]}: expected one of '=~'")
                toks.append(("op", s[i : i + 2], i))
                i += 2
            else:
                j = i + 2 if i + 1 < n and s[i + 1] == "~" else i + 1
                toks.append(("op", s[i:j], i))
                i = j
        elif ch == '"':
            j = i + 1
            esc = False
            while j < n:
                c = s[j]
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    break
                j += 1
            if j >= n:
                raise MatcherError(f"{i}:{n}: {s[i:]}: missing end \"")
            toks.append(("q", s[i : j + 1], i))
            i = j + 1
        elif not _is_reserved(ch):
            j = i
            while j < n and not _is_reserved(s[j]):
                j += 1
            toks.append(("u", s[i:j], i))
            i = j
        else:
            raise MatcherError(f"{i}:{i + 1}: {ch}: invalid input")
    return toks


def _text(tok: tuple[str, str, int]) -> str:
    kind, text, pos = tok
    return _unquote(text, pos) if kind == "q" else text


def parse_matchers(s: str) -> list[Matcher]:
    """Parse ``{a="b", c=~"d"}`` or ``a="b", c=~"d"`` (braces optional, trailing comma allowed)."""
    toks = _tokens(s)
    i = 0
    braced = bool(toks) and toks[0][0] == "{"
    if braced:
        i = 1
    out: list[Matcher] = []
    while i < len(toks):
        kind = toks[i][0]
        if kind == "}":
            if not braced or i != len(toks) - 1:
                raise MatcherError(f"{toks[i][2]}: unexpected }}")
            return out
        if kind not in ("q", "u"):
            raise MatcherError(f"{toks[i][2]}: {toks[i][1]}: expected label name")
        if i + 1 >= len(toks) or toks[i + 1][0] != "op":
            raise MatcherError(f"{toks[i][2]}: {toks[i][1]}: expected an operator such as '=', '!=', '=~' or '!~'")
        name = _text(toks[i])
        op = toks[i + 1][1]
        if i + 2 < len(toks) and toks[i + 2][0] in ("q", "u"):
            value = _text(toks[i + 2])
            i += 3
        else:
            value = ""  # `a=` (empty value) is allowed, as in amtool
            i += 2
        if not name:
            raise MatcherError("label name must not be empty")
        out.append(Matcher.create(name, op, value))
        if i < len(toks):
            if toks[i][0] == ",":
                i += 1
            elif toks[i][0] != "}":
                raise MatcherError(f"{toks[i][2]}: {toks[i][1]}: expected ',' or '}}'")
    if braced:
        raise MatcherError(f"{len(s)}: unexpected end of input, expected '}}'")
    return out


def parse_matcher(s: str) -> Matcher:
    """Parse exactly one matcher."""
    ms = parse_matchers(s)
    if len(ms) != 1:
        raise MatcherError(f"expected exactly one matcher, got {len(ms)} in {s!r}")
    return ms[0]


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (an empty list matches everything)."""
    return all(m.matches_labels(labels) for m in matchers)


def format_matchers(matchers: Iterable[Matcher]) -> str:
    return "{" + ", ".join(str(m) for m in matchers) + "}"
