"""Newton–Schulz (5 quintic steps, as in Muon) on the matrices of whole networks, on CPU.

One group per layer set and dtype; providers side by side, each timed on the same layers:
- ``anchor``: the plain torch iteration applied to each layer separately in a Python loop, the way
  Keller Jordan's Muon does it. It is ``kernels.reference.newton_schulz.newton_schulz`` — the same
  function the tests use as the specification — so the baseline cannot drift from it.
- ``reference`` / ``cpu``: ``kernels.newton_schulz`` with that backend forced, one batched call per
  distinct layer shape (as ``kernels.optim.Muon`` groups them). Stacking the layers of a shape is
  inside the timed call, because the optimizer pays for it every step.

The terminal summary (benchmarks/conftest.py) prints anchor median / provider median per group.
"""

from __future__ import annotations

import functools

import pytest
import torch
from flops import newton_schulz_flops

import kernels
from kernels.backend import why_unavailable
from kernels.reference.newton_schulz import newton_schulz as torch_newton_schulz

STEPS = 5
COEFFICIENTS = (3.4445, -4.7750, 2.0315)
EPS = 1e-7


def _resnet18() -> list[tuple[int, int]]:
    """3×3 conv weights (out, in, 3, 3) flattened to (out, in·9), then the 1×1 downsample convs."""
    convs = (
        [(64, 64 * 9)] * 4
        + [(128, 64 * 9)] + [(128, 128 * 9)] * 3
        + [(256, 128 * 9)] + [(256, 256 * 9)] * 3
        + [(512, 256 * 9)] + [(512, 512 * 9)] * 3
    )
    return convs + [(128, 64), (256, 128), (512, 256)]


def _vit_tiny() -> list[tuple[int, int]]:
    """12 blocks, width 192, MLP 768: qkv, attention out-projection, fc1, fc2 (torch's (out, in))."""
    return [(3 * 192, 192), (192, 192), (768, 192), (192, 768)] * 12


LAYER_SETS = {"resnet18": _resnet18(), "vit_tiny": _vit_tiny()}
# Rounds keep the whole `make bench` near a minute on 2 cores: one resnet18 pass is ~100 GFLOP.
ROUNDS = {"resnet18": 7, "vit_tiny": 15}
DTYPE_NAMES = {torch.float32: "fp32", torch.float64: "fp64"}
CASES = [
    pytest.param("resnet18", torch.float32, id="resnet18-fp32"),
    pytest.param("vit_tiny", torch.float32, id="vit_tiny-fp32"),
    pytest.param("vit_tiny", torch.float64, id="vit_tiny-fp64"),
]
PROVIDERS = ("anchor", "reference", "cpu")
# A sanity check on the timed result, not a correctness test (tests/kernels does that): NS amplifies
# rounding differences by up to p'(0)^5 ≈ 500 for tiny singular values.
TOLERANCE = {torch.float32: 1e-2, torch.float64: 1e-3}


@functools.cache
def _layers(layer_set: str, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    return tuple(torch.randn(shape, generator=generator, dtype=dtype) for shape in LAYER_SETS[layer_set])


_anchor_results: dict[tuple[str, torch.dtype], list[torch.Tensor]] = {}


def _anchor_result(layer_set: str, dtype: torch.dtype) -> list[torch.Tensor]:
    key = (layer_set, dtype)
    if key not in _anchor_results:
        _anchor_results[key] = _run_anchor(_layers(layer_set, dtype))
    return _anchor_results[key]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run_anchor(layers) -> list[torch.Tensor]:
    out = [torch_newton_schulz(G, STEPS, COEFFICIENTS, EPS) for G in layers]
    _sync(layers[0].device)
    return out


def _shape_groups(layers) -> list[list[int]]:
    """Indices of the layers, grouped by shape in order of first appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, G in enumerate(layers):
        groups.setdefault(tuple(G.shape), []).append(i)
    return list(groups.values())


def _run_batched(layers, groups: list[list[int]], backend: str) -> list[torch.Tensor]:
    out: list[torch.Tensor] = [None] * len(layers)  # type: ignore[list-item]
    with kernels.use_backend(backend):
        for indices in groups:
            batch = kernels.newton_schulz(torch.stack([layers[i] for i in indices]), STEPS, COEFFICIENTS, EPS)
            for i, X in zip(indices, batch.unbind(0), strict=True):
                out[i] = X
    _sync(layers[0].device)
    return out


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("layer_set, dtype", CASES)
def test_newton_schulz(benchmark, layer_set: str, dtype: torch.dtype, provider: str) -> None:
    if provider == "cpu" and "cpu" not in kernels.available_backends("newton_schulz", "cpu"):
        reason = why_unavailable("newton_schulz", "cpu", "cpu")
        pytest.skip(f"the cpu backend of newton_schulz is unavailable: {reason}")
    layers = _layers(layer_set, dtype)
    groups = _shape_groups(layers)
    benchmark.group = f"newton_schulz {layer_set} {DTYPE_NAMES[dtype]} cpu"
    benchmark.extra_info.update(
        provider=provider,
        layers=len(layers),
        calls=len(layers) if provider == "anchor" else len(groups),
        threads=torch.get_num_threads(),
        gflop=sum(newton_schulz_flops(tuple(G.shape), STEPS) for G in layers) / 1e9,
    )
    if provider == "anchor":
        fn, args = _run_anchor, (layers,)
    else:
        fn, args = _run_batched, (layers, groups, provider)

    # The warm-up call, done here so its result is checked before any timing: a wrong kernel fails
    # the benchmark and is neither timed nor saved.
    result = fn(*args)
    if provider == "anchor":
        _anchor_results[(layer_set, dtype)] = result
    else:
        expected = _anchor_result(layer_set, dtype)
        worst = max(
            ((X - E).abs().max() / E.abs().max()).item() for X, E in zip(result, expected, strict=True)
        )
        benchmark.extra_info["max_rel_diff_vs_anchor"] = worst
        assert worst <= TOLERANCE[dtype], f"{provider} differs from the anchor by {worst:.2e} (max rel.)"
    del result
    benchmark.pedantic(fn, args=args, rounds=ROUNDS[layer_set], iterations=1, warmup_rounds=0)
