"""Image records: what image_check lets in, what image_tensor makes of it, the shapes sample."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib

import pytest
import torch
from PIL import Image

from unlearning.images import ImageError, ImageFacts, image_check, image_tensor
from unlearning.sample_images import SHAPE_LABELS, shape_images

LIMITS = dict(max_bytes=1_000_000, max_pixels=1_000_000)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noisy(width: int = 64, height: int = 48) -> Image.Image:
    """An image that does not compress to nothing, so truncation cuts into pixel data."""
    g = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (height, width, 3), generator=g, dtype=torch.uint8)
    return Image.frombytes("RGB", (width, height), raw.numpy().tobytes())


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def handmade_png(width: int, height: int) -> bytes:
    """A structurally valid 8-bit RGB PNG header claiming any size, with no real pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b""))
        + png_chunk(b"IEND", b"")
    )


def test_importing_images_and_samples_does_not_import_torch():
    code = (
        "import sys, unlearning.images, unlearning.sample_images; "
        "unlearning.images.image_check(unlearning.sample_images.shape_images(1, 0)[0][0], "
        "max_bytes=10**6, max_pixels=10**6); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "I;16", "1"])
def test_png_of_every_common_mode_is_accepted(mode):
    image = noisy(40, 30).convert(mode) if mode != "I;16" else Image.new("I;16", (40, 30), 300)
    assert image_check(encode(image, "PNG"), **LIMITS) == ImageFacts("PNG", 40, 30)


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_jpeg_is_accepted(mode):
    data = encode(noisy(40, 30).convert(mode), "JPEG", quality=90)
    assert image_check(data, **LIMITS) == ImageFacts("JPEG", 40, 30)


def test_a_multi_picture_phone_jpeg_counts_as_jpeg():
    data = encode(noisy(16, 16), "MPO", save_all=True, append_images=[noisy(16, 16)])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert image_check(data, **LIMITS).format == "JPEG"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP"])
def test_other_formats_are_refused_by_name(fmt):
    with pytest.raises(ImageError, match=f"{fmt} is not accepted; send PNG or JPEG"):
        image_check(encode(noisy(16, 16), fmt), **LIMITS)


@pytest.mark.parametrize(
    "data", [b"hello, world", b"\x00" * 64, b"<svg xmlns='http://www.w3.org/2000/svg'/>"]
)
def test_garbage_is_refused(data):
    with pytest.raises(ImageError, match="not a PNG or JPEG file"):
        image_check(data, **LIMITS)


def test_empty_and_non_bytes_are_refused():
    with pytest.raises(ImageError, match="empty file"):
        image_check(b"", **LIMITS)
    with pytest.raises(ImageError, match="expected bytes, got str"):
        image_check("a picture", **LIMITS)  # type: ignore[arg-type]
    assert issubclass(ImageError, ValueError)


@pytest.mark.parametrize("cut", [0.5, -12, -4, -1])
def test_truncated_png_is_refused(cut):
    data = encode(noisy(), "PNG")
    end = int(len(data) * cut) if isinstance(cut, float) else len(data) + cut
    with pytest.raises(ImageError, match="truncated"):
        image_check(data[:end], **LIMITS)


@pytest.mark.parametrize("cut", [0.5, -2])
def test_truncated_jpeg_is_refused(cut):
    data = encode(noisy(), "JPEG", quality=90)
    end = int(len(data) * cut) if isinstance(cut, float) else len(data) + cut
    with pytest.raises(ImageError, match="truncated"):
        image_check(data[:end], **LIMITS)


def test_png_with_a_damaged_chunk_or_trailing_data_is_refused():
    data = bytearray(encode(noisy(), "PNG"))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(ImageError, match="corrupt"):
        image_check(bytes(data), **LIMITS)
    with pytest.raises(ImageError, match="data after it"):
        image_check(encode(noisy(), "PNG") + b"PK\x03\x04 a zip file", **LIMITS)


def test_too_many_bytes_is_refused_at_the_limit():
    data = encode(noisy(), "PNG")
    assert image_check(data, max_bytes=len(data), max_pixels=10**6).format == "PNG"
    with pytest.raises(ImageError, match=f"{len(data)} bytes exceeds the limit of"):
        image_check(data, max_bytes=len(data) - 1, max_pixels=10**6)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_too_many_pixels_is_refused_at_the_limit(fmt):
    data = encode(noisy(64, 48), fmt)
    assert image_check(data, max_bytes=10**6, max_pixels=64 * 48).width == 64
    with pytest.raises(ImageError, match="64×48 = 3072 pixels exceeds the limit of 3071"):
        image_check(data, max_bytes=10**6, max_pixels=64 * 48 - 1)


def test_png_pixel_limit_is_checked_before_pillow_reads_anything(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Pillow was asked to open an oversized image")

    monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(ImageError, match="pixels exceeds the limit"):
        image_check(handmade_png(30_000, 30_000), **LIMITS)


def test_decompression_bomb_is_refused_even_under_a_generous_limit():
    bomb = encode(Image.new("1", (20_000, 20_000)), "PNG")  # ~50 KB, 400 M pixels
    assert len(bomb) < 100_000
    with pytest.raises(ImageError, match="decompression bomb"):
        image_check(bomb, max_bytes=10**6, max_pixels=10**9)


@pytest.mark.parametrize(("width", "height"), [(0, 5), (5, 0)])
def test_zero_size_is_refused(width, height):
    with pytest.raises(ImageError, match=f"zero size \\({width}×{height} pixels\\)"):
        image_check(handmade_png(width, height), **LIMITS)


def solid(colour, size=(32, 32), mode="RGB") -> bytes:
    return encode(Image.new(mode, size, colour), "PNG")


def test_tiny_vit_tensor_shape_dtype_and_values():
    tensor = image_tensor(solid((255, 0, 51)), "tiny-vit")
    assert tensor.shape == (3, 16, 16)
    assert tensor.dtype == torch.float32
    expected = torch.tensor([1.0, -1.0, 51 / 255 * 2 - 1]).view(3, 1, 1).expand(3, 16, 16)
    assert torch.allclose(tensor, expected, atol=1e-6)
    half = Image.new("RGB", (32, 32), (0, 0, 0))
    half.paste((255, 255, 255), (0, 0, 16, 32))  # left half white
    split = image_tensor(encode(half, "PNG"), "tiny-vit")
    assert torch.equal(split[:, :, :7], torch.ones(3, 16, 7))
    assert torch.equal(split[:, :, 9:], -torch.ones(3, 16, 7))


def test_tiny_vit_tensor_is_the_same_in_another_process(tmp_path):
    data = shape_images(1, seed=5)[0][0]
    (tmp_path / "image.png").write_bytes(data)
    code = (
        "import sys, torch; from pathlib import Path; from unlearning.images import image_tensor;"
        f"p = Path({str(tmp_path)!r}); "
        "torch.save(image_tensor((p / 'image.png').read_bytes(), 'tiny-vit'), p / 'x.pt')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    there = torch.load(tmp_path / "x.pt")
    here = image_tensor(data, "tiny-vit")
    assert torch.equal(here, there)
    assert not torch.equal(here, image_tensor(shape_images(2, seed=5)[1][0], "tiny-vit"))


def test_transparency_goes_on_white_and_grey_becomes_three_equal_channels():
    clear = image_tensor(solid((0, 0, 0, 0), mode="RGBA"), "tiny-vit")
    assert torch.equal(clear, torch.ones(3, 16, 16))
    grey = image_tensor(solid(128, mode="L"), "tiny-vit")
    assert torch.equal(grey[0], grey[1])
    assert torch.equal(grey[1], grey[2])


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (32, 16), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 16, 16))  # white on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise: the white half ends up on top
    tensor = image_tensor(encode(image, "JPEG", exif=exif.tobytes(), quality=95), "tiny-vit")
    assert tensor[:, :6].min() > 0.9  # top rows white
    assert tensor[:, 10:].max() < -0.9  # bottom rows black


def test_text_backbones_and_unknown_names_are_refused():
    with pytest.raises(ValueError, match="base_model: 'tiny-bert' takes text"):
        image_tensor(solid((1, 2, 3)), "tiny-bert")
    with pytest.raises(ValueError, match="base_model: 'no-such-model'"):
        image_tensor(solid((1, 2, 3)), "no-such-model")
    with pytest.raises(ImageError, match="GIF is not accepted"):
        image_tensor(encode(Image.new("RGB", (4, 4)), "GIF"), "tiny-vit")


@pytest.fixture
def vit_checkpoint(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

    config = ViTConfig(
        image_size=24,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    torch.manual_seed(0)
    ViTForImageClassification(config).save_pretrained(tmp_path)
    ViTImageProcessorPil(
        size={"height": 24, "width": 24}, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.25, 0.5]
    ).save_pretrained(tmp_path)
    return tmp_path


def test_local_checkpoint_uses_its_own_image_processor(vit_checkpoint):
    from transformers import ViTForImageClassification

    tensor = image_tensor(solid((255, 0, 51), size=(40, 30)), str(vit_checkpoint))
    assert tensor.shape == (3, 24, 24)
    assert tensor.dtype == torch.float32
    means, stds = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.5])
    expected = ((torch.tensor([255.0, 0.0, 51.0]) / 255 - means) / stds).view(3, 1, 1)
    assert torch.allclose(tensor, expected.expand(3, 24, 24), atol=1e-5)
    data = shape_images(1, seed=2)[0][0]
    assert torch.equal(
        image_tensor(data, str(vit_checkpoint)), image_tensor(data, str(vit_checkpoint))
    )
    model = ViTForImageClassification.from_pretrained(vit_checkpoint).eval()
    with torch.no_grad():
        assert model(pixel_values=tensor[None]).logits.shape == (1, 3)


