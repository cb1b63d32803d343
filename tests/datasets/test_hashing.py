from winnow.datasets.hashing import canonical_row, hash_bytes, hash_row, hash_text, normalize_text


def test_text_hash_ignores_case_width_and_spacing():
    assert hash_text("Hello   World\n") == hash_text("hello world")
    assert hash_text("ｈｅｌｌｏ") == hash_text("hello")  # NFKC folds full-width letters
    assert hash_text("hello world") != hash_text("hello, world")
    assert normalize_text("  A\tB ") == "a b"


def test_row_hash_is_order_and_float_form_independent():
    assert hash_row({"a": 1.0, "b": "x "}) == hash_row({"b": "x", "a": 1})
    assert hash_row({"a": float("nan")}) == hash_row({"a": None})
    assert hash_row({"a": 1.5}) != hash_row({"a": 1.25})
    assert canonical_row({"b": 2, "a": 1}) == '{"a": 1, "b": 2}'


def test_bytes_hash():
    assert hash_bytes(b"x") != hash_bytes(b"y")
    assert len(hash_bytes(b"")) == 32
