"""kernels.hash_grid_encode and kernels.nn.HashGridEncoding: every backend against the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kernels
from kernels.nn import HashGridEncoding
from kernels.ops.hash_grid_encode import level_resolutions
from kernels.reference.hash_grid_encode import level_is_dense

OP = "hash_grid_encode"
CPU_BACKENDS = [b for b in ("cpu", "triton") if b in kernels.available_backends(OP, "cpu")]
ALL_CPU = ["reference", *CPU_BACKENDS]
# The Triton interpreter takes ~10-20 s per call at d >= 3: it runs the shape matrix on a subset and
# the invariant tests run on reference and cpu (the GPU test below covers triton on every d).
FAST = [b for b in ALL_CPU if b != "triton"]

# T = 31 (not a power of two) with base 1, scale 2, 6 levels (res 1..32): every d in 1..4 mixes dense
# levels ((res+1)^d <= 31) with hashed ones.
T, LEVELS = 31, 6
KW = dict(n_levels=LEVELS, base_resolution=1, per_level_scale=2.0)
# Forward: same float ops in every backend (tolerance for FMA contraction); table gradients sum
# ~N/T terms in different orders: compared relative to the largest entry.
TOL = {torch.float32: 1e-5, torch.float64: 1e-12, torch.float16: 2e-3}


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _run(backend, x, table, kw=KW, grad_seed=1, need_x=True):
    x = x.detach().clone().requires_grad_(need_x)
    table = table.detach().clone().requires_grad_(True)
    with kernels.use_backend(backend):
        out = kernels.hash_grid_encode(x, table, **kw)
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed)).to(out.dtype)
        grads = torch.autograd.grad(out, (x, table) if need_x else (table,), g)
    return (out, *grads)


def test_levels_mix_dense_and_hashed():
    res = level_resolutions(**KW)
    assert res == [1, 2, 4, 8, 16, 32]
    for d in (1, 2, 3, 4):
        flags = {level_is_dense(r, d, T) for r in res}
        assert flags == {True, False}, d


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("d", [1, 2, 3, 4])
@pytest.mark.parametrize("F", [1, 2, 4, 8])
@pytest.mark.parametrize("n", [1, 7, 1031])
def test_matches_reference_fp32(backend, d, F, n):
    if backend == "triton" and (n != 7 or F != 2 or d not in (1, 3)):
        pytest.skip("interpreter: a subset of shapes keeps the run short")
    x = torch.rand(n, d)
    table = torch.randn(LEVELS, T, F)
    got = _run(backend, x, table)
    want = _run("reference", x, table)
    tol = TOL[torch.float32]
    for name, a, b in zip(("out", "grad_x", "grad_table"), got, want, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert _max_rel(a, b) <= tol, (name, _max_rel(a, b))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
@pytest.mark.parametrize("d", [2, 3])
def test_cpu_other_dtypes(dtype, d):
    if "cpu" not in CPU_BACKENDS:
        pytest.skip("cpu backend not built")
    x = torch.rand(1031, d, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    table = torch.randn(LEVELS, T, 2).to(dtype)
    got = _run("cpu", x, table)
    want = _run("reference", x, table)
    assert got[0].dtype == dtype and got[2].dtype == dtype
    for a, b in zip(got, want, strict=True):
        assert _max_rel(a, b) <= TOL[dtype]


@pytest.mark.parametrize("backend", FAST)
def test_x_grad_only_when_needed(backend):
    x, table = torch.rand(7, 3), torch.randn(LEVELS, T, 2)
    out, grad_table = _run(backend, x, table, need_x=False)
    assert grad_table.shape == table.shape and grad_table.abs().sum() > 0


def _away_from_cells(n, d, finest, generator):
    cells = torch.randint(0, finest, (n, d), generator=generator).double()
    return (cells + 0.2 + 0.6 * torch.rand(n, d, generator=generator, dtype=torch.float64)) / finest


@pytest.mark.parametrize("backend", [b for b in ("reference", "cpu") if b in ALL_CPU])
def test_gradcheck_float64(backend):
    # res 2 (dense: 9 <= 16) and 4 (hashed: 25 > 16); points at least 0.1 cell from every boundary.
    kw = dict(n_levels=2, base_resolution=2, per_level_scale=2.0)
    x = _away_from_cells(5, 2, 4, torch.Generator().manual_seed(3)).requires_grad_(True)
    table = torch.randn(2, 16, 2, dtype=torch.float64, requires_grad=True)
    with kernels.use_backend(backend):
        assert torch.autograd.gradcheck(
            lambda a, b: kernels.hash_grid_encode(a, b, **kw), (x, table), eps=1e-6
        )


@pytest.mark.parametrize("backend", FAST)
def test_dense_level_is_an_explicit_grid_lookup(backend):
    # d = 2, one level of res 5: (5+1)^2 = 36 <= T = 40, so table[0, :36] is a row-major 6x6 grid.
    res, Tn = 5, 40
    x = torch.rand(33, 2)
    table = torch.randn(1, Tn, 4)
    with kernels.use_backend(backend):
        out = kernels.hash_grid_encode(x, table, n_levels=1, base_resolution=res, per_level_scale=1.0)
    grid = table[0, :36].reshape(6, 6, 4)
    p = x * res
    c = p.floor().long().clamp(max=res - 1)
    w = p - c
    i, j, wi, wj = c[:, 0], c[:, 1], w[:, :1], w[:, 1:]
    want = (
        (1 - wi) * (1 - wj) * grid[i, j]
        + wi * (1 - wj) * grid[i + 1, j]
        + (1 - wi) * wj * grid[i, j + 1]
        + wi * wj * grid[i + 1, j + 1]
    )
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ALL_CPU)
def test_hash_collision_gradients_add_up(backend):
    # T = 1: every hashed vertex lands in slot 0, so its gradient is the sum over both points of
    # (sum of their d-linear weights = 1) · grad_out.
    x = torch.tensor([[0.13], [0.71]])
    table = torch.randn(1, 1, 2, requires_grad=True)
    kw = dict(n_levels=1, base_resolution=3, per_level_scale=1.0)  # 4 vertices > T: hashed
    g = torch.tensor([[1.5, -2.0], [0.25, 4.0]])
    with kernels.use_backend(backend):
        out = kernels.hash_grid_encode(x, table, **kw)
        (grad,) = torch.autograd.grad(out, table, g)
    torch.testing.assert_close(grad[0, 0], g.sum(0), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out, table.detach()[0, 0].expand(2, 2))


def test_cpu_backward_is_deterministic():
    if "cpu" not in CPU_BACKENDS:
        pytest.skip("cpu backend not built")
    x, table = torch.rand(4099, 3), torch.randn(4, 7, 2)  # heavy collisions
    a = _run("cpu", x, table, kw=dict(n_levels=4, base_resolution=3, per_level_scale=1.5))
    b = _run("cpu", x, table, kw=dict(n_levels=4, base_resolution=3, per_level_scale=1.5))
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)


@pytest.mark.parametrize("backend", FAST)
def test_outside_unit_cube_is_clamped(backend):
    x = torch.tensor([[-0.5, 0.3], [1.7, 0.4], [0.2, -3.0], [1.0, 0.0]])
    table = torch.randn(LEVELS, T, 2)
    out, gx, _ = _run(backend, x, table)
    want, gx_in, _ = _run(backend, x.clamp(0, 1), table)
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    outside = (x < 0) | (x > 1)
    assert (gx[outside] == 0).all()
    torch.testing.assert_close(gx[~outside], gx_in[~outside])
    assert (gx_in[outside] != 0).any()  # the zeros above come from the clamp, not from the data


def test_nan_raises_unless_unchecked():
    x = torch.rand(5, 2)
    x[3, 1] = float("nan")
    table = torch.randn(LEVELS, T, 2)
    with pytest.raises(ValueError, match="NaN"):
        kernels.hash_grid_encode(x, table, **KW)
    for backend in FAST:  # NaN coordinates are encoded as 0
        with kernels.use_backend(backend):
            out = kernels.hash_grid_encode(x, table, **KW, check_finite=False)
            x0 = torch.nan_to_num(x, nan=0.0)
            torch.testing.assert_close(out, kernels.hash_grid_encode(x0, table, **KW))


@pytest.mark.parametrize(
    "x_shape, table_shape, kw, err, match",
    [
        ((5, 5), (LEVELS, T, 2), KW, ValueError, "x must have shape"),
        ((5,), (LEVELS, T, 2), KW, ValueError, "x must have shape"),
        ((5, 2), (LEVELS, T, 3), KW, ValueError, "table must have shape"),
        ((5, 2), (LEVELS, T), KW, ValueError, "table must have shape"),
        ((5, 2), (LEVELS + 1, T, 2), KW, ValueError, "n_levels must equal"),
        ((5, 2), (LEVELS, T, 2), {**KW, "per_level_scale": 0.5}, ValueError, "per_level_scale"),
        ((5, 2), (LEVELS, T, 2), {**KW, "base_resolution": 0}, ValueError, "base_resolution"),
        ((5, 2), (LEVELS, T, 2), {**KW, "per_level_scale": 40.0}, ValueError, "2\\^24"),
    ],
)
def test_bad_inputs_raise(x_shape, table_shape, kw, err, match):
    with pytest.raises(err, match=match):
        kernels.hash_grid_encode(torch.rand(x_shape), torch.randn(table_shape), **kw)


def test_bad_dtypes_raise():
    with pytest.raises(TypeError, match="table must have dtype"):
        kernels.hash_grid_encode(torch.rand(5, 2), torch.randn(LEVELS, T, 2).bfloat16(), **KW)
    with pytest.raises(TypeError, match="x must be a floating-point"):
        kernels.hash_grid_encode(torch.ones(5, 2, dtype=torch.int64), torch.randn(LEVELS, T, 2), **KW)


def test_numpy_in_numpy_out():
    x = np.random.default_rng(0).random((9, 3), dtype=np.float32)
    table = torch.randn(LEVELS, T, 2)
    out = kernels.hash_grid_encode(x, table, **KW)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, kernels.hash_grid_encode(torch.from_numpy(x), table, **KW).numpy())


def test_empty_points():
    out = kernels.hash_grid_encode(torch.rand(0, 3), torch.randn(LEVELS, T, 2), **KW)
    assert out.shape == (0, LEVELS * 2)


def test_double_backward_raises():
    x = torch.rand(7, 2, requires_grad=True)
    table = torch.randn(LEVELS, T, 2, requires_grad=True)
    out = kernels.hash_grid_encode(x, table, **KW)
    (gt,) = torch.autograd.grad(out.square().sum(), table, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        gt.sum().backward()


def test_opcheck():
    res = level_resolutions(**KW)
    x = torch.rand(7, 3)
    table = torch.randn(LEVELS, T, 2, requires_grad=True)
    torch.library.opcheck(torch.ops.pykernels.hash_grid_encode.default, (x, table, res))
    g = torch.randn(7, LEVELS * 2)
    for need_x in (True, False):
        torch.library.opcheck(
            torch.ops.pykernels.hash_grid_encode_backward.default, (g, x, table.detach(), res, need_x)
        )


def test_torch_compile_fullgraph():
    enc = HashGridEncoding(3, n_levels=4, log2_hashmap_size=6, base_resolution=2)
    x = torch.rand(11, 3)
    compiled = torch.compile(lambda x: enc(x).square().sum(), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), enc(x).square().sum())


def test_module_init_shapes_repr():
    enc = HashGridEncoding(2, n_levels=3, n_features_per_level=4, log2_hashmap_size=8, base_resolution=4)
    assert enc.table.shape == (3, 256, 4) and enc.output_dim == 12
    assert enc.table.abs().max() <= 1e-4 and enc.table.std() > 1e-5
    assert enc(torch.rand(13, 2)).shape == (13, 12)
    assert "log2_hashmap_size=8" in repr(enc)
    fine = HashGridEncoding(2, n_levels=5, base_resolution=4, finest_resolution=64)
    assert level_resolutions(5, 4, fine.per_level_scale)[-1] in (63, 64)


def test_inr_fit_lowers_loss():
    torch.manual_seed(0)
    side = 24
    yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    coords = torch.stack([xx, yy], -1).reshape(-1, 2)
    image = (torch.sin(8 * coords[:, 0]) * torch.cos(5 * coords[:, 1]))[:, None]
    enc = HashGridEncoding(2, n_levels=4, n_features_per_level=2, log2_hashmap_size=10, base_resolution=4)
    model = torch.nn.Sequential(
        enc, torch.nn.Linear(enc.output_dim, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.mse_loss(model(coords), image)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::8]
    assert enc.table.grad is not None and enc.table.grad.abs().sum() > 0


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_gpu_matches_reference(backend, dtype, d):
    x = torch.rand(1031, d, device="cuda")
    table = torch.randn(LEVELS, T, 2, device="cuda").to(dtype)
    got = _run(backend, x, table)
    want = _run("reference", x, table)
    tol = TOL[dtype] if dtype != torch.float32 else 1e-4  # atomics: summation order varies
    for a, b in zip(got, want, strict=True):
        assert _max_rel(a, b) <= tol
