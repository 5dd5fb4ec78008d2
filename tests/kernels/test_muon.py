"""kernels.optim.Muon: against a per-parameter implementation, torch.optim.Muon and torch.optim.AdamW;
batching by shape, state_dict round trip, argument checks, and a loss that falls."""

from __future__ import annotations

import contextlib
import copy
import io
import math
import re
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import kernels
from kernels.optim import Muon, muon_param_groups
from kernels.reference import newton_schulz as reference_ns

MUON_LR, ADAMW_LR = 0.02, 1e-2


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The matrices here are tiny (<= 72 columns): with torch's 2 OpenMP threads, a busy 2-core machine
    stalls every small op at the thread barrier (this file: 40-160 s measured, against 4-6 s on 1 thread)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- models and a training loop ---------------------------------------------------------------------


def mlp(dtype, bias=True) -> nn.Module:
    # Three (32, 32) layers share a shape; (32, 12) and (5, 32) are single.
    return nn.Sequential(
        nn.Linear(12, 32, bias=bias),
        nn.Tanh(),
        nn.Linear(32, 32, bias=bias),
        nn.Tanh(),
        nn.Linear(32, 32, bias=bias),
        nn.Tanh(),
        nn.Linear(32, 32, bias=bias),
        nn.Tanh(),
        nn.Linear(32, 5, bias=bias),
    ).to(dtype)


class ConvNet(nn.Module):
    """Conv weights (8, 8, 3, 3) x3 are the matrix (8, 72); a LayerNorm and biases go to AdamW."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.ModuleList([nn.Conv2d(8, 8, 3, padding=1) for _ in range(3)])
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = torch.tanh(self.stem(x))
        for conv in self.blocks:
            x = x + torch.tanh(conv(x))
        return self.head(self.norm(x.mean(dim=(2, 3))))


def conv_net(dtype) -> nn.Module:
    return ConvNet().to(dtype)


def batch_for(model: nn.Module, dtype):
    if isinstance(model, ConvNet):
        return torch.randn(6, 3, 7, 7, dtype=dtype), torch.randn(6, 4, dtype=dtype)
    return torch.randn(16, 12, dtype=dtype), torch.randn(16, 5, dtype=dtype)


def train(model: nn.Module, step, data, steps: int) -> list[float]:
    """``steps`` steps of ``step()`` (an optimizer's step, or any callable) on the MSE loss of ``data``."""
    x, y = data
    losses = []
    for _ in range(steps):
        for p in model.parameters():
            p.grad = None
        loss = F.mse_loss(model(x), y)
        loss.backward()
        step()
        losses.append(loss.item())
    return losses


def max_diff(a: nn.Module, b: nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))


# ---- a plain per-parameter implementation of the documented update ----------------------------------


class PerParamMuon:
    """One parameter at a time, kernels.reference.newton_schulz per matrix; AdamW written out."""

    def __init__(self, groups, **defaults):
        self.groups = [{**defaults, **g} for g in groups]
        self.state: dict[nn.Parameter, dict] = {}

    @torch.no_grad()
    def step(self):
        for g in self.groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state.setdefault(p, {})
                if g["use_muon"]:
                    self._muon(p, st, g)
                else:
                    self._adamw(p, st, g)

    @staticmethod
    def _muon(p, st, g):
        # The same torch ops as torch.optim.Muon (lerp, mul_/add_), so that float32 rounding matches too.
        mu, lr = g["momentum"], g["lr"]
        buf = st.setdefault("buf", torch.zeros_like(p))
        buf.lerp_(p.grad, 1 - mu)
        update = p.grad.lerp(buf, mu) if g["nesterov"] else buf
        m, n = p.shape[0], p[0].numel()
        ortho = reference_ns(update.reshape(m, n), g["ns_steps"], g["ns_coefficients"], g["eps"])
        if g["adjust_lr_fn"] == "match_rms_adamw":
            scale = 0.2 * math.sqrt(max(m, n))
        else:
            scale = math.sqrt(max(1, m / n))
        p.mul_(1 - lr * g["weight_decay"]).add_(ortho.reshape(p.shape), alpha=-lr * scale)

    @staticmethod
    def _adamw(p, st, g):
        (b1, b2), lr = g["betas"], g["lr"]
        st["t"] = t = st.get("t", 0) + 1
        m = st["m"] = b1 * st.get("m", torch.zeros_like(p)) + (1 - b1) * p.grad
        v = st["v"] = b2 * st.get("v", torch.zeros_like(p)) + (1 - b2) * p.grad**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p.copy_(p * (1 - lr * g["weight_decay"]) - lr * m_hat / (v_hat.sqrt() + g["adamw_eps"]))


