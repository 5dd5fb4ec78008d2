"""pyvision.models.grl: gradient reversal (forward identity, backward −λ·grad) and the DANN schedule."""

import math

import pytest
import torch

from pyvision.models.grl import grad_reverse, grl_coefficient


def test_gradient_reversal_forward_identity_backward_negated():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, dtype=torch.float64)
    y = grad_reverse(x, 0.3)
    torch.testing.assert_close(y, x, rtol=0, atol=0)
    (y * w).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * w, rtol=0, atol=0)
    with pytest.raises(ValueError, match="coeff"):
        grad_reverse(x, -1.0)
    with pytest.raises(TypeError, match="x must be a tensor"):
        grad_reverse([1.0], 1.0)


def test_grl_schedule_formula():
    assert grl_coefficient(0.0, 0.1) == 0.0
    assert grl_coefficient(1.0, 1.0, 10.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert grl_coefficient(0.5, 0.1, 10.0) == pytest.approx(0.1 * (2 / (1 + math.exp(-5)) - 1))
    values = [grl_coefficient(p / 10, 0.1) for p in range(11)]
    assert values == sorted(values) and values[-1] < 0.1
    with pytest.raises(ValueError, match="progress"):
        grl_coefficient(1.5)


