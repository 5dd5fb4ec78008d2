import math

import pytest
import torch

from pyrecon.inr.expfit import fit_monoexp, loglinear_init, monoexp, nls_refine

TSL = torch.tensor([5.0, 10.0, 20.0, 40.0, 60.0], dtype=torch.float64)


def _maps(shape=(7, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    m0 = 0.2 + torch.rand(shape, generator=g, dtype=torch.float64)
    t1 = 20 + 80 * torch.rand(shape, generator=g, dtype=torch.float64)
    return m0, t1


def test_two_point_hand_case():
    # S(0) = 2, S(10) = 2/e  ⇒  M0 = 2, T1rho = 10 by hand.
    s = torch.tensor([[2.0], [2.0 / math.e]], dtype=torch.float64)
    m0, t1 = fit_monoexp(s, torch.tensor([0.0, 10.0], dtype=torch.float64))
    assert m0.item() == pytest.approx(2.0, rel=1e-12)
    assert t1.item() == pytest.approx(10.0, rel=1e-12)


def test_noiseless_exact_recovery_loglinear_and_full():
    m0, t1 = _maps()
    s = monoexp(m0, t1, TSL)
    m0_l, t1_l, valid = loglinear_init(s, TSL)
    assert valid.all()
    torch.testing.assert_close(m0_l, m0, rtol=1e-10, atol=0)
    torch.testing.assert_close(t1_l, t1, rtol=1e-10, atol=0)
    m0_f, t1_f = fit_monoexp(s.to(torch.complex128) * 1j, TSL)  # phase is ignored
    torch.testing.assert_close(m0_f, m0, rtol=1e-10, atol=0)
    torch.testing.assert_close(t1_f, t1, rtol=1e-10, atol=0)


def test_lm_converges_from_far_start():
    m0, t1 = _maps(seed=1)
    s = monoexp(m0, t1, TSL)
    m0_f, t1_f = nls_refine(s, TSL, torch.ones_like(m0), torch.full_like(t1, 200.0), iters=200)
    torch.testing.assert_close(m0_f, m0, rtol=1e-8, atol=0)
    torch.testing.assert_close(t1_f, t1, rtol=1e-8, atol=0)


def test_lm_lowers_signal_domain_cost_on_noisy_data():
    m0, t1 = _maps(shape=(200,), seed=2)
    g = torch.Generator().manual_seed(3)
    s = (monoexp(m0, t1, TSL) + 0.03 * torch.randn(5, 200, generator=g, dtype=torch.float64)).abs()
    m0_l, t1_l, _ = loglinear_init(s, TSL)
    m0_f, t1_f = fit_monoexp(s, TSL)

    def cost(a, t):
        return ((s - monoexp(a, t, TSL)) ** 2).sum(0)

    assert bool((cost(m0_f, t1_f) <= cost(m0_l, t1_l) + 1e-15).all())
    assert cost(m0_f, t1_f).sum() < 0.99 * cost(m0_l, t1_l).sum()


def test_background_and_mask_give_zero():
    m0, t1 = _maps(shape=(3,))
    s = monoexp(m0, t1, TSL)
    s[:, 0] = 0.0  # background voxel
    m0_f, t1_f = fit_monoexp(s, TSL, mask=torch.tensor([True, True, False]))
    assert m0_f[0] == 0 and t1_f[0] == 0 and m0_f[2] == 0 and t1_f[2] == 0
    assert t1_f[1].item() == pytest.approx(t1[1].item(), rel=1e-10)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="tsl"):
        fit_monoexp(torch.ones(5, 3), torch.ones(5))
    with pytest.raises(ValueError, match="signal"):
        fit_monoexp(torch.ones(4, 3), TSL)
    with pytest.raises(TypeError, match="signal"):
        fit_monoexp([1.0, 2.0], TSL)
    with pytest.raises(ValueError, match="mask"):
        fit_monoexp(torch.ones(5, 3, dtype=torch.float64), TSL, mask=torch.ones(4, dtype=torch.bool))
