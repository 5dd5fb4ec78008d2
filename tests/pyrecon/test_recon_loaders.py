"""pyrecon.data.loaders (HDF5 k-space, coil-map estimation) and pyrecon.figures (PNG writer)."""

import h5py
import numpy as np
import pytest
import torch

from pyrecon.data.loaders import estimate_coil_maps, load_kspace_h5
from pyrecon.data.phantoms import cine_phantom, coil_maps
from pyrecon.figures import save_recon_figure
from pyrecon.ops.fft import fft2c
from pyrecon.sampling import kt_mask


def _kspace(T=3, C=2, H=12, W=10, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(T, C, H, W)) + 1j * rng.normal(size=(T, C, H, W))).astype(np.complex64)


def test_load_native_complex_and_auto_key(tmp_path):
    k = _kspace()
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = k
        f["mask"] = np.ones(3)
    out = load_kspace_h5(path)
    assert out.dtype == torch.complex64 and out.shape == (3, 2, 12, 10)
    np.testing.assert_array_equal(out.numpy(), k)


def test_load_matlab_compound_and_trailing_pair_and_slices(tmp_path):
    k = _kspace(seed=1)
    compound = np.empty(k.shape, dtype=[("real", "<f4"), ("imag", "<f4")])
    compound["real"], compound["imag"] = k.real, k.imag
    five = np.stack([k, 2 * k], axis=1)  # (frames, slices, coils, ky, kx)
    path = tmp_path / "cmr.mat"
    with h5py.File(path, "w") as f:
        f["kspace_full"] = compound
        f["pair"] = np.stack([k.real, k.imag], axis=-1)
        f["multi"] = five
    np.testing.assert_array_equal(load_kspace_h5(path).numpy(), k)  # found by name: kspace_full
    np.testing.assert_array_equal(load_kspace_h5(path, key="pair").numpy(), k)
    np.testing.assert_array_equal(load_kspace_h5(path, key="multi", slice_index=1).numpy(), 2 * k)
    with pytest.raises(ValueError, match="slice_index"):
        load_kspace_h5(path, key="multi", slice_index=2)


def test_load_errors(tmp_path):
    missing = tmp_path / "nowhere" / "scan.h5"
    with pytest.raises(FileNotFoundError, match="scan.h5"):
        load_kspace_h5(missing)
    path = tmp_path / "b.h5"
    with h5py.File(path, "w") as f:
        f["one"] = _kspace()[0]  # 3-d: not (frames, coils, ky, kx)
        f["two"] = np.zeros((2, 2, 2, 3))  # real, no (re, im) axis
    with pytest.raises(KeyError, match="pass key="):
        load_kspace_h5(path)
    with pytest.raises(KeyError, match="no dataset 'three'"):
        load_kspace_h5(path, key="three")
    with pytest.raises(ValueError, match="frames, coils, ky, kx"):
        load_kspace_h5(path, key="one")
    with pytest.raises(ValueError, match="must be complex"):
        load_kspace_h5(path, key="two")


def test_estimate_coil_maps_recovers_smooth_maps_from_undersampled_data():
    T, C, H, W = 8, 4, 40, 40
    x, _ = cine_phantom(T, H, W, seed=2, dtype=torch.complex128)
    x = x.abs().to(torch.complex128)  # the maps absorb the object's phase otherwise
    s = coil_maps(C, H, W, seed=2, dtype=torch.complex128)
    mask = kt_mask(T, H, W, 4, center_lines=8, seed=0)
    y = mask[:, None] * fft2c(s[None] * x[:, None])
    est = estimate_coil_maps(y[None], center_lines=16)[0]
    assert est.shape == (C, H, W)
    inside = x.abs().mean(0) > 0.15
    # normalized where there is signal
    torch.testing.assert_close(
        (est.abs() ** 2).sum(0)[inside], torch.ones(int(inside.sum()), dtype=torch.float64), atol=1e-3, rtol=0
    )
    # equal to the true maps up to one common phase per pixel: |Σ_c conj(s_c) est_c| ≈ 1
    agreement = (s.conj() * est).sum(0).abs()[inside]
    assert agreement.mean() > 0.97 and agreement.min() > 0.85
    with pytest.raises(ValueError, match="kspace must be complex"):
        estimate_coil_maps(y)


def test_save_recon_figure(tmp_path):
    x, _ = cine_phantom(4, 24, 24, seed=0)
    noisy = x + 0.05 * torch.randn_like(x)
    out = save_recon_figure(tmp_path / "sub" / "fig.png", x, {"noisy": noisy, "copy": x}, frame=2, title="t")
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="frame"):
        save_recon_figure(tmp_path / "f.png", x, {"noisy": noisy}, frame=4)
    with pytest.raises(ValueError, match="recons\\['bad'\\]"):
        save_recon_figure(tmp_path / "f.png", x, {"bad": noisy[:2]})
