"""Image patches from real photos, split by image, and HR/LR pairs for super-resolution.

**Photos.** By default the real RGB photographs that ship inside scikit-image (no download):

================== ============ =========================================
name               size (HxW)   content
================== ============ =========================================
astronaut          512 x 512    portrait (Eileen Collins)
chelsea            300 x 451    cat
coffee             400 x 600    cup of coffee
hubble_deep_field  872 x 1000   galaxies
ihc                512 x 512    immunohistochemistry microscopy
motorcycle_left    500 x 741    motorcycle (left view of a stereo pair)
retina             1411 x 1411  fundus photograph
rocket             427 x 640    SpaceX rocket launch
================== ============ =========================================

(``motorcycle_right`` is left out: it is the same scene as ``motorcycle_left`` and would leak
across the split.) Any folder of PNG/JPEG/BMP/TIFF/WebP images works too (e.g. DIV2K).

**Split.** Train and validation are split *by image*, never by patch: :func:`split_images`
ranks the names by ``sha256(f"{seed}:{name}")`` and holds out the first
``round(val_fraction * n)`` (at least one). The result depends only on the set of names and the
seed, not on their order. With the defaults (``val_fraction=0.25``, ``seed=0``) the held-out
photos are :data:`DEFAULT_VAL_PHOTOS` = ``("ihc", "motorcycle_left")``.

**Patches.** Training patches are random crops (default 64 px) with a random horizontal flip;
patch ``i`` is a pure function of ``(seed, i)``, so a resumed run sees the same data.
Validation patches are a deterministic grid. Tensors are float32 in ``[-1, 1]``, ``(B, 3, H, W)``.

**HR/LR.** :func:`downscale` is antialiased bicubic x4 (``F.interpolate(mode="bicubic",
antialias=True)``); :class:`Degradation` adds a realistic first-order degradation (Gaussian
blur, bicubic downscale, Gaussian noise, JPEG) drawn from a seed.

Example:
    >>> train = PhotoDataset.from_skimage("train")
    >>> batch = train.random_batch(4, patch_size=64, seed=0)
    >>> batch.shape, float(batch.min()) >= -1.0
    (torch.Size([4, 3, 64, 64]), True)
    >>> downscale(batch, 4).shape
    torch.Size([4, 3, 16, 16])
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import pack, rearrange, unpack
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from tocsr_nas._io import one_line
from tocsr_nas.errors import TocsrError

__all__ = [
    "ImageDataError",
    "SKIMAGE_PHOTOS",
    "DEFAULT_VAL_PHOTOS",
    "EVAL_ONLY_PHOTOS",
    "IMAGE_SUFFIXES",
    "split_images",
    "load_image",
    "load_skimage_photo",
    "PhotoDataset",
    "PatchDataset",
    "downscale",
    "Degradation",
    "to_tensor",
    "to_uint8",
    "psnr",
]

#: image file suffixes read from a folder
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageDataError(TocsrError):
    """An unreadable, too small or missing image, or an empty image folder."""


def _skimage_loader(fn_name: str, index: int | None = None) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data  # local import: scikit-image is only needed for the built-in photos

        out = getattr(data, fn_name)()
        return out[index] if index is not None else out

    return load


#: the real RGB photos shipped with scikit-image (all load offline), name -> loader
SKIMAGE_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage_loader("astronaut"),
    "chelsea": _skimage_loader("chelsea"),
    "coffee": _skimage_loader("coffee"),
    "hubble_deep_field": _skimage_loader("hubble_deep_field"),
    "ihc": _skimage_loader("immunohistochemistry"),
    "motorcycle_left": _skimage_loader("stereo_motorcycle", 0),
    "retina": _skimage_loader("retina"),
    "rocket": _skimage_loader("rocket"),
}


def split_images(names: Sequence[str], val_fraction: float = 0.25, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split image names into (train, val), deterministically from ``seed``, by image.

    Names are ranked by ``sha256(f"{seed}:{name}")``; the first ``max(1, round(val_fraction * n))``
    are held out (none when ``val_fraction == 0``). Both lists keep the input order.

    Args:
        names: distinct image names.
        val_fraction: fraction held out for validation, in ``[0, 1)``.
        seed: the split's seed.

    Returns:
        ``(train_names, val_names)``, disjoint, covering ``names``.

    Raises:
        ImageDataError: for duplicate names, a bad fraction, or too few images to hold any out.

    Example:
        >>> split_images(list(SKIMAGE_PHOTOS))[1]
        ['ihc', 'motorcycle_left']
    """
    names = list(names)
    if len(set(names)) != len(names):
        raise ImageDataError("image names must be distinct to split by image")
    if not 0.0 <= val_fraction < 1.0:
        raise ImageDataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0:
        return names, []
    if len(names) < 2:
        raise ImageDataError(f"need at least 2 images to hold one out for validation, got {len(names)}")
    n_val = min(len(names) - 1, max(1, round(val_fraction * len(names))))
    ranked = sorted(names, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
    held = set(ranked[:n_val])
    return [n for n in names if n not in held], [n for n in names if n in held]


#: the photos held out with the default split (``val_fraction=0.25``, ``seed=0``)
DEFAULT_VAL_PHOTOS: tuple[str, ...] = ("ihc", "motorcycle_left")

#: more photos shipped in the scikit-image wheel (load offline) that no split ever trains on:
#: only evaluation reads them (:meth:`PhotoDataset.heldout_suite`). Grey ones are replicated to RGB.
#: ``motorcycle_right`` is the other view of the held-out ``motorcycle_left``.
EVAL_ONLY_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "motorcycle_right": _skimage_loader("stereo_motorcycle", 1),
    "camera": _skimage_loader("camera"),
    "coins": _skimage_loader("coins"),
    "moon": _skimage_loader("moon"),
    "clock": _skimage_loader("clock"),
    "text": _skimage_loader("text"),
    "page": _skimage_loader("page"),
    "brick": _skimage_loader("brick"),
    "grass": _skimage_loader("grass"),
    "gravel": _skimage_loader("gravel"),
}


