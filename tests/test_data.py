import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image

from tuner.core.errors import DatasetError, SettingsError
from tuner.learn.data import load_images
from tuner.learn.decode import image_32
from tuner.learn.synthetic import synthetic_images


def test_synthetic_is_deterministic_per_seed():
    assert torch.equal(synthetic_images(40, seed=3), synthetic_images(40, seed=3))
    assert not torch.equal(synthetic_images(40, seed=3), synthetic_images(40, seed=4))


def test_synthetic_looks_like_images():
    x = synthetic_images(256, seed=0)
    assert x.shape == (256, 3, 32, 32) and x.dtype == torch.uint8
    assert x.float().std() > 30  # not flat
    # natural images are smooth: neighbouring pixels correlate strongly
    f = x.float()
    a, b = f[..., :, 1:].flatten(), f[..., :, :-1].flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.7


def test_synthetic_splits_have_requested_sizes_and_no_shared_images():
    splits = load_images("synthetic", train_size=50, val_size=20, seed=0)
    assert splits.source == "synthetic"
    assert len(splits.train) == 50 and len(splits.val) == 20
    assert not any(torch.equal(v, t) for v in splits.val for t in splits.train)
    assert splits.benchmark_images is splits.val


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'.*synthetic"):
        load_images("imagenet", 10, 10)


def test_folder_dataset_resizes_any_image_size(tmp_path):
    for i, size in enumerate([(64, 48), (32, 32), (100, 300), (20, 20), (50, 50)]):
        Image.new("RGB", size, (i * 40, 100, 200)).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    splits = load_images(f"folder:{tmp_path}", train_size=100, val_size=1, seed=0)
    assert splits.train.shape[1:] == (3, 32, 32)
    assert len(splits.train) + len(splits.val) == 5


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_images(f"folder:{tmp_path / 'nope'}", 10, 10)


