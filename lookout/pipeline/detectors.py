"""Built-in secret/PII detectors and :class:`Redactor`, the vectorized string redactor.

Why this module exists apart from the redaction processor: the same "find secrets in a column of
strings and mask or hash them" step is needed wherever text enters Lookout (OTLP attributes and
bodies here; Loki push lines later), and it must never loop over rows in Python.

How a column is redacted (``Redactor.redact``):

1. ``allowed_values`` regexes mark rows that are left alone entirely (Collector semantics).
2. One ``match_substring_regex`` with every rule OR-ed together finds the few candidate rows;
   all further work touches only those.
3. Per rule, in order (detectors, then ``blocked_values`` in config order), RE2 rewrites each
   match into ``prefix \\0 secret \\0 suffix``. ``split_pattern`` on NUL turns every row into a
   list whose odd items are exactly the secrets, so validators (Luhn, IBAN mod-97) and the
   hash run over a flat array of secrets, and ``binary_join`` glues the rows back. Rows that
   already contain a NUL cannot be split safely; when a rule matches such a row the whole
   value is masked (rare, and errs on the side of hiding).
4. Masking is a scalar replacement. Hashing calls ``hashlib`` once per *secret found* (not per
   row): the only Python loop, and it runs only over real matches.

Luhn and mod-97 run in numpy over the digit bytes of all candidate matches at once.

Rule names are the stats labels: ``email``, ``credit_card``, ``iban``, ``jwt``,
``bearer_token``, ``api_key``, ``url_params``, ``blocked_values[i]``. A match that is already
the mask (or, when hashing, already a digest of the configured length) is not redacted again,
so overlapping rules (a JWT inside ``Authorization: Bearer ...``) count once.

Regexes are RE2 (what Arrow uses and what the Collector's Go ``regexp`` accepts), so a
``blocked_values`` list pasted from a Collector config means the same here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HASH_FUNCTIONS = ("md5", "sha1", "sha3", "hmac-sha256", "hmac-sha512")
ACTIONS = ("mask", "hash")
DEFAULT_MASK = "****"
_SEP = "\x00"


# --------------------------------------------------------------------------------------------
# Validators: numpy over all candidate matches at once
# --------------------------------------------------------------------------------------------


def _bytes_of(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int64 offsets of length n+1 starting at 0, uint8 data) of a string array without nulls."""
    arr = arr.cast(pa.large_string()) if not pa.types.is_large_string(arr.type) else arr
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    start = int(offsets[0]) if len(offsets) else 0
    return offsets - start, data[start : start + (int(offsets[-1]) - start if len(offsets) else 0)]


