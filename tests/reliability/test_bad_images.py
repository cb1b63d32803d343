"""Bad image inputs: each case audits a folder of real Fashion-MNIST images plus the bad input.

Each ends either with exit code 2 and a message saying what to fix, or with a completed audit where
the bad items are ``corrupt`` / ``low_quality`` findings and every other item is scored.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import fashion_images
from tests.reliability.conftest import Expect, expect_completed, expect_exit_2, run_audit

pytestmark = pytest.mark.usefixtures("prefect_harness")

PIXELS = [p for p, _ in fashion_images(4, classes=(2,))]  # spare real images for the odd files


def normal(root: Path, per_class: int = 3, classes: tuple[int, ...] = (0, 1, 7)) -> set[str]:
    """``root/<label>/img_NN.png`` from real Fashion-MNIST pixels; returns the item ids."""
    ids = set()
    for i, (pixels, label) in enumerate(fashion_images(per_class, classes)):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / label / f"img_{i:02d}.png")
        ids.add(f"{label}/img_{i:02d}.png")
    return ids


def odd(root: Path, name: str) -> tuple[Path, str]:
    """A path for an odd file in the ``odd`` class folder, and its item id."""
    (root / "odd").mkdir(parents=True, exist_ok=True)
    return root / "odd" / name, f"odd/{name}"


def rgb(index: int = 0, size: int = 28) -> Image.Image:
    image = Image.fromarray(PIXELS[index]).convert("RGB")
    return image if size == 28 else image.resize((size, size), Image.Resampling.BICUBIC)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR chunk (CRC fixed up) claims ``width`` x ``height`` pixels."""
    data = bytearray(encoded(Image.new("L", (8, 8)), "PNG"))
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# --- cases: each builds its input under ``root`` and says how the audit must end ----------------


def zero_byte(root, mp):
    path, item = odd(root, "zero.png")
    path.write_bytes(b"")
    return Expect(normal(root) | {item}, bad={item: ("corrupt", "empty (0 bytes)")})


