"""kernels.optim.AdamW: identical to torch.optim.AdamW on a small MLP (per backend), bf16 within bf16
rounding of an fp32 master copy, FedAdamW's correction / second moment, state_dict round trips."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import kernels
from kernels.optim import AdamW
from kernels.reference.adamw_step import adamw_step as reference

_HERE = kernels.available_backends("adamw_step", "cpu")
BACKENDS = ["reference", *(b for b in ("cpu", "triton") if b in _HERE)]
STEPS = 20


def mlp(dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(13, 17), nn.Tanh(), nn.Linear(17, 5)).to(dtype)


def train(model, opt, steps, seed=1):
    gen = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(8, 13, generator=gen).to(dtype)
        y = torch.randn(8, 5, generator=gen).to(dtype)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def max_param_diff(a: nn.Module, b: nn.Module) -> float:
    return max((p.double() - q.double()).abs().max().item() for p, q in zip(a.parameters(), b.parameters(),
                                                                              strict=True))


OPTIONS = {
    "default": {},
    "amsgrad": {"amsgrad": True},
    "maximize": {"maximize": True},
    "no_weight_decay": {"weight_decay": 0.0},
}
CASES = [(b, o) for b in BACKENDS for o in OPTIONS]


@pytest.mark.parametrize("backend, option", CASES, ids=[f"{b}-{o}" for b, o in CASES])
def test_fp32_matches_torch_adamw(backend, option):
    # fp32, 20 steps of a real forward/backward: max abs parameter difference <= 1e-6 (the bar).
    kw = {"lr": 1e-2, "weight_decay": 0.05} | OPTIONS[option]
    ours, theirs = mlp(), mlp()
    start = copy.deepcopy(ours)
    opt_t = torch.optim.AdamW(theirs.parameters(), **kw)
    with kernels.use_backend(backend):
        train(ours, AdamW(ours.parameters(), **kw), STEPS)
    train(theirs, opt_t, STEPS)
    assert max_param_diff(ours, theirs) <= 1e-6
    assert max_param_diff(ours, start) > 1e-2  # it trained


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "triton"])  # interpreter: no bfloat16
def test_bf16_within_rounding_of_fp32_master(backend):
    # torch.optim.AdamW on an fp32 master copy of the same bf16 start, fed the same bf16 gradients: the
    # state (fp32 in both) follows the same arithmetic, and the only difference is that ours rounds the
    # parameter to bf16 after each step. Each rounding moves p by at most half a bf16 ulp of |p| at that
    # step, and the update does not depend on p except through (1 − lr·wd) ≈ 1, so after k steps
    # |ours − master| <= Σ_t ulp(|p_t|)/2. We allow one full ulp of max(|ours_t|, |master_t|) per step
    # (accumulated along the run, so a value that grows and shrinks is covered): a bound of a few bf16
    # ulps per step at most, and far below the ~lr = 1e-2 that a wrong update would move p by.
    torch.manual_seed(3)
    shapes = [(17, 13), (17,), (5, 17), (5,)]
    ours = [nn.Parameter(torch.randn(s).to(torch.bfloat16)) for s in shapes]
    master = [nn.Parameter(p.detach().float()) for p in ours]
    start = [p.detach().float().clone() for p in ours]
    opt = AdamW(ours, lr=1e-2, weight_decay=0.05)
    opt_m = torch.optim.AdamW(master, lr=1e-2, weight_decay=0.05)
    allowed = [torch.zeros(s) for s in shapes]
    drift = [torch.randn(s).sign() for s in shapes]  # biased gradients, so p travels ~lr per step

    def ulp(x):
        return torch.exp2(torch.floor(torch.log2(x.clamp_min(2.0**-126)))) * 2.0**-7

    with kernels.use_backend(backend):
        for _ in range(STEPS):
            for p, q, d in zip(ours, master, drift, strict=True):
                g = (0.5 * torch.randn(p.shape) + d).to(torch.bfloat16)
                p.grad, q.grad = g, g.float()
            opt.step()
            opt_m.step()
            for acc, p, q in zip(allowed, ours, master, strict=True):
                acc += ulp(torch.maximum(p.detach().float().abs(), q.detach().abs()))
    for p, q, acc in zip(ours, master, allowed, strict=True):
        assert p.dtype == torch.bfloat16
        assert bool(((p.detach().float() - q.detach()).abs() <= acc).all())
        assert opt.state[p]["exp_avg"].dtype == torch.float32
        torch.testing.assert_close(opt.state[p]["exp_avg_sq"], opt_m.state[q]["exp_avg_sq"], rtol=1e-5,
                                   atol=1e-8)
    # The bound can fail: for most elements it is smaller than how far the 20 steps moved p (~0.2), so
    # an update that was skipped or wrong would exceed it.
    moved = torch.cat([(q.detach() - p0).abs().flatten() for q, p0 in zip(master, start, strict=True)])
    bound = torch.cat([acc.flatten() for acc in allowed])
    assert (bound < moved).float().mean() > 0.9


def _params(dtype=torch.float64):
    torch.manual_seed(5)
    return [nn.Parameter(torch.randn(s, dtype=dtype)) for s in [(4, 3), (7,)]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_correction_and_second_moment_equal_the_formula(backend):
    # Through the optimizer: set_second_moment + set_correction, then 3 steps; compared with the
    # reference formula in float64 driven by hand (w0 = 1 − β2^K for a raw mean after K = 10 steps).
    ps = _params()
    b1, b2, lr, wd, alpha, w0 = 0.9, 0.99, 0.02, 0.1, 0.3, 1 - 0.99**10
    vbar = [torch.rand(p.shape, dtype=torch.float64) * 0.1 for p in ps]
    corr = [torch.randn(p.shape, dtype=torch.float64) for p in ps]
    opt = AdamW(ps, lr=lr, betas=(b1, b2), weight_decay=wd, alpha=alpha)
    opt.set_second_moment(dict(zip(ps, vbar, strict=True)), weight=w0)
    opt.set_correction(dict(zip(ps, corr, strict=True)))
    exp_p = [p.detach().clone() for p in ps]
    exp_m = [torch.zeros_like(p) for p in exp_p]
    exp_v = [v.clone() for v in vbar]
    with kernels.use_backend(backend):
        for t in range(1, 4):
            grads = [torch.randn(p.shape, dtype=torch.float64) for p in ps]
            for p, g in zip(ps, grads, strict=True):
                p.grad = g
            opt.step()
            reference(exp_p, grads, exp_m, exp_v, None, corr, lr=lr, beta1=b1, beta2=b2, eps=1e-8,
                      weight_decay=wd, step=float(t), alpha=alpha, v0_weight=w0)
    for p, e in zip(ps, exp_p, strict=True):
        torch.testing.assert_close(p.detach(), e, rtol=1e-13, atol=1e-14)
    assert opt.state[ps[0]]["v0_weight"] == pytest.approx(w0)
    # clearing the correction changes the next step
    opt.set_correction({ps[0]: None})
    assert "correction" not in opt.state[ps[0]]


def test_zero_grad_params_are_skipped():
    ps = _params(torch.float32)
    before = ps[1].detach().clone()
    opt = AdamW(ps, lr=0.1)
    ps[0].grad = torch.randn(ps[0].shape)
    opt.step()
    assert torch.equal(ps[1].detach(), before) and len(opt.state[ps[1]]) == 0
    assert float(opt.state[ps[0]]["step"]) == 1.0


def _continue(model, opt, steps=5):
    train(model, opt, steps, seed=7)
    return model


def test_state_dict_ours_to_ours():
    a = mlp()
    opt_a = AdamW(a.parameters(), lr=1e-2, amsgrad=True)
    train(a, opt_a, 5)
    b = copy.deepcopy(a)
    opt_b = AdamW(b.parameters(), lr=1e-2, amsgrad=True)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    _continue(a, opt_a)
    _continue(b, opt_b)
    assert max_param_diff(a, b) == 0.0


def test_state_dict_torch_to_ours_and_ours_to_torch():
    a, b = mlp(), mlp()
    opt_t = torch.optim.AdamW(a.parameters(), lr=1e-2)
    train(a, opt_t, 5)
    b.load_state_dict(a.state_dict())
    opt_o = AdamW(b.parameters(), lr=1e-2)
    opt_o.load_state_dict(copy.deepcopy(opt_t.state_dict()))  # torch -> ours
    state = opt_o.state[next(b.parameters())]
    assert state["step"].dtype == torch.float32 and float(state["step"]) == 5.0
    _continue(a, opt_t)
    _continue(b, opt_o)
    assert max_param_diff(a, b) <= 1e-6
    c = copy.deepcopy(b)
    opt_t2 = torch.optim.AdamW(c.parameters(), lr=1e-2)
    opt_t2.load_state_dict(copy.deepcopy(opt_o.state_dict()))  # ours -> torch
    _continue(b, opt_o)
    _continue(c, opt_t2)
    assert max_param_diff(b, c) <= 1e-6


def test_bf16_state_stays_fp32_through_load_state_dict():
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(9).to(torch.bfloat16))
    opt = AdamW([p], lr=0.1)
    p.grad = torch.randn(9).to(torch.bfloat16)
    opt.step()
    saved = copy.deepcopy(opt.state_dict())
    exact = saved["state"][0]["exp_avg_sq"].clone()
    q = nn.Parameter(p.detach().clone())
    opt2 = AdamW([q], lr=0.1)
    opt2.load_state_dict(saved)
    assert opt2.state[q]["exp_avg_sq"].dtype == torch.float32
    assert torch.equal(opt2.state[q]["exp_avg_sq"], exact)  # not rounded through bf16
    # a state_dict saved by torch for bf16 params (bf16 state) loads as float32 too
    r = nn.Parameter(p.detach().clone())
    opt_t = torch.optim.AdamW([r], lr=0.1)
    r.grad = p.grad.clone()
    opt_t.step()
    opt3 = AdamW([nn.Parameter(r.detach().clone())], lr=0.1)
    opt3.load_state_dict(opt_t.state_dict())
    (state,) = opt3.state.values()
    assert state["exp_avg"].dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": -1.0}, "lr must be >= 0"),
        ({"betas": (1.0, 0.999)}, r"beta1 must be in \[0, 1\)"),
        ({"betas": (0.9, -0.5)}, r"beta2 must be in \[0, 1\)"),
        ({"betas": (0.9,)}, "betas must be a pair"),
        ({"eps": -1e-8}, "eps must be >= 0"),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ({"alpha": math.inf}, "alpha must be a finite number"),
        ({"capturable": True}, "does not support capturable=True"),
        ({"differentiable": True}, "does not support differentiable=True"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdamW(_params(), **kwargs)


def test_torch_keywords_foreach_and_fused_are_accepted():
    # Code written for torch.optim.AdamW passes these; every step here is fused already.
    params = _params()
    for p in params:
        p.grad = torch.randn_like(p)
    for kwargs in ({"foreach": True}, {"fused": True}, {"foreach": False, "fused": None}):
        AdamW(params, lr=0.1, **kwargs).step()


def test_bad_param_group_is_not_added():
    opt = AdamW(_params()[:1], lr=0.1)
    with pytest.raises(ValueError, match=r"lr must be >= 0 \(param group 1\)"):
        opt.add_param_group({"params": _params()[1:], "lr": -1.0})
    assert len(opt.param_groups) == 1


def test_check_finite_and_bad_extras():
    ps = _params(torch.float32)
    opt = AdamW(ps, lr=0.1, check_finite=True)
    ps[0].grad = torch.full(ps[0].shape, float("nan"))
    with pytest.raises(ValueError, match="NaN or Inf"):
        opt.step()
    with pytest.raises(ValueError, match="parameter's shape"):
        opt.set_correction({ps[0]: torch.zeros(2)})
    with pytest.raises(ValueError, match=r"v0_weight must be in \[0, 1\]"):
        opt.set_second_moment({ps[0]: torch.zeros(ps[0].shape)}, weight=2.0)
    with pytest.raises(ValueError, match=">= 0 everywhere"):
        opt.set_second_moment({ps[0]: -torch.ones(ps[0].shape)})
    with pytest.raises(ValueError, match="not a parameter of this optimizer"):
        opt.set_correction({nn.Parameter(torch.zeros(3)): torch.zeros(3)})


def test_non_contiguous_param():
    base = torch.randn(6, 4)
    p = nn.Parameter(base.t())  # (4, 6), not contiguous
    q = nn.Parameter(base.t().contiguous())
    assert not p.is_contiguous()
    g = torch.randn(4, 6)
    p.grad, q.grad = g.clone(), g.clone()
    AdamW([p], lr=0.1).step()
    torch.optim.AdamW([q], lr=0.1).step()
    torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-7)
