"""The evidence of a finding inside the item itself: the spans of a text that made a rule fire, the
words a near copy changed, the cells of a table row that failed a check.

Pure: texts and finding details in, spans, column names and HTML out. The text spans use the
same patterns as the checks that raised the finding (:mod:`checks.text_quality`), so what is
highlighted is what was measured.
"""

from __future__ import annotations

import difflib
import html
import json
import re
from collections import Counter
from typing import Any, NamedTuple

from checks.text_quality import (
    BOILERPLATE,
    CARD_CANDIDATE,
    CONTROL,
    EMAIL,
    LETTER,
    NGRAM_SIZES,
    PHONE,
    SYMBOL,
)

WORD = re.compile(r"\S+")
ENCODING = re.compile("\ufffd|" + CONTROL.pattern)
COLUMN_IN_ERROR = re.compile(r"column '([^']+)'")
"""How ingest names the column of an unreadable table cell (``column 'x' has a non-numeric … value``)."""
OPEN, CLOSE = "«", "»"


class Span(NamedTuple):
    """Characters ``start:end`` of a text, and why they are evidence."""

    start: int
    end: int
    why: str


def parse_detail(detail: Any) -> dict:
    """A finding's ``detail`` as a dict (it is stored as JSON text)."""
    if isinstance(detail, dict):
        return detail
    try:
        value = json.loads(detail or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def quality_spans(text: str, fired: list[str]) -> list[Span]:
    """The parts of ``text`` behind each fired text-quality rule (rules about the whole text, such
    as its length, have none)."""
    spans: list[Span] = []
    patterns = {"pii": [(EMAIL, "e-mail address"), (CARD_CANDIDATE, "card-like number"), (PHONE, "phone number")],
                "boilerplate": [(BOILERPLATE, "boilerplate phrase")], "broken_encoding": [(ENCODING, "encoding error")],
                "symbols": [(SYMBOL, "symbol")]}
    for rule in fired:
        for pattern, why in patterns.get(rule, []):
            spans += [Span(m.start(), m.end(), why) for m in pattern.finditer(text) if m.end() > m.start()]
        if rule == "repetitive":
            spans += repeated_spans(text)
        if rule == "non_alphabetic":  # the words without a letter
            spans += [Span(m.start(), m.end(), "no letters") for m in WORD.finditer(text) if not LETTER.search(m.group())]
    return merge(spans)


def repeated_spans(text: str) -> list[Span]:
    """Every occurrence of the text's most repeated word n-gram (the one covering most characters,
    as the repetition rule measures it), and every line that repeats an earlier line."""
    words = list(WORD.finditer(text))
    lowered = [w.group().lower() for w in words]
    best: tuple[int, int, tuple] | None = None  # (characters covered, n, gram)
    for n in NGRAM_SIZES:
        if len(lowered) <= n:
            continue
        gram, count = Counter(zip(*(lowered[i:] for i in range(n)))).most_common(1)[0]
        covered = count * sum(map(len, gram))
        if count >= 2 and (best is None or covered > best[0]):
            best = (covered, n, gram)
    spans = []
    if best is not None:
        _, n, gram = best
        spans += [Span(words[i].start(), words[i + n - 1].end(), "repeated phrase")
                  for i in range(len(lowered) - n + 1) if tuple(lowered[i:i + n]) == gram]
    seen: set[str] = set()
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped and stripped in seen:
            start = offset + line.index(stripped)
            spans.append(Span(start, start + len(stripped), "repeated line"))
        seen.add(stripped)
        offset += len(line)
    return spans


def changed_spans(text: str, original: str) -> list[Span]:
    """The words of ``text`` that a near copy added or changed against ``original``."""
    words = list(WORD.finditer(text))
    matcher = difflib.SequenceMatcher(None, WORD.findall(original), [w.group() for w in words], autojunk=False)
    return merge([Span(words[j1].start(), words[j2 - 1].end(), "changed from the original")
                  for op, _, _, j1, j2 in matcher.get_opcodes() if op in ("replace", "insert") and j2 > j1])


def text_spans(text: str, issue_type: str, detail: Any, related_text: str | None = None) -> list[Span]:
    """The evidence spans of one finding in its item's ``text``: the fired quality rules of a
    ``low_quality`` finding, the changed words of a ``near_duplicate`` (against ``related_text``,
    the kept copy); none for findings about the item as a whole."""
    if not isinstance(text, str) or not text:
        return []
    if issue_type == "low_quality":
        return quality_spans(text, list(parse_detail(detail).get("fired") or []))
    if issue_type == "near_duplicate" and isinstance(related_text, str):
        return changed_spans(text, related_text)
    return []


def merge(spans: list[Span]) -> list[Span]:
    """``spans`` sorted, with overlapping ones joined (the first reason kept)."""
    out: list[Span] = []
    for span in sorted(spans):
        if out and span.start <= out[-1].end:
            last = out[-1]
            out[-1] = Span(last.start, max(last.end, span.end), last.why)
        else:
            out.append(span)
    return out


def _window(text: str, spans: list[Span], chars: int) -> tuple[int, int]:
    """The ``chars``-long part of ``text`` to show: from a little before the first span."""
    if len(text) <= chars:
        return 0, len(text)
    start = max(0, min(spans[0].start - chars // 4, len(text) - chars)) if spans else 0
    return start, start + chars


def marked_snippet(text: str, spans: list[Span], chars: int = 160) -> str:
    """A plain-text snippet of ``text`` around its first span, each span wrapped in « »: evidence
    that shows inside a table cell."""
    start, end = _window(text, spans, chars)
    parts, at = [], start
    for span in spans:
        if span.end <= start or span.start >= end:
            continue
        parts += [text[at:max(span.start, start)], OPEN, text[max(span.start, start):min(span.end, end)], CLOSE]
        at = min(span.end, end)
    parts.append(text[at:end])
    return ("…" if start else "") + "".join(parts).replace("\n", " ") + ("…" if end < len(text) else "")


def highlighted_html(text: str, spans: list[Span], chars: int = 4000) -> str:
    """``text`` (up to ``chars`` characters around the first span) as escaped HTML with each span
    in a ``<mark>`` whose tooltip says why."""
    start, end = _window(text, spans, chars)
    parts, at = [], start
    for span in spans:
        if span.end <= start or span.start >= end:
            continue
        parts.append(html.escape(text[at:max(span.start, start)]))
        parts.append(f"<mark title='{html.escape(span.why)}' style='background:#ffe08a;padding:0 2px'>"
                     f"{html.escape(text[max(span.start, start):min(span.end, end)])}</mark>")
        at = min(span.end, end)
    parts.append(html.escape(text[at:end]))
    body = "".join(parts).replace("\n", "<br>")
    return ("… " if start else "") + body + (" …" if end < len(text) else "")


def failing_columns(issue_type: str, detail: Any, columns: list[str]) -> set[str]:
    """The cells of a table row that a finding is about: the columns whose expectations failed
    (``check_failed``), or the column ingest could not read (``corrupt``); only ``columns`` count."""
    evidence = parse_detail(detail)
    if issue_type == "check_failed":
        named = {f.get("column") for f in evidence.get("failures") or [] if isinstance(f, dict) and not f.get("tolerated")}
    elif issue_type == "corrupt":
        named = set(COLUMN_IN_ERROR.findall(str(evidence.get("error") or "")))
    else:
        named = set()
    return {c for c in named if c in set(columns)}
