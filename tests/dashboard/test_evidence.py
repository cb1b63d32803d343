"""The evidence marked inside an item: text spans behind fired quality rules, the words a near copy
changed, the failing cells of a table row."""

from __future__ import annotations

import json

from dashboard.evidence import (
    changed_spans,
    failing_columns,
    highlighted_html,
    marked_snippet,
    quality_spans,
    text_spans,
)


def _marked(text: str, spans) -> list[str]:
    return [text[s.start:s.end] for s in spans]


def test_fired_quality_rules_mark_what_they_measured():
    text = "Call 555-123-4567 or mail bob@example.com. Click here to subscribe now!"
    spans = quality_spans(text, ["pii", "boilerplate"])
    assert _marked(text, spans) == ["555-123-4567", "bob@example.com", "Click here", "subscribe now"]
    assert [s.why for s in spans] == ["phone number", "e-mail address", "boilerplate phrase", "boilerplate phrase"]
    assert quality_spans(text, ["too_short"]) == []  # a rule about the whole text marks nothing


def test_repetition_marks_the_most_repeated_phrase_and_repeated_lines():
    text = "buy now buy now buy now today\nsame line\nsame line"
    spans = quality_spans(text, ["repetitive"])  # "buy now buy now" (twice, overlapping) covers most characters
    assert _marked(text, spans) == ["buy now buy now buy now", "same line"] and spans[-1].start == text.rindex("same line")
    assert _marked("a \ufffd b", quality_spans("a \ufffd b", ["broken_encoding"])) == ["\ufffd"]
    assert _marked("ab 12 %% cd", quality_spans("ab 12 %% cd", ["non_alphabetic"])) == ["12", "%%"]


def test_a_near_copy_marks_the_words_it_changed():
    original = "A gorgeous, moving portrait of a family."
    copy = "A gorgeous moving portrait of a family!"
    assert _marked(copy, changed_spans(copy, original)) == ["gorgeous", "family!"]
    assert _marked(copy, text_spans(copy, "near_duplicate", "{}", original)) == ["gorgeous", "family!"]
    assert text_spans(copy, "off_topic", "{}", original) == []  # no span evidence for a finding about the whole item


def test_snippet_and_html_show_the_marks_and_escape_the_text():
    text = "x" * 300 + " <b>mail bob@example.com</b> " + "y" * 300
    spans = quality_spans(text, ["pii"])
    snippet = marked_snippet(text, spans, 80)
    assert "«bob@example.com»" in snippet and snippet.startswith("…") and snippet.endswith("…") and len(snippet) <= 86
    page = highlighted_html(text, spans)
    assert "&lt;b&gt;" in page and "<b>" not in page and "<mark title='e-mail address'" in page


def test_failing_cells_come_from_check_failures_and_unreadable_cells():
    detail = json.dumps({"failures": [{"column": "price", "tolerated": False}, {"column": "qty", "tolerated": True},
                                      {"column": "gone", "tolerated": False}]})
    assert failing_columns("check_failed", detail, ["price", "qty"]) == {"price"}  # tolerated and unknown columns are not marked
    assert failing_columns("corrupt", {"error": "column 'alcohol' has a non-numeric or infinite value 'n/a?'"}, ["alcohol"]) == {"alcohol"}
    assert failing_columns("outlier", detail, ["price"]) == set()