REFERENCE_DEFAULTS = dict(
    lr=MUON_LR,
    weight_decay=0.1,
    momentum=0.95,
    nesterov=True,
    ns_steps=5,
    ns_coefficients=(3.4445, -4.7750, 2.0315),
    eps=1e-7,
    adjust_lr_fn=None,
    betas=(0.9, 0.95),
    adamw_eps=1e-8,
    use_muon=True,
)

# Max abs parameter difference after 10 steps. float64: ~2e-15 measured, with whichever backend
# kernels.newton_schulz picks. float32: batched vs per-matrix reference matmuls alone give ~5e-8 per step
# (5e-7 after 10 measured, < 1e-6 over 12 seeds), so ours runs on the reference backend there too: a
# compiled backend's own float32 rounding (tested in test_newton_schulz.py) would not fit in 1e-6.
PER_PARAM_TOL = {torch.float64: 1e-12, torch.float32: 1e-6}


def same_backend_as_reference(dtype):
    return kernels.use_backend("reference") if dtype == torch.float32 else contextlib.nullcontext()


OPTIONS = [
    {},
    {"nesterov": False, "adjust_lr_fn": "match_rms_adamw", "weight_decay": 0.0},
    {"momentum": 0.0, "ns_steps": 3, "adjust_lr_fn": "original"},
]