def truncated_jpeg(root, mp):
    path, item = odd(root, "truncated.jpg")
    data = encoded(rgb(size=96), "JPEG", quality=95)
    path.write_bytes(data[: len(data) // 2])
    return Expect(normal(root) | {item}, bad={item: ("corrupt", "truncated")})


def truncated_png(root, mp):
    path, item = odd(root, "truncated.png")
    data = encoded(rgb(size=96), "PNG")
    path.write_bytes(data[: len(data) // 2])
    return Expect(normal(root) | {item}, bad={item: ("corrupt", "truncated")})


def text_named_png(root, mp):
    path, item = odd(root, "notes.png")
    path.write_text("this is a text file, not an image\n")
    return Expect(normal(root) | {item}, bad={item: ("corrupt", "not a readable image")})


def png_named_jpg(root, mp):
    path, item = odd(root, "really_a_png.jpg")
    path.write_bytes(encoded(rgb(), "PNG"))
    return Expect(normal(root) | {item}, scored={item})  # Pillow reads the content, not the name


def one_pixel(root, mp):
    path, item = odd(root, "dot.png")
    Image.new("L", (1, 1), 128).save(path)
    return Expect(normal(root) | {item}, bad={item: ("low_quality", "1×1")})


def bomb_header(root, mp):
    path, item = odd(root, "bomb.png")
    path.write_bytes(png_claiming(100_000, 100_000))  # 10^10 pixels claimed in 100 bytes
    return Expect(normal(root) | {item}, bad={item: ("corrupt", "decompression bomb")})


def bomb_over_limit(root, mp):
    """Pillow only warns between MAX_IMAGE_PIXELS and twice that; winnow must still refuse it."""
    mp.setattr(Image, "MAX_IMAGE_PIXELS", 3_000)  # the 28x28 normal images have 784 pixels
    path, item = odd(root, "big.png")
    rgb(size=64).save(path)  # 4,096 pixels: over the limit, under twice the limit
    return Expect(normal(root) | {item}, bad={item: ("corrupt", "decompression bomb")})


def cmyk_jpeg(root, mp):
    path, item = odd(root, "cmyk.jpg")
    rgb().convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    return Expect(normal(root) | {item}, scored={item})


def sixteen_bit_png(root, mp):
    path, item = odd(root, "deep.png")
    Image.fromarray(PIXELS[0].astype(np.uint16) * 257).save(path)
    assert Image.open(path).mode.startswith("I;16")
    twin, twin_item = odd(root, "twin_8bit.png")
    Image.fromarray(PIXELS[0]).save(twin)  # the same picture in 8 bits
    return Expect(normal(root) | {item, twin_item}, scored={item, twin_item})


def rgba_png(root, mp):
    path, item = odd(root, "transparent.png")
    image = rgb().convert("RGBA")
    image.putalpha(Image.fromarray(np.where(PIXELS[0] > 0, 255, 0).astype(np.uint8)))
    image.save(path)
    return Expect(normal(root) | {item}, scored={item})


def palette_png(root, mp):
    path, item = odd(root, "palette.png")
    rgb().quantize(16).save(path)
    assert Image.open(path).mode == "P"
    return Expect(normal(root) | {item}, scored={item})


def animated_gif(root, mp):
    path, item = odd(root, "animated.gif")
    frames = [rgb(i) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 3
    return Expect(normal(root) | {item}, scored={item})


def exif_rotated(root, mp):
    path, item = odd(root, "rotated.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers rotate it 90° clockwise
    rgb().save(path, exif=exif.tobytes(), quality=95)
    return Expect(normal(root) | {item}, bad={item: ("low_quality", "exif orientation")})


def unreadable_permissions(root, mp):
    path, item = odd(root, "secret.png")
    rgb().save(path)
    path.chmod(0)
    try:
        path.read_bytes()
    except PermissionError:
        return Expect(normal(root) | {item}, bad={item: ("corrupt", "permission denied")})
    path.chmod(0o644)
    pytest.skip("running as root (or with CAP_DAC_OVERRIDE): chmod 000 does not stop this process reading the file")


def symlink_loop_files(root, mp):
    (root / "odd").mkdir(parents=True)
    os.symlink("b.png", root / "odd" / "a.png")
    os.symlink("a.png", root / "odd" / "b.png")
    bad = {"odd/a.png": ("corrupt", "symbolic links"), "odd/b.png": ("corrupt", "symbolic links")}
    return Expect(normal(root) | set(bad), bad=bad)


def symlink_loop_folder(root, mp):
    ids = normal(root)
    os.symlink(".", root / "trouser" / "again")  # trouser/again/again/... forever if followed
    os.symlink("..", root / "trouser" / "up")
    return Expect(ids)  # links to folders are not followed: each image is audited once


def dangling_symlink(root, mp):
    path, item = odd(root, "gone.png")
    os.symlink(root / "nowhere.png", path)
    return Expect(normal(root) | {item}, bad={item: ("corrupt", "no such file")})


def fifo_named_png(root, mp):
    """A named pipe would block a reader forever: it must be refused without being opened."""
    path, item = odd(root, "pipe.png")
    os.mkfifo(path)

    def unblock() -> None:  # if winnow does open the pipe, give it an end of file instead of a hang
        with open(path, "wb"):
            pass

    threading.Thread(target=unblock, daemon=True).start()
    return Expect(normal(root) | {item}, bad={item: ("corrupt", "not a regular file")})


def _hostile_name(name: str):
    def case(root, mp):
        path, item = odd(root, name)
        rgb(1).save(path, format="PNG")
        return Expect(normal(root) | {item}, scored={item})

    return case


def sql_in_name_and_label(root, mp):
    hostile = "'; DROP TABLE findings; --"
    (root / hostile).mkdir(parents=True)
    rgb(1).save(root / hostile / f"{hostile}.png")
    rgb(2).save(root / hostile / "x.png")
    items = {f"{hostile}/{hostile}.png", f"{hostile}/x.png"}
    return Expect(normal(root) | items, scored=items)


def non_utf8_name(root, mp):
    (root / "odd").mkdir(parents=True)
    raw = os.fsencode(root / "odd") + b"/caf\xe9.png"  # Latin-1 bytes in a file name
    with open(raw, "wb") as handle:
        handle.write(encoded(rgb(1), "PNG"))
    item = "odd/caf\\xe9.png"
    return Expect(normal(root) | {item}, bad={item: ("corrupt", "not valid utf-8")})


def empty_folder(root, mp):
    root.mkdir(parents=True)
    (root / "readme.txt").write_text("no images here")
    return Expect(error=("no image files found", "Point winnow at the folder that holds the images"))


def one_class_only(root, mp):
    return Expect(normal(root, per_class=9, classes=(0,)))


def one_item_only(root, mp):
    return Expect(normal(root, per_class=1, classes=(0,)))


def all_identical(root, mp):
    (root / "same").mkdir(parents=True)
    data = encoded(rgb(), "PNG")
    ids = set()
    for i in range(8):
        (root / "same" / f"copy_{i}.png").write_bytes(data)
        ids.add(f"same/copy_{i}.png")
    return Expect(ids, scored=ids)


def everything_unreadable(root, mp):
    (root / "bad").mkdir(parents=True)
    bad = {}
    for i in range(4):
        (root / "bad" / f"b{i}.png").write_bytes(b"not a png %d" % i)
        bad[f"bad/b{i}.png"] = ("corrupt", "not a readable image")
    return Expect(set(bad), bad=bad)


CASES = {
    "zero-byte file": zero_byte,
    "truncated JPEG": truncated_jpeg,
    "truncated PNG": truncated_png,
    "text file named .png": text_named_png,
    "wrong extension (PNG named .jpg)": png_named_jpg,
    "1x1 image": one_pixel,
    "decompression bomb (header claims 10^10 px)": bomb_header,
    "decompression bomb (over MAX_IMAGE_PIXELS)": bomb_over_limit,
    "CMYK JPEG": cmyk_jpeg,
    "16-bit PNG": sixteen_bit_png,
    "RGBA PNG with transparency": rgba_png,
    "palette PNG": palette_png,
    "animated GIF": animated_gif,
    "EXIF-rotated JPEG": exif_rotated,
    "unreadable permissions (chmod 000)": unreadable_permissions,
    "symlink loop (files)": symlink_loop_files,
    "symlink loop (folders)": symlink_loop_folder,
    "dangling symlink": dangling_symlink,
    "named pipe named .png": fifo_named_png,
    "file name with spaces": _hostile_name("a name  with spaces .png"),
    "file name with quotes": _hostile_name("it's a \"quoted\" `name`.png"),
    "file name with a newline": _hostile_name("line\nbreak.png"),
    "SQL in file and folder name": sql_in_name_and_label,
    "non-UTF-8 file name": non_utf8_name,
    "empty folder": empty_folder,
    "one class only": one_class_only,
    "one item only": one_item_only,
    "all items identical": all_identical,
    "every item unreadable": everything_unreadable,
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_image_input(tmp_path, monkeypatch, case):
    root = tmp_path / "images"
    try:
        expect = case(root, monkeypatch)
        result = run_audit(root, tmp_path / "audit.duckdb", *expect.args)
    finally:
        for path in root.rglob("*") if root.exists() else []:
            if not path.is_symlink() and path.is_file():
                path.chmod(0o644)  # let pytest clean tmp_path up
    if expect.error:
        expect_exit_2(result, *expect.error)
        return
    audited = expect_completed(result, tmp_path / "audit.duckdb", expect)
    check = EXTRA_CHECKS.get(case.__name__)
    if check:
        check(audited)


def _exact_copies(audited):
    flagged = audited.findings[(audited.findings.issue_type == "exact_duplicate") & audited.findings.flagged]
    assert len(flagged) == 7 and set(flagged.related_item_id) == {"same/copy_0.png"}


def _single_class(audited):
    assert "label_error" in audited.summary["skipped"]  # one class: nothing to confuse it with


def _sixteen_bit_like_its_twin(audited):
    # scaled to 8 bits, not clipped to white: the 16-bit file embeds like the same picture in 8 bits
    row = audited.finding("odd/twin_8bit.png", "near_duplicate")
    assert row["flagged"] and row["related_item_id"] == "odd/deep.png", row.to_dict()
    assert row["score"] > 0.99


EXTRA_CHECKS = {"all_identical": _exact_copies, "one_class_only": _single_class, "sixteen_bit_png": _sixteen_bit_like_its_twin}
