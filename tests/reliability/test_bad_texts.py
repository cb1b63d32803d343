"""Bad text inputs: each case audits a JSON-lines or CSV manifest of real review snippets plus the
bad input, and ends either in exit code 2 with a message saying what to fix or in a completed audit
with the bad rows as ``corrupt`` / ``low_quality`` findings and every other row scored."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.conftest import TEXTS
from tests.reliability.conftest import Expect, expect_completed, expect_exit_2, run_audit

pytestmark = pytest.mark.usefixtures("prefect_harness")

NORMAL = [(i, t, label) for i, t, label in TEXTS if t]  # eleven real review snippets
ARGS = ("--id-col", "id", "--label-col", "label")


def normal_rows() -> list[dict]:
    return [{"id": i, "text": t, "label": label} for i, t, label in NORMAL]


def normal_ids() -> set[str]:
    return {i for i, _, _ in NORMAL}


def jsonl(path: Path, rows: list[dict], raw: list[bytes] = ()) -> Path:
    """Rows as JSON lines (UTF-8), then ``raw`` lines exactly as given."""
    lines = [json.dumps(r, ensure_ascii=False).encode("utf-8") for r in rows] + list(raw)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def csv_file(path: Path, rows: list[dict], raw: list[bytes] = ()) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode("utf-8") + b"".join(line + b"\n" for line in raw))
    return path


# --- cases: each writes its source under ``tmp`` and returns (source, how the audit must end) ------


def empty_texts(tmp):
    rows = normal_rows() + [{"id": "empty", "text": "", "label": "pos"}, {"id": "blank", "text": " \n\t  ", "label": "neg"}]
    bad = {"empty": ("corrupt", "text is empty"), "blank": ("corrupt", "text is empty")}
    return jsonl(tmp / "t.jsonl", rows), Expect(normal_ids() | set(bad), bad=bad, args=ARGS)


def null_text_jsonl(tmp):
    rows = normal_rows() + [{"id": "null", "text": None, "label": "pos"}]
    return jsonl(tmp / "t.jsonl", rows), Expect(normal_ids() | {"null"}, bad={"null": ("corrupt", "missing a value")}, args=ARGS)


def nan_text_csv(tmp):
    rows = normal_rows() + [{"id": "gap", "text": "", "label": "neg"}]  # an empty cell reads as NaN
    return csv_file(tmp / "t.csv", rows), Expect(normal_ids() | {"gap"}, bad={"gap": ("corrupt", "missing a value")}, args=ARGS)


def texts_that_read_as_missing(tmp):
    """pandas reads NA, null, None, nan… as missing; in a text manifest they are texts (and ids)."""
    odd = {"NA": "None", "null": "N/A", "nan": "null", "None": "NaN"}
    rows = normal_rows() + [{"id": i, "text": t, "label": "NA"} for i, t in odd.items()]
    return csv_file(tmp / "t.csv", rows), Expect(normal_ids() | set(odd), scored=set(odd), texts=odd, args=ARGS)


def five_mb_document(tmp):
    sentences = [t for _, t, _ in NORMAL]
    words = " ".join(f"{sentences[i % len(sentences)]} Paragraph {i}." for i in range(80_000))
    big = words[: 5 * 1024 * 1024]
    rows = normal_rows() + [{"id": "huge", "text": big, "label": "pos"}]
    return jsonl(tmp / "t.jsonl", rows), Expect(normal_ids() | {"huge"}, bad={"huge": ("low_quality", "too long")}, args=ARGS)


def invalid_utf8_jsonl(tmp):
    raw = [b'{"id": "latin", "text": "Caf\xe9 scenes and a na\xefve hero, but the pacing drags.", "label": "neg"}']
    bad = {"latin": ("low_quality", "replacement character")}
    return jsonl(tmp / "t.jsonl", normal_rows(), raw), Expect(normal_ids() | set(bad), bad=bad, args=ARGS)


def invalid_utf8_csv(tmp):
    raw = [b'latin,"Caf\xe9 scenes, a na\xefve hero and a pacing that drags.",neg']
    bad = {"latin": ("low_quality", "replacement character")}
    return csv_file(tmp / "t.csv", normal_rows(), raw), Expect(normal_ids() | set(bad), bad=bad, args=ARGS)


def mixed_encodings(tmp):
    raw = [
        json.dumps({"id": "latin1", "text": "Un film très réussi, plein de poésie.", "label": "pos"}, ensure_ascii=False).encode("latin-1"),
        json.dumps({"id": "cp1252", "text": "It’s “fine”, I guess — nothing more.", "label": "neg"}, ensure_ascii=False).encode("cp1252"),
        # valid UTF-8, but UTF-8 that was once decoded as Latin-1 and encoded again: mojibake
        json.dumps({"id": "double", "text": "The café scene is naïve but the ending is très beau.".encode().decode("latin-1"), "label": "pos"}, ensure_ascii=False).encode(),
    ]
    bad = {"latin1": ("low_quality", "broken encoding"), "cp1252": ("low_quality", "broken encoding"), "double": ("low_quality", "mojibake")}
    return jsonl(tmp / "t.jsonl", normal_rows(), raw), Expect(normal_ids() | set(bad), bad=bad, args=ARGS)


def utf16_file(tmp):
    path = tmp / "t.csv"
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=["id", "text", "label"], lineterminator="\n").writeheader()
    csv.DictWriter(buffer, fieldnames=["id", "text", "label"], lineterminator="\n").writerows(normal_rows())
    path.write_bytes(buffer.getvalue().encode("utf-16"))  # what "Unicode text" exports write
    return path, Expect(error=("is not valid UTF-8", "UTF-16", "Re-save it as UTF-8"), args=ARGS)


def byte_order_mark(tmp):
    path = jsonl(tmp / "t.jsonl", normal_rows())
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    return path, Expect(normal_ids(), scored=normal_ids(), args=ARGS)


def rtl_emoji_combining(tmp):
    odd = {
        "hebrew": "הסרט הזה היה מרגש ויפה מאוד, ממליץ בחום.",
        "arabic": "فيلم رائع وقصة مؤثرة جدا، أنصح بمشاهدته.",
        "emoji": "Loved it 😍🎬🍿 — the cast 👏👏 was great 👍🏽 and the ending 🤯",
        "combining": "Cafe\u0301 au lait, nai\u0308ve Zalgo: h\u0336\u0321e\u0337\u0322l\u0334l\u0335o\u0338 plot.",
        "bidi": "Plot \u202ereversed\u202c and \u200fmarks\u200e inside a sentence about a film.",
    }
    rows = normal_rows() + [{"id": i, "text": t, "label": "pos"} for i, t in odd.items()]
    return jsonl(tmp / "t.jsonl", rows), Expect(normal_ids() | set(odd), scored=set(odd), args=ARGS)


def csv_newlines_quotes(tmp):
    odd = {
        "lines": 'First line.\nSecond line, with a comma.\r\nThird "line".',
        "quotes": 'He said ""no"" — then \'yes\' — then "maybe", twice.',
        "commas": ",,,leading commas, and trailing ones,,,",
    }
    rows = normal_rows() + [{"id": i, "text": t, "label": "neg"} for i, t in odd.items()]
    return csv_file(tmp / "t.csv", rows), Expect(normal_ids() | set(odd), scored=set(odd), texts=odd, args=ARGS)


def missing_text_column_named(tmp):
    return jsonl(tmp / "t.jsonl", normal_rows()), Expect(
        error=("has no column 'body'", "given as text-col", "its columns are: id, text, label"), args=("--text-col", "body", "--id-col", "id")
    )


def no_text_column(tmp):
    rows = [{"id": i, "comment": t} for i, t, _ in NORMAL]
    return jsonl(tmp / "t.jsonl", rows), Expect(error=("has no text column", "--text-col", "columns: id, comment"), args=("--modality", "text", "--id-col", "id"))


def duplicate_ids(tmp):
    rows = normal_rows() + [{"id": "a", "text": "A second review that reuses id a.", "label": "pos"}]
    return jsonl(tmp / "t.jsonl", rows), Expect(error=("duplicate values", "item ids must be unique", "--id-col"), args=ARGS)


def empty_id(tmp):
    rows = normal_rows() + [{"id": None, "text": "A review without an id.", "label": "pos"}]
    return jsonl(tmp / "t.jsonl", rows), Expect(error=("is empty in row 11", "every item needs an id"), args=ARGS)


def control_characters(tmp):
    odd = {"nul": "A review with a NUL\x00byte and a bell\x07 in it, about a film.", "esc": "Colour codes \x1b[31mred\x1b[0m leaked into the review text."}
    rows = normal_rows() + [{"id": i, "text": t, "label": "neg"} for i, t in odd.items()]
    bad = {i: ("low_quality", "control character") for i in odd}
    return jsonl(tmp / "t.jsonl", rows), Expect(normal_ids() | set(odd), bad=bad, args=ARGS)


def hostile_ids_and_labels(tmp):
    odd = {"'; DROP TABLE findings; --": "Robert'); DROP TABLE items;-- was a terrible film.", 'id with "quotes"\nand a newline': "Quotes and a newline in the id."}
    rows = normal_rows() + [{"id": i, "text": t, "label": "'; DELETE FROM runs; --"} for i, t in odd.items()]
    return jsonl(tmp / "t.jsonl", rows), Expect(normal_ids() | set(odd), scored=set(odd), args=ARGS)


def one_text_only(tmp):
    return jsonl(tmp / "t.jsonl", normal_rows()[:1]), Expect({"a"}, scored={"a"}, args=ARGS)


def header_only(tmp):
    path = tmp / "t.csv"
    path.write_text("id,text,label\n")
    return path, Expect(error=("has no rows",), args=ARGS)


CASES = {
    "empty and whitespace texts": empty_texts,
    "null text (JSONL)": null_text_jsonl,
    "NaN text (CSV empty cell)": nan_text_csv,
    "texts and ids that read as NaN (NA, null, None)": texts_that_read_as_missing,
    "5 MB document": five_mb_document,
    "invalid UTF-8 bytes (JSONL)": invalid_utf8_jsonl,
    "invalid UTF-8 bytes (CSV)": invalid_utf8_csv,
    "mixed encodings": mixed_encodings,
    "UTF-16 file": utf16_file,
    "UTF-8 byte-order mark": byte_order_mark,
    "RTL, emoji, combining marks": rtl_emoji_combining,
    "CSV with embedded newlines and quotes": csv_newlines_quotes,
    "missing text column (--text-col)": missing_text_column_named,
    "no text column": no_text_column,
    "duplicate ids": duplicate_ids,
    "empty id": empty_id,
    "NUL and control characters": control_characters,
    "SQL and quotes in ids and labels": hostile_ids_and_labels,
    "one text only": one_text_only,
    "header but no rows": header_only,
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_text_input(tmp_path, case):
    source, expect = case(tmp_path)
    result = run_audit(source, tmp_path / "audit.duckdb", *expect.args)
    if expect.error:
        expect_exit_2(result, *expect.error)
        return
    audited = expect_completed(result, tmp_path / "audit.duckdb", expect)
    stored = dict(zip(audited.items["item_id"], audited.items["text"]))
    for item_id, text in expect.texts.items():  # read back exactly as written
        assert stored[item_id] == text, f"{item_id!r} was read as {stored[item_id]!r}"
