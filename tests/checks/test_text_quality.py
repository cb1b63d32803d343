"""Text quality check: hand-computed properties, and planted issues among real-looking reviews."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from checks.text_quality import check_text_quality, measure_text
from tests.checks.contract import assert_low_quality_contract

REVIEWS = [
    "The film is a gorgeous, moving portrait of a family in crisis.",
    "A tedious, overlong mess with nothing to say.",
    "Sharp writing and a terrific lead performance carry the story.",
    "The plot collapses in the third act and never recovers.",
    "Flat characters, clumsy dialogue, and a score that never stops.",
    "An intelligent thriller that keeps you guessing until the end.",
    "Funny, warm and surprisingly wise about growing up.",
    "It looks expensive but feels empty and cynical.",
    "An absorbing drama with a quietly devastating final scene.",
    "Too long by half, but the cast is excellent throughout.",
    "A charming, slight comedy that never quite finds its footing.",
    "The visual effects are stunning; the script is not.",
    "Every frame is beautiful, yet the story feels hollow and distant.",
    "A smart, funny and heartfelt look at friendship and loss.",
    "The director's best work in years, confident and bold.",
    "Dull, predictable and twenty minutes too long.",
    "A documentary that asks hard questions and refuses easy answers.",
    "It tries to be clever and ends up merely confusing.",
    "Gentle, humane and often very funny.",
    "A loud, empty spectacle that forgets its own characters.",
    "The lead actress gives a fierce, unforgettable performance.",
    "Beautifully shot, but the pacing drags in the middle.",
    "A thoughtful, moving film about memory and family.",
    "Rated 9/10: the 1970s setting and the score are spot on.",
    "Café culture, déjà vu and a naïve hero: a French farce that works.",
]
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
PLANTED = {
    "empty": "",
    "nearly_empty": "ok",
    "mojibake": "CafÃ© dÃ©jÃ  vu: the film is a real treat and worth seeing twice.",
    "repeated": "buy now " * 50,
    "symbol_soup": "@@@ ### $$$ %%% ^^^ &&& *** ~~~ +++ === <<< >>>",
    "pii": f"Loved it! Write to {EMAIL} or pay with {CARD} to get tickets.",
    "phone": "Call me at (555) 123-4567 about the screening tonight, please.",
    "boilerplate": "Click here to subscribe to our newsletter for more reviews.",
    "control": "The film is fine\x00 but the sound\ufffd is broken in places.",
}


@pytest.fixture(scope="module")
def properties() -> pd.DataFrame:
    texts = {f"review_{i:02d}": t for i, t in enumerate(REVIEWS)} | PLANTED
    return pd.DataFrame([{"item_id": k, **measure_text(t)} for k, t in texts.items()])


@pytest.fixture(scope="module")
def findings(properties) -> pd.DataFrame:
    return check_text_quality(properties).set_index("item_id")


# --- measure_text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {"chars": 0, "words": 0, "mean_word_length": 0.0, "non_alpha_fraction": 0.0, "lines": 0}),
        ("ab cd!", {"chars": 6, "words": 2, "mean_word_length": 2.5, "non_alpha_fraction": 0.2}),
        ("buy now " * 50, {"words": 100, "top_2gram_fraction": 1.0, "top_3gram_fraction": 1.0, "duplicate_line_fraction": 0.0}),
        ("one two three four five six", {"top_2gram_fraction": 0.0, "top_4gram_fraction": 0.0}),
        ("spam line\nspam line\nreal line\n\n", {"lines": 3, "duplicate_line_fraction": 1 / 3}),
        ("# tag ... and $ sign", {"symbol_word_ratio": 3 / 6}),
        ("CafÃ© dÃ©jÃ  vu", {"mojibake": 3, "replacement_chars": 0}),
        ("Café déjà vu, naïve “quotes” — fine", {"mojibake": 0, "control_chars": 0}),
        ("bad\ufffd\x00\x1b text\ttab\r\n", {"replacement_chars": 1, "control_chars": 2}),
        (f"mail {EMAIL} and {EMAIL}", {"emails": 2, "phones": 0, "cards": 0}),
        (f"card {CARD}", {"cards": 1, "phones": 0}),
        ("card 4111 1111 1111 1112", {"cards": 0}),
        ("call +44 20 7946 0958 or (555) 123-4567", {"phones": 2, "cards": 0}),
        ("released 2021-05-03, runtime 118 minutes", {"phones": 0, "cards": 0}),
        ("We use cookies.\nAll rights reserved.\nA real sentence.\nAnother one.", {"boilerplate_line_fraction": 0.5}),
        ("The cookie scene is the funniest part.", {"boilerplate_line_fraction": 0.0}),
    ],
    ids=["empty", "counts", "repeated-ngrams", "no-repeats", "duplicate-lines", "gopher-symbols", "mojibake",
         "clean-accents", "replacement-and-control", "emails", "luhn-card", "luhn-fails", "phones", "date-is-not-a-phone",
         "boilerplate-lines", "cookie-in-prose"],
)
def test_measure_text_properties(text, expected):
    measured = measure_text(text)
    assert {k: measured[k] for k in expected} == pytest.approx(expected)


# --- check_text_quality ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "sub_issue", "phrase"),
    [
        ("empty", "too_short", "too short (0 characters"),
        ("nearly_empty", "too_short", "too short (2 characters"),
        ("mojibake", "broken_encoding", "broken encoding (3 mojibake sequences"),
        ("control", "broken_encoding", "1 replacement character, 1 control character"),
        ("repeated", "repetitive", "repetitive (most frequent"),
        ("symbol_soup", "symbols", "symbol-heavy (3.00 symbols per word"),
        ("symbol_soup", "non_alphabetic", "non-alphabetic (100% of characters are not letters"),
        ("pii", "pii", "contains PII (1 e-mail address, 1 card-like number"),
        ("phone", "pii", "contains PII (1 phone number"),
        ("boilerplate", "boilerplate", "boilerplate (100% of the lines"),
    ],
    ids=["empty", "two-chars", "mojibake", "control-chars", "repeated", "symbol-ratio", "non-alpha", "email-and-card",
         "phone", "boilerplate"],
)
def test_planted_issue_is_flagged_and_named(findings, item, sub_issue, phrase):
    row = findings.loc[item]
    assert row["flagged"] and row["score"] >= 0.5
    assert phrase in row["reason"]
    assert sub_issue in json.loads(row["detail"])["fired"]


def test_normal_reviews_are_not_flagged(findings):
    normal = findings[findings.index.str.startswith("review_")]
    assert len(normal) == len(REVIEWS) and not normal["flagged"].any()


def test_pii_values_never_appear_in_findings(findings):
    row = findings.loc["pii"]
    for value in (EMAIL, CARD, CARD.replace(" ", ""), "jane.doe", "1111"):
        assert value not in row["reason"] and value not in row["detail"]


def test_empty_outranks_a_short_review(findings):
    short = findings.loc["review_18", "score"]  # "Gentle, humane and often very funny." is the shortest review
    assert findings.loc["empty", "score"] > findings.loc["nearly_empty", "score"] > short


def test_score_is_the_strongest_sub_score_and_flag_means_half(findings):
    strongest = findings["detail"].map(lambda d: max(json.loads(d)["sub_scores"].values()))
    assert np.allclose(findings["score"], strongest, atol=1e-4)
    assert (findings["flagged"] == (findings["score"] >= 0.5)).all()


def test_short_texts_are_not_judged_for_repetition():
    props = pd.DataFrame([{"item_id": "a", **measure_text("The film is good, the film is bad.")}])
    assert props.loc[0, "top_2gram_fraction"] > 0.2
    assert not check_text_quality(props)["flagged"].iloc[0]


@pytest.mark.parametrize(
    ("params", "item", "gone"),
    [
        ({"pii_kinds": None}, "pii", "contains PII"),
        ({"pii_kinds": ("email",)}, "pii", "card-like"),
        ({"min_encoding_errors": None}, "mojibake", "broken encoding"),
        ({"short_z": None, "min_chars": None}, "empty", "too short"),
        ({"max_top_2gram_fraction": None, "max_top_3gram_fraction": None, "max_top_4gram_fraction": None}, "repeated", "repetitive"),
    ],
    ids=["pii-off", "email-only", "encoding-off", "length-off", "ngrams-off"],
)
def test_none_turns_rules_off(properties, params, item, gone):
    reason = check_text_quality(properties, **params).set_index("item_id").loc[item, "reason"]
    assert pd.isna(reason) or gone not in reason


def test_unknown_pii_kind_is_rejected(properties):
    with pytest.raises(ValueError, match="unknown pii_kinds \\['ssn'\\]; valid: \\['card', 'email', 'phone'\\]"):
        check_text_quality(properties, pii_kinds=("ssn",))


def test_findings_contract(properties):
    assert_low_quality_contract(check_text_quality, properties)


def test_missing_properties_are_named(properties):
    with pytest.raises(ValueError, match=r"properties lack columns \['mojibake'\]; build them with measure_text\(\)"):
        check_text_quality(properties.drop(columns="mojibake"))


def test_non_positive_at_least_limit_is_rejected(properties):
    with pytest.raises(ValueError, match="must be positive, got 0; use None to turn the rule off"):
        check_text_quality(properties, min_encoding_errors=0)
