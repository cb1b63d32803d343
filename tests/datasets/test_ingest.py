import json

import pandas as pd
import pytest
from PIL import Image

from winnow.datasets import ingest
from winnow.errors import SourceError


def test_image_folder_labels_hashes_and_corrupt_items(image_folder):
    data = ingest(image_folder)
    items = data.items.set_index("item_id")
    assert data.modality == "image"
    assert len(items) == 28  # 24 images + copy + re-encode + 2 unreadable; notes.txt is not an item
    assert items.loc["trouser/zz_copy.png", "label"] == "trouser"
    first = sorted(i for i in items.index if i.startswith("trouser/img"))[0]
    assert items.loc["trouser/zz_copy.png", "content_hash"] == items.loc[first, "content_hash"]
    assert "not a readable image" in items.loc["sneaker/broken.png", "error"]
    assert items.loc["sneaker/empty.png", "error"] == "file is empty (0 bytes)"
    assert items["error"].notna().sum() == 2
    assert json.loads(items.loc[first, "metadata"])["width"] == 28
    assert list(data.items["ordinal"]) == list(range(28))


def test_flat_folder_has_no_labels(tmp_path):
    for i in range(3):
        Image.new("RGB", (8, 8), (i * 50, 0, 0)).save(tmp_path / f"{i}.png")
    data = ingest(tmp_path)
    assert data.items["label"].isna().all()
    assert list(data.items["item_id"]) == ["0.png", "1.png", "2.png"]


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="no image files found"):
        ingest(tmp_path)


def test_image_manifest_resolves_relative_paths(image_folder, tmp_path):
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": [str(image_folder / "trouser" / "zz_copy.png"), "missing.png"], "y": ["a", "b"]}).to_csv(manifest, index=False)
    data = ingest(manifest, label_col="y")
    assert data.modality == "image"
    assert data.items["error"].isna().tolist() == [True, False]
    assert "cannot read file" in data.items["error"][1]


def test_text_jsonl_detects_text_and_keeps_empty_items(text_jsonl):
    data = ingest(text_jsonl, id_col="id", label_col="label")
    items = data.items.set_index("item_id")
    assert data.modality == "text"
    assert items.loc["a", "content_hash"] == items.loc["c", "content_hash"]
    assert items.loc["a", "content_hash"] != items.loc["d", "content_hash"]
    assert items.loc["i", "error"] == "text is empty (only whitespace)"
    assert items.loc["b", "label"] == "neg"


def test_text_csv_with_named_column(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"body_text": ["one, two", 'say "hi"\nthere', None]}).to_csv(path, index=False)
    data = ingest(path, text_col="body_text")
    assert data.items["text"][1] == 'say "hi"\nthere'
    assert data.items["item_id"].tolist() == ["0", "1", "2"]
    assert "missing a value" in data.items["error"][2]


def test_table_rows_features_and_bad_values(wine_csv):
    data = ingest(wine_csv, id_col="id", label_col="cultivar")
    items = data.items.set_index("item_id")
    assert data.modality == "tabular"
    assert "id" not in data.features.columns and "cultivar" not in data.features.columns
    assert items.loc["dup", "content_hash"] == items.loc["w4", "content_hash"]
    assert "alcohol" in items.loc["bad", "error"]
    assert data.features["alcohol"].dtype == "float64"


def test_modality_override_and_errors(wine_csv, tmp_path):
    with pytest.raises(SourceError, match="no column 'nope'"):
        ingest(wine_csv, label_col="nope")
    with pytest.raises(SourceError, match="does not exist"):
        ingest(tmp_path / "missing.csv")
    with pytest.raises(SourceError, match="unknown modality"):
        ingest(wine_csv, modality="audio")
    with pytest.raises(SourceError, match="no text column"):
        ingest(wine_csv, modality="text")
    (tmp_path / "x.xlsx").write_text("?")
    with pytest.raises(SourceError, match="neither a folder nor a supported file"):
        ingest(tmp_path / "x.xlsx")


def test_duplicate_ids_are_refused(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"id": [1, 1], "text": ["a", "b"]}).to_csv(path, index=False)
    with pytest.raises(SourceError, match="duplicate values"):
        ingest(path, id_col="id")


def test_non_utf8_csv_says_how_to_fix(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("name,value\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(SourceError, match="not valid UTF-8"):
        ingest(path)


def test_special_files_and_undecodable_names_become_unreadable_items(tmp_path):
    import os
    import threading

    Image.new("L", (8, 8), 90).save(tmp_path / "fine.png")
    os.mkfifo(tmp_path / "pipe.png")  # reading it would block forever
    threading.Thread(target=lambda: open(tmp_path / "pipe.png", "wb").close(), daemon=True).start()  # never a hang, even if read
    os.symlink("b.png", tmp_path / "a.png")
    os.symlink("a.png", tmp_path / "b.png")
    with open(os.fsencode(tmp_path) + b"/caf\xe9.png", "wb") as handle:
        Image.new("L", (8, 8), 10).save(handle, "PNG")
    items = ingest(tmp_path).items.set_index("item_id")
    assert items.loc["fine.png", "error"] is None
    assert items.loc["pipe.png", "error"].startswith("not a regular file (a named pipe)")
    assert "Too many levels of symbolic links" in items.loc["a.png", "error"]
    assert "not valid UTF-8" in items.loc["caf\\xe9.png", "error"]
    assert "\\xe9" in items.loc["caf\\xe9.png", "uri"]  # escaped: the store needs valid text


def test_pixel_limit_is_enforced_without_relying_on_warnings(tmp_path, monkeypatch):
    """Pillow only warns between MAX_IMAGE_PIXELS and twice it; ingest and decoding refuse it outright."""
    from winnow.datasets.images import decode_image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    Image.new("L", (40, 40)).save(tmp_path / "big.png")  # 1,600 pixels: a warning only, for Pillow
    assert "decompression bomb" in ingest(tmp_path).items["error"][0]
    with pytest.raises(Image.DecompressionBombError):
        decode_image(tmp_path / "big.png")


def test_csv_encoding_header_and_missing_markers(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,x,region\na,1,Rh\xf4ne\nb,2,Ain\n".encode("latin-1"))
    with pytest.raises(SourceError, match=r"1 of 3 lines have bytes that are not UTF-8, the first at line 2, byte 7 \(0xF4\)"):
        ingest(latin, id_col="id")
    texts = tmp_path / "texts.csv"
    texts.write_bytes(b"id,text\nNA,caf\xe9 scene\nb,None\n")  # a bad byte in a text; ids and texts that look missing
    items = ingest(texts, id_col="id").items
    assert items["item_id"].tolist() == ["NA", "b"] and items["text"].tolist() == ["caf\ufffd scene", "None"]
    assert items["error"].isna().all()  # the text-quality check reports the replacement character
    dup = tmp_path / "dup.csv"
    dup.write_text("id,x,x\na,1,2\n")
    with pytest.raises(SourceError, match=r"duplicated column names \['x'\]"):
        ingest(dup, id_col="id")
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"id": "a", "text": "hello there"}\n')
    assert ingest(bom, id_col="id").items["text"].tolist() == ["hello there"]