def test_cifar10_offline_fails_with_a_hint(tmp_path, monkeypatch):
    # Point the download at a closed local port: the same failure as having no internet.
    monkeypatch.setattr("torchvision.datasets.CIFAR10.url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(DatasetError, match="could not be downloaded.*--dataset synthetic"):
        load_images("cifar10", 10, 10, data_dir=tmp_path)


def test_auto_falls_back_to_synthetic_with_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("torchvision.datasets.CIFAR10.url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with caplog.at_level(logging.WARNING):
        splits = load_images("auto", 10, 5, data_dir=tmp_path)
    assert splits.source == "synthetic"
    assert len([r for r in caplog.records if "synthetic" in r.message]) == 1


# --- images as they come: every mode and bit depth decodes to what the same picture gives in 8-bit RGB ---


def picture(width: int = 96, height: int = 80) -> Image.Image:
    """One smooth 8-bit RGB picture (gradients and a disc) that every variant below is made from."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    disc = ((xs - width * 0.6) ** 2 + (ys - height * 0.4) ** 2 < (height * 0.25) ** 2) * 90.0
    rgb = np.stack([xs / width * 200 + 20, ys / height * 180 + disc, 240 - xs / width * 120 - disc * 0.5], axis=2)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def as_32(path: Path) -> torch.Tensor:
    """A file as the folder loader gives it: (3, 32, 32) uint8."""
    return image_32(path)


def over_white(image: Image.Image) -> Image.Image:
    """What a picture with transparency looks like laid over white, in 8-bit RGB."""
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")


def alpha_mask(size: tuple[int, int]) -> Image.Image:
    """Opaque, then a transparent block, then a half-transparent one."""
    alpha = np.full((size[1], size[0]), 255, np.uint8)
    alpha[:20, :30], alpha[40:, 50:] = 0, 128
    return Image.fromarray(alpha)


def variants(rgb: Image.Image) -> dict[str, tuple[str, Image.Image, Image.Image]]:
    """name -> (file suffix, the image to save, the 8-bit RGB picture it must decode to)."""
    grey = rgb.convert("L")
    wide = np.asarray(grey).astype(np.uint16) * 257  # 8 bits to 16: 0 -> 0, 255 -> 65535
    big_endian = Image.frombytes("I;16B", grey.size, wide.astype(">u2").tobytes())
    bw = grey.point(lambda v: 255 if v >= 128 else 0).convert("1", dither=Image.Dither.NONE)
    palette = rgb.quantize(64)
    see_through = palette.copy()
    see_through.info["transparency"] = int(np.asarray(palette)[0, 0])  # the top-left colour
    la, rgba = grey.convert("LA"), rgb.convert("RGBA")
    la.putalpha(alpha_mask(rgb.size))
    rgba.putalpha(alpha_mask(rgb.size))
    as_grey = grey.convert("RGB")
    return {
        "I;16 png": (".png", Image.fromarray(wide), as_grey),
        "I;16B tiff": (".tif", big_endian, as_grey),
        "I 32-bit tiff": (".tif", grey.convert("I"), as_grey),
        "I 32-bit, 16-bit values": (".tif", Image.fromarray(wide.astype(np.int32)), as_grey),
        "F tiff, 0 to 1": (".tif", Image.fromarray(np.asarray(grey, np.float32) / 255), as_grey),
        "1-bit png": (".png", bw, bw.convert("RGB")),
        "P png": (".png", palette, palette.convert("RGB")),
        "P png with transparency": (".png", see_through, over_white(see_through)),
        "P gif with transparency": (".gif", see_through, over_white(see_through)),
        "LA png": (".png", la, over_white(la)),
        "RGBA png": (".png", rgba, over_white(rgba)),
        "CMYK tiff": (".tif", rgb.convert("CMYK"), rgb.convert("CMYK").convert("RGB")),
        "RGB webp lossless": (".webp", rgb, rgb),
    }


@pytest.mark.parametrize("name", sorted(variants(picture())))
def test_every_mode_decodes_as_its_8_bit_rgb_picture(tmp_path, name):
    suffix, image, expected = variants(picture())[name]
    image.save(tmp_path / f"a{suffix}", **({"lossless": True} if suffix == ".webp" else {}))
    if suffix == ".gif":  # Pillow's GIF writer renumbers the palette: the picture is what the file holds
        with Image.open(tmp_path / f"a{suffix}") as saved:
            expected = over_white(saved)
    expected.save(tmp_path / "b.png")
    got, want = as_32(tmp_path / f"a{suffix}"), as_32(tmp_path / "b.png")
    assert got.float().mean() > 20  # not black...
    assert (got.int() - want.int()).abs().max() <= 1, name  # ...and not white: the same picture, to rounding


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_an_exif_rotated_jpeg_is_shown_upright(tmp_path, orientation):
    upright = picture(96, 64)
    undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation  # "turn me to be upright", as a camera held sideways writes
    upright.transpose(undo[orientation]).save(tmp_path / "a.jpg", quality=95, exif=exif)
    upright.save(tmp_path / "b.jpg", quality=95)
    got, want = as_32(tmp_path / "a.jpg").float(), as_32(tmp_path / "b.jpg").float()
    assert (got - want).abs().mean() < 2, orientation  # JPEG loses a little either way; sideways would be ~40


def test_large_images_decode_small_and_alike(tmp_path):
    big = picture(1600, 1200)
    big.save(tmp_path / "a.jpg", quality=95)  # decoded at 1/8 scale (draft)
    Image.fromarray(np.asarray(big.convert("L")).astype(np.uint16) * 257).save(tmp_path / "b.png")  # reduced
    big.save(tmp_path / "c.png")
    jpeg, grey16, rgb = (as_32(tmp_path / n).float() for n in ("a.jpg", "b.png", "c.png"))
    big.convert("L").convert("RGB").save(tmp_path / "d.png")
    assert (jpeg - rgb).abs().mean() < 2
    assert (grey16 - as_32(tmp_path / "d.png").float()).abs().max() <= 1


MEASURE_DECODE = """
import resource, sys
from tuner.learn.decode import read_rgb
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
small = read_rgb(sys.argv[1])
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024, small.shape)
"""


def test_a_large_jpeg_is_never_decoded_at_full_size(tmp_path):
    Image.linear_gradient("L").resize((4800, 3600)).convert("RGB").save(tmp_path / "big.jpg")  # 52 MB decoded
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_DECODE, str(tmp_path / "big.jpg")], capture_output=True, text=True, timeout=120
    )
    grown, shape = done.stdout.split(" ", 1)
    assert int(grown) < 4800 * 3600 * 3 // 4, done.stdout  # peak memory grew by far less than the full image
    assert "(65, 86, 3)" in shape  # decoded at 1/8 (450 x 600), then reduced by 7: shorter side about 64


def test_an_image_over_the_pixel_limit_is_skipped_with_the_others(tmp_path, monkeypatch, caplog):
    for i in range(3):
        Image.new("RGB", (8, 8), (i * 60, 90, 200)).save(tmp_path / f"ok{i}.png")
    Image.new("RGB", (40, 40)).save(tmp_path / "bomb.png")  # 1,600 pixels: over twice the limit (an error)
    Image.new("RGB", (30, 30)).save(tmp_path / "large.png")  # 900 pixels: over the limit (a warning in Pillow)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 700)
    with caplog.at_level(logging.WARNING):
        splits = load_images(f"folder:{tmp_path}", train_size=2, val_size=1)  # what a sweep reads
    assert len(splits.train) + len(splits.val) == 3
    (warning,) = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert "skipped 2 file(s)" in warning and "bomb.png" in warning and "large.png" in warning


def test_synthetic_sizes_beyond_memory_are_refused_before_any_image_is_made():
    with pytest.raises(SettingsError, match=r"lower --train-size and --val-size to at most [\d,]+ images"):
        load_images("synthetic", train_size=10**12, val_size=10)


def test_an_offline_download_leaves_no_directory_behind(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.CIFAR10.url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    monkeypatch.setenv("TUNER_DATA_DIR", str(tmp_path / "cache" / "tuner" / "data"))
    with pytest.raises(DatasetError, match="could not be downloaded"):
        load_images("cifar10", 10, 10)
    assert list(tmp_path.iterdir()) == []  # neither data/ nor the cache/tuner/ above it
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(DatasetError):
        load_images("cifar10", 10, 10, data_dir=tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]  # a folder that was there stays