def _as_rgb(array: np.ndarray, name: str, white: float | None = None) -> np.ndarray:
    """Any 2-D / 3-D pixel array -> ``(H, W, 3)`` uint8, keeping its brightness.

    ``uint8`` is kept; other values are scaled by ``255 / white`` and rounded, where ``white`` (the
    value of white) defaults to 65535 for ``uint16``, 1 for floats and booleans, and 255 for other
    integers. Grey is replicated to three channels, alpha dropped.

    Raises:
        ImageDataError: NaN or infinite pixels, pixels outside ``[0, white]`` (nothing is clipped
            silently), or a shape that is not an image (the message starts with ``name``).
    """
    a = np.asarray(array)
    if a.dtype != np.uint8:
        if white is None:
            white = 65535.0 if a.dtype == np.uint16 else 1.0 if a.dtype.kind in "fb" else 255.0
        values = a.astype(np.float64)
        if not np.isfinite(values).all():
            raise ImageDataError(f"{name}: NaN or infinite pixels")
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if low < 0 or high > white:
            raise ImageDataError(f"{name}: {a.dtype} pixels span [{low:g}, {high:g}], outside [0, {white:g}]")
        a = np.rint(values * (255.0 / white)).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ImageDataError(f"{name}: expected an RGB image, got an array of shape {a.shape}")
    return np.ascontiguousarray(a[..., :3])


#: PIL modes of 8 bits per sample that ``Image.convert("RGB")`` maps faithfully (grey replicated,
#: palette looked up, alpha dropped, CMYK / YCbCr / LAB converted)
_RGB_CONVERTIBLE = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})


def _white_level(img: Image.Image, path: Path) -> float:
    """The value of white in a 16/32-bit integer or float image (its pixels are divided by it)."""
    if img.mode.startswith("I;16"):
        return 65535.0
    if img.mode == "F":
        return 1.0  # floating-point images are in [0, 1] (checked by _as_rgb)
    # mode "I" (32-bit integers): the file's declared bits per sample give the range
    bits = 16 if img.format == "PNG" else None
    tags = getattr(img, "tag_v2", None)
    if tags is not None and tags.get(258):
        bits = int(tags.get(258)[0])
    if bits in (8, 16):
        return float(2**bits - 1)
    raise ImageDataError(
        f"cannot read image {path}: {bits or 'unknown'}-bit integer pixels (mode I) have no known white level; "
        "save it with 8 or 16 bits per sample"
    )


