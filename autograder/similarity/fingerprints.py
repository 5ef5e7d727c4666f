"""A submission's code as a set of fingerprints that survive disguise.

The code is read with Python's own :mod:`tokenize` (never parsed, never run)
and reduced to what copying keeps:

- comments, docstrings (any statement that is only a string) and layout
  (indentation, line breaks, spacing, parentheses across lines) are dropped:
  reformatting or commenting a copy changes nothing;
- every identifier becomes ``V``, every string ``S`` and every number ``N``:
  renaming variables changes nothing; keywords and operators stay, they are
  the code's structure;
- the tokens are cut into units, one per function, method, class header or
  other top-level statement, and no k-gram crosses a unit's edge: reordering
  functions (or methods) changes nothing.

The k-grams of ``K`` tokens of each unit are hashed (a stable hash: the same
code has the same fingerprints in every process) and winnowed (Schleimer,
Wilkerson and Aiken, "Winnowing: local algorithms for document
fingerprinting", SIGMOD 2003, the method behind MOSS): the smallest hash of
every ``W`` consecutive k-grams is kept, so a match of ``K + W - 1`` tokens or
more is always found and shorter ones (idioms every solution has) are not.

Every k-gram of the assignment's template (stubs, docstrings, signatures: the
code every student starts from) is removed from every submission's
fingerprints, so two untouched templates share nothing.

Student code is hostile: a file that does not tokenize (an unterminated
string, a NUL byte, bad indentation) is fingerprinted up to where tokenizing
stopped; nothing here raises for a submission's content.

``K`` and ``W`` were chosen on the planted-copies test of
``tests/test_course_tools.py`` (see ``benchmarks/README.md``, "Similarity").
"""

from __future__ import annotations

import io
import keyword
import tokenize
import zlib
from dataclasses import dataclass, field

K = 15  # tokens per k-gram
W = 4   # winnowing window: every match of K + W - 1 = 18 tokens or more is found

_LAYOUT = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
           tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER}
_STATEMENT_START = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, None}
_UNIT_KEYWORDS = {"def", "class", "async", "@"}


@dataclass(frozen=True)
class Token:
    text: str    # normalised: "V", "S", "N", a keyword or an operator
    start: int   # character offsets of the original token in the source
    end: int
    unit: int    # the function, method, class header or statement it is in


@dataclass
class Fingerprints:
    """The winnowed fingerprints of one document: hash -> the character spans
    ``(start, end)`` of the source where that k-gram occurs."""
    spans: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    tokens: int = 0  # normalised tokens read

    def __len__(self) -> int:
        return len(self.spans)


def tokens(source: str) -> list[Token]:
    """The normalised tokens of ``source``; stops quietly where tokenizing fails."""
    lines = _line_offsets(source)
    result: list[Token] = []
    pending: list[tokenize.TokenInfo] = []  # strings that may be a docstring statement
    previous = None                         # the type of the previous kept token
    unit, depth, after_decorator = 0, 0, False
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            kind = tok.type
            if kind == tokenize.INDENT:
                depth += 1
            elif kind == tokenize.DEDENT:
                depth -= 1
            if kind in (tokenize.NEWLINE, tokenize.ENDMARKER):
                pending = []  # the statement was only strings (a docstring): dropped
            if kind in _LAYOUT:
                if kind in _STATEMENT_START:
                    previous = kind
                continue
            at_start = previous in _STATEMENT_START
            previous = kind
            if at_start:
                # A new statement: a new unit at the top level and at every
                # def/class at any depth; a decorator belongs to what it decorates.
                if (depth == 0 or tok.string in _UNIT_KEYWORDS) and not after_decorator:
                    unit += 1
                after_decorator = tok.string == "@"
            if kind == tokenize.STRING and (at_start or pending):
                pending.append(tok)
                continue
            for held in pending:  # the strings began a longer statement: kept
                result.append(_token(held, lines, unit))
            pending = []
            result.append(_token(tok, lines, unit))
    except Exception:  # TokenError, IndentationError, ...: hostile or broken code
        pass           # is compared on what could be read
    return result


def _token(tok: tokenize.TokenInfo, lines: list[int], unit: int) -> Token:
    kind = tok.type
    if kind == tokenize.NAME:
        text = tok.string if keyword.iskeyword(tok.string) else "V"
    elif kind == tokenize.STRING:
        text = "S"
    elif kind == tokenize.NUMBER:
        text = "N"
    else:
        text = tok.string
    return Token(text, lines[tok.start[0]] + tok.start[1], lines[tok.end[0]] + tok.end[1], unit)


def _line_offsets(source: str) -> list[int]:
    """Offset of each line's first character, indexed by tokenize's 1-based row;
    rows split at ``\\n`` only, as ``io.StringIO.readline`` splits them. One
    extra row: tokenize's ENDMARKER (and DEDENTs) sit one row past the end."""
    offsets = [0, 0]
    for line in source.split("\n"):
        offsets.append(offsets[-1] + len(line) + 1)
    return offsets


_CODES: dict[str, int] = {}


def _code(text: str) -> int:
    """A token's number, the same in every process (``hash(str)`` is not)."""
    code = _CODES.get(text)
    if code is None:
        code = zlib.crc32(text.encode("utf-8", "surrogatepass"))
        if len(_CODES) < 100_000:
            _CODES[text] = code
    return code


def _kgrams(toks: list[Token], k: int):
    """For each unit, ``(hashes, first token index)`` of its k-grams. The hash of
    a tuple of ints is deterministic across processes (unlike that of a str)."""
    codes = [_code(t.text) for t in toks]
    start = 0
    while start < len(toks):
        end = start
        unit = toks[start].unit
        while end < len(toks) and toks[end].unit == unit:
            end += 1
        if end - start >= k:
            yield [hash(tuple(codes[i:i + k])) for i in range(start, end - k + 1)], start
        start = end


def fingerprint(source: str, exclude: frozenset[int] = frozenset(), k: int = K,
                w: int = W) -> Fingerprints:
    """The winnowed fingerprints of ``source`` except those in ``exclude`` (the
    template's k-grams)."""
    toks = tokens(source)
    spans: dict[int, list[tuple[int, int]]] = {}
    for hashes, first in _kgrams(toks, k):
        for index in _winnow(hashes, w):
            value = hashes[index]
            if value not in exclude:
                start, last = first + index, first + index + k - 1
                spans.setdefault(value, []).append((toks[start].start, toks[last].end))
    return Fingerprints(spans, len(toks))


def _winnow(hashes: list[int], w: int) -> list[int]:
    """Robust winnowing: the index of the smallest hash of every window of ``w``
    (the rightmost of equal ones), each index once; a sequence shorter than a
    window keeps its smallest."""
    if len(hashes) <= w:
        return [min(range(len(hashes)), key=lambda i: (hashes[i], -i))]
    picked, last = [], -1
    for left in range(len(hashes) - w + 1):
        best = left
        for i in range(left + 1, left + w):
            if hashes[i] <= hashes[best]:
                best = i
        if best != last:
            picked.append(best)
            last = best
    return picked


def all_kgrams(source: str, k: int = K) -> frozenset[int]:
    """Every k-gram hash of ``source``, not winnowed: what the template excludes."""
    return frozenset(value for hashes, _ in _kgrams(tokens(source), k) for value in hashes)
