"""The equivariance measures of pyrecon.dunsre.equivariance: the rotation about the FFT origin commutes
with fft2c (even and odd sizes), and a whole DUN-SRE reconstruction (every DC mode) commutes with a
rotation of the problem at odd sizes, while the plain twin does not."""

from __future__ import annotations

import pytest
import torch

from pyrecon.dunsre.equivariance import (
    net_equivariance_error,
    prox_equivariance_error,
    rotate_about_fft_centre,
)
from pyrecon.dunsre.model import DUNSRE, DUNSREConfig
from pyrecon.ops.fft import fft2c
from pyrecon.ops.sense import sense_forward


@pytest.mark.parametrize("n", [8, 9])
def test_rotation_about_fft_origin_commutes_with_fft(n):
    x = torch.randn(2, n, n, dtype=torch.complex128, generator=torch.Generator().manual_seed(n))
    for turns in (1, 2, 3):
        want = rotate_about_fft_centre(fft2c(x), turns)
        torch.testing.assert_close(fft2c(rotate_about_fft_centre(x, turns)), want)
    torch.testing.assert_close(rotate_about_fft_centre(x, 4), x)
    if n == 9:
        assert torch.equal(rotate_about_fft_centre(x), torch.rot90(x, 1, (-2, -1)))
    # by hand, n = 4: origin index 2, out(u, v) = in(v, −u) → out[i][j] = in[j][(4 − i) mod 4]
    a = torch.arange(16.0).reshape(4, 4)
    want = [[0, 4, 8, 12], [3, 7, 11, 15], [2, 6, 10, 14], [1, 5, 9, 13]]
    assert rotate_about_fft_centre(a).tolist() == want
    with pytest.raises(ValueError, match="square"):
        rotate_about_fft_centre(torch.zeros(3, 4))


def _problem(n: int = 11, coils: int = 3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, n, n, dtype=torch.complex128, generator=g)
    smaps = torch.randn(1, coils, n, n, dtype=torch.complex128, generator=g)
    smaps = smaps / smaps.abs().square().sum(1, keepdim=True).sqrt()
    mask = (torch.rand(1, 4, n, 1, generator=g) < 0.5).double()
    return x, smaps, mask, sense_forward(x, smaps, mask)


@pytest.mark.parametrize("dc", ["learned", "gradient", "cg"])
def test_whole_net_commutes_with_rotating_the_problem(dc):
    x, smaps, mask, y = _problem()
    torch.manual_seed(0)
    net = DUNSRE(DUNSREConfig(stages=2, dc=dc)).double()
    twin = DUNSRE(DUNSREConfig(stages=2, dc=dc, equivariant=False)).double()
    assert net_equivariance_error(net, y, smaps, mask) < 1e-10
    assert net_equivariance_error(twin, y, smaps, mask) > 1e-4
    assert prox_equivariance_error(net, x) < 1e-10
    assert prox_equivariance_error(twin, x) > 1e-3
