"""kernels.aggregate: every backend vs a float64 weighted sum; input forms, weights, blocks, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kernels
from kernels.reference import aggregate as reference

OP = "aggregate"
HERE = [b for b in ("reference", "cpu", "triton") if b in kernels.available_backends(OP, "cpu")]
# (backend, device): the CPU-side backends run here; the GPU ones only under the cuda marker.
BACKENDS = [pytest.param(b, "cpu", id=b) for b in HERE] + [
    pytest.param(b, "cuda", id=f"{b}-cuda", marks=pytest.mark.cuda) for b in ("cuda", "triton", "reference")
]

# Elementwise bound |out − truth| <= TOL · Σ_s w_s |x_s| (+ a tiny floor), truth in float64 from the
# same (already rounded) inputs. fp32: S <= 10 sequential fp32 multiply-adds, each <= 6e-8 relative,
# so ~6e-7 at S = 10: 2e-6 leaves 3x room. 16-bit: one final rounding, half an ulp (fp16 2^-11,
# bf16 2^-8) plus the fp32 sum's error: 1e-3 / 8e-3. fp64: "exact-ish".
TOL = {torch.float64: 1e-14, torch.float32: 2e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}
ALL_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
# The Triton interpreter has no bfloat16; float16 emulation through numpy is not what the GPU runs:
# under the interpreter Triton is checked in float32 and float64 (16-bit Triton runs in cuda tests).
INTERPRETED_DTYPES = [torch.float64, torch.float32]

# One client's shape: 1 element, odd sizes, > 2 CPU chunks (8192) and > 1 Triton program (1024), 3-D.
SHAPES = [(1,), (7,), (1031,), (17011,), (3, 5, 7)]


def dtypes_for(backend: str, device: str) -> list[torch.dtype]:
    return INTERPRETED_DTYPES if backend == "triton" and device == "cpu" else ALL_DTYPES


def make_clients(S: int, shape, dtype, device="cpu") -> list[torch.Tensor]:
    # Offsets per client so no two clients look alike; never zeros.
    return [
        (torch.randn(shape, dtype=torch.float64) + 0.1 * s).to(device=device, dtype=dtype) for s in range(S)
    ]


def truth(clients, weights) -> torch.Tensor:
    """torch.stack(clients).mul(w[:, None]).sum(0) in float64, w normalized."""
    w = torch.tensor(weights, dtype=torch.float64, device=clients[0].device)
    w = w / w.sum()
    stacked = torch.stack(clients).double()
    return (stacked * w.view(-1, *([1] * (stacked.dim() - 1)))).sum(0)


def check_close(out, clients, weights):
    dtype = clients[0].dtype
    assert out.dtype == dtype and out.shape == clients[0].shape
    w = torch.tensor(weights, dtype=torch.float64, device=out.device)
    w = w / w.sum()
    scale = (torch.stack(clients).double().abs() * w.view(-1, *([1] * out.dim()))).sum(0)
    err = (out.double() - truth(clients, weights)).abs()
    bound = TOL[dtype] * scale + 1e-30
    assert bool((err <= bound).all()), f"max err/scale {(err / scale.clamp_min(1e-30)).max().item():.2e}"


MEAN_CASES = [(p, shape) for p in BACKENDS for shape in SHAPES]


@pytest.mark.parametrize("S", [3, 10])
@pytest.mark.parametrize("backend, device, shape", [
    pytest.param(*p.values, shape, id=f"{p.id}-{shape}", marks=p.marks) for p, shape in MEAN_CASES
])
def test_mean_matches_float64(backend, device, shape, S):
    for dtype in dtypes_for(backend, device):
        clients = make_clients(S, shape, dtype, device)
        weights = torch.rand(S, dtype=torch.float64).add(0.05).tolist()
        with kernels.use_backend(backend):
            out = kernels.aggregate(clients, weights)
        check_close(out, clients, weights)


@pytest.mark.parametrize("S", [1, 5, 7])
def test_cpu_mean_spanning_several_blocks(S):
    # The cpu kernel works on blocks of 65536 elements and adds clients four at a time: 131077
    # elements cross two block boundaries into a ragged third block, and S = 5 / 7 leave one / three
    # clients after the groups of four.
    if "cpu" not in kernels.available_backends("aggregate", "cpu"):
        pytest.skip("the cpu backend is not built")
    for dtype in ALL_DTYPES:
        clients = make_clients(S, (131_077,), dtype)
        weights = torch.rand(S, dtype=torch.float64).add(0.05).tolist()
        with kernels.use_backend("cpu"):
            out = kernels.aggregate(clients, weights)
        check_close(out, clients, weights)


@pytest.mark.parametrize("backend, device", BACKENDS)
def test_list_stacked_and_dict_agree(backend, device):
    clients = make_clients(4, (3, 37), torch.float32, device)
    weights = [0.5, 2.0, 1.0, 0.25]
    stacked = torch.stack(clients)
    with kernels.use_backend(backend):
        from_list = kernels.aggregate(clients, weights)
        from_tuple = kernels.aggregate(tuple(clients), weights)
        from_stacked = kernels.aggregate(stacked, weights)
        from_dict = kernels.aggregate({"delta": clients, "m": stacked, "v": stacked * 2}, weights)
    assert set(from_dict) == {"delta", "m", "v"}
    for other in (from_tuple, from_stacked, from_dict["delta"], from_dict["m"]):
        assert torch.equal(other, from_list)  # same kernel, same summation order
    check_close(from_dict["v"], list((stacked * 2).unbind(0)), weights)


@pytest.mark.parametrize("backend, device", BACKENDS)
def test_weights_are_normalized(backend, device):
    clients = make_clients(5, (777,), torch.float64, device)
    weights = [3.0, 1.0, 0.0, 7.5, 2.5]  # sum 14, one zero weight
    normalized = [w / 14.0 for w in weights]
    with kernels.use_backend(backend):
        raw = kernels.aggregate(clients, weights)
        pre = kernels.aggregate(clients, normalized)
        as_tensor = kernels.aggregate(clients, torch.tensor(weights, device=device))
    torch.testing.assert_close(raw, pre, rtol=1e-14, atol=0)
    torch.testing.assert_close(as_tensor, raw, rtol=1e-14, atol=0)
    check_close(raw, clients, weights)
    # Not the unnormalized sum: the weights really were divided by 14.
    assert (raw - truth(clients, weights) * 14).abs().max() > 1.0


@pytest.mark.parametrize("backend, device", BACKENDS)
def test_uniform_default_is_the_plain_mean(backend, device):
    clients = make_clients(6, (2, 51), torch.float64, device)
    with kernels.use_backend(backend):
        out = kernels.aggregate(clients)
        ones = kernels.aggregate(clients, [1.0] * 6)
    torch.testing.assert_close(out, ones, rtol=1e-14, atol=0)
    torch.testing.assert_close(out, torch.stack(clients).mean(0), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("backend, device", BACKENDS)
def test_single_client_returns_the_input(backend, device):
    for dtype in dtypes_for(backend, device):
        x = make_clients(1, (3, 333), dtype, device)[0]
        with kernels.use_backend(backend):
            assert torch.equal(kernels.aggregate([x]), x)
            assert torch.equal(kernels.aggregate([x], [0.3]), x)  # normalized to 1
            assert torch.equal(kernels.aggregate(x[None]), x)


# Block sizes summing to 20507: size-1 blocks at both ends and inside, a block spanning several CPU
# chunks (8192) and GPU chunks (4096), and blocks that straddle chunk boundaries of the flat buffer.
BLOCKS = [1, 3, 20000, 1, 500, 2]


def blocks_by_hand(clients, weights, blocks) -> torch.Tensor:
    w = [v / sum(weights) for v in weights]
    out, start = [], 0
    for size in blocks:
        out.append(sum(ws * x.reshape(-1)[start : start + size].double().mean().item()
                       for ws, x in zip(w, clients, strict=True)))
        start += size
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("backend, device", BACKENDS)
def test_mean_of_blocks_against_hand_computation(backend, device):
    for dtype in dtypes_for(backend, device):
        clients = make_clients(4, (sum(BLOCKS),), dtype, device)
        weights = [1.0, 3.0, 0.5, 2.0]
        with kernels.use_backend(backend):
            out = kernels.aggregate(clients, weights, reduce="mean_of_blocks", blocks=BLOCKS)
        assert out.shape == (len(BLOCKS),)
        assert out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        expected = blocks_by_hand([x.cpu() for x in clients], weights, BLOCKS)
        # Scale: Σ_s w_s · mean |x_s| over the block. fp64: rounding only. float32 output: its own
        # rounding (6e-8); the GPU kernels add fp32 chunk sums of <= 4096 x S terms (~1e-5).
        scale = blocks_by_hand([x.cpu().abs() for x in clients], weights, BLOCKS)
        tol = 1e-13 if dtype == torch.float64 else (1e-6 if device == "cpu" and backend != "triton" else 2e-5)
        assert bool(((out.cpu().double() - expected).abs() <= tol * scale).all())
        # Blocks of size 1 are exactly that element's weighted mean.
        assert abs(out[0].item() - expected[0].item()) <= tol * scale[0].item()


@pytest.mark.parametrize("backend, device", BACKENDS)
def test_mean_of_blocks_of_a_stacked_multidim_tensor(backend, device):
    stacked = make_clients(3, (4, 6, 5), torch.float32, device)
    stacked = torch.stack(stacked)
    blocks = [30, 1, 89]  # over each client's 120 flattened elements
    with kernels.use_backend(backend):
        out = kernels.aggregate(stacked, [2.0, 1.0, 1.0], reduce="mean_of_blocks", blocks=blocks)
        one_block = kernels.aggregate(stacked, reduce="mean_of_blocks", blocks=[120])
    expected = blocks_by_hand([x.cpu() for x in stacked.unbind(0)], [2.0, 1.0, 1.0], blocks)
    torch.testing.assert_close(out.cpu().double(), expected, rtol=2e-6, atol=1e-7)
    whole = stacked.cpu().double().mean().reshape(1)
    torch.testing.assert_close(one_block.cpu().double(), whole, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("backend, device", BACKENDS)
def test_non_contiguous_clients(backend, device):
    base = torch.randn(37, 4, dtype=torch.float64, device=device)
    clients = [base[:, s] for s in range(4)]  # strided columns
    stacked = base.T  # (4, 37), non-contiguous
    assert not clients[0].is_contiguous() and not stacked.is_contiguous()
    weights = [1.0, 2.0, 3.0, 4.0]
    with kernels.use_backend(backend):
        out = kernels.aggregate(clients, weights)
        out_stacked = kernels.aggregate(stacked, weights)
    check_close(out, [x.contiguous() for x in clients], weights)
    assert torch.equal(out, out_stacked)


@pytest.mark.parametrize("backend", HERE)
def test_empty_clients(backend):
    with kernels.use_backend(backend):
        out = kernels.aggregate([torch.randn(0, 3), torch.randn(0, 3)])
    assert out.shape == (0, 3)


def test_numpy_in_numpy_out():
    rng = np.random.default_rng(0)
    stacked = rng.standard_normal((3, 11))
    out = kernels.aggregate(stacked, [1.0, 2.0, 1.0])
    assert isinstance(out, np.ndarray) and out.shape == (11,) and out.dtype == np.float64
    expected = (stacked * np.array([0.25, 0.5, 0.25])[:, None]).sum(0)
    np.testing.assert_allclose(out, expected, rtol=1e-13)
    as_list = kernels.aggregate(list(stacked), [1.0, 2.0, 1.0])
    assert isinstance(as_list, np.ndarray)
    np.testing.assert_array_equal(as_list, out)
    blocks = kernels.aggregate(stacked, reduce="mean_of_blocks", blocks=[4, 7])
    assert isinstance(blocks, np.ndarray)
    np.testing.assert_allclose(blocks, [stacked[:, :4].mean(), stacked[:, 4:].mean()], rtol=1e-13)


def test_opcheck():
    clients = [torch.randn(3, 5, dtype=torch.float64) for _ in range(3)]
    torch.library.opcheck(torch.ops.pykernels.aggregate.default, (clients, [0.2, 0.3, 0.5]))
    torch.library.opcheck(torch.ops.pykernels.aggregate.default, ([torch.randn(17)], [1.0]))
    torch.library.opcheck(
        torch.ops.pykernels.aggregate_mean_of_blocks.default, (clients, [0.2, 0.3, 0.5], [1, 10, 4])
    )


def test_torch_compile_fullgraph():
    stacked = torch.randn(4, 33)

    @torch.compile(fullgraph=True, backend="inductor")
    def f(x):
        return kernels.aggregate(x * 2.0, [1.0, 1.0, 2.0, 4.0]) + 1.0

    expected = reference.aggregate_mean(list((stacked * 2.0).unbind(0)), [0.125, 0.125, 0.25, 0.5]) + 1.0
    torch.testing.assert_close(f(stacked), expected, rtol=1e-6, atol=1e-6)


def test_default_backend_for_cpu_tensors():
    expected = "cpu" if "cpu" in HERE else "reference"
    assert kernels.default_backend(OP, "cpu") == expected


X = torch.randn(3, 4)


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        (([],), {}, ValueError, "empty list of clients"),
        ((torch.randn(0, 4),), {}, ValueError, "S = 0"),
        ((torch.tensor(1.0),), {}, ValueError, "0-d"),
        (({},), {}, ValueError, "empty dict"),
        (({"m": []},), {}, ValueError, r"tensors\['m'\] is an empty list"),
        (([torch.randn(4), torch.randn(5)],), {}, ValueError, "client 1 has shape"),
        (([torch.randn(4), torch.randn(4, dtype=torch.float64)],), {}, TypeError, "client 1 has dtype"),
        (([torch.randn(4), torch.randn(4, device="meta")],), {}, ValueError, "client 1 is on meta"),
        ((torch.randint(0, 3, (3, 4)),), {}, TypeError, "must have dtype"),
        (([1.0, 2.0],), {}, TypeError, "must be a torch.Tensor"),
        ((X, [1.0, 2.0]), {}, ValueError, "weights has 2 values but there are 3 clients"),
        ((X, [1.0, -1.0, 2.0]), {}, ValueError, "non-negative"),
        ((X, [1.0, float("nan"), 2.0]), {}, ValueError, "finite"),
        ((X, [1.0, float("inf"), 2.0]), {}, ValueError, "finite"),
        ((X, [0.0, 0.0, 0.0]), {}, ValueError, "positive sum"),
        ((X, torch.ones(3, 1)), {}, ValueError, "1-D real tensor"),
        ((X, ["a", 1, 2]), {}, TypeError, "real numbers"),
        ((X, 3.0), {}, TypeError, "weights must be None, a sequence"),
        ((X,), {"reduce": "sum"}, ValueError, "reduce must be one of"),
        ((X,), {"blocks": [4]}, ValueError, "blocks is only used with"),
        ((X,), {"reduce": "mean_of_blocks"}, ValueError, "needs blocks"),
        ((X,), {"reduce": "mean_of_blocks", "blocks": [3]}, ValueError, "blocks sum to 3 but"),
        ((X,), {"reduce": "mean_of_blocks", "blocks": [5, -1]}, ValueError, "blocks must all be >= 1"),
        ((X,), {"reduce": "mean_of_blocks", "blocks": [4, 0]}, ValueError, "blocks must all be >= 1"),
        ((X,), {"reduce": "mean_of_blocks", "blocks": []}, ValueError, "at least one block"),
        ((X,), {"reduce": "mean_of_blocks", "blocks": [2.0, 2.0]}, TypeError, "blocks must hold integers"),
    ],
)
def test_bad_inputs(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        kernels.aggregate(*args, **kwargs)


def test_forced_unavailable_backend_says_why():
    if "cuda" in kernels.available_backends(OP, "cpu"):
        pytest.skip("cuda runs on cpu tensors here")
    with kernels.use_backend("cuda"), pytest.raises(kernels.BackendUnavailableError, match="aggregate"):
        kernels.aggregate(X)
