"""Robustness catalogue: every value a user passes is validated (issue 14, "validate everything").

Numbers must be finite and in range (NaN passes every ``<=`` check and used to save NaN models),
training commands refuse zero steps (an untrained model that exits 0), images of every PIL mode
are converted keeping their brightness or refused in one line naming the file, and images too
small for the model are refused. The library configs check their own fields, so the Python API is
protected as well as the command line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robustness.catalogue import Case, check, params
from tocsr_nas.errors import UserInputError, require_in_range
from tocsr_nas.teacher.data import ImageDataError, load_image

# ---------------------------------------------------------------------------------------------- images


def _rgb(size: int = 24) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    return np.stack([x * 10 % 256, y * 10 % 256, (x + y) * 5 % 256], axis=-1).astype(np.uint8)


def _grey16(size: int = 24) -> np.ndarray:
    """A 16-bit greyscale ramp across the whole range (``[0, 65535]``)."""
    y, x = np.mgrid[0:size, 0:size]
    return ((x + y) * 65535 // (2 * size - 2)).astype(np.uint16)


def _image_in_mode(mode: str, size: int = 24) -> tuple[Image.Image, str]:
    """An image of ``mode`` and a file format that stores that mode as is."""
    base = Image.fromarray(_rgb(size))
    if mode == "I;16":
        return Image.fromarray(_grey16(size)), "png"
    if mode == "I":
        return Image.fromarray(_grey16(size).astype(np.int32)), "tiff"  # 32 bits per sample: no white level
    if mode == "F":
        return Image.fromarray((_grey16(size) / 65535.0).astype(np.float32)), "tiff"
    if mode == "F-out-of-range":
        return Image.fromarray((_grey16(size) / 100.0).astype(np.float32)), "tiff"
    if mode == "PA":
        return base.convert("P").convert("PA"), "tiff"
    fmt = "png" if mode in ("1", "L", "LA", "P", "RGBA", "RGB") else "tiff"
    return base.convert(mode), fmt


def _write_mode(mode: str, folder: Path, size: int = 24) -> Path:
    img, fmt = _image_in_mode(mode, size)
    path = folder / f"mode-{mode.replace(';', '_')}.{fmt}"
    img.save(path)
    return path


def _tiny(folder: Path, height: int = 1, width: int = 1, name: str = "tiny.png") -> Path:
    path = folder / name
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path)
    return path


def _truncated(folder: Path, name: str = "cut.png") -> Path:
    """A 64 px PNG of noise (it does not compress) cut in the middle of its pixel data."""
    path = folder / name
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _not_image(folder: Path, name: str = "notes.png") -> Path:
    path = folder / name
    path.write_text("this is not an image\n")
    return path


def _folder(tmp: Path, make) -> dict[str, str]:  # noqa: ANN001 - a setup helper
    """A folder ``{tmp}/imgs`` with two good 160 px images and what ``make(folder)`` adds."""
    folder = tmp / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.roll(_rgb(160), 7 * i, axis=0)).save(folder / f"good{i}.png")
    make(folder)
    return {"imgs": str(folder)}


def _mode_case(mode: str) -> Case:
    """``upscale`` of an image of ``mode``: written, ``scale`` times its size, RGB."""

    def setup(tmp: Path, a) -> dict[str, str]:  # noqa: ANN001
        return {"img": str(_write_mode(mode, tmp))}

    def after(tmp: Path, a, names: dict[str, str]) -> None:  # noqa: ANN001
        out = tmp / "out" / f"{Path(names['img']).stem}.png"
        with Image.open(out) as img:
            assert img.mode == "RGB" and img.size == (96, 96)

    return Case("upscale", f"mode-{mode}", ["upscale", "--model", "{sr}", "{img}", "--out", "{tmp}/out", "--threads", "1"],
                "", code=0, setup=setup, after=after)


def _refused_image_case(name: str, make, match: str) -> Case:  # noqa: ANN001
    def setup(tmp: Path, a) -> dict[str, str]:  # noqa: ANN001
        return {"img": str(make(tmp))}

    return Case("upscale", name, ["upscale", "--model", "{sr}", "{img}", "--out", "{tmp}/out", "--threads", "1"],
                match, setup=setup, unchanged=["{img}"], absent=["{tmp}/out"])


# ---------------------------------------------------------------------------------------------- numbers

#: bad values of each class: (id, value, what the line must say)
NAN, INF, NEG_INF, WORD = ("nan", "nan", "finite"), ("inf", "inf", "finite"), ("neg-inf", "-inf", "finite"), (
    "word", "abc", "not a number")
INT_WORD, INT_FLOAT = ("word", "abc", "not an integer"), ("float", "1.5", "not an integer")


def _numeric_cases(command: str, prefix: list[str], option: str, bads: list[tuple[str, str, str]],
                   unchanged: tuple[str, ...] = ()) -> list[Case]:
    """One case per bad value of ``option`` appended to ``prefix``."""
    return [
        Case(command, f"{option.lstrip('-')}-{vid}", [*prefix, f"{option}={value}"], rf"{option}\b.*{match}",
             unchanged=list(unchanged), absent=["{tmp}/out"])
        for vid, value, match in bads
    ]


DISTILL = ["distill", "--teacher", "{teacher}", "--out", "{tmp}/out", "--threads", "1", "--no-progress"]
TEACHER = ["teacher", "train", "--out", "{tmp}/out", "--threads", "1", "--no-progress"]
SR_TRAIN = ["sr", "train", "--backbone", "{sr_teacher}", "--out", "{tmp}/out", "--threads", "1", "--no-progress"]
SR_DISTILL = ["sr", "distill", "--teacher", "{sr}", "--out", "{tmp}/out", "--threads", "1", "--no-progress"]
UPSCALE = ["upscale", "--model", "{sr}", "{image}", "--out", "{tmp}/out"]
EVALUATE = ["evaluate", "--model", "{sr}", "--out", "{tmp}/out"]
SEARCH = ["search", "--teacher", "{teacher}", "--surrogates", "{tmp}/lib", "--epsilon", "0.1", "--out", "{tmp}/out"]
EXPORT = ["export", "--search", "{tmp}/s", "--out", "{tmp}/out"]
SPACE = ["space", "--preset", "tiny"]
RUN = ["run", "--out", "{tmp}/out", "--quick"]

ZERO, NEG = ("zero", "0", "must be >= 1"), ("negative", "-1", "must be >= 1")
POS_FLOAT_BAD = [NAN, INF, NEG_INF, WORD, ("zero", "0", "positive"), ("negative", "-1e-3", "positive")]

CASES: list[Case] = [
    # distill: --steps 0 used to exit 0 with an untrained library
    *_numeric_cases("distill", DISTILL, "--steps", [ZERO, NEG, INT_WORD]),
    *_numeric_cases("distill", DISTILL, "--lr", POS_FLOAT_BAD),
    *_numeric_cases("distill", DISTILL, "--samples", [ZERO]),
    *_numeric_cases("distill", DISTILL, "--val-samples", [ZERO]),
    *_numeric_cases("distill", DISTILL, "--batch-size", [ZERO, INT_FLOAT]),
    *_numeric_cases("distill", DISTILL, "--workers", [ZERO]),
    *_numeric_cases("distill", DISTILL, "--resolution", [ZERO]),
    *_numeric_cases("distill", ["distill", "--teacher", "{teacher}", "--out", "{tmp}/out"], "--threads", [ZERO, NEG]),
    *_numeric_cases("distill", DISTILL, "--seed", [("negative", "-1", "must be >= 0"),
                                                   ("huge", str(2**64), "must be <= ")]),
    Case("distill", "resolution-off-grid", [*DISTILL, "--resolution", "12"], r"resolution 12 px does not fit.*16 px",
         absent=["{tmp}/out"]),
    Case("distill", "resolution-too-small", [*DISTILL, "--resolution", "8"], r"resolution 8 px does not fit.*16 px",
         absent=["{tmp}/out"]),
    Case("space", "resolution-too-small", [*SPACE, "--resolution", "8"], r"resolution 8 px does not fit"),
    # 16 px fits the tiny teacher's grid (a 1x1 deepest map), but a bottleneck candidate's GroupNorm then
    # normalises one value per group: the cost table names the candidate, the block and the shape
    Case("space", "resolution-deepest-1px", [*SPACE, "--resolution", "16"],
         r"candidate 'bottleneck_resnet\(ratio=0\.125\)' of block \S+ cannot run on its input of shape 1x64x1x1.*"
         r"choose a larger resolution"),
    # teacher train: --vae-lr inf used to train a NaN VAE
    *_numeric_cases("teacher train", TEACHER, "--steps", [ZERO]),
    *_numeric_cases("teacher train", TEACHER, "--vae-steps", [ZERO, NEG]),
    *_numeric_cases("teacher train", TEACHER, "--batch-size", [ZERO]),
    *_numeric_cases("teacher train", TEACHER, "--vae-batch-size", [ZERO]),
    *_numeric_cases("teacher train", TEACHER, "--lr", [NAN, INF, ("zero", "0", "positive")]),
    *_numeric_cases("teacher train", TEACHER, "--vae-lr", [NAN, INF, NEG_INF, ("negative", "-1", "positive")]),
    *_numeric_cases("teacher train", TEACHER, "--val-patches", [ZERO]),
    *_numeric_cases("teacher train", TEACHER, "--calibration-patches", [ZERO]),
    *_numeric_cases("teacher train", TEACHER, "--checkpoint-every", [ZERO]),
    *_numeric_cases("teacher train", ["teacher", "train", "--out", "{tmp}/out"], "--threads", [ZERO]),
    *_numeric_cases("teacher train", TEACHER, "--seed", [("negative", "-3", "must be >= 0"), INT_WORD]),
    # sr train
    *_numeric_cases("sr train", SR_TRAIN, "--steps", [ZERO, NEG]),
    *_numeric_cases("sr train", SR_TRAIN, "--lr", [NAN, INF, ("zero", "0", "positive")]),
    *_numeric_cases("sr train", SR_TRAIN, "--batch-size", [ZERO]),
    *_numeric_cases("sr train", SR_TRAIN, "--pool-size", [ZERO]),
    *_numeric_cases("sr train", SR_TRAIN, "--sampler-steps", [ZERO]),
    *_numeric_cases("sr train", SR_TRAIN, "--strength", [NAN, INF, ("zero", "0", r"in \(0, 1\]"),
                                                          ("above-one", "1.5", r"in \(0, 1\]")]),
    *_numeric_cases("sr train", SR_TRAIN, "--checkpoint-every", [ZERO]),
    # a compact backbone: its error is one line (the accelerate warning, which capsys cannot see, is tested below)
    Case("sr train", "compact-backbone-one-line", ["sr", "train", "--backbone", "{compact}", "--out", "{tmp}/out",
                                                   "--images", "{tmp}/missing", "--threads", "1"],
         r"image folder not found: .*missing", unchanged=["{compact}"], absent=["{tmp}/out"]),
    # sr distill: --pixel-weight nan used to save a NaN model
    *_numeric_cases("sr distill", SR_DISTILL, "--pixel-weight", [NAN, INF, NEG_INF, WORD,
                                                                  ("negative", "-1", ">= 0")]),
    *_numeric_cases("sr distill", SR_DISTILL, "--steps", [ZERO]),
    *_numeric_cases("sr distill", SR_DISTILL, "--lr", [NAN, INF]),
    *_numeric_cases("sr distill", SR_DISTILL, "--timestep", [("negative", "-1", "must be >= 0"), INT_WORD]),
    Case("sr distill", "timestep-past-schedule", [*SR_DISTILL, "--timestep", "1000", "--steps", "1"],
         r"--timestep must be in \[0, 999\], got 1000", unchanged=["{sr}"], absent=["{tmp}/out"]),
    *_numeric_cases("sr distill", SR_DISTILL, "--target-steps", [ZERO]),
    *_numeric_cases("sr distill", SR_DISTILL, "--pool-size", [ZERO]),
    *_numeric_cases("sr distill", ["sr", "distill", "--teacher", "{sr}", "--out", "{tmp}/out"], "--threads", [ZERO]),
    # upscale
    *_numeric_cases("upscale", UPSCALE, "--scale", [ZERO, INT_WORD]),
    *_numeric_cases("upscale", UPSCALE, "--steps", [ZERO]),
    *_numeric_cases("upscale", UPSCALE, "--seed", [("negative", "-1", "must be >= 0")]),
    *_numeric_cases("upscale", UPSCALE, "--threads", [ZERO]),
    # evaluate
    *_numeric_cases("evaluate", EVALUATE, "--scale", [ZERO]),
    *_numeric_cases("evaluate", EVALUATE, "--steps", [ZERO, NEG]),
    *_numeric_cases("evaluate", EVALUATE, "--max-side", [ZERO]),
    Case("evaluate", "max-side-below-model", [*EVALUATE, "--max-side", "3", "--threads", "1"],
         r"--max-side 3 is below 16 px", unchanged=["{sr}"], absent=["{tmp}/out"]),
    *_numeric_cases("evaluate", EVALUATE, "--threads", [ZERO]),
    # search (the rest of its numbers were already checked)
    *_numeric_cases("search", SEARCH, "--seed", [("negative", "-1", "must be >= 0"), INT_FLOAT]),
    *_numeric_cases("search", SEARCH, "--val-seed", [("negative", "-1", "must be >= 0")]),
    *_numeric_cases("search", SEARCH, "--time-budget", [NAN, INF]),
    *_numeric_cases("search", SEARCH, "--max-gmacs", [NAN]),
    *[Case("search", f"strategy-option-{vid}", [*SEARCH, "--strategy-option", f"mutation_rate={value}"],
           rf"--strategy-option.*mutation_rate: {shown} is not a finite number", absent=["{tmp}/out"])
      for vid, value, shown in (("nan", "NaN", "NaN"), ("inf", "Infinity", "Infinity"), ("overflow", "1e999", "1e999"),
                                ("in-list", "[0.1,-Infinity]", "-Infinity"))],
    Case("search", "epsilon-nan", [*SEARCH[:-4], "--epsilon", "0.1,nan", "--out", "{tmp}/out"], r"epsilon out of range: nan"),
    Case("search", "sweep-unknown", [*SEARCH, "--sweep", "greedy"], r"sweep must be one of \['cycle', 'gain'\], got 'greedy'",
         absent=["{tmp}/out"]),
    # export
    *_numeric_cases("export", EXPORT, "--trial", [("negative", "-1", "must be >= 0"), INT_WORD]),
    *_numeric_cases("export", EXPORT, "--epsilon", [NAN, INF, ("zero", "0", "positive")]),
    # space
    *_numeric_cases("space", SPACE, "--resolution", [ZERO, INT_WORD]),
    # run
    *_numeric_cases("run", RUN, "--budget", [ZERO]),
    *_numeric_cases("run", RUN, "--workers", [ZERO]),
    *_numeric_cases("run", RUN, "--threads", [ZERO]),
    *_numeric_cases("run", RUN, "--seed", [("negative", "-1", "must be >= 0")]),
    # images: every mode PIL opens is converted (upscale writes an RGB image of s times the size) ...
    *[_mode_case(m) for m in ("1", "L", "LA", "P", "PA", "RGBA", "CMYK", "YCbCr", "LAB", "I;16", "F")],
    # ... or refused in one line naming the file
    _refused_image_case("mode-I-32bit", lambda tmp: _write_mode("I", tmp), r"mode-I\.tiff.*32-bit"),
    _refused_image_case("mode-F-out-of-range", lambda tmp: _write_mode("F-out-of-range", tmp),
                        r"mode-F-out-of-range\.tiff.*outside \[0, 1\]"),
    _refused_image_case("truncated", _truncated, r"cut\.png.*truncated"),
    _refused_image_case("not-an-image", _not_image, r"notes\.png"),
    _refused_image_case("folder", lambda tmp: (tmp / "dir.png").mkdir() or tmp / "dir.png", r"dir\.png.*folder"),
    _refused_image_case("one-pixel", _tiny, r"tiny\.png.*1x1 px"),
    _refused_image_case("one-pixel-tall", lambda tmp: _tiny(tmp, 1, 40), r"tiny\.png is 40x1 px, smaller than"),
    # images of a training folder: too small, unreadable, truncated
    Case("sr train", "images-one-pixel", [*SR_TRAIN, "--images", "{imgs}"], r"tiny\.png is 1x1 px",
         setup=lambda tmp, a: _folder(tmp, _tiny), unchanged=["{imgs}"], absent=["{tmp}/out"]),
    Case("sr train", "images-not-image", [*SR_TRAIN, "--images", "{imgs}"], r"notes\.png",
         setup=lambda tmp, a: _folder(tmp, _not_image), unchanged=["{imgs}"], absent=["{tmp}/out"]),
    Case("sr train", "images-truncated", [*SR_TRAIN, "--images", "{imgs}"], r"cut\.png.*truncated",
         setup=lambda tmp, a: _folder(tmp, _truncated), unchanged=["{imgs}"],
         absent=["{tmp}/out"]),
    Case("sr distill", "images-one-pixel", [*SR_DISTILL, "--images", "{imgs}"], r"tiny\.png is 1x1 px",
         setup=lambda tmp, a: _folder(tmp, _tiny), unchanged=["{imgs}", "{sr}"], absent=["{tmp}/out"]),
    Case("teacher train", "images-one-pixel", [*TEACHER, "--images", "{imgs}"], r"tiny\.png is 1x1 px",
         setup=lambda tmp, a: _folder(tmp, _tiny), unchanged=["{imgs}"], absent=["{tmp}/out"]),
    Case("teacher train", "images-32bit", [*TEACHER, "--images", "{imgs}"], r"mode-I\.tiff.*32-bit",
         setup=lambda tmp, a: _folder(tmp, lambda f: _write_mode("I", f)), unchanged=["{imgs}"], absent=["{tmp}/out"]),
    Case("teacher train", "images-not-image", [*TEACHER, "--images", "{imgs}"], r"notes\.png.*cannot identify",
         setup=lambda tmp, a: _folder(tmp, _not_image), unchanged=["{imgs}"], absent=["{tmp}/out"]),
    Case("teacher train", "images-truncated", [*TEACHER, "--images", "{imgs}"], r"cut\.png.*truncated",
         setup=lambda tmp, a: _folder(tmp, _truncated), unchanged=["{imgs}"], absent=["{tmp}/out"]),
    Case("sr distill", "images-not-image", [*SR_DISTILL, "--images", "{imgs}"], r"notes\.png",
         setup=lambda tmp, a: _folder(tmp, _not_image), unchanged=["{imgs}", "{sr}"], absent=["{tmp}/out"]),
    Case("evaluate", "images-not-image", [*EVALUATE, "--images", "{imgs}"], r"notes\.png",
         setup=lambda tmp, a: _folder(tmp, _not_image), unchanged=["{imgs}", "{sr}"], absent=["{tmp}/out"]),
    Case("evaluate", "images-truncated", [*EVALUATE, "--images", "{imgs}"], r"cut\.png.*truncated",
         setup=lambda tmp, a: _folder(tmp, _truncated), unchanged=["{imgs}", "{sr}"], absent=["{tmp}/out"]),
    Case("search", "resolution-off-grid", ["search", "--teacher", "{teacher}", "--surrogates", "{library}", "--epsilon",
                                           "0.1", "--resolution", "24", "--out", "{tmp}/out", "--threads", "1"],
         r"resolution 24 px does not fit", unchanged=["{library}"], absent=["{tmp}/out"]),
    Case("evaluate", "images-one-pixel", [*EVALUATE, "--images", "{imgs}"], r"tiny\.png is 1x1 px",
         setup=lambda tmp, a: _folder(tmp, _tiny), unchanged=["{imgs}", "{sr}"], absent=["{tmp}/out"]),
]


@pytest.mark.parametrize("case", params(CASES))
def test_catalogue(case, artefacts, tmp_path, capsys):
    check(case, artefacts, tmp_path, capsys)


# ---------------------------------------------------------------------------------------------- loader


def test_16_bit_grey_keeps_its_brightness(tmp_path):
    """A 16-bit ramp maps to 8 bits by value / 257 (PIL's convert clipped 99.5 % of it to 255)."""
    path = tmp_path / "ramp16.png"
    grey = _grey16()
    Image.fromarray(grey).save(path)
    rgb = load_image(path)
    assert rgb.shape == (24, 24, 3) and rgb.dtype == np.uint8
    expected = np.rint(grey / 257.0).astype(np.uint8)
    assert np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 1], rgb[..., 2])
    assert (rgb == 255).mean() < 0.01


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGBA", "CMYK", "YCbCr", "LAB", "RGB"])
def test_eight_bit_modes_match_the_rgb_they_came_from(mode, tmp_path):
    """Each 8-bit mode loads close to the RGB image it was made from (lossy modes: grey, palette, 1 bit)."""
    path = _write_mode(mode, tmp_path)
    rgb, source = load_image(path).astype(float), _rgb().astype(float)
    assert rgb.shape == source.shape
    grey = source @ np.array([0.299, 0.587, 0.114])
    reference = np.repeat(grey[..., None], 3, axis=2) if mode in ("1", "L", "LA") else source
    tolerance = {"1": 128.0, "P": 20.0, "PA": 20.0, "LAB": 6.0, "CMYK": 1.0, "YCbCr": 3.0}.get(mode, 1.0)
    assert np.abs(rgb - reference).mean() <= tolerance


