import pytest
import torch

from pyrecon.inr.hankel import (
    calibrate_spirit,
    hankel_adjoint,
    hankel_gram,
    hankel_lowrank_penalty,
    hankel_matrix,
    hankel_matvec,
    hankel_rmatvec,
    spirit_apply,
    spirit_residual,
)

DT = torch.complex128


def _rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g, dtype=torch.float64),
                         torch.randn(*shape, generator=g, dtype=torch.float64))


def test_hankel_matrix_hand_built():
    # one channel [[1, 2], [3, 4]], kernel (1, 2): zero-pad columns by 1 → windows of [0 1 2 0] rows.
    x = torch.tensor([[[1, 2], [3, 4]]], dtype=DT)
    h = hankel_matrix(x, (1, 2))
    expected = torch.tensor([[0, 1], [1, 2], [2, 0], [0, 3], [3, 4], [4, 0]], dtype=DT)
    torch.testing.assert_close(h, expected)
    # two channels, kernel 2x2: columns ordered (c, a, b); check one row by hand.
    x2 = _rand(2, 3, 4, seed=1)
    h2 = hankel_matrix(x2, 2)
    assert h2.shape == ((3 + 1) * (4 + 1), 2 * 4)
    # row p = i·5 + j with (i, j) = (1, 2) covers padded rows 1..2, cols 2..3 = x rows 0..1, cols 1..2
    row = h2[1 * 5 + 2]
    expected_row = torch.stack([x2[c, a, 1 + b] for c in range(2) for a in range(2) for b in range(2)])
    torch.testing.assert_close(row, expected_row)


def test_matvec_rmatvec_adjoint_against_dense():
    x = _rand(3, 6, 5, seed=2)
    k = (3, 2)
    h = hankel_matrix(x, k)
    v = _rand(3, 3, 2, seed=3)
    torch.testing.assert_close(hankel_matvec(x, v), h @ v.reshape(-1))
    u = _rand(h.size(0), seed=4)
    torch.testing.assert_close(hankel_rmatvec(x, u, k).reshape(-1), h.conj().T @ u)
    # adjointness of x ↦ H(x): <H(x), m> = <x, H*(m)>
    m = _rand(*h.shape, seed=5)
    lhs = (h.conj() * m).sum()
    rhs = (x.conj() * hankel_adjoint(m, tuple(x.shape), k)).sum()
    torch.testing.assert_close(lhs, rhs)
    # H*(H(1)) counts, at each sample, the windows that contain it: kh·kw everywhere (full windows)
    ones = torch.ones(3, 6, 5, dtype=DT)
    torch.testing.assert_close(hankel_adjoint(hankel_matrix(ones, k), (3, 6, 5), k), 6 * ones)


def test_gram_trick_equals_dense_gram():
    x = _rand(2, 7, 6, seed=6)
    for k in [(3, 3), (2, 4), (1, 1)]:
        h = hankel_matrix(x, k)
        torch.testing.assert_close(hankel_gram(x, k), h.conj().T @ h)


def test_lowrank_penalties_match_svd():
    x = _rand(2, 6, 6, seed=7)
    k = (3, 3)
    s = torch.linalg.svdvals(hankel_matrix(x, k))
    torch.testing.assert_close(hankel_lowrank_penalty(x, k, kind="nuclear", eps=0.0), s.sum())
    torch.testing.assert_close(hankel_lowrank_penalty(x, k, rank=4), (s[4:] ** 2).sum())
    # a separable rank-one multi-channel signal x_c = α_c·z: H(x) has rank = rank of H(z) ≤ kh·kw,
    # and with channels that are scalar multiples the tail beyond kh·kw vanishes.
    z = _rand(1, 6, 6, seed=8)
    xs = torch.cat([z, 2.5j * z], dim=0)
    assert hankel_lowrank_penalty(xs, k, rank=9).item() < 1e-9 * hankel_gram(xs, k).diagonal().real.sum()
    # differentiable
    xg = x.clone().requires_grad_(True)
    hankel_lowrank_penalty(xg, k, rank=3).backward()
    assert torch.isfinite(torch.view_as_real(xg.grad)).all()