def _pil_to_rgb(img: Image.Image, path: Path) -> np.ndarray:
    """An opened PIL image of any mode as ``(H, W, 3)`` uint8 RGB, keeping its brightness.

    8-bit modes go through ``convert("RGB")``; 16-bit greyscale (``I;16*``, and ``I`` with 8 or 16
    bits declared) and floating-point greyscale (``F``, in ``[0, 1]``) are scaled by their white
    level in :func:`_as_rgb` (PIL's own ``convert`` clips a 16-bit image to 255 almost everywhere).
    """
    if img.mode in _RGB_CONVERTIBLE:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        return _as_rgb(np.asarray(img), f"cannot read image {path}", white=_white_level(img, path))
    raise ImageDataError(f"cannot read image {path}: unsupported mode {img.mode} (convert it to RGB)")


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB: the one loader of every image a user gives.

    Every mode PIL opens is converted keeping its brightness (grey, palette, alpha, CMYK, YCbCr, LAB
    through ``convert("RGB")``; 16-bit greyscale divided by 65535; float greyscale in ``[0, 1]``), or
    refused; the EXIF orientation is applied (a phone photo stays upright); multi-frame files give
    their first frame.

    Raises:
        ImageDataError: if the file is missing, not an image, truncated or corrupt, or its pixels
            cannot be mapped to RGB (the message names the file).
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # keeps the file's format and tags, read below
            return _pil_to_rgb(img, path)
    except FileNotFoundError as exc:
        raise ImageDataError(f"image not found: {path}") from exc
    except IsADirectoryError as exc:
        raise ImageDataError(f"cannot read image {path}: it is a folder") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageDataError(f"cannot read image {path}: {one_line(exc)}") from exc


def load_skimage_photo(name: str) -> np.ndarray:
    """One of :data:`SKIMAGE_PHOTOS` or :data:`EVAL_ONLY_PHOTOS` as ``(H, W, 3)`` uint8 (decoded once per process, then copied)."""
    if name not in SKIMAGE_PHOTOS and name not in EVAL_ONLY_PHOTOS:
        valid = ", ".join([*SKIMAGE_PHOTOS, *EVAL_ONLY_PHOTOS])
        raise ImageDataError(f"unknown scikit-image photo {name!r}; valid: {valid}")
    return _decoded_skimage_photo(name).copy()


@functools.lru_cache(maxsize=None)
def _decoded_skimage_photo(name: str) -> np.ndarray:
    return _as_rgb({**SKIMAGE_PHOTOS, **EVAL_ONLY_PHOTOS}[name](), name)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32 in ``[-1, 1]``."""
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))
    return rearrange(pixels, "h w c -> c h w").float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` or ``(3, H, W)`` in ``[-1, 1]`` -> uint8 ``(..., H, W, 3)`` (clamped, rounded)."""
    x = ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return rearrange(x, "... c h w -> ... h w c").cpu().numpy()


@dataclass(frozen=True)
class _Photo:
    name: str
    pixels: torch.Tensor  # (3, H, W) in [-1, 1]


