"""Image records: checking untrusted bytes and turning them into model inputs.

Images arrive from data platforms as raw bytes and are kept as they came, so two things
happen at two times. ``image_check`` runs when a record is accepted: only PNG and JPEG,
recognised by their signature *and* by what Pillow decodes, bounded in bytes and pixels
before any pixel is decompressed (a 50 KB PNG can claim 400 million pixels), verified and
then fully decoded, so a truncated or corrupt file is refused at the door with a message
naming what is wrong, never later inside a training run. ``image_tensor`` runs when a stage
is trained, replayed or served: it decodes the same bytes and preprocesses them the same
way every time, because a replay must see the very same input tensor to reproduce a stage
bit for bit (Pillow's version therefore belongs in a stage's runtime recipe).

This module imports no torch at import time: the web process checks uploads without it.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageOps

if TYPE_CHECKING:
    import torch

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: empty, fixed CRC
_JPEG_SIGNATURE = b"\xff\xd8\xff"
# Signatures of formats people send instead, so the refusal can name what was sent.
_OTHER_SIGNATURES = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"%PDF", "PDF"),
)
# Pillow names a JPEG holding several pictures (most phone cameras) MPO; it is a JPEG.
_DECODED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG"}
# A fixed filter: changing it changes every preprocessed tensor, hence every replay.
TINY_RESAMPLE = Image.Resampling.BILINEAR


class ImageError(ValueError):
    """The bytes are not an image Lethe accepts; the message says what to fix."""


@dataclass(frozen=True)
class ImageFacts:
    """What an accepted image is.

    Attributes:
        format: "PNG" or "JPEG".
        width: width in pixels, as stored.
        height: height in pixels, as stored.
    """

    format: str
    width: int
    height: int


def _signature_format(data: bytes) -> str:
    """ "PNG" or "JPEG" from the first bytes, or an ImageError naming what was sent."""
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data.startswith(_JPEG_SIGNATURE):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        found = "WEBP"
    else:
        found = next((name for sig, name in _OTHER_SIGNATURES if data.startswith(sig)), "")
    if found:
        raise ImageError(f"image: {found} is not accepted; send PNG or JPEG")
    raise ImageError(
        f"image: not a PNG or JPEG file (it starts with bytes {data[:8].hex(' ')}); "
        "send PNG or JPEG"
    )


def _png_header_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR, read before Pillow sees the data."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageError("image: PNG is truncated or corrupt (no IHDR header chunk)")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"image: zero size ({width}×{height} pixels); nothing to learn from")
    if width * height > max_pixels:
        raise ImageError(
            f"image: {width}×{height} = {width * height} pixels exceeds the limit of "
            f"{max_pixels} pixels; downscale it before sending"
        )


def _open(data: bytes) -> Image.Image:
    """Open (not decode) PNG/JPEG bytes with Pillow; nothing else is even tried."""
    try:
        return Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"image: too many pixels, refused as a decompression bomb ({exc})"
        ) from exc
    except Exception as exc:  # Pillow raises many types for bad input; all mean "corrupt"
        raise ImageError(f"image: cannot read the image header ({exc}); file is corrupt") from exc


def _decoded_format(image: Image.Image, expected: str) -> str:
    decoded = _DECODED_FORMATS.get(image.format or "", "")
    if decoded != expected:
        raise ImageError(
            f"image: starts like {expected} but decodes as {image.format or 'nothing'}; "
            "send a plain PNG or JPEG"
        )
    return decoded


def image_check(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageFacts:
    """Accept PNG or JPEG bytes that decode completely within the limits, or say why not.

    Order matters: size in bytes, signature and (for PNG) the header's pixel count are
    checked before Pillow decompresses anything; then Pillow must decode the same format,
    ``verify()`` must pass (PNG chunk checksums) and a full ``load()`` must succeed, which
    refuses truncated files (Pillow's ``LOAD_TRUNCATED_IMAGES`` must stay False, its
    default). Last, the image must convert to RGB, which is what training will do.

    Args:
        data: the file's bytes, exactly as they will be stored.
        max_bytes: largest accepted file size.
        max_pixels: largest accepted width × height (also bounds decoded memory).

    Returns:
        The image's format and size.

    Raises:
        ImageError: with a message naming what is wrong.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImageError(f"image: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ImageError("image: empty file (0 bytes)")
    if len(data) > max_bytes:
        raise ImageError(
            f"image: {len(data)} bytes exceeds the limit of {max_bytes} bytes; "
            "compress or downscale it before sending"
        )
    expected = _signature_format(data)
    if expected == "PNG":
        _check_size(*_png_header_size(data), max_pixels)
        if not data.endswith(_PNG_END):
            raise ImageError(
                "image: PNG is truncated (it does not end with its IEND chunk) or has data after it"
            )
    image = _open(data)
    fmt = _decoded_format(image, expected)
    width, height = image.size
    _check_size(width, height, max_pixels)
    try:
        image.verify()
        image = _open(data)  # verify() leaves the image unusable; decode a fresh one
        image.load()
        _to_rgb(image)
    except Exception as exc:
        raise ImageError(f"image: {fmt} data is truncated or corrupt ({exc})") from exc
    return ImageFacts(fmt, width, height)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Upright RGB, transparent pixels on white (as Hugging Face's convert_to_rgb does)."""
    upright = ImageOps.exif_transpose(image)
    if upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info:
        rgba = upright.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return upright.convert("RGB")


def decode_rgb(data: bytes) -> Image.Image:
    """Decode PNG/JPEG bytes to an upright RGB Pillow image (no size limits applied here).

    Raises:
        ImageError: when the bytes are not a PNG or JPEG that decodes.
    """
    expected = _signature_format(bytes(data))
    image = _open(bytes(data))
    _decoded_format(image, expected)
    try:
        image.load()
        return _to_rgb(image)
    except Exception as exc:
        raise ImageError(f"image: {expected} data is truncated or corrupt ({exc})") from exc


def image_tensor(data: bytes, backbone: str) -> torch.Tensor:
    """The preprocessed float32 [C, H, W] input of one image for a vision backbone.

    Deterministic: the same bytes give the same tensor bits in every process (same Pillow
    and, for checkpoints, transformers versions).

    - ``tiny-vit``: resized to its config's ``image_size`` square with ``TINY_RESAMPLE``,
      scaled to [0, 1] and normalised with mean = std = 0.5, i.e. to [-1, 1].
    - a local checkpoint folder: its own ``AutoImageProcessor`` with the PIL backend (the
      "slow" processor: a torchvision backend would compute other bits).

    Args:
        data: PNG or JPEG bytes (already accepted by ``image_check``).
        backbone: "tiny-vit" or the path of a local checkpoint folder.

    Raises:
        ImageError: when the bytes do not decode.
        ValueError: "base_model: ..." when the backbone takes no images.
    """
    tiny = _tiny_input(backbone)
    if tiny is not None:
        return _tiny_tensor(decode_rgb(data), *tiny)
    if not Path(backbone).is_dir():
        raise ValueError(f"base_model: {backbone!r} is neither tiny-vit nor a local checkpoint")
    import torch

    processor = _processor(str(Path(backbone).resolve()))
    pixels = processor(images=decode_rgb(data), return_tensors="pt")["pixel_values"][0]
    return pixels.to(dtype=torch.float32).contiguous()  # type: ignore[no-any-return]


@cache
def _tiny_input(backbone: str) -> tuple[int, int] | None:
    """(image size, channels) of a tiny vision backbone; None for a name that is not tiny."""
    from unlearning.backbones import _tiny_configs

    tiny = _tiny_configs()
    if backbone not in tiny:
        return None
    family, config = tiny[backbone]
    if family != "vision":
        raise ValueError(f"base_model: {backbone!r} takes text, not images")
    return int(config.image_size), int(config.num_channels)


def _tiny_tensor(image: Image.Image, size: int, channels: int) -> torch.Tensor:
    import torch

    if channels != 3:
        raise ValueError(f"base_model: tiny vision backbone takes {channels} channels, not 3")
    resized = image.resize((size, size), resample=TINY_RESAMPLE)
    raw = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8)
    pixels = raw.view(size, size, 3).permute(2, 0, 1).to(torch.float32)
    return ((pixels / 255.0 - 0.5) / 0.5).contiguous()


@cache
def _processor(path: str) -> Any:
    """A checkpoint's image processor, loaded once per process (PIL backend, offline)."""
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(  # type: ignore[no-untyped-call]
            path, backend="pil", local_files_only=True
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(
            f"base_model: {path!r} has no usable image processor (preprocessor_config.json): {exc}"
        ) from exc
