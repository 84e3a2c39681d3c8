"""A folder of image files as 32x32 8-bit RGB images, each as the picture it shows: `--dataset folder:PATH`.

Pillow opens a file in the file's own mode, and `convert("RGB")` is right only
for 8-bit ones: it clips a 16-bit greyscale PNG (values up to 65535) to white,
and drops what transparency meant. So each mode is brought to 8 bits by its own
rule (16-bit / 257; 32-bit integer and float by their range), transparent pixels
are laid over white, as a viewer shows them on a page, and an EXIF orientation
is applied (what `ImageOps.exif_transpose` does, here on the small image).

Memory stays bounded on a folder of large photos: one file is open at a time,
a JPEG is decoded at a reduced scale (`draft`), and anything else is reduced
(box filter) to WORK_SIDE pixels on its shorter side right after decoding, so
no more than one full-size image is held. Images over Pillow's pixel limit
(Image.MAX_IMAGE_PIXELS) are refused, as Pillow's DecompressionBombWarning or
DecompressionBombError; the folder loader skips them like any unreadable file.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image

from tuner.core.errors import DatasetError

log = logging.getLogger("tuner.learn.data")  # the folder dataset's warnings, under the name they always had

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
# Shorter side kept for the final antialiased resize to 32: twice the target, so the box reduction never sets
# the result; smaller images are decoded as they are.
WORK_SIDE = 64
# Modes Image.reduce takes, for modes it does not (and those convert("RGB") gets wrong).
WORKABLE = {"1": "L", "PA": "RGBA", "La": "LA", "RGBa": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "RGBX": "RGB"}
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
# EXIF orientation -> the transposition that shows the picture upright (as ImageOps.exif_transpose).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What may go wrong reading a file a user put in the folder: not an image, broken, too large, a mode with no rule.
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning)


def read_rgb(path: Path, side: int = WORK_SIDE) -> np.ndarray:
    """The picture in `path` as uint8 (H, W, 3), its shorter side reduced to about `side` when larger.
    Raises one of UNREADABLE for a file that is not a readable image."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # over the limit is refused, not warned
        with Image.open(path) as img:
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
            sixteen_bit = img.mode in SIXTEEN_BIT
            scale = side / min(img.size)
            if scale < 0.5:  # a JPEG decodes at 1/2, 1/4 or 1/8 scale, never below `side`
                img.draft(img.mode, (math.ceil(img.width * scale), math.ceil(img.height * scale)))
            small = _reduced(_workable(img), side)
    if orientation in UPRIGHT:
        small = small.transpose(UPRIGHT[orientation])
    return _to_rgb8(small, sixteen_bit)


def _workable(img: Image.Image) -> Image.Image:
    """The image in a mode Image.reduce takes, the decoded original released once converted."""
    if img.mode == "P":
        mode = "RGBA" if "transparency" in img.info else "RGB"
    elif img.mode in SIXTEEN_BIT:
        mode = "I"
    else:
        mode = WORKABLE.get(img.mode, img.mode)
    if mode == img.mode:
        return img
    out = img.convert(mode)
    img.close()  # frees the full-size original: one full-size image at a time
    return out


def _reduced(img: Image.Image, side: int) -> Image.Image:
    factor = min(img.size) // side
    return img.reduce(factor) if factor >= 2 else img.copy()


def _to_rgb8(img: Image.Image, sixteen_bit: bool) -> np.ndarray:
    """L, LA, RGB, RGBA, I or F -> uint8 RGB, alpha laid over white."""
    if img.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        raise ValueError(f"image mode {img.mode} has no rule for 8-bit RGB")
    if img.mode in ("L", "RGB"):
        return np.array(img.convert("RGB"))  # a copy torch may write to
    pixels = np.asarray(img, dtype=np.float64)
    if img.mode in ("I", "F"):
        pixels = _to_255(pixels, img.mode, sixteen_bit)[..., None].repeat(3, axis=2)
    elif img.mode == "LA" or img.mode == "RGBA":
        colour, alpha = pixels[..., :-1], pixels[..., -1:] / 255.0
        pixels = (colour * alpha + 255.0 * (1.0 - alpha)).repeat(3 if img.mode == "LA" else 1, axis=2)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _to_255(values: np.ndarray, mode: str, sixteen_bit: bool) -> np.ndarray:
    """One channel of a wide mode on the 0-255 scale. A 16-bit file is 0-65535. A 32-bit integer image says
    nothing of its range, so it is read as 8-bit when it stays within 255, else 16-bit, else the full 32 bits;
    a float image as 0-1 when it stays within 1 (the usual convention), else as 0-255."""
    top = float(values.max()) if values.size else 0.0
    if mode == "F":
        return values * 255.0 if top <= 1.0 else values
    if sixteen_bit or 255 < top <= 65535:
        return values / 257.0
    return values if top <= 255 else values / (2**32 - 1) * 255.0


def image_32(path: Path) -> torch.Tensor:
    """One file as (3, 32, 32) uint8: shorter side resized to 32 (antialiased), centre-cropped."""
    from torchvision.transforms import v2

    image = torch.from_numpy(read_rgb(path)).permute(2, 0, 1)
    return v2.functional.center_crop(v2.functional.resize(image, 32, antialias=True), 32)


def folder_images(root: Path, limit: int | None = None) -> torch.Tensor:
    """Readable images under root (the first `limit` in name order), any size, mode or bit depth, as 8-bit RGB
    (read_rgb): shorter side resized to 32, centre-cropped to 32x32. Files that are not images (a wrong
    suffix, a broken file, one over Pillow's pixel limit) are skipped with one warning naming them."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    images, broken = [], []
    for f in files:
        if limit is not None and len(images) >= limit:
            break
        try:
            images.append(image_32(f))
        except UNREADABLE:
            broken.append(f)
    shown = ", ".join(str(f) for f in broken[:3]) + (f" and {len(broken) - 3} more" if len(broken) > 3 else "")
    if len(images) < 2:  # the one line says it all, what was skipped included
        skipped = f", {len(broken)} file(s) skipped ({shown})" if broken else ""
        raise DatasetError(
            f"image folder {root} holds {len(images)} readable images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            f"{skipped}; it needs at least 2"
        )
    if broken:
        log.warning("skipped %d file(s) that are not readable images: %s", len(broken), shown)
    return torch.stack(images)
