"""pyrecon.metrics: PSNR (both conventions), SSIM and NMSE against hand values and scikit-image."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pyrecon.metrics import nmse, psnr, ssim


def test_psnr_by_hand():
    ref = torch.ones(2, 4, 4, dtype=torch.float64)
    rec = ref + 0.1  # MSE 0.01, peak 1 → 20 dB
    assert psnr(ref, rec) == pytest.approx(20.0, abs=1e-9)
    # complex, error purely imaginary 0.1: the authors' convention averages over re and im → MSE 0.005
    cref = torch.ones(2, 4, 4, dtype=torch.complex128)
    crec = cref + 0.1j
    assert psnr(cref, crec, mode="complex") == pytest.approx(10 * math.log10(1 / 0.005), abs=1e-5)
    # the magnitude PSNR sees only |1 + 0.1i| − 1
    mag_err = math.sqrt(1.01) - 1
    assert psnr(cref, crec) == pytest.approx(10 * math.log10(1 / mag_err**2), abs=1e-4)
    # peak is max |ref|: doubling both doubles the peak and the error → same PSNR
    assert psnr(2 * ref, 2 * rec) == pytest.approx(20.0, abs=1e-9)
    assert psnr(ref, ref) == math.inf


def test_psnr_complex_is_3db_above_complex_error_psnr_and_matches_skimage():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(3, 16, 12, dtype=torch.complex128, generator=g)
    rec = ref + 0.05 * torch.randn(3, 16, 12, dtype=torch.complex128, generator=g)
    peak = ref.abs().max()
    plain = 10 * math.log10(peak**2 / ((rec - ref).abs() ** 2).mean())
    assert psnr(ref, rec, mode="complex") - plain == pytest.approx(10 * math.log10(2), abs=1e-9)
    a, b = ref.abs().numpy(), rec.abs().numpy()
    expected = peak_signal_noise_ratio(a, b, data_range=float(peak))
    assert psnr(ref, rec) == pytest.approx(expected, abs=1e-9)


def test_nmse_by_hand():
    ref = torch.tensor([[1.0, 2.0]])
    rec = torch.tensor([[1.0, 3.0]])
    assert nmse(ref, rec) == pytest.approx(1 / 5)
    cref = torch.tensor([[1 + 1j, 0j]])
    assert nmse(cref, cref * 1j) == pytest.approx(2.0)  # |i z − z|² = 2|z|²


def _smooth_frames(n, h, w, seed):
    rng = np.random.default_rng(seed)
    base = rng.random((n, h, w))
    k = np.ones(5) / 5
    for ax in (1, 2):
        base = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), ax, base)
    return base


def test_ssim_matches_skimage_per_frame_and_averages():
    ref = _smooth_frames(3, 24, 20, 0)
    rec = ref + 0.05 * np.random.default_rng(1).normal(size=ref.shape)
    r = float(ref.max())
    per_frame = [structural_similarity(ref[i], rec[i], data_range=r) for i in range(3)]
    assert ssim(torch.from_numpy(ref), torch.from_numpy(rec)) == pytest.approx(np.mean(per_frame), abs=1e-10)
    # on complex input, SSIM is that of the magnitudes
    phase = torch.exp(1j * torch.rand(3, 24, 20, dtype=torch.float64))
    cref, crec = torch.from_numpy(ref) * phase, torch.from_numpy(rec) * phase.conj()
    assert ssim(cref, crec) == pytest.approx(np.mean(per_frame), abs=1e-10)
    assert ssim(cref, cref) == pytest.approx(1.0)
    # leading dims (B, T) are frames too
    assert ssim(cref.reshape(1, 3, 24, 20), crec.reshape(1, 3, 24, 20)) == pytest.approx(np.mean(per_frame))


def test_metrics_reject_bad_input():
    a = torch.ones(4, 4)
    with pytest.raises(ValueError, match="same shape"):
        psnr(a, torch.ones(4, 5))
    with pytest.raises(ValueError, match="mode"):
        psnr(a, a, mode="db")
    with pytest.raises(TypeError, match="ref must be"):
        nmse(np.ones((4, 4)), a)
    with pytest.raises(ValueError, match="at least 7x7"):
        ssim(a, a)
    with pytest.raises(ValueError, match="all zeros"):
        psnr(torch.zeros(4, 4), a)
