"""kernels.adamw_step: every backend against the reference, the reference against a hand computation,
the v0_weight bias correction, opcheck, torch.compile, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import kernels
from kernels.reference.adamw_step import adamw_step as reference

OP = "adamw_step"
CPU_BACKENDS = [b for b in ("cpu", "triton") if b in kernels.available_backends(OP, "cpu")]

# Odd sizes, a scalar-like tensor, a multi-dim one, and (cpu) tensors spanning several 16384-element
# chunks; the Triton interpreter uses 1024-element chunks, so 1003 + 2049 cover its boundaries.
SHAPES = [(1,), (7,), (1003,), (5, 123), (3, 1, 17, 9), (2049,)]
CPU_EXTRA = [(2 * 16384 + 5,)]

# Max abs error against the reference after STEPS steps on O(1) values. float64: the same operations
# in the same order, 1e-12 leaves room for FMA contraction. float32: FMA contraction and vector sqrt
# differ from torch's kernels by an ulp per step (~2.4e-7 at |p| ~ 2-4), 3 steps -> 2e-6.
TOL = {torch.float64: 1e-12, torch.float32: 2e-6}
STEPS = 3

OPTIONS = {
    "plain": {},
    "amsgrad": {"amsgrad": True},
    "maximize": {"maximize": True},
    "no_decay": {"weight_decay": 0.0},
    "beta1_small": {"beta1": 0.3},  # lerp weight 0.7 >= 0.5: torch's other lerp form
    "correction": {"alpha": 0.7, "correction": True},
    "v0_weight": {"v0_weight": 0.4},
    "all": {"amsgrad": True, "maximize": True, "alpha": -0.3, "correction": True, "v0_weight": 1.0},
}


def make_state(shapes, dtype, *, correction=False, amsgrad=False, generator=None):
    sdt = torch.float64 if dtype == torch.float64 else torch.float32
    g = generator

    def rnd(shape, dt):
        return torch.randn(shape, generator=g, dtype=torch.float64).to(dt)

    state = {
        "params": [rnd(s, dtype) for s in shapes],
        "exp_avgs": [0.1 * rnd(s, sdt) for s in shapes],
        "exp_avg_sqs": [0.01 * rnd(s, sdt).abs() + 1e-4 for s in shapes],
        "max_exp_avg_sqs": [0.02 * rnd(s, sdt).abs() for s in shapes] if amsgrad else None,
        "corrections": [rnd(s, sdt) for s in shapes] if correction else None,
    }
    return state


def clone(state):
    return {k: None if v is None else [t.clone() for t in v] for k, v in state.items()}


def hyper(opts):
    kw = {"lr": 0.05, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.1, "maximize": False,
          "alpha": 0.0, "v0_weight": 0.0}
    kw.update({k: v for k, v in opts.items() if k in kw})
    return kw


def run_reference(state, grads_per_step, opts):
    kw = hyper(opts)
    for t, grads in enumerate(grads_per_step, start=1):
        reference(state["params"], grads, state["exp_avgs"], state["exp_avg_sqs"], state["max_exp_avg_sqs"],
                  state["corrections"], step=float(t), **kw)


def run_op(state, grads_per_step, opts, backend):
    kw = hyper(opts)
    with kernels.use_backend(backend):
        for t, grads in enumerate(grads_per_step, start=1):
            kernels.adamw_step(
                state["params"], grads, state["exp_avgs"], state["exp_avg_sqs"], step=t,
                amsgrad=state["max_exp_avg_sqs"] is not None, max_exp_avg_sqs=state["max_exp_avg_sqs"],
                corrections=state["corrections"], **kw,
            )


def max_diff(a, b) -> float:
    worst = 0.0
    for key in a:
        if a[key] is None:
            continue
        for x, y in zip(a[key], b[key], strict=True):
            worst = max(worst, (x.double() - y.double()).abs().max().item())
    return worst


CASES = [(b, o) for b in CPU_BACKENDS for o in OPTIONS]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("backend, option", CASES, ids=[f"{b}-{o}" for b, o in CASES])
def test_matches_reference(backend, option, dtype):
    opts = OPTIONS[option]
    shapes = SHAPES + (CPU_EXTRA if backend == "cpu" else [])
    state = make_state(shapes, dtype, correction=opts.get("correction", False),
                       amsgrad=opts.get("amsgrad", False))
    grads = [[torch.randn(s, dtype=torch.float64).to(dtype) for s in shapes] for _ in range(STEPS)]
    expected, ours = clone(state), clone(state)
    run_reference(expected, grads, opts)
    run_op(ours, grads, opts, backend)
    assert max_diff(ours, expected) <= TOL[dtype]
    # The step did something (a test that cannot fail is a defect): params moved by ~lr per step.
    assert max_diff(ours, state) > 1e-3


# The Triton interpreter has no bfloat16: 16-bit Triton runs in the cuda-marked tests below.
@pytest.mark.skipif("cpu" not in CPU_BACKENDS, reason="kernels._C not built")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("option", ["plain", "all"])
def test_16bit_cpu_matches_reference(dtype, option):
    # Both compute in float32 from the same 16-bit values and round the param once per step, so they
    # agree up to float32 ulps, which can flip a 16-bit rounding: each step, taken from the same state,
    # gives params within 1 ulp of their dtype. (Compared over several steps without re-syncing, a flip
    # at |p| ~ 0.3 would exceed a relative bound once p cancels to ~1e-3.)
    opts = OPTIONS[option]
    shapes = SHAPES + CPU_EXTRA
    state = make_state(shapes, dtype, correction=opts.get("correction", False),
                       amsgrad=opts.get("amsgrad", False))
    ulp = 2.0 ** -7 if dtype == torch.bfloat16 else 2.0 ** -10
    for _ in range(STEPS):
        grads = [[torch.randn(s).to(dtype) for s in shapes]]
        expected, ours = clone(state), clone(state)
        run_reference(expected, grads, opts)
        kw = hyper(opts)
        with kernels.use_backend("cpu"):
            kernels.adamw_step(
                ours["params"], grads[0], ours["exp_avgs"], ours["exp_avg_sqs"], step=1,
                amsgrad=ours["max_exp_avg_sqs"] is not None, max_exp_avg_sqs=ours["max_exp_avg_sqs"],
                corrections=ours["corrections"], **kw,
            )
        for p, q, p0 in zip(ours["params"], expected["params"], state["params"], strict=True):
            assert p.dtype == dtype
            scale = torch.maximum(q.float().abs(), p0.float().abs()).clamp_min(2.0**-14)
            assert bool(((p.float() - q.float()).abs() <= ulp * scale * 1.01).all())
        for key in ("exp_avgs", "exp_avg_sqs"):
            for x, y in zip(ours[key], expected[key], strict=True):
                assert x.dtype == torch.float32
                torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)
        assert max_diff(ours, state) > 1e-3
        state = expected


def test_reference_matches_hand_computation():
    # One element, every option on, in float64 scalars written out by hand.
    lr, b1, b2, eps, wd, t, alpha, w0 = 0.03, 0.8, 0.95, 1e-6, 0.2, 4.0, 0.6, 0.35
    p0, g0, m0, v0, vmax0, c0 = 0.7, -0.4, 0.05, 0.02, 0.5, 0.9
    g = -g0  # maximize
    p = p0 * (1 - lr * wd)
    m = m0 + (1 - b1) * (g - m0)
    v = b2 * v0 + (1 - b2) * g * g
    vmax = max(vmax0, v)
    bc1 = 1 - b1**t
    bc2 = 1 - b2**t * (1 - w0)
    p = p - lr * ((m / bc1) / (math.sqrt(vmax) / math.sqrt(bc2) + eps) + alpha * c0)

    def one(x):
        return [torch.tensor([x], dtype=torch.float64)]

    P, M, V, VM = one(p0), one(m0), one(v0), one(vmax0)
    reference(P, one(g0), M, V, VM, one(c0), lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd, step=t,
              maximize=True, alpha=alpha, v0_weight=w0)
    assert P[0].item() == pytest.approx(p, rel=1e-14, abs=1e-15)
    assert M[0].item() == pytest.approx(m, rel=1e-14)
    assert V[0].item() == pytest.approx(v, rel=1e-14)
    assert VM[0].item() == pytest.approx(vmax, rel=1e-14)


@pytest.mark.parametrize("backend", ["reference", *CPU_BACKENDS])
@pytest.mark.parametrize("start", ["zeros", "debiased", "raw_mean_after_K"])
def test_v0_weight_debiases_an_aggregated_second_moment(backend, start):
    # With a constant gradient g, an unbiased second moment is exactly g² at every step. Starting from
    # zeros (w0 = 0), from the debiased v̄ = g² (w0 = 1) or from the raw v after K steps from zeros,
    # v̄ = (1 − β2^K) g² (w0 = 1 − β2^K), bc2 = 1 − β2^t (1 − w0) must make v/bc2 = g², so each step
    # moves p by lr·g/(|g| + eps) (weight_decay = 0, m from zeros so m/bc1 = g).
    b2, K, lr, eps = 0.9, 5, 0.01, 1e-8
    g = torch.tensor([0.3, -2.0, 1e-3, 7.0], dtype=torch.float64)
    v0, w0 = {"zeros": (0.0, 0.0), "debiased": (1.0, 1.0), "raw_mean_after_K": (1 - b2**K,) * 2}[start]
    p, m, v = [torch.zeros(4, dtype=torch.float64)], [torch.zeros(4, dtype=torch.float64)], [v0 * g * g]
    expected_step = -lr * g / (g.abs() + eps)
    with kernels.use_backend(backend):
        for t in range(1, 4):
            before = p[0].clone()
            kernels.adamw_step(p, [g], m, v, lr=lr, beta1=0.5, beta2=b2, eps=eps, weight_decay=0.0, step=t,
                               v0_weight=w0)
            torch.testing.assert_close(p[0] - before, expected_step, rtol=1e-12, atol=1e-15)
    # Without the right weight the step is biased (so the check above can fail): w0 = 0 with v̄ = g².
    if start == "debiased":
        q = [torch.zeros(4, dtype=torch.float64)]
        kernels.adamw_step(q, [g], [torch.zeros(4, dtype=torch.float64)], [g * g], lr=lr, beta1=0.5,
                           beta2=b2, eps=eps, weight_decay=0.0, step=1)
        assert (q[0] - expected_step).abs().max() > 1e-3 * lr


@pytest.mark.skipif("cpu" not in CPU_BACKENDS, reason="kernels._C not built")
def test_mixed_dtypes_one_call():
    # One call with float32, float64 and bfloat16 params: one launch per (device, dtype) group.
    dts = [torch.float32, torch.float64, torch.bfloat16, torch.float32]
    shapes = [(9,), (4, 5), (33,), (1,)]
    sdt = {torch.float64: torch.float64}
    params = [torch.randn(s).to(d) for s, d in zip(shapes, dts, strict=True)]
    grads = [torch.randn(s).to(d) for s, d in zip(shapes, dts, strict=True)]
    ms = [torch.randn(s).to(sdt.get(d, torch.float32)) for s, d in zip(shapes, dts, strict=True)]
    vs = [torch.rand(s).to(sdt.get(d, torch.float32)) for s, d in zip(shapes, dts, strict=True)]
    ref_p, ref_m, ref_v = [x.clone() for x in params], [x.clone() for x in ms], [x.clone() for x in vs]
    reference(ref_p, grads, ref_m, ref_v, None, None, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.01, step=2.0)
    with kernels.use_backend("cpu"):
        kernels.adamw_step(params, grads, ms, vs, lr=0.01, step=2)
    for a, b in zip(params + ms + vs, ref_p + ref_m + ref_v, strict=True):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_single_tensor_is_a_list_of_one():
    p, g, m, v = torch.randn(10), torch.randn(10), torch.zeros(10), torch.zeros(10)
    q = p.clone()
    kernels.adamw_step(p, g, m, v, lr=0.1, step=1)
    reference([q], [g], [torch.zeros(10)], [torch.zeros(10)], None, None, lr=0.1, beta1=0.9, beta2=0.999,
              eps=1e-8, weight_decay=1e-2, step=1.0)
    torch.testing.assert_close(p, q)
    assert not torch.equal(p, g)


def test_empty_list_is_a_no_op():
    kernels.adamw_step([], [], [], [], lr=0.1, step=1)


def _op_args(dtype, amsgrad, correction):
    shapes = [(3,), (2, 5)]
    s = make_state(shapes, dtype, correction=correction, amsgrad=amsgrad)
    grads = [torch.randn(sh, dtype=dtype) for sh in shapes]
    return (s["params"], grads, s["exp_avgs"], s["exp_avg_sqs"], s["max_exp_avg_sqs"] or [],
            s["corrections"] or [], 0.01, 0.9, 0.999, 1e-8, 0.01, 3.0, False, 0.5, 0.2)


@pytest.mark.parametrize("amsgrad, correction", [(False, False), (True, True)])
def test_eager_call_equals_the_registered_op_and_bumps_versions(amsgrad, correction):
    # kernels.adamw_step skips the custom-op dispatch in plain eager mode: same result, and every
    # mutated tensor's version counter moves, as it does through torch.ops.pykernels.adamw_step.
    args = _op_args(torch.float64, amsgrad, correction)
    dispatched = [[t.clone() for t in lst] if isinstance(lst, list) else lst for lst in args]
    torch.ops.pykernels.adamw_step(*dispatched)
    params, grads, m, v, vmax, corr = args[:6]
    mutated = [*params, *m, *v, *vmax]
    before = [t._version for t in mutated]
    kernels.adamw_step(params, grads, m, v, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                       step=3.0, amsgrad=amsgrad, max_exp_avg_sqs=vmax or None,
                       corrections=corr or None, alpha=0.5, v0_weight=0.2)
    assert all(t._version > b for t, b in zip(mutated, before, strict=True))
    for ours, theirs in zip(args[:4], dispatched[:4], strict=True):
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_step_on_a_tensor_saved_for_backward_is_detected():
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    loss = (w * w).sum()  # saves w for backward
    with torch.no_grad():
        kernels.adamw_step([w], [torch.randn(5, dtype=torch.float64)], [torch.zeros(5, dtype=torch.float64)],
                           [torch.zeros(5, dtype=torch.float64)], lr=0.1, step=1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("amsgrad, correction", [(False, False), (True, True)])
def test_opcheck(amsgrad, correction):
    args = _op_args(torch.float64, amsgrad, correction)
    torch.library.opcheck(torch.ops.pykernels.adamw_step.default, args)


def test_torch_compile_fullgraph():
    shapes = [(6,), (3, 4)]
    s = make_state(shapes, torch.float32)
    grads = [torch.randn(sh) for sh in shapes]
    expected = clone(s)
    reference(expected["params"], grads, expected["exp_avgs"], expected["exp_avg_sqs"], None, None, lr=0.01,
              beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, step=1.0)

    @torch.compile(fullgraph=True, backend="inductor")
    def step(params, grads, exp_avgs, exp_avg_sqs):
        kernels.adamw_step(params, grads, exp_avgs, exp_avg_sqs, lr=0.01, step=1)
        return params[0] * 1.0

    out = step(s["params"], grads, s["exp_avgs"], s["exp_avg_sqs"])
    torch.testing.assert_close(out, expected["params"][0])
    for key in ("params", "exp_avgs", "exp_avg_sqs"):
        for a, b in zip(s[key], expected[key], strict=True):
            torch.testing.assert_close(a, b)


def _good():
    return {
        "params": [torch.randn(4), torch.randn(2, 3)],
        "grads": [torch.randn(4), torch.randn(2, 3)],
        "exp_avgs": [torch.zeros(4), torch.zeros(2, 3)],
        "exp_avg_sqs": [torch.zeros(4), torch.zeros(2, 3)],
        "lr": 0.1,
        "step": 1,
    }


@pytest.mark.parametrize(
    "change, exc, match",
    [
        ({"grads": [torch.randn(4)]}, ValueError, "grads has 1 tensors but params has 2"),
        ({"exp_avgs": [torch.zeros(4)]}, ValueError, "exp_avgs has 1 tensors"),
        ({"grads": [torch.randn(4), torch.randn(3, 2)]}, ValueError,
         r"grads\[1\] must have params\[1\]'s shape"),
        ({"grads": [torch.randn(4, dtype=torch.float64), torch.randn(2, 3)]}, TypeError,
         r"grads\[0\] must have dtype"),
        ({"exp_avgs": [torch.zeros(4, dtype=torch.bfloat16), torch.zeros(2, 3)]}, TypeError,
         r"exp_avgs\[0\] must have dtype torch.float32"),
        ({"params": [torch.randn(4), torch.randn(3, 2).t()]}, ValueError, r"params\[1\] must be contiguous"),
        ({"params": [torch.ones(4, dtype=torch.int32), torch.randn(2, 3)]}, TypeError,
         r"params\[0\] must have dtype"),
        ({"params": "weights"}, TypeError, "params must be a list or tuple"),
        ({"grads": [torch.randn(4), 3.0]}, TypeError, r"grads\[1\] must be a torch.Tensor"),
        ({"lr": -1e-3}, ValueError, "lr must be >= 0"),
        ({"lr": float("nan")}, ValueError, "lr must be a finite number"),
        ({"beta1": 1.0}, ValueError, r"beta1 must be in \[0, 1\)"),
        ({"beta2": -0.1}, ValueError, r"beta2 must be in \[0, 1\)"),
        ({"eps": -1.0}, ValueError, "eps must be >= 0"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay must be >= 0"),
        ({"step": 0}, ValueError, "step must be >= 1"),
        ({"v0_weight": 1.5}, ValueError, r"v0_weight must be in \[0, 1\]"),
        ({"amsgrad": True}, ValueError, "max_exp_avg_sqs is required"),
        ({"max_exp_avg_sqs": [torch.zeros(4), torch.zeros(2, 3)]}, ValueError, "amsgrad=False"),
        ({"corrections": [torch.zeros(4)]}, ValueError, "corrections has 1 tensors"),
        ({"grads": [torch.randn(4), torch.tensor([[1.0, 2.0, float("inf")]] * 2)], "check_finite": True},
         ValueError, r"grads\[1\] contains NaN or Inf"),
    ],
)
def test_bad_input(change, exc, match):
    args = _good() | change
    with pytest.raises(exc, match=match):
        kernels.adamw_step(**args)


def test_bad_input_leaves_params_untouched():
    args = _good()
    args["grads"][1][0, 0] = float("nan")
    before = [p.clone() for p in args["params"]]
    with pytest.raises(ValueError, match=r"grads\[1\]"):
        kernels.adamw_step(**args, check_finite=True)
    for a, b in zip(args["params"], before, strict=True):
        assert torch.equal(a, b)


# ---- GPU: run by benchmarks/gpu/run_all.sh --------------------------------------------------------

GPU_SHAPES = [(1,), (7,), (1003,), (5, 123), (16384,), (3 * 16384 + 17,), (257, 513)]
GPU_TOL = {torch.float64: 1e-12, torch.float32: 2e-6}


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_gpu_matches_reference(backend, dtype, option):
    opts = OPTIONS[option]
    state = make_state(GPU_SHAPES, dtype, correction=opts.get("correction", False),
                       amsgrad=opts.get("amsgrad", False))
    state = {k: None if v is None else [t.cuda() for t in v] for k, v in state.items()}
    grads = [[torch.randn(s, dtype=dtype, device="cuda") for s in GPU_SHAPES] for _ in range(STEPS)]
    expected, ours = clone(state), clone(state)
    run_reference(expected, grads, opts)
    run_op(ours, grads, opts, backend)
    assert max_diff(ours, expected) <= GPU_TOL[dtype]


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_gpu_16bit_matches_reference(backend, dtype):
    state = make_state(GPU_SHAPES, dtype, correction=True, amsgrad=True)
    state = {k: None if v is None else [t.cuda() for t in v] for k, v in state.items()}
    # One step from the same state: a 16-bit rounding flip is then at most 1 ulp (see the cpu test).
    grads = [[torch.randn(s, device="cuda").to(dtype) for s in GPU_SHAPES]]
    expected, ours = clone(state), clone(state)
    run_reference(expected, grads, OPTIONS["all"])
    run_op(ours, grads, OPTIONS["all"], backend)
    ulp = 2.0 ** -7 if dtype == torch.bfloat16 else 2.0 ** -10
    for p, q in zip(ours["params"], expected["params"], strict=True):
        assert bool(((p.float() - q.float()).abs() <= ulp * q.float().abs().clamp_min(2.0**-14) * 1.01).all())


@pytest.mark.cuda
def test_gpu_default_backend_and_stream():
    state = make_state(GPU_SHAPES, torch.float32)
    state = {k: None if v is None else [t.cuda() for t in v] for k, v in state.items()}
    grads = [[torch.randn(s, device="cuda") for s in GPU_SHAPES]]
    expected, ours = clone(state), clone(state)
    run_reference(expected, grads, {})
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        run_op(ours, grads, {}, None)
    stream.synchronize()
    assert max_diff(ours, expected) <= GPU_TOL[torch.float32]