class PhotoDataset:
    """A list of named RGB photos, each at least ``min_size`` pixels on its shorter side.

    Args:
        photos: ``(name, (H, W, 3) uint8 array)`` pairs.
        min_size: the smallest allowed side (usually the patch size).

    Raises:
        ImageDataError: an empty list, or an image smaller than ``min_size`` (named).
    """

    def __init__(self, photos: Sequence[tuple[str, np.ndarray]], *, min_size: int = 64) -> None:
        if not photos:
            raise ImageDataError("no images")
        items = []
        for name, array in photos:
            rgb = _as_rgb(array, name)
            h, w = rgb.shape[:2]
            if min(h, w) < min_size:
                raise ImageDataError(f"image {name} is {w}x{h} px, smaller than the {min_size} px minimum")
            items.append(_Photo(name, to_tensor(rgb)))
        self._photos = tuple(items)
        self.min_size = min_size

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_skimage(
        cls, split: str = "train", *, val_fraction: float = 0.25, seed: int = 0, min_size: int = 64
    ) -> PhotoDataset:
        """The scikit-image photos of one split: ``"train"``, ``"val"`` or ``"all"``."""
        names = _pick_split(list(SKIMAGE_PHOTOS), split, val_fraction, seed)
        return cls([(n, load_skimage_photo(n)) for n in names], min_size=min_size)

    @classmethod
    def heldout_suite(cls, *, val_fraction: float = 0.25, seed: int = 0, min_size: int = 64) -> PhotoDataset:
        """Every scikit-image photo no training run uses: the held-out split, then :data:`EVAL_ONLY_PHOTOS`."""
        names = [*_pick_split(list(SKIMAGE_PHOTOS), "val", val_fraction, seed), *EVAL_ONLY_PHOTOS]
        return cls([(n, load_skimage_photo(n)) for n in names], min_size=min_size)

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        split: str = "train",
        *,
        val_fraction: float = 0.25,
        seed: int = 0,
        min_size: int = 64,
    ) -> PhotoDataset:
        """The images of a folder (non-recursive, sorted by file name), one split of them.

        Image names are file names; the split is by image as in :func:`split_images`.

        Raises:
            ImageDataError: missing/empty folder, or an unreadable or too-small image (named).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise ImageDataError(f"image folder not found: {folder}")
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImageDataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
        names = _pick_split([p.name for p in files], split, val_fraction, seed)
        photos = []
        for name in names:
            path = folder / name
            photos.append((str(path), load_image(path)))
        return cls(photos, min_size=min_size)

    # ------------------------------------------------------------------ access
    @property
    def names(self) -> list[str]:
        """Image names, in order."""
        return [p.name for p in self._photos]

    def __len__(self) -> int:
        return len(self._photos)

    def image(self, index: int) -> torch.Tensor:
        """Image ``index`` as ``(3, H, W)`` in ``[-1, 1]``."""
        return self._photos[index].pixels

    # ------------------------------------------------------------------ patches
    def _check_patch(self, patch_size: int) -> None:
        for p in self._photos:
            h, w = p.pixels.shape[-2:]
            if min(h, w) < patch_size:
                raise ImageDataError(f"image {p.name} is {w}x{h} px, smaller than the {patch_size} px patch")

    def random_patch(self, patch_size: int, generator: torch.Generator) -> torch.Tensor:
        """One random crop with a random horizontal flip, ``(3, P, P)``.

        The image is drawn uniformly, then the crop position, then the flip, all from ``generator``.
        """
        img = self._photos[int(torch.randint(len(self._photos), (1,), generator=generator))].pixels
        h, w = img.shape[-2:]
        top = int(torch.randint(h - patch_size + 1, (1,), generator=generator))
        left = int(torch.randint(w - patch_size + 1, (1,), generator=generator))
        patch = img[:, top : top + patch_size, left : left + patch_size]  # (3, P, P)
        if bool(torch.randint(2, (1,), generator=generator)):
            patch = patch.flip(-1)
        return patch.clone()

    def random_batch(self, batch_size: int, patch_size: int = 64, seed: int = 0) -> torch.Tensor:
        """``batch_size`` random patches, ``(B, 3, P, P)``, a pure function of ``seed``."""
        self._check_patch(patch_size)
        gen = torch.Generator().manual_seed(seed)
        return torch.stack([self.random_patch(patch_size, gen) for _ in range(batch_size)])

    def grid_patches(
        self, patch_size: int = 64, *, stride: int | None = None, max_per_image: int | None = None
    ) -> torch.Tensor:
        """A deterministic grid of patches over every image, ``(N, 3, P, P)``.

        Args:
            patch_size: side ``P``.
            stride: step between patches (default ``P``: non-overlapping).
            max_per_image: keep at most this many per image, spread evenly over its grid.
        """
        self._check_patch(patch_size)
        stride = stride or patch_size
        out = []
        for p in self._photos:
            h, w = p.pixels.shape[-2:]
            cells = [
                (top, left)
                for top in range(0, h - patch_size + 1, stride)
                for left in range(0, w - patch_size + 1, stride)
            ]
            if max_per_image is not None and len(cells) > max_per_image:
                idx = np.linspace(0, len(cells) - 1, max_per_image).round().astype(int)
                cells = [cells[i] for i in idx]
            out.extend(p.pixels[:, t : t + patch_size, s : s + patch_size] for t, s in cells)
        return torch.stack(out).clone()


def _pick_split(names: list[str], split: str, val_fraction: float, seed: int) -> list[str]:
    if split == "all":
        return names
    train, val = split_images(names, val_fraction, seed)
    if split == "train":
        return train
    if split == "val":
        return val
    raise ImageDataError(f"unknown split {split!r}; valid: train, val, all")


# ---------------------------------------------------------------------- HR / LR
def downscale(hr: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """Antialiased bicubic downscaling by an integer factor, ``(B, 3, H, W) -> (B, 3, H/s, W/s)``.

    Raises:
        ImageDataError: if ``H`` or ``W`` is not a multiple of ``scale``.
    """
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ImageDataError(f"a {w}x{h} image is not divisible by the scale {scale}")
    lr = F.interpolate(hr, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    return lr.clamp(-1.0, 1.0)


@dataclass(frozen=True)
class Degradation:
    """A realistic first-order degradation: blur -> bicubic x``scale`` -> noise -> JPEG.

    Each parameter is drawn uniformly from its range, per image, from the seed.

    Attributes:
        blur_sigma: Gaussian blur sigma range in HR pixels (0 = none).
        noise_sigma: additive Gaussian noise std range, in 8-bit levels.
        jpeg_quality: JPEG quality range (inclusive).

    Example:
        >>> hr = torch.zeros(2, 3, 64, 64)
        >>> Degradation()(hr, scale=4, seed=0).shape
        torch.Size([2, 3, 16, 16])
    """

    blur_sigma: tuple[float, float] = (0.2, 2.0)
    noise_sigma: tuple[float, float] = (1.0, 10.0)
    jpeg_quality: tuple[int, int] = (40, 95)

    def __call__(self, hr: torch.Tensor, scale: int = 4, seed: int = 0) -> torch.Tensor:
        """Degrade ``hr`` ``(B, 3, H, W)`` in ``[-1, 1]`` to ``(B, 3, H/s, W/s)`` in ``[-1, 1]``."""
        h, w = hr.shape[-2:]
        if h % scale or w % scale:
            raise ImageDataError(f"a {w}x{h} image is not divisible by the scale {scale}")
        rng = np.random.default_rng(seed)
        out = []
        images, lead = pack([hr], "* c h w")  # any leading axes -> one batch axis
        for img in to_uint8(images):
            pil = Image.fromarray(img)
            sigma = rng.uniform(*self.blur_sigma)
            if sigma > 0:
                pil = pil.filter(ImageFilter.GaussianBlur(radius=sigma))
            pil = pil.resize((w // scale, h // scale), Image.Resampling.BICUBIC)  # PIL antialiases
            arr = np.asarray(pil, dtype=np.float32)
            arr = arr + rng.normal(0.0, rng.uniform(*self.noise_sigma), size=arr.shape)
            pil = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
            buf = io.BytesIO()
            pil.save(buf, format="JPEG", quality=int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)))
            buf.seek(0)
            with Image.open(buf) as jpg:
                out.append(to_tensor(np.asarray(jpg.convert("RGB"))))
        (lr,) = unpack(torch.stack(out), lead, "* c h w")
        return lr


class PatchDataset(torch.utils.data.Dataset):
    """HR/LR patch pairs for a ``DataLoader``: ``{"hr": (3, P, P), "lr": (3, P/s, P/s)}``.

    Training (``train=True``): item ``i`` is a random crop + flip drawn from ``(seed, i)``, so the
    dataset is deterministic and any length works. Validation: the deterministic patch grid.

    Args:
        photos: the images.
        patch_size: HR patch side ``P`` (a multiple of ``scale``).
        scale: downscaling factor (4).
        train: random patches (``True``) or the grid (``False``).
        length: number of training items (ignored for the grid).
        seed: seed of the patches and of the degradation.
        degradation: ``None`` for bicubic, or a :class:`Degradation`.
    """

    def __init__(
        self,
        photos: PhotoDataset,
        *,
        patch_size: int = 64,
        scale: int = 4,
        train: bool = True,
        length: int = 10_000,
        seed: int = 0,
        degradation: Degradation | None = None,
    ) -> None:
        if patch_size % scale:
            raise ImageDataError(f"patch size {patch_size} is not divisible by the scale {scale}")
        photos._check_patch(patch_size)
        self.photos, self.patch_size, self.scale = photos, patch_size, scale
        self.train, self.seed, self.degradation = train, seed, degradation
        self._grid = None if train else photos.grid_patches(patch_size)
        self._length = length if train else len(self._grid)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self._length:
            raise IndexError(index)
        if self.train:
            gen = torch.Generator().manual_seed(_mix(self.seed, index))
            hr = self.photos.random_patch(self.patch_size, gen)  # (3, P, P)
        else:
            hr = self._grid[index]
        if self.degradation is None:
            lr = downscale(hr[None], self.scale)[0]
        else:
            lr = self.degradation(hr[None], self.scale, seed=_mix(self.seed + 1, index))[0]
        return {"hr": hr, "lr": lr}


def _mix(seed: int, index: int) -> int:
    """A 63-bit seed from ``(seed, index)`` (distinct streams, no arithmetic collisions)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{index}".encode()).digest()[:8], "little") & (2**63 - 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB between two image batches in ``[-1, 1]``, on the ``[0, 1]`` scale.

    ``PSNR = 10 log10(1 / MSE)`` with ``MSE`` the mean over all pixels of the clamped images
    mapped to ``[0, 1]``; computed over the pooled batch.
    """
    x = (a.float().clamp(-1, 1) + 1) / 2
    y = (b.float().clamp(-1, 1) + 1) / 2
    mse = float(F.mse_loss(x, y))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
