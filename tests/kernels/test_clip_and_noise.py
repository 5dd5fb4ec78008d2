"""kernels.clip_and_noise / clip_and_noise_sum: the Philox stream, clipping, noise statistics, every
backend against the reference, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import kernels
from kernels._ext import _C
from kernels.reference import clip_and_noise as ref

OP = "clip_and_noise"
CPU_BACKENDS = [b for b in ("cpu", "triton") if b in kernels.available_backends(OP, "cpu")]
ALL_CPU = ["reference", *CPU_BACKENDS]

# Random123 known-answer vectors for Philox4x32-10: (counter, key) -> output.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]

# |Δz| between a backend's float32 Box–Muller and the reference's float64 one, rounded (brief: 1e-5).
Z_TOL = 1e-5
# Output tolerance per dtype (noise_std = NOISE): the noise term differs by <= NOISE·Z_TOL, the clip
# term by the dtype's rounding of u·scale (16-bit inputs: one rounding of the result).
NOISE = 0.3
ATOL = {torch.float64: NOISE * Z_TOL + 1e-12, torch.float32: NOISE * Z_TOL + 1e-6}
RTOL = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}

# Odd sizes and a list of differently-shaped tensors (the list is one vector).
UPDATES = {
    "1": lambda: torch.randn(1),
    "7": lambda: torch.randn(7),
    "1001": lambda: torch.randn(1001),
    "13x17": lambda: torch.randn(13, 17),
    "list": lambda: [torch.randn(3, 5), torch.randn(1), torch.randn(2, 3, 7), torch.randn(4099)],
}


def _flat(x):
    return torch.cat([t.reshape(-1) for t in x]) if isinstance(x, list) else x.reshape(-1)


def _cast(x, dtype):
    return [t.to(dtype) for t in x] if isinstance(x, list) else x.to(dtype)


# ---- the Philox stream ---------------------------------------------------------------------------


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_philox_known_answers_reference(counter, key, expected):
    out = ref.philox4x32_10(tuple(torch.tensor([c]) for c in counter), key)
    assert tuple(int(w) for w in out) == expected


@pytest.mark.skipif(not _C, reason="kernels._C is not built")
@pytest.mark.parametrize("counter, key, expected", KAT)
def test_philox_known_answers_cpu(counter, key, expected):
    assert tuple(_C.philox4x32_10(list(counter), list(key))) == expected


def test_reference_philox_products_do_not_overflow():
    # The 16-bit split must give the exact 64-bit product for the largest 32-bit words.
    b = torch.tensor([0, 1, 0xFFFF, 0x10000, 0xFFFFFFFF, 0x89ABCDEF])
    for a in (ref.M0, ref.M1):
        hi, lo = ref._mulhilo(a, b)
        for bi, h, lw in zip(b.tolist(), hi.tolist(), lo.tolist(), strict=True):
            assert (h << 32) | lw == a * bi


@pytest.mark.skipif(not _C, reason="kernels._C is not built")
def test_cpu_normals_match_reference_stream():
    # Unaligned start, an odd count, a 64-bit seed and offset: every lane and both key/counter halves.
    n, start, seed, offset = 200_003, 5, 2**63 + 12345, 2**40 + 7
    z = torch.empty(n)
    _C.clip_and_noise_normals(z.data_ptr(), start, n, seed, offset)
    zr = ref.normals(n, seed, offset, start=start)
    assert (z - zr).abs().max().item() <= Z_TOL
    assert zr.abs().max().item() <= ref.Z_BOUND


def test_reference_z_bound_is_reached_at_the_smallest_uniform():
    # u = 2^-24 (x_a >> 8 == 0) gives r = sqrt(48 ln 2): the documented bound.
    za, _ = ref._box_muller(torch.tensor([0]), torch.tensor([0]))
    assert za.item() == pytest.approx(ref.Z_BOUND, rel=1e-12) and 5.76 < ref.Z_BOUND < 5.77


def _ks_statistic(z: torch.Tensor) -> float:
    x = torch.sort(z.double()).values
    n = x.numel()
    cdf = torch.special.ndtr(x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return max((i / n - cdf).max().item(), (cdf - (i - 1) / n).max().item())


def _noise(backend: str, n: int, seed: int, offset: int) -> torch.Tensor:
    """noise_std = 1 on a zero update: the output is z."""
    with kernels.use_backend(backend):
        out, norm = kernels.clip_and_noise(torch.zeros(n), 1.0, 1.0, seed, offset)
    assert norm.item() == 0.0
    return out


# The triton interpreter is slow: it gets fewer samples (the bounds scale with n).
SAMPLES = {"reference": 10**6, "cpu": 10**6, "triton": 2**16}


@pytest.mark.parametrize("backend", ALL_CPU)
def test_noise_is_standard_normal(backend):
    n = SAMPLES[backend]
    z = _noise(backend, n, seed=2024, offset=3).double()
    # mean ~ N(0, 1/n), variance estimate ~ N(1, 2/n): 5σ bounds.
    assert abs(z.mean().item()) <= 5 / math.sqrt(n)
    assert abs(z.var().item() - 1.0) <= 5 * math.sqrt(2 / n)
    # Kolmogorov–Smirnov against N(0, 1), α = 1e-3.
    assert _ks_statistic(z) <= 1.95 / math.sqrt(n)


@pytest.mark.parametrize("backend", ALL_CPU)
def test_offsets_and_seeds_are_independent_streams(backend):
    n = SAMPLES[backend] // 4
    base = _noise(backend, n, seed=7, offset=0)
    for other in (_noise(backend, n, seed=7, offset=1), _noise(backend, n, seed=8, offset=0)):
        corr = torch.corrcoef(torch.stack([base, other]).double())[0, 1].item()
        assert abs(corr) < 5 / math.sqrt(n)
        assert not torch.equal(base, other)
    assert torch.equal(base, _noise(backend, n, seed=7, offset=0))  # reproducible


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_same_noise_on_every_backend(backend):
    n = 10_007
    seed, offset = 2**64 - 3, 2**33 + 1
    assert (_noise(backend, n, seed, offset) - ref.normals(n, seed, offset)).abs().max().item() <= Z_TOL


# ---- clip and noise against the reference ---------------------------------------------------------


CASES = [(b, k) for b in CPU_BACKENDS for k in UPDATES]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("max_norm", [0.5, 1e6, math.inf], ids=["clipped", "below", "inf"])
@pytest.mark.parametrize("backend, key", CASES, ids=[f"{b}-{k}" for b, k in CASES])
def test_matches_reference(backend, key, max_norm, dtype):
    update = _cast(UPDATES[key](), dtype)
    expected, expected_norm = ref.clip_and_noise(update, max_norm, NOISE, 99, 5)
    with kernels.use_backend(backend):
        out, norm = kernels.clip_and_noise(update, max_norm, NOISE, 99, 5)
    assert norm.dtype == dtype and norm.shape == ()
    torch.testing.assert_close(norm, expected_norm, rtol=RTOL[dtype], atol=0)
    outs, exps = (out, expected) if isinstance(update, list) else ([out], [expected])
    assert len(outs) == len(exps)
    for o, e in zip(outs, exps, strict=True):
        assert o.shape == e.shape and o.dtype == dtype
        torch.testing.assert_close(o, e, rtol=RTOL[dtype], atol=ATOL[dtype])


# Triton's interpreter has no bfloat16; 16-bit on Triton runs in the cuda-marked tests.
CASES_16 = [(b, d) for b in CPU_BACKENDS for d in (torch.float16, torch.bfloat16) if b == "cpu"]


@pytest.mark.parametrize("backend, dtype", CASES_16, ids=[f"{b}-{d}" for b, d in CASES_16])
def test_16bit_matches_reference(backend, dtype):
    update = [torch.randn(33, 7).to(dtype), torch.randn(101).to(dtype)]
    expected, expected_norm = ref.clip_and_noise(update, 2.0, NOISE, 3, 4)
    with kernels.use_backend(backend):
        out, norm = kernels.clip_and_noise(update, 2.0, NOISE, 3, 4)
    assert norm.dtype == torch.float32
    torch.testing.assert_close(norm, expected_norm, rtol=1e-6, atol=0)
    for o, e in zip(out, expected, strict=True):
        assert o.dtype == dtype
        # fp32 math rounded once: at most one ulp of the 16-bit type apart.
        torch.testing.assert_close(o.float(), e.float(), rtol=RTOL[dtype], atol=NOISE * Z_TOL + 1e-6)


@pytest.mark.parametrize("backend", ALL_CPU)
def test_clipping_is_exact(backend):
    update = [torch.randn(40, 30), torch.randn(77)]
    flat = _flat(update)
    true_norm = torch.linalg.vector_norm(flat)
    with kernels.use_backend(backend):
        clipped, norm = kernels.clip_and_noise(update, 0.25 * true_norm.item(), 0.0, 1)
        untouched, norm2 = kernels.clip_and_noise(update, 4.0 * true_norm.item(), 0.0, 1)
    # The returned norm is the pre-clip norm of the concatenation.
    torch.testing.assert_close(norm, true_norm, rtol=1e-6, atol=0)
    assert norm2.item() == norm.item()
    after = torch.linalg.vector_norm(_flat(clipped).double()).item()
    assert 0.25 * true_norm.item() * (1 - 1e-6) <= after <= 0.25 * true_norm.item() * (1 + 1e-6)
    for o, u in zip(untouched, update, strict=True):
        assert torch.equal(o, u)  # bit-identical below the bound


@pytest.mark.parametrize("backend", ALL_CPU)
def test_zero_update_is_noise_only(backend):
    with kernels.use_backend(backend):
        out, norm = kernels.clip_and_noise(torch.zeros(1003), 1.0, 0.7, 11, 2)
    assert norm.item() == 0.0 and torch.isfinite(out).all()
    torch.testing.assert_close(out, 0.7 * ref.normals(1003, 11, 2), rtol=0, atol=0.7 * Z_TOL)


@pytest.mark.parametrize("backend", ALL_CPU)
def test_list_equals_flat_buffer(backend):
    update = [torch.randn(9, 4), torch.randn(5), torch.randn(2, 2, 3)]
    with kernels.use_backend(backend):
        out_list, norm_list = kernels.clip_and_noise(update, 1.5, NOISE, 42, 6)
        out_flat, norm_flat = kernels.clip_and_noise(_flat(update), 1.5, NOISE, 42, 6)
    assert torch.equal(norm_list, norm_flat)
    assert torch.equal(_flat(out_list), out_flat)
    assert [o.shape for o in out_list] == [u.shape for u in update]


@pytest.mark.parametrize("backend", ALL_CPU)
def test_inplace(backend):
    update = [torch.randn(11, 3), torch.randn(6)]
    expected, expected_norm = ref.clip_and_noise(update, 1.0, NOISE, 8, 9)
    ptrs = [t.data_ptr() for t in update]
    with kernels.use_backend(backend):
        out, norm = kernels.clip_and_noise(update, 1.0, NOISE, 8, 9, inplace=True)
    assert out is update and [t.data_ptr() for t in update] == ptrs
    torch.testing.assert_close(norm, expected_norm, rtol=1e-6, atol=0)
    for o, e in zip(update, expected, strict=True):
        torch.testing.assert_close(o, e, rtol=1e-6, atol=ATOL[torch.float32])


def test_non_contiguous_input():
    base = torch.randn(20, 31)
    update = base.t()[::2]
    assert not update.is_contiguous()
    expected, _ = ref.clip_and_noise(update.contiguous(), 1.0, NOISE, 1, 2)
    out, _ = kernels.clip_and_noise(update, 1.0, NOISE, 1, 2)
    assert out.is_contiguous() and out.shape == update.shape
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=ATOL[torch.float32])
    with pytest.raises(ValueError, match="contiguous for inplace"):
        kernels.clip_and_noise(update, 1.0, NOISE, 1, 2, inplace=True)


def test_numpy_in_numpy_out():
    u = np.random.default_rng(0).standard_normal(257)
    out, norm = kernels.clip_and_noise(u, 3.0, NOISE, 5)
    expected, _ = ref.clip_and_noise(torch.from_numpy(u), 3.0, NOISE, 5)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-12, atol=ATOL[torch.float64])
    assert norm.item() == pytest.approx(np.linalg.norm(u), rel=1e-12)


# ---- NaN / Inf / bad arguments -------------------------------------------------------------------


@pytest.mark.parametrize("backend", ALL_CPU)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_update_raises(backend, bad):
    good, poisoned = torch.randn(10), torch.randn(7)
    poisoned[3] = bad
    with kernels.use_backend(backend):
        with pytest.raises(ValueError, match=r"update\[1\] contains NaN or Inf"):
            kernels.clip_and_noise([good, poisoned], 1.0, 0.1, 0)
        with pytest.raises(ValueError, match=r"^update contains NaN or Inf"):
            kernels.clip_and_noise(poisoned, 1.0, 0.1, 0)
        rows = torch.randn(4, 9)
        rows[2, 5] = bad
        with pytest.raises(ValueError, match=r"rows \[2\]"):
            kernels.clip_and_noise_sum(rows, 1.0, 0.1, 0)


def test_inplace_raises_before_writing():
    poisoned = torch.randn(8)
    poisoned[0] = math.nan
    good = torch.randn(5)
    before = good.clone()
    with pytest.raises(ValueError, match="NaN or Inf"):
        kernels.clip_and_noise([good, poisoned], 1.0, 0.1, 0, inplace=True)
    assert torch.equal(good, before)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"update": torch.randint(0, 3, (4,))}, TypeError, "update must have dtype"),
        ({"update": [torch.randn(3), torch.randn(2, dtype=torch.float64)]}, TypeError, r"update\[1\] is"),
        ({"update": []}, ValueError, "non-empty list"),
        ({"update": "abc"}, TypeError, "update must be a torch.Tensor"),
        ({"max_norm": 0.0}, ValueError, "max_norm must be a number > 0"),
        ({"max_norm": math.nan}, ValueError, "max_norm"),
        ({"noise_std": -1.0}, ValueError, "noise_std must be a finite number >= 0"),
        ({"noise_std": math.inf}, ValueError, "noise_std"),
        ({"seed": -1}, ValueError, r"seed must be an integer in \[0, 2\^64\)"),
        ({"seed": 2**64}, ValueError, "seed"),
        ({"seed": 1.5}, ValueError, "seed"),
        ({"offset": True}, ValueError, "offset"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    args = {"update": torch.randn(5), "max_norm": 1.0, "noise_std": 0.1, "seed": 0}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        kernels.clip_and_noise(**args)


def test_sum_bad_arguments():
    with pytest.raises(ValueError, match=r"updates must have shape \(S, N\)"):
        kernels.clip_and_noise_sum(torch.randn(5), 1.0, 0.1, 0)
    with pytest.raises(ValueError, match=r"updates\[1\] must be a flat"):
        kernels.clip_and_noise_sum([torch.randn(5), torch.randn(6)], 1.0, 0.1, 0)


def test_explicit_unavailable_backend_raises():
    if "cuda" in kernels.available_backends(OP, "cpu"):
        pytest.skip("cuda cannot be unavailable for CPU tensors here")
    with kernels.use_backend("cuda"), pytest.raises(kernels.BackendUnavailableError, match="clip_and_noise"):
        kernels.clip_and_noise(torch.randn(3), 1.0, 0.1, 0)


# ---- the batched central-DP form ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_sum_matches_reference_and_per_row(backend, dtype):
    X = torch.randn(5, 1003, dtype=dtype) * torch.tensor([0.1, 1.0, 3.0, 10.0, 0.0], dtype=dtype)[:, None]
    expected, expected_norms = ref.clip_and_noise_sum(X, 2.0, NOISE, 17, 4)
    with kernels.use_backend(backend):
        out, norms = kernels.clip_and_noise_sum(X, 2.0, NOISE, 17, 4)
        # Per-row clip (no noise) + sum, plus the same noise as clip_and_noise with (seed, offset).
        rows = [kernels.clip_and_noise(x, 2.0, 0.0, 0)[0] for x in X]
        noise = kernels.clip_and_noise(torch.zeros(1003, dtype=dtype), 1.0, NOISE, 17, 4)[0]
    tol = {"rtol": RTOL[dtype], "atol": ATOL[dtype] * 5}
    torch.testing.assert_close(norms, expected_norms, rtol=RTOL[dtype], atol=0)
    torch.testing.assert_close(norms, torch.linalg.vector_norm(X, dim=1), rtol=RTOL[dtype] * 10, atol=0)
    torch.testing.assert_close(out, expected, **tol)
    torch.testing.assert_close(out, torch.stack(rows).sum(0) + noise, **tol)


@pytest.mark.skipif(not _C, reason="kernels._C is not built")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_sum_16bit_and_list_input(dtype):
    rows = [torch.randn(301).to(dtype) for _ in range(3)]
    with kernels.use_backend("cpu"):
        out, norms = kernels.clip_and_noise_sum(rows, 5.0, NOISE, 1, 2)
    expected, expected_norms = ref.clip_and_noise_sum(torch.stack(rows), 5.0, NOISE, 1, 2)
    assert out.dtype == dtype and norms.dtype == torch.float32
    torch.testing.assert_close(norms, expected_norms, rtol=1e-6, atol=0)
    torch.testing.assert_close(out.float(), expected.float(), rtol=RTOL[dtype], atol=NOISE * Z_TOL + 1e-6)


# ---- torch.library integration ------------------------------------------------------------------


def test_opcheck():
    update = [torch.randn(3, 4, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    torch.library.opcheck(torch.ops.pykernels.clip_and_noise.default, (update, 1.0, 0.5, 3, 4))
    torch.library.opcheck(
        torch.ops.pykernels.clip_and_noise_.default, ([t.clone() for t in update], 1.0, 0.5, -3, 4)
    )
    torch.library.opcheck(
        torch.ops.pykernels.clip_and_noise_sum.default, (torch.randn(3, 10), 1.0, 0.5, 3, 4)
    )


def test_torch_compile_fullgraph():
    u = torch.randn(4, 33)

    @torch.compile(fullgraph=True, backend="inductor")
    def f(x):
        out, norm = kernels.clip_and_noise(x * 2.0, 1.0, 0.1, 5, 6)
        return out + 1.0, norm

    out, norm = f(u)
    expected, expected_norm = ref.clip_and_noise(u * 2.0, 1.0, 0.1, 5, 6)
    torch.testing.assert_close(out, expected + 1.0, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(norm, expected_norm, rtol=1e-6, atol=0)


# ---- CUDA (run by benchmarks/gpu/run_all.sh on a GPU) -------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16], ids=str)
def test_cuda_matches_reference(backend, dtype):
    update = [
        torch.randn(129, 33, device="cuda").to(dtype),
        torch.randn(7, device="cuda").to(dtype),
        torch.randn(100_003, device="cuda").to(dtype),
    ]
    expected, expected_norm = ref.clip_and_noise(update, 10.0, NOISE, 2**64 - 1, 2**32 + 5)
    with kernels.use_backend(backend):
        out, norm = kernels.clip_and_noise(update, 10.0, NOISE, 2**64 - 1, 2**32 + 5)
        X = torch.randn(4, 5003, device="cuda").to(dtype)
        s, norms = kernels.clip_and_noise_sum(X, 10.0, NOISE, 9, 1)
    rtol = {torch.float64: 1e-12, torch.float32: 1e-5}.get(dtype, RTOL[dtype])
    torch.testing.assert_close(norm.double(), expected_norm.double(), rtol=max(rtol, 1e-6), atol=0)
    for o, e in zip(out, expected, strict=True):
        torch.testing.assert_close(o.float(), e.float(), rtol=rtol, atol=NOISE * Z_TOL + 1e-6)
    es, enorms = ref.clip_and_noise_sum(X, 10.0, NOISE, 9, 1)
    torch.testing.assert_close(norms.double(), enorms.double(), rtol=max(rtol, 1e-6), atol=0)
    torch.testing.assert_close(s.float(), es.float(), rtol=max(rtol, 1e-5), atol=NOISE * Z_TOL * 5 + 1e-5)


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_cuda_noise_statistics_and_nan(backend):
    with kernels.use_backend(backend):
        z, _ = kernels.clip_and_noise(torch.zeros(10**6, device="cuda"), 1.0, 1.0, 3, 1)
        bad = torch.randn(100, device="cuda")
        bad[50] = math.nan
        with pytest.raises(ValueError, match="NaN or Inf"):
            kernels.clip_and_noise(bad, 1.0, 1.0, 0)
    z = z.double().cpu()
    assert abs(z.mean().item()) <= 5e-3 and abs(z.var().item() - 1) <= 5 * math.sqrt(2e-6)
    assert _ks_statistic(z) <= 1.95e-3
    assert (z.float() - ref.normals(10**6, 3, 1)).abs().max().item() <= Z_TOL
