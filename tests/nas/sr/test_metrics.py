"""PSNR/SSIM on the Y channel against scikit-image and a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tocsr_nas.errors import TocsrError
from tocsr_nas.sr.metrics import psnr_y, rgb_to_y, sr_metrics, ssim_y


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)
    noisy = np.clip(ref.astype(int) + rng.integers(-12, 13, ref.shape), 0, 255).astype(np.uint8)
    return ref, noisy


def test_matches_scikit_image(pair):
    ref, test = pair
    y_ref, y = rgb2ycbcr(ref)[4:-4, 4:-4, 0], rgb2ycbcr(test)[4:-4, 4:-4, 0]
    assert psnr_y(ref, test, border=4) == pytest.approx(peak_signal_noise_ratio(y_ref, y, data_range=255))
    expected = structural_similarity(y_ref, y, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim_y(ref, test, border=4) == pytest.approx(expected)


def test_known_pair_by_hand():
    ref = np.full((20, 20, 3), 100, np.uint8)
    test = ref.copy()
    test[..., 1] += 10  # green +10 levels everywhere: Y moves by 128.553 * 10 / 255
    dy = 128.553 * 10 / 255
    assert psnr_y(ref, test, border=2) == pytest.approx(10 * math.log10(255**2 / dy**2), abs=1e-6)
    assert rgb_to_y(ref)[0, 0] == pytest.approx(16 + (65.481 + 128.553 + 24.966) * 100 / 255)


def test_identical_images_and_errors(pair):
    ref, _ = pair
    assert sr_metrics(ref, ref) == {"psnr_y": math.inf, "ssim_y": pytest.approx(1.0), "psnr_rgb": math.inf, "ciede2000": 0.0}
    with pytest.raises(TocsrError, match="differ in shape"):
        psnr_y(ref, ref[:-1])
    with pytest.raises(TocsrError, match="too small"):
        psnr_y(ref[:6, :6], ref[:6, :6], border=4)