@pytest.mark.parametrize("options", OPTIONS, ids=["default", "plain-momentum-rms", "no-momentum-3-steps"])
@pytest.mark.parametrize("make", [mlp, conv_net], ids=["mlp", "conv"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_matches_per_parameter_implementation(make, dtype, options):
    model = make(dtype)
    twin = copy.deepcopy(model)
    data = batch_for(model, dtype)
    ours = Muon(muon_param_groups(model, adamw_lr=ADAMW_LR), lr=MUON_LR, **options)
    ref = PerParamMuon(muon_param_groups(twin, adamw_lr=ADAMW_LR), **{**REFERENCE_DEFAULTS, **options})
    start = copy.deepcopy(model)
    with same_backend_as_reference(dtype):
        losses = train(model, ours.step, data, 10)
    train(twin, ref.step, data, 10)
    assert max_diff(model, start) > 1e-2  # the parameters did move
    assert losses[-1] < losses[0]
    assert max_diff(model, twin) <= PER_PARAM_TOL[dtype]


def test_per_step_coefficients_match_reference():
    schedule = [(3.4445, -4.7750, 2.0315)] * 3 + [(2.0, -1.5, 0.5)] * 2
    model = mlp(torch.float64, bias=False)
    twin = copy.deepcopy(model)
    data = batch_for(model, torch.float64)
    train(model, Muon(model.parameters(), lr=MUON_LR, ns_coefficients=schedule).step, data, 5)
    groups = [{"params": list(twin.parameters()), "ns_coefficients": schedule}]
    ref = PerParamMuon(groups, **REFERENCE_DEFAULTS)
    train(twin, ref.step, data, 5)
    assert max_diff(model, twin) <= 1e-12


# ---- against torch.optim.Muon -----------------------------------------------------------------------


def _full_precision_zeropower(grad, ns_coefficients, ns_steps, eps):
    """torch.optim.Muon's iteration with its own conventions (norm clamped at eps) in the input dtype."""
    a, b, c = ns_coefficients
    X = grad.T if grad.size(0) > grad.size(1) else grad
    X = X / X.norm().clamp(min=eps)
    for _ in range(ns_steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if grad.size(0) > grad.size(1) else X


TORCH_OPTIONS = [
    {},
    {"lr": MUON_LR},
    {"lr": MUON_LR, "nesterov": False, "momentum": 0.9, "weight_decay": 0.0},
    {"lr": MUON_LR, "adjust_lr_fn": "match_rms_adamw", "weight_decay": 0.01},
]


@pytest.mark.parametrize("options", TORCH_OPTIONS, ids=["defaults", "lr", "plain-momentum", "match-rms"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_matches_torch_muon(options, dtype):
    """torch runs Newton–Schulz in bfloat16: swapped here for the same iteration in the parameter dtype,
    the rest (momentum, Nesterov, weight decay, lr adjustment) is torch's own code.

    kernels.newton_schulz divides by ‖G‖ + eps where torch divides by max(‖G‖, eps): with eps=0 the two
    agree to rounding (float64: ~1e-15 measured); with the default eps=1e-7 that alone moves float32
    parameters by ~1.5e-6 over these 10 steps, hence 5e-6 there.
    """
    eps, tol = (0.0, 1e-12) if dtype == torch.float64 else (1e-7, 5e-6)
    model = mlp(dtype, bias=False)
    twin = copy.deepcopy(model)
    data = batch_for(model, dtype)
    with same_backend_as_reference(dtype):
        train(model, Muon(model.parameters(), eps=eps, **options).step, data, 10)
    theirs = torch.optim.Muon(twin.parameters(), eps=eps, **options)
    with mock.patch.object(torch.optim._muon, "_zeropower_via_newtonschulz", _full_precision_zeropower):
        train(twin, theirs.step, data, 10)
    assert max_diff(model, twin) <= tol


def test_close_to_unmodified_torch_muon():
    """Against torch's own bfloat16 iteration: the same trajectory up to bfloat16 noise, which is large
    (‖Δours − Δtorch‖/‖Δours‖ ≈ 0.2 after 1 step, ≈ 0.055 after 10, measured over seeds)."""
    model = mlp(torch.float32, bias=False)
    twin, start = copy.deepcopy(model), copy.deepcopy(model)
    data = batch_for(model, torch.float32)
    train(model, Muon(model.parameters(), lr=MUON_LR).step, data, 10)
    train(twin, torch.optim.Muon(twin.parameters(), lr=MUON_LR).step, data, 10)

    def moved(m):
        return torch.cat([(p - q).flatten() for p, q in zip(m.parameters(), start.parameters(), strict=True)])

    ours, theirs = moved(model), moved(twin)
    assert ((ours - theirs).norm() / ours.norm()).item() <= 0.1


# ---- batching by shape ------------------------------------------------------------------------------


def _matrix_shapes(params):
    return {(p.shape[0], p[0].numel(), p.dtype) for p in params if p.dim() >= 2}


@pytest.mark.parametrize("make", [mlp, conv_net], ids=["mlp", "conv"])
def test_one_newton_schulz_call_per_shape(make):
    model = make(torch.float32)
    data = batch_for(model, torch.float32)
    groups = muon_param_groups(model)
    muon_params = groups[0]["params"]
    shapes = _matrix_shapes(muon_params)
    assert len(shapes) < len(muon_params)  # the models do have repeated shapes
    opt = Muon(groups, lr=MUON_LR)
    with mock.patch.object(kernels, "newton_schulz", wraps=kernels.newton_schulz) as spy:
        for step in range(1, 4):
            train(model, opt.step, data, 1)
            assert spy.call_count == step * len(shapes)
    batches = sorted(call.args[0].shape[0] for call in spy.call_args_list[: len(shapes)])
    counts = {}
    for p in muon_params:
        key = (p.shape[0], p[0].numel())
        counts[key] = counts.get(key, 0) + 1
    assert batches == sorted(counts.values())
    assert all(call.args[0].dim() == 3 for call in spy.call_args_list)


def test_batches_span_groups_with_the_same_newton_schulz_settings():
    layers = [nn.Linear(16, 16, bias=False) for _ in range(4)]
    opt = Muon(
        [
            {"params": [layers[0].weight, layers[1].weight]},
            {"params": [layers[2].weight], "lr": 0.1, "momentum": 0.5},  # same NS settings: same batch
            {"params": [layers[3].weight], "ns_steps": 3},  # different NS settings: its own call
        ]
    )
    for layer in layers:
        layer.weight.grad = torch.randn(16, 16)
    with mock.patch.object(kernels, "newton_schulz", wraps=kernels.newton_schulz) as spy:
        opt.step()
    assert sorted(call.args[0].shape[0] for call in spy.call_args_list) == [1, 3]


def test_grad_none_is_skipped():
    a, b = nn.Linear(8, 8, bias=False), nn.Linear(8, 8, bias=False)
    bias = nn.Parameter(torch.randn(8))
    opt = Muon([{"params": [a.weight, b.weight]}, {"params": [bias], "use_muon": False}])
    before_b, before_bias = b.weight.detach().clone(), bias.detach().clone()
    a.weight.grad = torch.randn(8, 8)
    with mock.patch.object(kernels, "newton_schulz", wraps=kernels.newton_schulz) as spy:
        opt.step()
    assert spy.call_args_list[0].args[0].shape == (1, 8, 8)
    assert torch.equal(b.weight, before_b) and torch.equal(bias, before_bias)
    assert b.weight not in opt.state and bias not in opt.state


def test_step_is_an_nvtx_range_and_returns_the_closure_loss():
    model = mlp(torch.float32, bias=False)
    x, y = batch_for(model, torch.float32)
    opt = Muon(model.parameters())

    def closure():
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        return loss

    with mock.patch.object(kernels.nvtx, "range", wraps=kernels.nvtx.range) as spy:
        loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.item() > 0
    assert [call.args[0] for call in spy.call_args_list if call.args[0] == "muon.step"] == ["muon.step"]


# ---- AdamW groups -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [mlp, conv_net], ids=["mlp", "conv"])
def test_adamw_groups_match_torch_adamw(make):
    model = make(torch.float64)
    twin = copy.deepcopy(model)
    data = batch_for(model, torch.float64)
    hyper = {"lr": 3e-3, "betas": (0.8, 0.99), "weight_decay": 0.05}
    ours = Muon([{"params": model.parameters(), "use_muon": False, "adamw_eps": 1e-6, **hyper}])
    theirs = torch.optim.AdamW(twin.parameters(), eps=1e-6, **hyper)
    train(model, ours.step, data, 10)
    train(twin, theirs.step, data, 10)
    assert max_diff(model, twin) <= 1e-12


def test_adamw_defaults_match_torch_adamw():
    model = mlp(torch.float64)
    twin = copy.deepcopy(model)
    data = batch_for(model, torch.float64)
    ours = Muon([{"params": model.parameters(), "use_muon": False}], lr=1e-3, weight_decay=0.01)
    train(model, ours.step, data, 5)
    theirs = torch.optim.AdamW(twin.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
    train(twin, theirs.step, data, 5)
    assert max_diff(model, twin) <= 1e-12


def test_muon_param_groups_split():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 8)
            self.body = nn.Linear(8, 8)
            self.norm = nn.LayerNorm(8)
            self.head = nn.Linear(8, 10, bias=False)
            self.head.weight = self.embed.weight  # tied

    model = Tiny()
    plain = muon_param_groups(model)
    assert [g["use_muon"] for g in plain] == [True, False]
    assert {id(p) for p in plain[0]["params"]} == {id(model.embed.weight), id(model.body.weight)}
    assert len(plain[1]["params"]) == 3  # body.bias, norm.weight, norm.bias
    assert plain[1]["weight_decay"] == 0.0 and "lr" not in plain[1]

    for spec in (["embed"], [nn.Embedding], ["head"]):  # tied: listing either module moves the weight
        groups = muon_param_groups(model, adamw_modules=spec, adamw_lr=3e-4)
        assert [id(p) for p in groups[0]["params"]] == [id(model.body.weight)]
        assert len(groups[1]["params"]) == 4 and groups[1]["lr"] == 3e-4
    opt = Muon(muon_param_groups(model, adamw_modules=["embed"]))
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))

    with pytest.raises(ValueError, match="nope"):
        muon_param_groups(model, adamw_modules=["nope"])
    only_biases = nn.LayerNorm(4)
    assert [g["use_muon"] for g in muon_param_groups(only_biases)] == [False]


# ---- state_dict -------------------------------------------------------------------------------------


def test_state_dict_round_trip():
    model = conv_net(torch.float32)
    data = batch_for(model, torch.float32)
    opt = Muon(muon_param_groups(model, adamw_lr=ADAMW_LR), lr=MUON_LR)
    train(model, opt.step, data, 3)

    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    twin = copy.deepcopy(model)
    fresh = Muon(muon_param_groups(twin, adamw_lr=0.5), lr=0.5)  # hyperparameters come from the state dict
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer))
    assert fresh.param_groups[0]["lr"] == MUON_LR and fresh.param_groups[1]["lr"] == ADAMW_LR

    state = opt.state_dict()["state"]
    for index, p in enumerate(p for g in opt.param_groups for p in g["params"]):
        keys = {"momentum_buffer"} if p.dim() >= 2 else {"step", "exp_avg", "exp_avg_sq"}
        assert set(state[index]) == keys
        assert state[index].get("step", torch.tensor(3.0)).item() == 3.0

    train(model, opt.step, data, 3)
    train(twin, fresh.step, data, 3)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(opt.state.values(), fresh.state.values(), strict=True):
        assert all(torch.equal(p[k], q[k]) for k in p)


def test_loads_a_torch_muon_state_dict():
    """Groups saved by torch.optim.Muon lack use_muon/betas/adamw_eps: they take the defaults."""
    w = nn.Parameter(torch.randn(5, 7, dtype=torch.float64))
    theirs = torch.optim.Muon([w])
    w.grad = torch.randn(5, 7, dtype=torch.float64)
    theirs.step()
    v = nn.Parameter(w.detach().clone())
    ours = Muon([v])
    ours.load_state_dict(theirs.state_dict())
    group = ours.param_groups[0]
    assert group["use_muon"] is True and group["betas"] == (0.9, 0.95)
    assert torch.equal(ours.state[v]["momentum_buffer"], theirs.state[w]["momentum_buffer"])
    v.grad = torch.randn(5, 7, dtype=torch.float64)
    ours.step()
    assert not torch.equal(v, w)


def test_channels_last_conv_weight_matches_contiguous():
    conv = nn.Conv2d(4, 6, 3).double()
    twin = copy.deepcopy(conv)
    twin.weight.data = twin.weight.data.to(memory_format=torch.channels_last)
    grads = [
        (torch.randn(6, 4, 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)) for _ in range(3)
    ]
    for module in (conv, twin):
        opt = Muon(muon_param_groups(module, adamw_lr=ADAMW_LR), lr=MUON_LR)
        for gw, gb in grads:
            module.weight.grad = gw.to(memory_format=torch.channels_last) if module is twin else gw
            module.bias.grad = gb
            opt.step()
    assert twin.weight.is_contiguous(memory_format=torch.channels_last)
    assert max_diff(conv, twin) <= 1e-15


# ---- arguments --------------------------------------------------------------------------------------

BAD = [
    ("lr", -1e-3),
    ("lr", float("nan")),
    ("momentum", 1.0),
    ("momentum", -0.1),
    ("weight_decay", -0.1),
    ("ns_steps", 0),
    ("ns_steps", 2.5),
    ("ns_coefficients", (1.0, 2.0)),
    ("ns_coefficients", [(3.4, -4.7, 2.0)] * 2),  # 2 triples for 5 steps
    ("eps", -1.0),
    ("adamw_eps", -1.0),
    ("betas", (1.0, 0.9)),
    ("betas", (0.9, -0.1)),
    ("betas", (0.9,)),
    ("adjust_lr_fn", "sqrt"),
]


@pytest.mark.parametrize("name, value", BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_bad_arguments_raise(name, value):
    w = nn.Parameter(torch.randn(4, 4))
    with pytest.raises(ValueError, match=name):
        Muon([w], **{name: value})
    opt = Muon([w])
    with pytest.raises(ValueError, match=name):
        opt.add_param_group({"params": [nn.Parameter(torch.randn(4, 4))], name: value})
    assert len(opt.param_groups) == 1  # the bad group was not kept


@pytest.mark.parametrize("shape", [(7,), ()], ids=["1d", "0d"])
def test_low_dim_param_in_muon_group_raises(shape):
    w = nn.Parameter(torch.randn(shape))
    with pytest.raises(ValueError, match=rf"shape {re.escape(str(tuple(shape)))}.*use_muon=False"):
        Muon([nn.Parameter(torch.randn(3, 3)), w])
    Muon([{"params": [w], "use_muon": False}])  # fine in an AdamW group


def test_sparse_grad_raises():
    emb = nn.Embedding(10, 4, sparse=True)
    opt = Muon(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


# ---- it trains --------------------------------------------------------------------------------------


def test_loss_falls():
    x = torch.randn(64, 12)
    y = torch.sin(x[:, :5] * 2) + 0.5 * x[:, 5:10]
    model = mlp(torch.float32)
    opt = Muon(muon_param_groups(model, adamw_lr=ADAMW_LR), lr=MUON_LR, weight_decay=0.01)
    losses = train(model, opt.step, (x, y), 50)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.3 * losses[0]
