import io

import numpy as np
import pytest
from PIL import Image

from colorize_core.color import rgb_to_lab
from colorize_core.imageio import ImageReadError, ReaderConfig, decode_image
from colorize_core.shards import PreprocessConfig, decode_lab, make_row, resize_crop
from tests.bad_inputs import bad_inputs, jpeg_bytes
from tests.photos import real_photo_bytes


@pytest.mark.parametrize("name,data", list(bad_inputs().items()))
def test_bad_input_gives_the_typed_error(name, data):
    with pytest.raises(ImageReadError) as e:
        decode_image(data, f"collection/{name}")
    assert e.value.name == f"collection/{name}"
    assert e.value.reason
    assert name in str(e.value)


def test_reasons_are_specific():
    corpus = bad_inputs()
    reasons = {}
    for name, data in corpus.items():
        with pytest.raises(ImageReadError) as e:
            decode_image(data, name)
        reasons[name] = e.value.reason
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["text.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "too large" in reasons["huge.png"]


def test_pixel_limit_is_configurable():
    with pytest.raises(ImageReadError, match="too large"):
        decode_image(jpeg_bytes((64, 64)), "x.jpg", ReaderConfig(max_pixels=1000))


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_cmyk_jpeg_becomes_rgb():
    d = decode_image(jpeg_bytes((32, 16), mode="CMYK"), "cmyk.jpg")
    assert d.pixels.shape == (16, 32, 3) and d.pixels.dtype == np.uint8 and d.mode == "CMYK"


def test_sixteen_bit_png_keeps_its_depth():
    arr = (np.arange(64 * 32, dtype=np.uint32).reshape(32, 64) * 31).astype(np.uint16)
    d = decode_image(_save(Image.fromarray(arr), "PNG"), "deep.png")
    assert d.pixels.dtype == np.uint16 and d.bit_depth == 16 and d.is_gray
    np.testing.assert_array_equal(d.pixels, arr)


def test_palette_with_transparency_keeps_alpha():
    img = Image.new("P", (10, 10))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.paste(1, (0, 0, 5, 10))
    img.info["transparency"] = 0
    d = decode_image(_save(img, "PNG", transparency=0), "pal.png")
    assert d.pixels.shape == (10, 10, 3)
    assert d.alpha is not None and d.alpha[0, 0] == 255 and d.alpha[0, 9] == 0


def test_one_by_one_and_gray_alpha():
    d = decode_image(_save(Image.new("L", (1, 1), 7), "PNG"), "dot.png")
    assert d.pixels.shape == (1, 1) and d.pixels[0, 0] == 7
    d = decode_image(_save(Image.new("LA", (3, 2), (9, 100)), "PNG"), "la.png")
    assert d.is_gray and d.alpha is not None and d.alpha[0, 0] == 100


def test_exif_orientation_is_applied():
    arr = np.zeros((20, 40), np.uint8)
    arr[:, :10] = 255  # bright band on the left
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise on display
    d = decode_image(_save(img, "JPEG", exif=exif.tobytes(), quality=95), "rot.jpg")
    assert d.size == (40, 20)
    assert d.pixels[:10].mean() > 200  # the band is now at the top
    if d.exif is not None:  # the orientation tag is consumed, so viewers do not rotate twice
        ex = Image.Exif()
        ex.load(d.exif)
        assert ex.get(0x0112, 1) == 1


@pytest.mark.parametrize("orientation", [1, 6])
def test_reduced_decode_for_training_rows(orientation):
    """A JPEG over twice the training size is decoded at a reduced DCT scale that still covers the
    short side; the row records the source's full size (turned by its EXIF orientation), and its
    L is that of the full decode resized, up to the resampling."""
    photo = Image.open(io.BytesIO(next(iter(real_photo_bytes().values())))).convert("RGB").resize((1200, 800))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _save(photo, "JPEG", quality=92, exif=exif.tobytes())
    full = (1200, 800) if orientation == 6 else (800, 1200)  # (height, width) as displayed
    small = decode_image(data, "big.jpg", at_least=256)
    assert small.source_size == full and small.size == (full[0] // 2, full[1] // 2)  # 1/4 would leave 200 < 256
    assert decode_image(data, "big.jpg").source_size is None
    row = make_row(data, "big.jpg", PreprocessConfig())
    assert (row["orig_height"], row["orig_width"]) == full
    L, _ = decode_lab(row["L"], row["ab"], 256, 256)
    expected = rgb_to_lab(resize_crop(decode_image(data, "big.jpg").rgb8(), 256))[..., 0]
    assert np.abs(L - expected).mean() < 1.0


@pytest.mark.parametrize("shape", [(300, 450), (450, 300), (257, 1000), (200, 311), (256, 256)])
def test_training_crop_resamples_only_the_crop(shape):
    """The centred square is resampled alone (Pillow's box): the pixels of resizing the whole photo
    and cropping, up to Pillow's fixed-point rounding."""
    h, w = shape
    rgb = np.asarray(Image.open(io.BytesIO(next(iter(real_photo_bytes().values())))).convert("RGB").resize((w, h)))
    s = 256 / min(h, w)
    nh, nw = max(256, round(h * s)), max(256, round(w * s))
    top, left = (nh - 256) // 2, (nw - 256) // 2
    whole = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.LANCZOS))[top : top + 256, left : left + 256]
    diff = np.abs(resize_crop(rgb, 256).astype(int) - whole)
    assert diff.max() <= 2 and diff.mean() < 0.01