def _positions(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every byte: (index of its string, index of the byte within its string)."""
    lengths = np.diff(offsets)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    within = np.arange(int(offsets[-1]) if len(offsets) else 0) - offsets[:-1][owner]
    return owner, within


def luhn_valid(candidates: pa.Array) -> np.ndarray:
    """True where the digits of a candidate (separators ignored) number 13-19 and pass Luhn.

    Why Luhn: 13-19 digit runs are everywhere in telemetry (ids, counters); only ~1 in 10
    passes the checksum, and every real card number does.
    """
    digits = pc.replace_substring_regex(candidates, "[^0-9]", "")
    offsets, data = _bytes_of(digits)
    lengths = np.diff(offsets)
    owner, within = _positions(offsets)
    value = data.astype(np.int64) - 48
    from_right = lengths[owner] - 1 - within
    doubled = value * 2
    doubled -= np.where(doubled > 9, 9, 0)
    value = np.where(from_right % 2 == 1, doubled, value)
    sums = np.bincount(owner, weights=value, minlength=len(lengths)).astype(np.int64)
    return (sums % 10 == 0) & (lengths >= 13) & (lengths <= 19)


def iban_valid(candidates: pa.Array) -> np.ndarray:
    """True where a candidate (spaces ignored) is 15-34 characters and passes ISO 13616 mod-97.

    The remainder is computed column by column over a (matches x 34) matrix, so the loop runs
    34 times regardless of how many candidates there are.
    """
    compact = pc.utf8_upper(pc.replace_substring(candidates, " ", ""))
    n = len(compact)
    offsets, data = _bytes_of(compact)
    lengths = np.diff(offsets)
    ok = (lengths >= 15) & (lengths <= 34)
    if n == 0:
        return ok
    owner, within = _positions(offsets)
    # rearranged: characters 4.. first, then the first four
    rearranged = np.where(within >= 4, within - 4, within + lengths[owner] - 4)
    grid = np.full((n, 34), -1, dtype=np.int64)
    keep = rearranged < 34
    chars = data.astype(np.int64)
    vals = np.where(chars >= 65, chars - 55, chars - 48)
    grid[owner[keep], rearranged[keep]] = vals[keep]
    state = np.zeros(n, dtype=np.int64)
    for col in range(34):
        v = grid[:, col]
        mult = np.where(v >= 10, 100, 10)
        state = np.where(v >= 0, (state * mult + np.maximum(v, 0)) % 97, state)
    return ok & (state == 1)


# --------------------------------------------------------------------------------------------
# Detectors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pattern:
    """One RE2 rule: ``prefix`` and ``suffix`` are matched but kept, ``secret`` is replaced.

    Why the split: RE2 has no lookaround, so context such as ``Bearer `` or ``password=`` must
    be part of the match; the groups let the rewrite keep it.
    """

    secret: str
    prefix: str = ""
    suffix: str = ""
    flags: str = ""

    @property
    def regex(self) -> str:
        return f"{self.flags}({self.prefix})({self.secret})({self.suffix})"


@dataclass(frozen=True, slots=True)
class Detector:
    name: str
    patterns: tuple[Pattern, ...]
    validator: Callable[[pa.Array], np.ndarray] | None = None
    # values of attribute keys matching these are masked whole (e.g. an Authorization header)
    key_patterns: tuple[str, ...] = ()
    doc: str = ""


_CARD = (
    r"[2-6][0-9]{3}(?:[ -][0-9]{4}){3}"  # 4-4-4-4
    r"|3[0-9]{3}[ -][0-9]{6}[ -][0-9]{4,5}"  # Amex 4-6-5, Diners 4-6-4
    r"|[2-6][0-9]{12,18}"  # contiguous 13-19
)
_KV_NAMES = (
    r"api[_-]?key|apikey|access[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token"
    r"|token|password|passwd|pwd|secret|signature|credential"
)
_QS_NAMES = (
    r"access[_-]?token|refresh[_-]?token|id[_-]?token|api[_-]?key|apikey|token|key|password"
    r"|passwd|pwd|secret|sig|signature|auth|credential|session[_-]?id"
)

DETECTORS: dict[str, Detector] = {
    d.name: d
    for d in (
        Detector(
            "jwt",
            (Pattern(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"),),
            doc="three base64url segments, the header starting eyJ",
        ),
        Detector(
            "api_key",
            (
                Pattern(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),  # AWS access key id
                Pattern(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})"),
                Pattern(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),  # Slack
                Pattern(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),  # Stripe
                Pattern(r"\bAIza[0-9A-Za-z_-]{35}"),  # Google API key
                Pattern(r"""[^\s"'&,;]+""", prefix=rf"""(?:{_KV_NAMES})["']?\s*[:=]\s*["']?""",
                        flags="(?i)"),  # key=value / "key": "value"
            ),
            key_patterns=(r"(?i)(^|[._-])(x[._-])?(api[._-]?key|apikey|password|passwd|secret"
                          r"|client[._-]?secret|private[._-]?key|(access|refresh|auth|id)?[._-]?token)$",),
            doc="AWS, GitHub, Slack, Stripe, Google key formats; api_key=/token=/password=/"
                "secret= in key=value text; whole values of keys named like secrets",
        ),
        Detector(
            "bearer_token",
            (
                # "Bearer" as written in headers (prose says "bearer"); tokens are 8+ chars
                Pattern(r"[A-Za-z0-9\-._~+/]{8,}=*", prefix=r"\b(?:Bearer|BEARER)\s+"),
                Pattern(
                    r"""[^\s"',;]+""",
                    prefix=r"""\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?"""
                           r"(?:(?:basic|bearer|digest|token|negotiate|ntlm|aws4-hmac-sha256)\s+)?",
                    flags="(?i)",
                ),
            ),
            key_patterns=(r"(?i)(^|[._-])(proxy[._-])?authorization$",
                          r"(?i)(^|[._-])(set[._-])?cookie$"),
            doc="Bearer <token> (8+ chars); Authorization header values (also whole values of "
                "*.authorization / *.cookie keys)",
        ),
        Detector(
            "url_params",
            (
                Pattern(r"""[^&#\s"']+""", prefix=rf"[?&;](?:[^=&#\s;?]*[_.-])?(?:{_QS_NAMES})=",
                        flags="(?i)"),
                Pattern(r"[^/\s@:]+", prefix=r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:", suffix="@",
                        flags="(?i)"),
            ),
            doc="URL query parameters named like secrets; the password in scheme://user:pw@",
        ),
        Detector(
            "email",
            (Pattern(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"),),
            doc="local@domain.tld",
        ),
        Detector(
            "credit_card",
            (Pattern(_CARD, prefix=r"^|[^0-9]"),),
            validator=luhn_valid,
            doc="13-19 digits starting 2-6, contiguous or 4-4-4-4 / 4-6-5 / 4-6-4 grouped with "
                "space or dash; Luhn-checked",
        ),
        Detector(
            "iban",
            (Pattern(r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?",
                     prefix=r"^|[^A-Za-z0-9]"),),
            validator=iban_valid,
            doc="ISO 13616, compact or in groups of four; mod-97 checked",
        ),
    )
}
DETECTOR_NAMES: tuple[str, ...] = tuple(DETECTORS)