def test_spirit_apply_matches_loop_and_calibration_is_exact():
    y = _rand(2, 5, 6, seed=9)
    g = _rand(2, 2, 3, 3, seed=10)
    out = spirit_apply(y, g)
    yp = torch.nn.functional.pad(y, (1, 1, 1, 1))
    ref = torch.zeros_like(y)
    for c in range(2):
        for i in range(5):
            for j in range(6):
                ref[c, i, j] = (g[c] * yp[:, i:i + 3, j:j + 3]).sum()
    torch.testing.assert_close(out, ref)
    # channel 1 = 2·(channel 0 shifted right by one column); data zero near the border
    base = torch.zeros(12, 12, dtype=DT)
    base[3:9, 3:9] = _rand(6, 6, seed=11)
    shifted = torch.roll(base, 1, dims=1)
    yy = torch.stack([base, 2 * shifted])
    g = calibrate_spirit(yy[:, 2:10, 2:11], (3, 3), lam=1e-9)
    assert g[0, 0, 1, 1] == 0 and g[1, 1, 1, 1] == 0
    res = spirit_residual(yy, g)
    assert res.abs().max().item() < 1e-5 * yy.abs().max().item()
    # a perturbed k-space is not self-consistent
    assert spirit_residual(yy + 0.1 * _rand(2, 12, 12, seed=12), g).abs().max() > 1e-2


def test_bad_input_raises():
    with pytest.raises(TypeError, match="x"):
        hankel_gram(torch.ones(2, 4, 4), 3)
    with pytest.raises(ValueError, match="max_entries"):
        hankel_matrix(_rand(4, 32, 32), 5, max_entries=1000)
    with pytest.raises(ValueError, match="rank"):
        hankel_lowrank_penalty(_rand(1, 4, 4), 2)
    with pytest.raises(ValueError, match="odd"):
        calibrate_spirit(_rand(2, 8, 8), (4, 3))
    with pytest.raises(ValueError, match="g must"):
        spirit_apply(_rand(2, 8, 8), _rand(3, 3, 3, 3))


@pytest.mark.parametrize("kind,rank", [("tail", 4), ("tail", 0), ("nuclear", None)])
def test_penalty_value_and_gradient_match_autograd_through_the_dense_svd(kind, rank):
    # independent path: dense H(x), its singular values, autograd through svdvals
    x = _rand(2, 5, 6, seed=13)
    k = (3, 2)
    xd = x.clone().requires_grad_(True)
    s = torch.linalg.svdvals(hankel_matrix(xd, k))  # 6·2·... = 12 columns, all σ distinct here
    ref = (s[rank:] ** 2).sum() if kind == "tail" else s.sum()
    ref.backward()
    xg = x.clone().requires_grad_(True)
    val = hankel_lowrank_penalty(xg, k, rank=rank, kind=kind, eps=0.0)
    val.backward()
    torch.testing.assert_close(val, ref.detach())
    torch.testing.assert_close(xg.grad, xd.grad)
    # without grad the same value comes back (no surrogate)
    torch.testing.assert_close(hankel_lowrank_penalty(x, k, rank=rank, kind=kind, eps=0.0), ref.detach())


def test_fft_gram_has_no_wraparound_at_the_largest_lags():
    # energy only in the first row/column and the last: the ±(k−1) lags couple them, and a circular
    # correlation of too short a length would alias the two ends onto small lags
    x = torch.zeros(1, 4, 4, dtype=DT)
    x[0, 0, 0], x[0, 3, 3] = 1.0, 2.0 - 1.0j
    for k in [(4, 4), (3, 2)]:
        h = hankel_matrix(x, k)
        torch.testing.assert_close(hankel_gram(x, k), h.conj().T @ h)
