"""Photo dataset: the split by image, patches, HR/LR pairs and clear errors for bad images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tocsr_nas.teacher.data import (
    DEFAULT_VAL_PHOTOS,
    SKIMAGE_PHOTOS,
    Degradation,
    ImageDataError,
    PatchDataset,
    PhotoDataset,
    downscale,
    load_skimage_photo,
    psnr,
    split_images,
)
from tocsr_nas.errors import TocsrError


@pytest.fixture(scope="module")
def val_photos() -> PhotoDataset:
    return PhotoDataset.from_skimage("val")


def _write(folder, name, size, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name)


@pytest.mark.parametrize("name", list(SKIMAGE_PHOTOS))
def test_every_builtin_photo_is_rgb(name):
    img = load_skimage_photo(name)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256


def test_split_is_by_image_deterministic_disjoint_and_order_free():
    names = [f"img{i}" for i in range(20)]
    train, val = split_images(names, 0.25, seed=7)
    assert len(val) == 5 and set(train).isdisjoint(val) and set(train) | set(val) == set(names)
    assert split_images(names, 0.25, seed=7) == (train, val)
    assert set(split_images(list(reversed(names)), 0.25, seed=7)[1]) == set(val)
    assert set(split_images(names, 0.25, seed=8)[1]) != set(val)


def test_default_held_out_photos_are_documented():
    assert tuple(split_images(list(SKIMAGE_PHOTOS))[1]) == DEFAULT_VAL_PHOTOS
    assert PhotoDataset.from_skimage("val").names == list(DEFAULT_VAL_PHOTOS)
    assert set(PhotoDataset.from_skimage("train").names).isdisjoint(DEFAULT_VAL_PHOTOS)


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_split_rejects_bad_fraction(fraction):
    with pytest.raises(ImageDataError, match="val_fraction"):
        split_images(["a", "b"], fraction)


def test_random_batch_is_seeded_in_range_and_patch_sized(val_photos):
    a = val_photos.random_batch(6, patch_size=48, seed=3)
    assert a.shape == (6, 3, 48, 48) and a.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, val_photos.random_batch(6, patch_size=48, seed=3))
    assert not torch.equal(a, val_photos.random_batch(6, patch_size=48, seed=4))


def test_grid_patches_are_deterministic_and_cover_the_images(val_photos):
    grid = val_photos.grid_patches(64)
    expected = sum((h // 64) * (w // 64) for h, w in (val_photos.image(i).shape[-2:] for i in range(len(val_photos))))
    assert grid.shape == (expected, 3, 64, 64)
    assert torch.equal(grid[0], val_photos.image(0)[:, :64, :64])
    assert val_photos.grid_patches(64, max_per_image=3).shape[0] == 3 * len(val_photos)


def test_lr_is_a_quarter_and_bicubic_of_a_flat_image_is_flat():
    hr = torch.full((2, 3, 64, 64), 0.25)
    lr = downscale(hr, 4)
    assert lr.shape == (2, 3, 16, 16) and torch.allclose(lr, hr[..., :16, :16], atol=1e-6)
    with pytest.raises(ImageDataError, match="not divisible"):
        downscale(torch.zeros(1, 3, 30, 30), 4)


def test_degradation_is_seeded_and_degrades(val_photos):
    hr = val_photos.grid_patches(64, max_per_image=2)
    deg = Degradation()
    lr = deg(hr, 4, seed=1)
    assert lr.shape == (hr.shape[0], 3, 16, 16) and lr.min() >= -1 and lr.max() <= 1
    assert torch.equal(lr, deg(hr, 4, seed=1))
    clean = downscale(hr, 4)
    assert psnr(lr, clean) < psnr(clean, clean)


def test_patch_dataset_pairs(val_photos):
    ds = PatchDataset(val_photos, patch_size=32, train=True, length=5, seed=2)
    item = ds[3]
    assert item["hr"].shape == (3, 32, 32) and item["lr"].shape == (3, 8, 8)
    assert torch.equal(item["hr"], ds[3]["hr"]) and len(ds) == 5
    grid = PatchDataset(val_photos, patch_size=64, train=False)
    assert len(grid) == val_photos.grid_patches(64).shape[0]
    with pytest.raises(IndexError):
        ds[5]


def test_folder_dataset_splits_by_file(tmp_path):
    for i in range(4):
        _write(tmp_path, f"p{i}.png", (80, 72), seed=i)
    (tmp_path / "notes.txt").write_text("not an image")
    train = PhotoDataset.from_folder(tmp_path, "train")
    val = PhotoDataset.from_folder(tmp_path, "val")
    assert len(train) == 3 and len(val) == 1
    assert {n.rsplit("/", 1)[-1] for n in train.names + val.names} == {f"p{i}.png" for i in range(4)}


def test_too_small_image_names_the_file(tmp_path):
    _write(tmp_path, "big.png", (128, 128))
    _write(tmp_path, "small.jpg", (40, 128))
    with pytest.raises(ImageDataError, match=r"small\.jpg is 40x128 px, smaller than the 64 px"):
        PhotoDataset.from_folder(tmp_path, "all")


def test_unreadable_image_names_the_file(tmp_path):
    _write(tmp_path, "ok.png", (128, 128))
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(TocsrError, match=r"cannot read image .*broken\.png"):
        PhotoDataset.from_folder(tmp_path, "all")


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(ImageDataError, match="not found"):
        PhotoDataset.from_folder(tmp_path / "nope")
    with pytest.raises(ImageDataError, match="no images"):
        PhotoDataset.from_folder(tmp_path)


def test_psnr_of_known_error():
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.2)  # 0.1 on the [0, 1] scale -> MSE 0.01 -> 20 dB
    assert psnr(a, b) == pytest.approx(20.0)