def regex_error(pattern: str) -> str | None:
    """RE2's complaint about ``pattern``, or None when it compiles (config validation)."""
    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        return str(exc)
    return None


def make_hasher(name: str, hmac_key: str | None = None) -> Callable[[str], str]:
    """The hex digest function the Collector's ``hash_function`` names (sha3 is SHA3-256)."""
    if name == "md5":
        return lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: S324 - Collector compat
    if name == "sha1":
        return lambda s: hashlib.sha1(s.encode()).hexdigest()  # noqa: S324 - Collector compat
    if name == "sha3":
        return lambda s: hashlib.sha3_256(s.encode()).hexdigest()
    if name in ("hmac-sha256", "hmac-sha512"):
        key = (hmac_key or "").encode()
        digest = hashlib.sha256 if name == "hmac-sha256" else hashlib.sha512
        return lambda s: hmac.new(key, s.encode(), digest).hexdigest()
    raise ValueError(f"unknown hash_function {name!r}; expected one of {', '.join(HASH_FUNCTIONS)}")


# --------------------------------------------------------------------------------------------
# The redactor
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Rule:
    name: str
    regex: str
    validator: Callable[[pa.Array], np.ndarray] | None = None


class Redactor:
    """Masks or hashes secrets in a string column; reusable by any receiver.

    ``detectors`` names built-ins (:data:`DETECTOR_NAMES`, all by default); ``blocked_values``
    and ``allowed_values`` are Collector-style RE2 regexes; ``action`` is ``mask`` or ``hash``
    (a ``hash_function`` implies hash; hash without one uses sha3). Raises ``ValueError`` on an
    unknown detector, action or hash function or a bad regex (callers that want per-key config
    messages validate first with :func:`regex_error`).
    """

    def __init__(self, detectors: Iterable[str] | None = None, blocked_values: Sequence[str] = (),
                 allowed_values: Sequence[str] = (), action: str = "mask",
                 hash_function: str | None = None, mask: str = DEFAULT_MASK, *,
                 hmac_key: str | None = None) -> None:
        names = DETECTOR_NAMES if detectors is None else tuple(detectors)
        unknown = [n for n in names if n not in DETECTORS]
        if unknown:
            raise ValueError(f"unknown detector {unknown[0]!r}; expected one of "
                             f"{', '.join(DETECTOR_NAMES)}")
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected mask or hash")
        if hash_function is not None or action == "hash":
            self.hash: Callable[[str], str] | None = make_hasher(hash_function or "sha3", hmac_key)
            self._digest_len = len(self.hash(""))
        else:
            self.hash, self._digest_len = None, 0
        self.mask = mask
        # detectors run in registry order (specific formats before generic key=value)
        chosen = [DETECTORS[n] for n in DETECTOR_NAMES if n in names]
        self.rules: list[_Rule] = [
            _Rule(d.name, p.regex, d.validator) for d in chosen for p in d.patterns
        ]
        self.rules += [_Rule(f"blocked_values[{i}]", Pattern(p).regex)
                       for i, p in enumerate(blocked_values)]
        self.allowed_values = list(allowed_values)
        self.key_rules: list[tuple[str, str]] = [
            (d.name, kp) for d in chosen for kp in d.key_patterns
        ]
        for regex in [r.regex for r in self.rules] + self.allowed_values + [
                k for _, k in self.key_rules]:
            err = regex_error(regex)
            if err:
                raise ValueError(f"invalid regex {regex!r}: {err}")
        self._any = "|".join(f"(?:{r.regex})" for r in self.rules) if self.rules else None
        self._mask_rewrite = mask.replace("\\", "\\\\")

    # -- public ---------------------------------------------------------------------------

    def allowed(self, values: pa.Array) -> np.ndarray:
        """True where some ``allowed_values`` regex matches (nulls never match)."""
        out = np.zeros(len(values), dtype=np.bool_)
        for regex in self.allowed_values:
            hit = pc.match_substring_regex(values, regex)
            out |= hit.fill_null(False).to_numpy(zero_copy_only=False)
        return out

    def replace_whole(self, values: pa.Array) -> pa.Array:
        """Every value replaced by the mask, or by the hash of the whole value (blocked keys).

        A null is treated as "" — what the Collector's ``Str()`` gives for a non-string value.
        """
        values = _as_array(values)
        if self.hash is None:
            return pa.array(np.full(len(values), self.mask, dtype=object), pa.string())
        return pa.array([self.hash(s) for s in values.fill_null("").to_pylist()], pa.string())

    def redact(self, values: pa.Array | pa.ChunkedArray,
               skip: np.ndarray | None = None) -> tuple[pa.Array, dict[str, int]]:
        """(redacted copy of ``values``, number of values each rule changed).

        ``skip`` marks rows to leave alone in addition to ``allowed_values`` matches. The
        result has the input's type and nulls; unchanged rows are the same strings.
        """
        values = _as_array(values)
        counts: dict[str, int] = {}
        if self._any is None or len(values) == 0:
            return values, counts
        cand = pc.match_substring_regex(values, self._any).fill_null(False)
        cand = cand.to_numpy(zero_copy_only=False)
        if self.allowed_values:
            cand &= ~self.allowed(values)
        if skip is not None:
            cand &= ~skip
        idx = np.flatnonzero(cand)
        if idx.size == 0:
            return values, counts
        sub = values.take(pa.array(idx))
        has_nul = pc.match_substring(sub, _SEP).to_numpy(zero_copy_only=False)
        for rule in self.rules:
            sub = self._apply(rule, sub, has_nul, counts)
        mask = np.zeros(len(values), dtype=np.bool_)
        mask[idx] = True
        out = pc.replace_with_mask(values, pa.array(mask), sub.cast(values.type))
        return out, counts

    # -- internals ------------------------------------------------------------------------

    def _replacement(self, secrets: pa.Array) -> pa.Array:
        if self.hash is None:
            return pa.array(np.full(len(secrets), self.mask, dtype=object), secrets.type)
        # the only per-item Python: one digest per secret actually found
        return pa.array([self.hash(s) for s in secrets.to_pylist()], secrets.type)

    def _already_redacted(self, secrets: pa.Array) -> np.ndarray:
        done = pc.equal(secrets, self.mask)
        if self.hash is not None:
            done = pc.or_(done, pc.match_substring_regex(secrets, f"^[0-9a-f]{{{self._digest_len}}}$"))
        return done.to_numpy(zero_copy_only=False)

    def _apply(self, rule: _Rule, sub: pa.Array, has_nul: np.ndarray,
               counts: dict[str, int]) -> pa.Array:
        hit = pc.match_substring_regex(sub, rule.regex).fill_null(False).to_numpy(
            zero_copy_only=False)
        if not hit.any():
            return sub
        changed_rows = np.zeros(len(sub), dtype=np.bool_)
        # rows containing NUL cannot be split on it: mask them whole
        nul_rows = hit & has_nul
        if nul_rows.any():
            sub = pc.replace_with_mask(sub, pa.array(nul_rows),
                                       self.replace_whole(sub.filter(pa.array(nul_rows))))
            changed_rows |= nul_rows
            hit &= ~nul_rows
        rows = np.flatnonzero(hit)
        if rows.size:
            part = sub.take(pa.array(rows))
            marked = pc.replace_substring_regex(part, rule.regex, f"\\1{_SEP}\\2{_SEP}\\3")
            pieces = pc.split_pattern(marked, _SEP)
            flat = pieces.flatten()
            offsets = pieces.offsets.to_numpy()
            parent = pc.list_parent_indices(pieces).to_numpy()
            pos = np.arange(len(flat)) - (offsets[:-1] - offsets[0])[parent]
            secret_idx = np.flatnonzero(pos % 2 == 1)
            secrets = flat.take(pa.array(secret_idx))
            ok = ~self._already_redacted(secrets)
            if rule.validator is not None:
                ok &= rule.validator(secrets)
            secret_idx = secret_idx[ok]
            if secret_idx.size:
                repl_mask = np.zeros(len(flat), dtype=np.bool_)
                repl_mask[secret_idx] = True
                flat = pc.replace_with_mask(flat, pa.array(repl_mask),
                                            self._replacement(secrets.filter(pa.array(ok))))
            joined = pc.binary_join(
                pa.ListArray.from_arrays(pa.array(offsets - offsets[0], pa.int32()), flat), "")
            row_changed = np.zeros(len(rows), dtype=np.bool_)
            row_changed[parent[secret_idx]] = True
            upd = np.zeros(len(sub), dtype=np.bool_)
            upd[rows] = True
            sub = pc.replace_with_mask(sub, pa.array(upd), joined.cast(sub.type))
            changed_rows[rows[row_changed]] = True
        n = int(changed_rows.sum())
        if n:
            counts[rule.name] = counts.get(rule.name, 0) + n
        return sub


def _as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values
