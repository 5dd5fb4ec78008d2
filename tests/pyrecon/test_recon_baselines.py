"""pyrecon.baselines on the cine phantom: zero-filled < CG-SENSE < L+S at R = 8 (small sizes)."""

import pytest
import torch

from pyrecon.baselines import cg_sense, lplus_s, zero_filled
from pyrecon.data.phantoms import cine_phantom, coil_maps
from pyrecon.metrics import nmse, psnr, ssim
from pyrecon.ops.sense import sense_adjoint, sense_forward
from pyrecon.sampling import kt_mask


@pytest.fixture(scope="module")
def problem():
    T, H, W, C = 8, 48, 48, 4
    x, _ = cine_phantom(T, H, W, seed=0)
    smaps = coil_maps(C, H, W, seed=0)[None]
    mask = kt_mask(T, H, W, 8, center_lines=6, seed=1)
    y = sense_forward(x[None], smaps, mask)
    return x[None], smaps, mask, y


def test_zero_filled_is_adjoint_for_normalized_maps_and_exact_when_fully_sampled(problem):
    x, smaps, mask, y = problem
    torch.testing.assert_close(
        zero_filled(y, smaps, mask), sense_adjoint(y, smaps, mask), rtol=1e-5, atol=1e-6
    )
    full = torch.ones_like(mask)
    torch.testing.assert_close(
        zero_filled(sense_forward(x, smaps, full), smaps, full), x, rtol=1e-4, atol=1e-5
    )


def test_cg_sense_beats_zero_filled_and_lplus_s_beats_cg_sense(problem):
    x, smaps, mask, y = problem
    zf = zero_filled(y, smaps, mask)
    cg = cg_sense(y, smaps, mask, iters=15, lam=1e-3)
    ls = lplus_s(y, smaps, mask, iters=30)
    p_zf, p_cg, p_ls = psnr(x, zf), psnr(x, cg), psnr(x, ls)
    assert p_cg > p_zf + 1.0, (p_zf, p_cg)
    assert p_ls > p_cg + 2.0, (p_cg, p_ls)
    assert ssim(x, ls) > ssim(x, cg) > ssim(x, zf)
    assert nmse(x, ls) < nmse(x, cg) < nmse(x, zf)
    # CG-SENSE fits the data: the residual ‖E x − y‖ is far below that of zero-filling
    res_cg = (sense_forward(cg, smaps, mask) - y).norm() / y.norm()
    res_zf = (sense_forward(zf, smaps, mask) - y).norm() / y.norm()
    assert res_cg < 0.1 * res_zf


def test_lplus_s_with_no_regularization_is_a_data_consistent_landweber(problem):
    # λ_L = λ_S = 0: L = M − S, S = T(M − L_prev) un-thresholded → M_k is the Landweber iterate, the
    # data residual falls monotonically
    x, smaps, mask, y = problem
    r1 = (sense_forward(lplus_s(y, smaps, mask, iters=1, lam_l=0, lam_s=0), smaps, mask) - y).norm()
    r5 = (sense_forward(lplus_s(y, smaps, mask, iters=5, lam_l=0, lam_s=0), smaps, mask) - y).norm()
    assert r5 < r1


def test_baselines_reject_bad_arguments(problem):
    x, smaps, mask, y = problem
    with pytest.raises(ValueError, match="iters"):
        cg_sense(y, smaps, mask, iters=0)
    with pytest.raises(ValueError, match="lam_s"):
        lplus_s(y, smaps, mask, lam_s=-1)
    with pytest.raises(ValueError, match="y must be"):
        zero_filled(x, smaps, mask)


def test_batched_items_are_reconstructed_independently(problem):
    # one CG (and one L+S threshold) per batch item: a batch of two equals the items run alone
    x, smaps, mask, y = problem
    x2, _ = cine_phantom(8, 48, 48, seed=5)
    y2 = sense_forward(x2[None], smaps, mask)
    both = torch.cat([y, y2])
    for fn in (lambda v: cg_sense(v, smaps, mask, iters=5), lambda v: lplus_s(v, smaps, mask, iters=3)):
        batch = fn(both)
        torch.testing.assert_close(batch[:1], fn(y), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(batch[1:], fn(y2), rtol=1e-4, atol=1e-5)
