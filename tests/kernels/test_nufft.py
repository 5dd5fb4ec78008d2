"""kernels.nufft*: backends vs the reference, adjointness, accuracy vs finufft and vs the direct sum,
the analytic Shepp–Logan k-space, Toeplitz normal op, density compensation, autograd, bad inputs."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import kernels
from kernels.reference import nufft as ref

OP = "nufft"
CPU_BACKENDS = [b for b in ("reference", "cpu") if b in kernels.available_backends(OP, "cpu")]
TYPE2 = {2: kernels.nufft2d_type2, 3: kernels.nufft3d_type2}
TYPE1 = {2: kernels.nufft2d_type1, 3: kernels.nufft3d_type1}

# Relative ℓ2 difference between two backends running the same algorithm: only the summation order
# differs, so a few ulps of the dtype times the footprint (w^d terms): measured ~4e-16 / ~1.5e-7.
SAME_ALGO_TOL = {torch.complex128: 1e-13, torch.complex64: 2e-6}

# (B, C, image shape, M, trajectories Bk): a single sample, odd sizes, a 1-wide axis, 1000+odd
# samples, batched trajectories, 3d.
CASES = [
    (1, 1, (7, 7), 1, 1),
    (2, 3, (16, 11), 37, 2),
    (1, 2, (33, 40), 1001, 1),
    (3, 1, (1, 9), 20, 3),
    (2, 2, (5, 6, 7), 103, 2),
    (1, 1, (9, 8, 10), 257, 1),
]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().norm() / b.abs().norm()).item()


def random_k(bk: int, m: int, d: int, dtype=torch.float64) -> torch.Tensor:
    return ((torch.rand(bk, m, d, dtype=torch.float64) * 2 - 1) * math.pi).to(dtype)


def crandn(*shape, dtype=torch.complex128) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype)


def radial(spokes: int, samples: int) -> torch.Tensor:
    """Golden-angle radial trajectory (spokes·samples, 2) in [-π, π)."""
    angle = torch.arange(spokes, dtype=torch.float64) * (math.pi * (math.sqrt(5) - 1) / 2)
    r = (torch.arange(samples, dtype=torch.float64) - samples / 2) * (2 * math.pi / samples)
    k = torch.stack([r * torch.cos(angle[:, None]), r * torch.sin(angle[:, None])], -1)
    return k.reshape(-1, 2)


# ---- backends against the reference -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64], ids=str)
@pytest.mark.parametrize("case", CASES, ids=[f"{c[2]}-M{c[3]}-Bk{c[4]}" for c in CASES])
def test_cpu_matches_reference(case, dtype):
    if "cpu" not in CPU_BACKENDS:
        pytest.skip("kernels._C not built")
    B, C, shape, m, bk = case
    d = len(shape)
    x, y, k = crandn(B, C, *shape, dtype=dtype), crandn(B, C, m, dtype=dtype), random_k(bk, m, d)
    if bk == 1:
        k = k[0]  # the (M, d) form: one trajectory shared by every frame
    with kernels.use_backend("reference"):
        fwd, adj = TYPE2[d](x, k), TYPE1[d](y, k, shape)
    with kernels.use_backend("cpu"):
        fwd_cpu, adj_cpu = TYPE2[d](x, k), TYPE1[d](y, k, shape)
    assert fwd_cpu.shape == (B, C, m) and fwd_cpu.dtype == dtype
    assert adj_cpu.shape == (B, C, *shape) and adj_cpu.dtype == dtype
    assert rel_err(fwd_cpu, fwd) <= SAME_ALGO_TOL[dtype]
    assert rel_err(adj_cpu, adj) <= SAME_ALGO_TOL[dtype]


def test_cpu_is_default_for_cpu_tensors():
    if "cpu" in CPU_BACKENDS:
        assert kernels.default_backend(OP, "cpu") == "cpu"


def test_cpu_radial_many_coils_matches_reference():
    # Dense centre bins (radial), many coils sharing one sort, a grid with many tiles of each colour.
    if "cpu" not in CPU_BACKENDS:
        pytest.skip("kernels._C not built")
    k = radial(31, 96)
    x, y = crandn(1, 5, 96, 96), crandn(1, 5, k.shape[0])
    with kernels.use_backend("reference"):
        expected = kernels.nufft2d_type2(x, k), kernels.nufft2d_type1(y, k, (96, 96))
    with kernels.use_backend("cpu"):
        got = kernels.nufft2d_type2(x, k), kernels.nufft2d_type1(y, k, (96, 96))
    for a, b in zip(got, expected, strict=True):
        assert rel_err(a, b) <= SAME_ALGO_TOL[torch.complex128]


# ---- adjointness: <A x, y> = <x, Aᴴ y> -----------------------------------------------------------

ADJ_TOL = {torch.complex128: 1e-12, torch.complex64: 1e-5}


@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64], ids=str)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("shape", [(12, 17), (6, 7, 5)], ids=str)
def test_adjointness(backend, shape, dtype):
    d = len(shape)
    k = random_k(2, 150, d)  # batched trajectories: one per frame
    x, y = crandn(2, 3, *shape, dtype=dtype), crandn(2, 3, 150, dtype=dtype)
    with kernels.use_backend(backend):
        lhs = torch.vdot(TYPE2[d](x, k, tol=1e-4).flatten(), y.flatten())
        rhs = torch.vdot(x.flatten(), TYPE1[d](y, k, shape, tol=1e-4).flatten())
    assert abs(lhs - rhs) / abs(lhs) <= ADJ_TOL[dtype]


# ---- accuracy: the direct sum, finufft -----------------------------------------------------------


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("shape", [(10, 13), (5, 4, 7)], ids=str)
def test_type2_matches_direct_sum(backend, shape):
    d = len(shape)
    k, x = random_k(1, 60, d), crandn(2, 1, *shape)
    with kernels.use_backend(backend):
        y = TYPE2[d](x, k, tol=1e-9)
    assert rel_err(y, ref.nufft_direct_type2(x, k)) <= 3e-9


@pytest.mark.parametrize("tol", [1e-6, 1e-3])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("shape", [(32, 27), (8, 10, 9)], ids=str)
def test_accuracy_against_finufft(backend, shape, tol):
    finufft = pytest.importorskip("finufft")
    d = len(shape)
    m = 2000 if d == 2 else 800
    k, x, y = random_k(1, m, d)[0], crandn(1, 1, *shape), crandn(1, 1, m)
    coords = [k[:, a].numpy().copy() for a in range(d)]
    fn2, fn1 = (finufft.nufft2d2, finufft.nufft2d1) if d == 2 else (finufft.nufft3d2, finufft.nufft3d1)
    truth2 = torch.from_numpy(fn2(*coords, x[0, 0].numpy(), eps=1e-14, isign=-1))
    truth1 = torch.from_numpy(fn1(*coords, y[0, 0].numpy(), shape, eps=1e-14, isign=1))
    with kernels.use_backend(backend):
        ours2, ours1 = TYPE2[d](x, k, tol=tol), TYPE1[d](y, k, shape, tol=tol)
    assert rel_err(ours2[0, 0], truth2) <= 3 * tol
    assert rel_err(ours1[0, 0], truth1) <= 3 * tol


def test_shepp_logan_analytic_kspace():
    # The analytic k-space of the (continuous) Shepp–Logan ellipses vs our type 2 of the phantom
    # rasterized on N×N pixels of width 2/N (phantominator's ellipses live on [-1, 1]², so k in
    # cycles per unit length is half of BART's cycles per FOV): y ≈ (2/N)² Σ_n x_n e^{-i k·n}. The
    # error is dominated by rasterization (edges sampled on the pixel grid, aliasing of the
    # discontinuities), not by the NUFFT (1e-6): measured 9.6% at N=128 and 5.4% at N=256, i.e. it
    # shrinks like ~N^-0.8. A transposed or sign-flipped k gives 25-50%, so the bound discriminates.
    phantominator = pytest.importorskip("phantominator")
    errors = {}
    for n in (128, 256):
        kx, ky = phantominator.radial(n, 48, golden=True)
        kx, ky = kx.ravel(), ky.ravel()
        analytic = torch.from_numpy(phantominator.kspace_shepp_logan(kx / 2, ky / 2))
        image = torch.from_numpy(phantominator.shepp_logan(n)).to(torch.complex128)[None, None]
        # array axis 0 of shepp_logan is the phantom's y
        k = (torch.from_numpy(np.stack([ky, kx], -1)) * (2 * math.pi / n)).clamp(-math.pi, math.pi)
        ours = kernels.nufft2d_type2(image, k)[0, 0] * (2 / n) ** 2
        errors[n] = rel_err(ours, analytic)
    assert errors[128] <= 0.13
    assert errors[256] <= 0.08
    assert errors[256] < errors[128]


# ---- Toeplitz normal operator ---------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["AhA", "AhWA"])
@pytest.mark.parametrize("shape", [(14, 9), (6, 5, 7)], ids=str)
def test_toeplitz_normal_equals_type1_type2(shape, weighted):
    d = len(shape)
    k = random_k(2, 300, d)
    x = crandn(2, 3, *shape)
    weights = torch.rand(2, 300, dtype=torch.float64) + 0.5 if weighted else None
    kernel = kernels.nufft_toeplitz_kernel(k, shape, weights=weights, tol=1e-10)
    assert kernel.shape == (2, *(2 * n for n in shape)) and kernel.dtype == torch.complex128
    y = TYPE2[d](x, k, tol=1e-10)
    if weighted:
        y = y * weights[:, None]
    expected = TYPE1[d](y, k, shape, tol=1e-10)
    assert rel_err(kernels.nufft_normal(x, kernel), expected) <= 1e-5


def test_toeplitz_shared_trajectory_broadcasts():
    k = radial(9, 32)
    x = crandn(3, 2, 20, 20)
    kernel = kernels.nufft_toeplitz_kernel(k, (20, 20), tol=1e-10)
    assert kernel.shape == (1, 40, 40)
    expected = kernels.nufft2d_type1(kernels.nufft2d_type2(x, k, tol=1e-10), k, (20, 20), tol=1e-10)
    assert rel_err(kernels.nufft_normal(x, kernel), expected) <= 1e-5


# ---- density compensation -------------------------------------------------------------------------


def test_density_compensation_flattens_radial():
    k = radial(64, 64)
    w = kernels.density_compensation(k, (64, 64), iters=10)
    assert w.shape == (k.shape[0],) and w.dtype == torch.float64 and bool((w > 0).all())
    # What the iteration equalizes: G Gᴴ w on the samples (G = interpolation with the gridding kernel).
    wk, beta = ref.kernel_params(1e-3)
    nf = ref.fine_shape((64, 64), wk)
    t = ref.positions(k[None], nf)
    response = ref.interp(ref.spread(w.to(torch.complex128)[None, None], t, nf, wk, beta), t, wk, beta).real
    flat = response / response.mean()
    start_flat = ref.interp(ref.spread(torch.ones(1, 1, k.shape[0], dtype=torch.complex128), t, nf, wk, beta),
                            t, wk, beta).real
    assert (flat.std() / flat.mean()).item() <= 0.02  # measured ~0.4%
    assert (start_flat.std() / start_flat.mean()).item() >= 0.5  # radial density is far from flat
    # Radial density falls like 1/|k|: weights grow with |k| (ramp-like) away from the centre.
    r = k.norm(dim=-1)
    assert w[r > 2].mean() > 5 * w[(r > 0.2) & (r < 0.4)].mean()


def test_density_compensation_scale_uniform_random():
    # Dense uniform random samples over [-π, π)²: the ideal weight is the k-space area per sample over
    # (2π)², i.e. 1/M, and the weights then sum to 1 (type1(w·type2(δ)) at the centre). Measured
    # M·mean(w) = 0.998 at 20000 samples on a 32² image (5 samples per fine cell).
    m = 20000
    k = random_k(1, m, 2)[0]
    w = kernels.density_compensation(k, (32, 32), iters=10)
    assert abs(m * w.mean().item() - 1) <= 0.03


def test_density_compensation_cartesian_is_flat():
    # A fully sampled Cartesian grid has uniform density: every weight is the same. (Its scale is
    # 0.86/N², not 1/N²: the normalization is the continuum one, and a lattice at exactly every
    # other fine-grid point aliases the kernel's ψ̂(π) into the sum.)
    n = 24
    axis = (torch.arange(n, dtype=torch.float64) - n // 2) * (2 * math.pi / n)
    k = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    w = kernels.density_compensation(k, (n, n), iters=5)
    assert (w.std() / w.mean()).item() <= 1e-3
    assert 0.8 <= w.mean().item() * n * n <= 1.0


# ---- autograd, opcheck, compile -------------------------------------------------------------------


@pytest.fixture
def one_torch_thread():
    # gradcheck makes hundreds of tiny calls; torch's thread pool only adds wake-up latency there
    # (seconds on a loaded 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The ops are linear and the backward is the exact adjoint at any tol, so gradcheck runs at tol=1e-3
# (small kernel, small fine grid: fast).
@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradcheck(backend):
    k = random_k(2, 7, 2)
    x = crandn(2, 1, 4, 3).requires_grad_()
    y = crandn(2, 1, 7).requires_grad_()
    with kernels.use_backend(backend):
        assert torch.autograd.gradcheck(lambda v: kernels.nufft2d_type2(v, k, tol=1e-3), (x,))
        assert torch.autograd.gradcheck(lambda v: kernels.nufft2d_type1(v, k, (4, 3), tol=1e-3), (y,))
        assert torch.autograd.gradgradcheck(lambda v: kernels.nufft2d_type2(v, k, tol=1e-3), (x,))


@pytest.mark.usefixtures("one_torch_thread")
def test_gradcheck_3d():
    k = random_k(1, 7, 3)[0]
    x = crandn(1, 2, 3, 4, 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: kernels.nufft3d_type2(v, k, tol=1e-3), (x,))


def test_gradient_wrt_k_raises():
    k = random_k(1, 5, 2)[0].requires_grad_()
    with pytest.raises(ValueError, match="gradient with respect to k"):
        kernels.nufft2d_type2(crandn(1, 1, 4, 4), k)
    with torch.no_grad():
        kernels.nufft2d_type2(crandn(1, 1, 4, 4), k)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_opcheck(backend):
    k = random_k(2, 11, 2)
    with kernels.use_backend(backend):
        torch.library.opcheck(torch.ops.pykernels.nufft_type2, (crandn(2, 2, 6, 5), k, 1e-6))
        torch.library.opcheck(torch.ops.pykernels.nufft_type1, (crandn(2, 2, 11), k, [6, 5], 1e-6))
        torch.library.opcheck(torch.ops.pykernels.nufft_density_compensation, (k, [6, 5], 2, 1e-3),
                              test_utils=("test_schema", "test_faketensor"))


def test_torch_compile_fullgraph():
    k = random_k(1, 40, 2)[0]
    x = crandn(1, 2, 12, 12)

    @torch.compile(fullgraph=True, backend="eager")
    def normal(v):
        return kernels.nufft2d_type1(kernels.nufft2d_type2(v, k), k, (12, 12))

    expected = kernels.nufft2d_type1(kernels.nufft2d_type2(x, k), k, (12, 12))
    assert rel_err(normal(x), expected) <= 1e-12


def test_numpy_in_numpy_out():
    k = random_k(1, 20, 2)[0]
    x = crandn(1, 1, 8, 8)
    out = kernels.nufft2d_type2(x.numpy(), k)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, kernels.nufft2d_type2(x, k).numpy(), rtol=1e-12)


def test_non_contiguous_image():
    k = random_k(1, 30, 2)[0]
    base = crandn(9, 1, 2, 8)
    x = base.permute(2, 1, 3, 0)  # (2, 1, 8, 9), strided
    assert not x.is_contiguous()
    assert rel_err(kernels.nufft2d_type2(x, k), kernels.nufft2d_type2(x.contiguous(), k)) == 0


# ---- bad inputs -----------------------------------------------------------------------------------


def test_bad_inputs_raise():
    x, k = crandn(1, 1, 8, 8), random_k(1, 10, 2)[0]
    with pytest.raises(ValueError, match=r"k must lie in \[-π, π\]"):
        kernels.nufft2d_type2(x, k * 2)
    with pytest.raises(ValueError, match="NaN or Inf"):
        kernels.nufft2d_type2(x, torch.full_like(k, float("nan")))
    with pytest.raises(TypeError, match="image must be complex64 or complex128"):
        kernels.nufft2d_type2(x.real, k)
    with pytest.raises(ValueError, match=r"image must have shape \(B, C, N1, N2\)"):
        kernels.nufft2d_type2(x[0], k)
    with pytest.raises(ValueError, match=r"k must have shape \(M, 3\)"):
        kernels.nufft3d_type2(crandn(1, 1, 4, 4, 4), k)
    with pytest.raises(TypeError, match="k must be float32 or float64"):
        kernels.nufft2d_type2(x, k.to(torch.complex128))
    with pytest.raises(ValueError, match="trajectories"):
        kernels.nufft2d_type2(crandn(3, 1, 8, 8), random_k(2, 10, 2))
    with pytest.raises(ValueError, match="samples has M=9 but k has M=10"):
        kernels.nufft2d_type1(crandn(1, 1, 9), k, (8, 8))
    with pytest.raises(ValueError, match="shape must be 2 positive ints"):
        kernels.nufft2d_type1(crandn(1, 1, 10), k, (8, 0))
    with pytest.raises(ValueError, match="tol must be"):
        kernels.nufft2d_type2(x, k, tol=0.0)
    with pytest.raises(ValueError, match="iters must be"):
        kernels.density_compensation(k, (8, 8), iters=0)
    with pytest.raises(ValueError, match="grid size 2N"):
        kernels.nufft_normal(x, torch.zeros(1, 8, 8, dtype=torch.complex128))
    with pytest.raises(ValueError, match="weights must have shape"):
        kernels.nufft_toeplitz_kernel(k, (8, 8), weights=torch.ones(3))


def test_k_at_plus_pi_is_allowed():
    # ±π are the same frequency (periodic): both are accepted and agree.
    x = crandn(1, 1, 6, 6)
    k = torch.tensor([[math.pi, 0.5]], dtype=torch.float64)
    k_neg = torch.tensor([[-math.pi, 0.5]], dtype=torch.float64)
    assert rel_err(kernels.nufft2d_type2(x, k), kernels.nufft2d_type2(x, k_neg)) <= 1e-12


def test_cpu_spread_is_deterministic_across_thread_counts(tmp_path):
    # No atomics: tiles are added back colour by colour in a fixed order, so the spread is bitwise
    # the same with 1 OpenMP thread as with the default count.
    if "cpu" not in CPU_BACKENDS:
        pytest.skip("kernels._C not built")
    k = radial(40, 64)
    y = crandn(1, 3, k.shape[0], dtype=torch.complex64)
    torch.save({"k": k, "y": y}, tmp_path / "in.pt")
    script = (
        "import sys, torch, kernels\n"
        "d = torch.load(sys.argv[1])\n"
        "with kernels.use_backend('cpu'):\n"
        "    torch.save(kernels.nufft2d_type1(d['y'], d['k'], (64, 64)), sys.argv[2])\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "in.pt"), str(tmp_path / "out.pt")],
                   check=True, env=env)
    with kernels.use_backend("cpu"):
        here = kernels.nufft2d_type1(y, k, (64, 64))
    assert torch.equal(torch.load(tmp_path / "out.pt"), here)


# ---- GPU backends: triton (interpreted here) and cuda (GPU only) ---------------------------------

HAS_TRITON = "triton" in kernels.available_backends(OP, "cpu")

# (B, C, image shape, M, trajectories Bk, tol): tiny sizes for the interpreter; w = 4 and 7.
TRITON_CASES = [
    (1, 1, (12, 10), 37, 1, 1e-3),
    (2, 2, (12, 10), 37, 2, 1e-6),
    (1, 2, (1, 9), 5, 1, 1e-6),
    (2, 1, (5, 6, 4), 23, 2, 1e-3),
    (1, 1, (4, 5, 3), 1, 1, 1e-6),
]


TRITON_IDS = [f"{c[2]}-M{c[3]}-Bk{c[4]}-tol{c[5]}" for c in TRITON_CASES]


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not available")
@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64], ids=str)
@pytest.mark.parametrize("case", TRITON_CASES, ids=TRITON_IDS)
def test_triton_matches_reference(case, dtype):
    B, C, shape, m, bk, tol = case
    d = len(shape)
    x, y, k = crandn(B, C, *shape, dtype=dtype), crandn(B, C, m, dtype=dtype), random_k(bk, m, d)
    if bk == 1:
        k = k[0]
    with kernels.use_backend("reference"):
        fwd, adj = TYPE2[d](x, k, tol=tol), TYPE1[d](y, k, shape, tol=tol)
    with kernels.use_backend("triton"):
        fwd_t, adj_t = TYPE2[d](x, k, tol=tol), TYPE1[d](y, k, shape, tol=tol)
    assert fwd_t.shape == (B, C, m) and fwd_t.dtype == dtype
    assert adj_t.shape == (B, C, *shape) and adj_t.dtype == dtype
    assert rel_err(fwd_t, fwd) <= SAME_ALGO_TOL[dtype]
    assert rel_err(adj_t, adj) <= SAME_ALGO_TOL[dtype]


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not available")
@pytest.mark.parametrize("mode", ["spread", "interp"])
def test_triton_gridding_step_matches_reference(mode):
    # The backend function itself on a wrapped footprint (samples at the grid's edges) in complex128.
    from kernels.ops.nufft import _triton

    nf, w, beta = (16, 18), 5, 11.5
    t = torch.rand(1, 19, 2, dtype=torch.float64) * torch.tensor(nf, dtype=torch.float64)
    t[0, :4] = torch.tensor([[0.0, 0.0], [15.99, 17.999], [0.3, 17.5], [15.5, 0.01]], dtype=torch.float64)
    x = crandn(1, 3, 19) if mode == "spread" else crandn(1, 3, *nf)
    expected = ref.spread(x, t, nf, w, beta) if mode == "spread" else ref.interp(x, t, w, beta)
    assert rel_err(_triton(mode, x, t, nf, w, beta), expected) <= SAME_ALGO_TOL[torch.complex128]


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not available")
@pytest.mark.parametrize("shape", [(12, 11), (5, 4, 6)], ids=str)
def test_triton_adjointness(shape):
    d = len(shape)
    k = random_k(2, 40, d)
    x, y = crandn(2, 2, *shape), crandn(2, 2, 40)
    with kernels.use_backend("triton"):
        lhs = torch.vdot(TYPE2[d](x, k, tol=1e-4).flatten(), y.flatten())
        rhs = torch.vdot(x.flatten(), TYPE1[d](y, k, shape, tol=1e-4).flatten())
    assert abs(lhs - rhs) / abs(lhs) <= ADJ_TOL[torch.complex128]


def test_cuda_preference_lists_gpu_backends():
    from kernels import backend

    assert tuple(backend._ops[OP].preference["cuda"]) == ("cuda", "triton")


GPU_CASES = [
    (2, 4, (128, 96), 20_001, 2, 1e-6),
    (1, 3, (32, 30, 28), 15_003, 1, 1e-4),
    (1, 1, (64, 64), 4097, 1, 1e-2),
]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64], ids=str)
@pytest.mark.parametrize("gpu_backend", ["triton", "cuda"])
@pytest.mark.parametrize("case", GPU_CASES, ids=[f"{c[2]}-M{c[3]}" for c in GPU_CASES])
def test_gpu_backends_match_reference(case, gpu_backend, dtype):
    if gpu_backend not in kernels.available_backends(OP, "cuda"):
        pytest.skip(f"{gpu_backend} is not available on cuda")
    B, C, shape, m, bk, tol = case
    d = len(shape)
    x = crandn(B, C, *shape, dtype=dtype).cuda()
    y = crandn(B, C, m, dtype=dtype).cuda()
    k = random_k(bk, m, d).cuda()
    with kernels.use_backend("reference"):
        fwd, adj = TYPE2[d](x, k, tol=tol), TYPE1[d](y, k, shape, tol=tol)
    with kernels.use_backend(gpu_backend):
        fwd_g, adj_g = TYPE2[d](x, k, tol=tol), TYPE1[d](y, k, shape, tol=tol)
    # Atomic spreading adds in another order: allow a few more ulps than the CPU comparison.
    assert rel_err(fwd_g, fwd) <= 4 * SAME_ALGO_TOL[dtype]
    assert rel_err(adj_g, adj) <= 4 * SAME_ALGO_TOL[dtype]


@pytest.mark.cuda
def test_cuda_default_backend_is_a_gpu_backend():
    assert kernels.default_backend(OP, "cuda") in ("cuda", "triton")