def test_float_grey_in_unit_range_scales_by_255(tmp_path):
    path = tmp_path / "f.tiff"
    Image.fromarray(np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)).save(path)
    assert load_image(path)[..., 0].tolist() == [[0, 128], [255, 64]]


def test_float_grey_with_nan_is_refused(tmp_path):
    path = tmp_path / "nan.tiff"
    Image.fromarray(np.array([[0.0, np.nan], [1.0, 0.25]], np.float32)).save(path)
    with pytest.raises(ImageDataError, match=r"nan\.tiff.*NaN"):
        load_image(path)


def test_exif_orientation_is_applied(tmp_path):
    """A JPEG whose EXIF says "rotate 90" loads upright (its width and height swapped)."""
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.full((4, 6, 3), 200, np.uint8)).save(path, exif=exif.tobytes())
    assert load_image(path).shape == (6, 4, 3)


def test_one_loader_opens_every_image():
    """Nothing but ``load_image`` opens an image file in the package (one loader, one conversion)."""
    root = Path(__file__).resolve().parents[2]
    openers = []
    for folder in ("nas", "surrogates", "searchspace", "evaluators"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text()
            if "Image.open(" in text or "imread(" in text:
                openers.append(path.relative_to(root).as_posix())
    assert openers == ["nas/teacher/data.py"], openers


# ---------------------------------------------------------------------------------------------- configs


def _config_cases():
    from tocsr_nas.sr.onestep import DistillConfig as OneStepConfig
    from tocsr_nas.sr.train import SRTrainConfig
    from tocsr_nas.stages.distill import DistillConfig
    from tocsr_nas.teacher.train import TrainConfig

    nan, inf = math.nan, math.inf
    return [
        (OneStepConfig, {"w_pixel": nan}, "--pixel-weight"),
        (OneStepConfig, {"w_latent": inf}, "--w-latent"),
        (OneStepConfig, {"w_distill": -1.0}, "--w-distill"),
        (OneStepConfig, {"lr": inf}, "--lr"),
        (OneStepConfig, {"steps": -1}, "--steps"),
        (OneStepConfig, {"timestep": -1}, "--timestep"),
        (OneStepConfig, {"val_fraction": nan}, "--val-fraction"),
        (SRTrainConfig, {"lr": nan}, "--lr"),
        (SRTrainConfig, {"strength": nan}, "--strength"),
        (SRTrainConfig, {"steps": 2.0}, "--steps"),
        (SRTrainConfig, {"val_fraction": 1.0}, "--val-fraction"),
        (SRTrainConfig, {"pool_size": 2.5}, "--pool-size"),
        (TrainConfig, {"vae_lr": inf}, "--vae-lr"),
        (TrainConfig, {"unet_lr": nan}, "--lr"),
        (TrainConfig, {"kl_weight": nan}, "--kl-weight"),
        (TrainConfig, {"vae_steps": -1}, "--vae-steps"),
        (TrainConfig, {"seed": -1}, "--seed"),
        (DistillConfig, {"steps": -1}, "--steps"),
        (DistillConfig, {"lr": inf}, "--lr"),
        (DistillConfig, {"lr": nan}, "--lr"),
        (DistillConfig, {"resolution": 0}, "--resolution"),
        (DistillConfig, {"seed": -1}, "--seed"),
    ]


@pytest.mark.parametrize("index", range(22))
def test_configs_check_their_own_fields(index):
    """The Python API is protected too: each config refuses a non-finite or out-of-range field by its option."""
    cls, fields, option = _config_cases()[index]
    with pytest.raises(UserInputError, match=rf"^{option} must be"):
        cls(**fields)


def test_config_cases_are_all_run():
    assert len(_config_cases()) == 22


def test_require_in_range_bounds():
    from types import SimpleNamespace

    ok = SimpleNamespace(a=0.0, b=1.0, c=None)
    require_in_range(ok, "a", "b", low=0, high=1)
    require_in_range(ok, "c", low=0, optional=True)
    for value, kw in [(0.0, {"low": 0, "low_open": True}), (1.0, {"high": 1, "high_open": True}), (-0.1, {"low": 0}),
                      (math.nan, {}), (math.inf, {}), (True, {}), ("1", {}), (None, {})]:
        with pytest.raises(UserInputError, match="--a must be a finite number"):
            require_in_range(SimpleNamespace(a=value), "a", **kw)


def test_plugin_help_says_it_executes_code(capsys):
    from tocsr_nas.cli import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "run a Python file" in text and "executes" in text


def test_compact_backbone_loads_without_accelerate_warning(artefacts, tmp_path):
    """``sr train`` on a compact backbone prints its error alone: diffusers' 10-line advice to install
    ``accelerate`` is not triggered. A real process, since diffusers' log handler bypasses pytest's capture."""
    import subprocess
    import sys

    argv = ["sr", "train", "--backbone", str(artefacts.compact), "--out", str(tmp_path / "out"), "--images",
            str(tmp_path / "missing"), "--threads", "1"]
    done = subprocess.run([sys.executable, "-m", "tocsr_nas.cli", *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "accelerate" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(("fields", "match"), [({"patch_size": 24}, r"resolution 24 px does not fit"),
                                               ({"vae_patch_size": 30}, r"vae_patch_size 30 px")])
def test_teacher_patch_sizes_must_fit_the_preset(fields, match, tmp_path):
    """Patch sizes the tiny teacher cannot take are refused before anything is written."""
    from tocsr_nas.errors import TocsrError
    from tocsr_nas.teacher.train import TrainConfig, train_teacher

    with pytest.raises(TocsrError, match=match):
        train_teacher(tmp_path / "out", TrainConfig(steps=1, vae_steps=1, **fields), progress=False)
    assert not (tmp_path / "out").exists()


def test_photo_arrays_keep_their_brightness_or_are_refused():
    """Arrays given to ``PhotoDataset`` go through the same conversion: uint16 scaled, nothing clipped."""
    from tocsr_nas.teacher.data import PhotoDataset

    grey = _grey16(64)
    photos = PhotoDataset([("ramp16", grey)], min_size=64)
    expected = np.rint(grey / 257.0) / 127.5 - 1.0
    assert np.allclose(photos.image(0)[0].numpy(), expected, atol=1e-6)
    for name, array, match in [("over", np.full((64, 64), 1.5), r"over: float64 pixels span \[1.5, 1.5\]"),
                               ("nan", np.full((64, 64), np.nan), "nan: NaN"),
                               ("int", np.full((64, 64, 3), 300, np.int32), r"int: int32 pixels span \[300, 300\]")]:
        with pytest.raises(ImageDataError, match=match):
            PhotoDataset([(name, array)], min_size=64)
