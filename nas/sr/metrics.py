"""Super-resolution image metrics: PSNR and SSIM on the Y channel, PSNR on RGB and CIEDE2000.

Both images are 8-bit RGB. They are converted to the luma ``Y`` of ITU-R BT.601 as MATLAB's
``rgb2ycbcr`` (and :func:`skimage.color.rgb2ycbcr`) does, with ``R, G, B`` in ``[0, 1]``::

    Y = 16 + 65.481 R + 128.553 G + 24.966 B          (Y in [16, 235])

then ``scale`` pixels are cropped from every border (the upscaler's boundary is not judged), and
scikit-image computes

* PSNR = ``10 log10(255^2 / MSE)`` (``peak_signal_noise_ratio`` with ``data_range=255``);
* SSIM with an 11 x 11 Gaussian window of sigma 1.5 and population covariances (Wang et al.
  2004; ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``).

Luma hides colour shifts, so two colour metrics are reported beside them, on the same border crop:

* PSNR on RGB: ``10 log10(255^2 / MSE)`` over all three 8-bit channels;
* colour error: the mean CIEDE2000 difference ``Delta E_00`` of the two images in CIELAB
  (``skimage.color.rgb2lab`` under D65, then ``skimage.color.deltaE_ciede2000``); about 1 is
  the smallest visible difference, 0 for identical images.

Example:
    >>> import numpy as np
    >>> a = np.full((16, 16, 3), 100, np.uint8)
    >>> b = a.copy(); b[8, 8] = 120
    >>> round(psnr_y(a, b, border=0), 2)
    47.51
    >>> round(psnr_rgb(a, b, border=0), 2)
    46.19
"""

from __future__ import annotations

import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab, rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tocsr_nas.errors import TocsrError

__all__ = ["rgb_to_y", "psnr_y", "ssim_y", "psnr_rgb", "ciede2000", "sr_metrics"]


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """8-bit RGB ``(H, W, 3)`` -> BT.601 luma ``(H, W)`` float64 in ``[16, 235]``."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise TocsrError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    return rgb2ycbcr(np.asarray(image, dtype=np.uint8))[..., 0]


def _prepare(reference: np.ndarray, test: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    if reference.shape != test.shape:
        raise TocsrError(f"images differ in shape: {reference.shape} vs {test.shape}")
    y_ref, y = rgb_to_y(reference), rgb_to_y(test)
    if border:
        if min(y.shape) <= 2 * border:
            raise TocsrError(f"a {y.shape[1]}x{y.shape[0]} image is too small for a {border} px border crop")
        y_ref, y = y_ref[border:-border, border:-border], y[border:-border, border:-border]
    return y_ref, y


def psnr_y(reference: np.ndarray, test: np.ndarray, border: int = 4) -> float:
    """PSNR (dB) on the Y channel after cropping ``border`` pixels; ``inf`` for identical images."""
    y_ref, y = _prepare(reference, test, border)
    if np.array_equal(y_ref, y):
        return float("inf")
    return float(peak_signal_noise_ratio(y_ref, y, data_range=255.0))


def ssim_y(reference: np.ndarray, test: np.ndarray, border: int = 4) -> float:
    """SSIM on the Y channel after cropping ``border`` pixels (Gaussian window, sigma 1.5)."""
    y_ref, y = _prepare(reference, test, border)
    return float(
        structural_similarity(y_ref, y, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    )


def _crop_rgb(reference: np.ndarray, test: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    _prepare(reference, test, border)  # the same shape and size checks
    if border:
        reference, test = reference[border:-border, border:-border], test[border:-border, border:-border]
    return np.asarray(reference, np.uint8), np.asarray(test, np.uint8)


def psnr_rgb(reference: np.ndarray, test: np.ndarray, border: int = 4) -> float:
    """PSNR (dB) over the three 8-bit RGB channels after cropping ``border`` pixels; ``inf`` if identical."""
    ref, out = _crop_rgb(reference, test, border)
    if np.array_equal(ref, out):
        return float("inf")
    return float(peak_signal_noise_ratio(ref.astype(np.float64), out.astype(np.float64), data_range=255.0))


def ciede2000(reference: np.ndarray, test: np.ndarray, border: int = 4) -> float:
    """Mean CIEDE2000 colour difference (CIELAB, D65) after cropping ``border`` pixels."""
    ref, out = _crop_rgb(reference, test, border)
    return float(np.mean(deltaE_ciede2000(rgb2lab(ref), rgb2lab(out))))


def sr_metrics(reference: np.ndarray, test: np.ndarray, border: int = 4) -> dict[str, float]:
    """``{"psnr_y", "ssim_y", "psnr_rgb", "ciede2000"}`` for one image pair."""
    return {
        "psnr_y": psnr_y(reference, test, border),
        "ssim_y": ssim_y(reference, test, border),
        "psnr_rgb": psnr_rgb(reference, test, border),
        "ciede2000": ciede2000(reference, test, border),
    }
