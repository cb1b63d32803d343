"""Text quality: the usual pre-training heuristics, measured per text and scored over the whole set.

Two phases like the image check: :func:`measure_text` is pure and returns raw properties of one
text; :func:`check_text_quality` scores the table of properties for the whole dataset, so
thresholds can change without measuring again. Scoring (severities, sub-scores, the one finding per
item) is shared with ``checks.image_quality``; see "Scoring" in its module docstring.

Repetition measures follow Gopher (Rae et al. 2021, appendix A): the fraction of duplicate lines and,
for n = 2, 3, 4, the fraction of word characters covered by the most frequent n-gram.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd
from ftfy.badness import badness

from checks.scoring import (
    SubIssue,
    at_least,
    at_most,
    either_limit,
    fmt,
    quality_findings,
    relative_rule,
    require_columns,
)
from winnow.findings import empty_findings

LENGTH_FLOOR = 0.5  # log2 of characters: z = 3.5 then means at least 3.4x shorter or longer than the median
RATIO_FLOOR = 0.1  # symbol and non-alphabetic ratios: z = 3.5 then means at least 0.35 above the median
NGRAM_SIZES = (2, 3, 4)

LETTER = re.compile(r"[^\W\d_]")
WHITESPACE = re.compile(r"\s")
SYMBOL = re.compile(r"\.\.\.|[^\w\s.,;:!?'\"’‘“”()\[\]{}\-–—/\x00-\x1f\x7f-\x9f\ufffd]")
"""A symbol: an ellipsis (Gopher counts ``#`` and ellipses), or any character that is not a letter,
digit, space, ordinary punctuation or an encoding error (those count as broken encoding):
``# $ % & * + < = > @ ^ | ~ … © emoji``."""
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""C0 and C1 control characters other than tab, newline and carriage return."""
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
CARD_CANDIDATE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
"""13 to 19 digits, optionally grouped by spaces or dashes; kept when the Luhn check passes."""
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]?\d{3,4}(?!\w)")
"""An optional ``+country`` code, an area code (in brackets, or followed by a separator), then 6 to 8
digits in one or two groups: ``555-123-4567``, ``(555) 123 4567``, ``+44 20 7946 0958``. Dates
(``2021-05-03``) do not match; a list of years (``1999 2000 2001``) does: it is a heuristic."""
BOILERPLATE = re.compile(
    "|".join((
        r"\b(?:accept|use|uses|using) (?:all )?cookies\b",
        r"\bcookie (?:policy|settings|consent)\b",
        r"\ball rights reserved\b",
        r"©\s*(?:19|20)\d\d",
        r"\bprivacy policy\b",
        r"\bterms (?:of (?:use|service)|and conditions)\b",
        r"\bsubscribe (?:to|for|now)\b",
        r"\bsign up for (?:our|the) newsletter\b",
        r"\bclick here\b",
        r"\b(?:enable|requires?) javascript\b",
        r"\bskip to (?:main )?content\b",
        r"\blorem ipsum\b",
    )),
    re.IGNORECASE,
)
"""Phrases of web page furniture: cookie banners, copyright and legal footers, newsletter and
click-bait links, "enable JavaScript" notices, skip links and placeholder text."""
PII_KINDS = {"email": ("e-mail address", "e-mail addresses"), "phone": ("phone number", "phone numbers"),
             "card": ("card-like number", "card-like numbers")}
"""PII kinds: the property counting them is ``<kind>s``; singular and plural names for reasons."""
SCORED_COLUMNS = (
    "chars", "words", "non_alpha_fraction", "symbol_word_ratio", "replacement_chars", "control_chars", "mojibake",
    "duplicate_line_fraction", *(f"top_{n}gram_fraction" for n in NGRAM_SIZES), "boilerplate_line_fraction",
    *(f"{kind}s" for kind in PII_KINDS),
)
"""The :func:`measure_text` properties that :func:`check_text_quality` scores."""


# --- phase 1: measure one text ---------------------------------------------------------------------


def measure_text(text: str) -> dict[str, float | int]:
    """Raw properties of one text; pure, no value of any PII is kept (only counts).

    ``chars``, ``words``
        Length in characters, and in whitespace-separated words.
    ``mean_word_length``
        Mean characters per word (Gopher keeps 3 to 10); 0 for no words.
    ``non_alpha_fraction``
        Fraction of non-whitespace characters that are not letters (digits, punctuation, symbols).
    ``symbol_word_ratio``
        Symbols (see :data:`SYMBOL`) per word.
    ``replacement_chars``, ``control_chars``
        Counts of U+FFFD (bytes that failed to decode) and of control characters (:data:`CONTROL`).
    ``mojibake``
        ftfy's count of character sequences typical of text decoded with the wrong codec
        (``Ã©`` for ``é``, ``â€™`` for ``’``).
    ``lines``
        Non-empty lines.
    ``duplicate_line_fraction``
        Fraction of non-empty lines that repeat an earlier line (after stripping).
    ``top_2gram_fraction``, ``top_3gram_fraction``, ``top_4gram_fraction``
        Fraction of word characters covered by the most frequent word n-gram (lower-cased), counting
        overlapping occurrences and capped at 1; 0 when no n-gram occurs twice.
    ``boilerplate_line_fraction``
        Fraction of non-empty lines with a boilerplate phrase (:data:`BOILERPLATE`).
    ``emails``, ``phones``, ``cards``
        Counts of e-mail addresses, phone numbers and card-like numbers (13–19 digits passing the
        Luhn check; counted first so that a card is never also a phone number).
    """
    words = text.split()
    nonspace = len(text) - len(WHITESPACE.findall(text))
    letters = len(LETTER.findall(text))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lowered = [w.lower() for w in words]
    return {
        "chars": len(text),
        "words": len(words),
        "mean_word_length": nonspace / len(words) if words else 0.0,
        "non_alpha_fraction": 1.0 - letters / nonspace if nonspace else 0.0,
        "symbol_word_ratio": len(SYMBOL.findall(text)) / max(len(words), 1),
        "replacement_chars": text.count("\ufffd"),
        "control_chars": len(CONTROL.findall(text)),
        "mojibake": badness(text),
        "lines": len(lines),
        "duplicate_line_fraction": 1.0 - len(set(lines)) / len(lines) if lines else 0.0,
        **{f"top_{n}gram_fraction": _top_ngram_fraction(lowered, n) for n in NGRAM_SIZES},
        "boilerplate_line_fraction": sum(bool(BOILERPLATE.search(line)) for line in lines) / len(lines) if lines else 0.0,
        **_pii_counts(text),
    }


def _top_ngram_fraction(words: list[str], n: int) -> float:
    """Fraction of word characters inside occurrences of the most frequent n-gram (Gopher)."""
    if len(words) <= n:  # no n-gram can occur twice
        return 0.0
    gram, count = Counter(zip(*(words[i:] for i in range(n)))).most_common(1)[0]
    if count < 2:
        return 0.0
    return min(1.0, count * sum(map(len, gram)) / sum(map(len, words)))


def _pii_counts(text: str) -> dict[str, int]:
    """Counts of e-mail addresses, card-like numbers and phone numbers; each kind found is blanked
    out before looking for the next, so that one string is counted once."""
    emails = len(EMAIL.findall(text))
    text = EMAIL.sub(" ", text)
    cards = [c for c in CARD_CANDIDATE.findall(text) if _luhn_valid(re.sub(r"\D", "", c))]
    for card in cards:
        text = text.replace(card, " ")
    return {"emails": emails, "phones": len(PHONE.findall(text)), "cards": len(cards)}


def _luhn_valid(digits: str) -> bool:
    """The Luhn checksum used by payment card numbers (13 to 19 digits)."""
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        d = int(char) * (2 if position % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


# --- phase 2: score the whole set ---------------------------------------------------------------


def check_text_quality(
    properties: pd.DataFrame,
    *,
    short_z: float | None = 3.5,
    min_chars: int | None = 10,
    long_z: float | None = 3.5,
    max_chars: int | None = 100_000,
    min_encoding_errors: int | None = 1,
    repetition_min_words: int = 50,
    max_duplicate_line_fraction: float | None = 0.30,
    max_top_2gram_fraction: float | None = 0.20,
    max_top_3gram_fraction: float | None = 0.18,
    max_top_4gram_fraction: float | None = 0.16,
    symbol_z: float | None = 3.5,
    max_symbol_ratio: float | None = 0.5,
    non_alpha_z: float | None = 3.5,
    max_non_alpha_fraction: float | None = 0.75,
    max_boilerplate_fraction: float | None = 0.30,
    pii_kinds: tuple[str, ...] | None = ("email", "phone", "card"),
) -> pd.DataFrame:
    """Score :func:`measure_text` properties (plus ``item_id``) over the whole set: one
    ``low_quality`` finding per item. Every threshold is keyword-only; None turns that rule off.
    ``*_z`` rules are robust z-scores against the dataset; ``min_*`` / ``max_*`` are absolute and
    fire at the limit or beyond it. Sub-issues and their rules:

    - ``too_short``: length ``short_z`` below the median (log scale), or under ``min_chars``.
    - ``too_long``: length ``long_z`` above the median (log scale), or at least ``max_chars``.
    - ``broken_encoding``: at least ``min_encoding_errors`` replacement characters, control
      characters and mojibake sequences together.
    - ``repetitive``: Gopher's limits on duplicate lines and top 2/3/4-gram character fractions,
      on texts of at least ``repetition_min_words`` words (Gopher's own minimum document length:
      in a short review, "love for Sirk, love for detail" is style, not spam).
    - ``symbols``: symbols per word ``symbol_z`` above the median, or at least ``max_symbol_ratio``.
    - ``non_alphabetic``: non-letter fraction ``non_alpha_z`` above the median, or at least
      ``max_non_alpha_fraction``.
    - ``boilerplate``: at least ``max_boilerplate_fraction`` of the lines are boilerplate.
    - ``pii``: any e-mail, phone or card-like number of the kinds in ``pii_kinds``; the reason
      names the kinds and counts, never the values.
    """
    if properties.empty:
        return empty_findings()
    require_columns(properties, SCORED_COLUMNS, "measure_text")
    unknown = sorted(set(pii_kinds or ()) - set(PII_KINDS))
    if unknown:
        raise ValueError(f"unknown pii_kinds {unknown}; valid: {sorted(PII_KINDS)}")
    p = properties.reset_index(drop=True)
    sub_issues = [
        _too_short(p, short_z, min_chars),
        _too_long(p, long_z, max_chars),
        _broken_encoding(p, min_encoding_errors),
        _repetitive(p, repetition_min_words, {
            "duplicate_line_fraction": max_duplicate_line_fraction,
            "top_2gram_fraction": max_top_2gram_fraction,
            "top_3gram_fraction": max_top_3gram_fraction,
            "top_4gram_fraction": max_top_4gram_fraction,
        }),
        _ratio(p, "symbols", "symbol_word_ratio", symbol_z, max_symbol_ratio, "symbol-heavy ({:.2f} symbols per word"),
        _ratio(p, "non_alphabetic", "non_alpha_fraction", non_alpha_z, max_non_alpha_fraction,
               "non-alphabetic ({:.0%} of characters are not letters"),
        _boilerplate(p, max_boilerplate_fraction),
        _pii(p, pii_kinds),
    ]
    return quality_findings(p["item_id"], sub_issues)


def _too_short(p: pd.DataFrame, z: float | None, min_chars: int | None) -> SubIssue:
    chars = p["chars"].to_numpy(float)
    rel = relative_rule(np.log2(chars + 1), z=z, floor=LENGTH_FLOOR, tail="low")
    relative_limit = None if rel.z is None else 2 ** rel.limit(-1) - 1
    longest_too_short = None if min_chars is None else min_chars - 1  # "under min_chars" is "at most min_chars - 1"
    limit = either_limit(relative_limit, longest_too_short, "below")
    return SubIssue(
        "too_short",
        np.maximum(rel.severity, at_most(chars, longest_too_short)),
        lambda i: f"too short ({chars[i]:,.0f} characters, threshold {fmt(limit)}, dataset median {2**rel.median - 1:,.0f})",
        {"measure": "chars", "median": 2**rel.median - 1, "relative_limit": relative_limit, "min_chars": min_chars},
    )


def _too_long(p: pd.DataFrame, z: float | None, max_chars: int | None) -> SubIssue:
    chars = p["chars"].to_numpy(float)
    rel = relative_rule(np.log2(chars + 1), z=z, floor=LENGTH_FLOOR, tail="high")
    relative_limit = None if rel.z is None else 2 ** rel.limit(1) - 1
    limit = either_limit(relative_limit, max_chars, "above")
    return SubIssue(
        "too_long",
        np.maximum(rel.severity, at_least(chars, max_chars)),
        lambda i: f"too long ({chars[i]:,.0f} characters, threshold {fmt(limit)}, dataset median {2**rel.median - 1:,.0f})",
        {"measure": "chars", "median": 2**rel.median - 1, "relative_limit": relative_limit, "max_chars": max_chars},
    )


def _broken_encoding(p: pd.DataFrame, min_errors: int | None) -> SubIssue:
    parts = {
        "mojibake sequence": p["mojibake"].to_numpy(int),
        "replacement character": p["replacement_chars"].to_numpy(int),
        "control character": p["control_chars"].to_numpy(int),
    }
    errors = sum(parts.values())

    def describe(i: int) -> str:
        found = ", ".join(f"{n[i]} {name}{'s' if n[i] > 1 else ''}" for name, n in parts.items() if n[i])
        return f"broken encoding ({found}; flagged from {min_errors} in all)"

    return SubIssue("broken_encoding", at_least(errors, min_errors), describe, {"min_errors": min_errors})


def _repetitive(p: pd.DataFrame, min_words: int, limits: dict[str, float | None]) -> SubIssue:
    long_enough = p["words"].to_numpy(int) >= min_words
    ratios = {m: at_least(p[m].to_numpy(float), limit) * long_enough for m, limit in limits.items()}
    labels = {"duplicate_line_fraction": "repeated lines", **{f"top_{n}gram_fraction": f"most frequent {n}-gram" for n in NGRAM_SIZES}}

    def describe(i: int) -> str:
        worst = max(ratios, key=lambda m: ratios[m][i])
        unit = "lines" if worst == "duplicate_line_fraction" else "word characters"
        return f"repetitive ({labels[worst]} covers {p[worst].iat[i]:.0%} of the {unit}, threshold {limits[worst]:.0%})"

    return SubIssue(
        "repetitive",
        np.max(np.vstack(list(ratios.values())), axis=0),
        describe,
        {**limits, "min_words": min_words},
    )


def _ratio(p: pd.DataFrame, name: str, column: str, z: float | None, absolute: float | None, opening: str) -> SubIssue:
    """A sub-issue for a ratio that is bad when high, relative to the dataset and absolutely;
    ``opening`` formats the measured value at the start of the reason phrase."""
    values = p[column].to_numpy(float)
    rel = relative_rule(values, z=z, floor=RATIO_FLOOR, tail="high")
    limit = either_limit(rel.limit(1), absolute, "above")
    spec = ".0%" if column.endswith("fraction") else ".2f"
    return SubIssue(
        name,
        np.maximum(rel.severity, at_least(values, absolute)),
        lambda i: opening.format(values[i]) + f", threshold {fmt(limit, spec)}, dataset median {rel.median:{spec}})",
        {"measure": column, "median": rel.median, "relative_limit": rel.limit(1), "absolute_limit": absolute},
    )


def _boilerplate(p: pd.DataFrame, max_fraction: float | None) -> SubIssue:
    values = p["boilerplate_line_fraction"].to_numpy(float)
    return SubIssue(
        "boilerplate",
        at_least(values, max_fraction),
        lambda i: f"boilerplate ({values[i]:.0%} of the lines are cookie, legal, newsletter or link furniture, threshold {max_fraction:.0%})",
        {"max_fraction": max_fraction},
    )


def _pii(p: pd.DataFrame, kinds: tuple[str, ...] | None) -> SubIssue:
    counts = {kind: p[f"{kind}s"].to_numpy(int) for kind in kinds or ()}
    total = sum(counts.values()) if counts else np.zeros(len(p), int)

    def describe(i: int) -> str:
        found = ", ".join(f"{n[i]} {PII_KINDS[k][int(n[i] > 1)]}" for k, n in counts.items() if n[i])
        return f"contains PII ({found}; values masked)"

    return SubIssue("pii", np.asarray(total, dtype=float), describe, {"kinds": None if kinds is None else list(kinds)})