def test_checkpoint_without_an_image_processor_is_refused(tmp_path):
    from transformers import ViTConfig

    ViTConfig(image_size=24, patch_size=8, hidden_size=32, num_hidden_layers=1).save_pretrained(
        tmp_path
    )
    with pytest.raises(ValueError, match=r"base_model: .* has no usable image processor"):
        image_tensor(solid((1, 2, 3)), str(tmp_path))


def test_shapes_are_deterministic_balanced_and_acceptable():
    first = shape_images(12, seed=7)
    assert first == shape_images(12, seed=7)
    assert [b for b, _ in first] != [b for b, _ in shape_images(12, seed=8)]
    assert [label for _, label in first] == list(SHAPE_LABELS) * 3
    assert len({b for b, _ in first}) == 12
    for data, _ in first:
        assert image_check(data, max_bytes=10_000, max_pixels=32 * 32) == ImageFacts("PNG", 32, 32)
    subset = shape_images(4, seed=7, labels=("circle", "cross"), size=20)
    assert [label for _, label in subset] == ["circle", "cross", "circle", "cross"]
    assert Image.open(io.BytesIO(subset[0][0])).size == (20, 20)
    with pytest.raises(ValueError, match=r"labels: .*unknown \['hexagon'\]"):
        shape_images(1, seed=0, labels=("circle", "hexagon"))
