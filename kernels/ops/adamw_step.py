r"""``kernels.adamw_step``: the fused multi-tensor AdamW step that FedAdamW runs on every local step.

Backends: reference (torch, one tensor at a time), cpu (kernels._C: one OpenMP region over chunks of
every tensor), triton and cuda (one launch per (device, dtype) group, reading the pointer and chunk
tables of kernels/_multi_tensor.py). Default choice:

- CPU tensors: ``cpu``. Measured with benchmarks/bench_adamw_step.py (AMD EPYC, 2 cores shared with
  two other jobs, fp32, median of one step, 2026-11-29): ResNet-18 (11.7M) fused 6.54 ms, foreach
  20.97 ms, kernels.adamw_step 6.52 ms (1.00x fused, 3.2x foreach), kernels.optim.AdamW 7.16 ms;
  ViT-S/16 (22.1M) fused 12.23 ms, foreach 65.13 ms, op 12.57 ms (0.97x), optim 13.71 ms. The step
  moves 28 bytes per parameter, so at ~50 GB/s both fused kernels sit at this machine's memory
  bandwidth; the reference (a per-tensor torch loop) is the slowest and would be the worse default.
- CUDA tensors: ``cuda``, then ``triton`` — provisional, until benchmarks/gpu/run_all.sh has run on a
  GPU. The two kernels do the same memory-bound work in one launch; the CUDA one is compiled ahead
  of time, so a step pays no JIT compilation and less Python launch overhead than Triton's launcher,
  which matters for an optimizer step over a small model.

FedAdamW's two additions to AdamW, and how ours relates to the authors' code
(github.com/junkangLiu0/FedAdamW, read, not copied): clients run AdamW locally, the server averages the
clients' second moments and sends the average back with a correction direction that aligns local and
global updates. Here both are plain arguments of the step, so any aggregation rule can feed them:

1. ``corrections`` c with weight ``alpha``: added to the Adam direction before the learning-rate step,
   ``p ← p − lr·(Adam direction + alpha·c)``.
2. Starting from a given second moment v̄ instead of zeros. If v₀ = v̄ then after t steps
   ``v_t = β2^t·v̄ + (1 − β2)·Σ_{k=1..t} β2^{t−k}·g_k²``. The weights of the g_k² sum to 1 − β2^t, and if
   v̄ itself is an average with total weight w0 (``v0_weight``), the weights in v_t sum to
   ``β2^t·w0 + 1 − β2^t = 1 − β2^t·(1 − w0)``. Dividing by that total is the unbiased estimate, so
   ``bc2 = 1 − β2^t·(1 − w0)``: w0 = 0 for zeros (standard AdamW), w0 = 1 for an already debiased v̄
   (bc2 = 1, no correction), w0 = 1 − β2^K for the raw mean of clients' v after K local steps from
   zeros. The first moment restarts from zeros, so bc1 = 1 − β1^t is unchanged.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import _get_current_dispatch_mode

from kernels import backend, nvtx
from kernels._ext import _C, DTYPE_CODES, _cuda
from kernels._multi_tensor import chunk_table, group_by, numel_table, pointer_table
from kernels.reference.adamw_step import adamw_step as reference_adamw_step
from kernels.reference.adamw_step import bias_corrections

OP = "adamw_step"

backend.define_op(OP, preference={"cpu": ("cpu",), "cuda": ("cuda", "triton")})
_triton_unavailable = backend.triton_module_unavailable("kernels.triton.adamw_step")

TensorList = Sequence[Tensor]


def state_dtype_for(param_dtype: torch.dtype) -> torch.dtype:
    """The dtype of the optimizer state for a parameter dtype: float64 for float64, else float32."""
    return torch.float64 if param_dtype == torch.float64 else torch.float32


def adamw_step(
    params: TensorList | Tensor,
    grads: TensorList | Tensor,
    exp_avgs: TensorList | Tensor,
    exp_avg_sqs: TensorList | Tensor,
    *,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    step: float,
    amsgrad: bool = False,
    max_exp_avg_sqs: TensorList | Tensor | None = None,
    maximize: bool = False,
    corrections: TensorList | Tensor | None = None,
    alpha: float = 0.0,
    v0_weight: float = 0.0,
    check_finite: bool = False,
) -> None:
    r"""One AdamW step, in place, over lists of tensors (a single tensor counts as a list of one).

    For every i, ``params[i]`` and the state tensors ``exp_avgs[i]`` (m), ``exp_avg_sqs[i]`` (v),
    ``max_exp_avg_sqs[i]`` (v_max, amsgrad only) are updated from ``grads[i]`` (g) as
    ``torch.optim.AdamW`` does, with t = ``step``, w0 = ``v0_weight`` and c = ``corrections[i]``::

        g ← −g if maximize;  p ← p·(1 − lr·wd);  m ← m + (1 − β1)(g − m);  v ← β2·v + (1 − β2)·g²
        v̂ = v_max ← max(v_max, v) if amsgrad else v
        bc1 = 1 − β1^t;  bc2 = 1 − β2^t·(1 − w0)
        p ← p − lr·( (m / bc1) / (√v̂ / √bc2 + eps) + alpha·c )

    With w0 = 0 and no correction this is exactly AdamW; see the module docstring for why
    bc2 = 1 − β2^t·(1 − w0) is the right bias correction when v starts at an aggregated v̄.

    Args:
        params: tensors of any shape, float32, float64, float16 or bfloat16 (dtypes may be mixed).
        grads: one per param, same shape, dtype and device.
        exp_avgs, exp_avg_sqs: state, same shapes; float64 for float64 params, float32 otherwise
            (16-bit params keep float32 state and are rounded once per step).
        lr: learning rate (>= 0). beta1, beta2: in [0, 1). eps, weight_decay: >= 0.
        step: the step count t after this update (>= 1), as in torch's ``state["step"]``.
        amsgrad: keep the running maximum ``max_exp_avg_sqs`` (required then, state dtype).
        maximize: ascend instead of descend.
        corrections: optional list of correction directions c (state dtype), weighted by ``alpha``.
        v0_weight: w0 in [0, 1], the total weight carried by the initial second moment.
        check_finite: raise ValueError naming the first grad with NaN/Inf (one device sync).

    All tensors must be contiguous. One kernel launch per (device, param dtype) group. Backends:
    reference, cpu, triton, cuda — see ``kernels.available_backends("adamw_step")``. Not differentiable.
    """
    params = _as_list(params, "params")
    grads = _as_list(grads, "grads")
    exp_avgs = _as_list(exp_avgs, "exp_avgs")
    exp_avg_sqs = _as_list(exp_avg_sqs, "exp_avg_sqs")
    max_list = None if max_exp_avg_sqs is None else _as_list(max_exp_avg_sqs, "max_exp_avg_sqs")
    corr_list = None if corrections is None else _as_list(corrections, "corrections")
    hp = check_hyperparameters(
        lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, step=step, alpha=alpha,
        v0_weight=v0_weight,
    )
    if amsgrad and max_list is None:
        raise ValueError("max_exp_avg_sqs is required when amsgrad=True (one state tensor per param)")
    if not amsgrad and max_list is not None:
        raise ValueError("max_exp_avg_sqs was given but amsgrad=False; pass amsgrad=True to use it")
    _check_tensors(params, grads, exp_avgs, exp_avg_sqs, max_list, corr_list)
    if check_finite:
        _check_finite(grads)
    if not params:
        return
    args = (
        params, grads, exp_avgs, exp_avg_sqs, max_list or [], corr_list or [], hp["lr"], hp["beta1"],
        hp["beta2"], hp["eps"], hp["weight_decay"], hp["step"], bool(maximize), hp["alpha"], hp["v0_weight"],
    )
    with torch.no_grad():
        if _plain_eager_call(params, grads, exp_avgs, exp_avg_sqs, max_list, corr_list):
            # Same kernels, minus the Python custom-op dispatch (~0.2 ms for 62 tensors: more than the
            # GPU kernel of a ResNet-18 step). The version counters are bumped as the op would.
            _run_step(*args)
            torch._C._increment_version([*params, *exp_avgs, *exp_avg_sqs, *(max_list or [])])
        else:
            torch.ops.pykernels.adamw_step(*args)


_PLAIN_TYPES = (Tensor, torch.nn.Parameter)


def _plain_eager_call(*lists: list[Tensor] | None) -> bool:
    """True when nothing needs the registered op's dispatch: no torch.compile / export tracing, no
    dispatch mode (fake tensors, functionalization), no functorch transform, only plain tensors."""
    if torch.compiler.is_compiling() or _get_current_dispatch_mode() is not None:
        return False
    if torch._C._are_functorch_transforms_active():
        return False
    return all(type(t) in _PLAIN_TYPES for lst in lists if lst is not None for t in lst)


def _as_list(x: Any, name: str) -> list[Tensor]:
    if isinstance(x, Tensor):
        return [x]
    if not isinstance(x, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of tensors (or one tensor), got {type(x).__name__}")
    for i, t in enumerate(x):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}[{i}] must be a torch.Tensor, got {type(t).__name__}")
    return list(x)


def _real(name: str, value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number{where}, got {value!r}")
    return float(value)


def check_hyperparameters(*, where: str = "", **values: Any) -> dict[str, float]:
    """Validate AdamW scalars by name (any subset of lr, beta1, beta2, eps, weight_decay, step, alpha,
    v0_weight); return them as floats. ``where`` is appended to messages (e.g. " (param group 1)")."""
    out: dict[str, float] = {}
    for name, value in values.items():
        v = _real(name, value, where)
        if name in ("lr", "eps", "weight_decay") and v < 0:
            raise ValueError(f"{name} must be >= 0{where}, got {value!r}")
        if name in ("beta1", "beta2") and not 0.0 <= v < 1.0:
            raise ValueError(f"{name} must be in [0, 1){where}, got {value!r}")
        if name == "step" and v < 1:
            raise ValueError(f"step must be >= 1 (the step count after this update){where}, got {value!r}")
        if name == "v0_weight" and not 0.0 <= v <= 1.0:
            raise ValueError(f"v0_weight must be in [0, 1]{where}, got {value!r}")
        out[name] = v
    return out


def _check_tensors(params, grads, exp_avgs, exp_avg_sqs, max_list, corr_list) -> None:
    n = len(params)
    named = [("grads", grads), ("exp_avgs", exp_avgs), ("exp_avg_sqs", exp_avg_sqs)]
    if max_list is not None:
        named.append(("max_exp_avg_sqs", max_list))
    if corr_list is not None:
        named.append(("corrections", corr_list))
    for name, lst in named:
        if len(lst) != n:
            raise ValueError(f"{name} has {len(lst)} tensors but params has {n}: give one per param")
    # This runs on every optimizer step: one cheap combined test per tensor, and the message (which
    # says exactly what is wrong) is only worked out for a tensor that fails it.
    strided = torch.strided
    for i, p in enumerate(params):
        dtype, shape, device = p.dtype, p.shape, p.device
        if dtype not in DTYPE_CODES or p.layout != strided or not p.is_contiguous():
            _explain(i, p, "params", p, dtype)
        sdt = state_dtype_for(dtype)
        for name, lst in named:
            t = lst[i]
            want = dtype if name == "grads" else sdt
            if (t.dtype != want or t.layout != strided or t.shape != shape or t.device != device
                    or not t.is_contiguous()):
                _explain(i, p, name, t, want)


def _explain(i: int, p: Tensor, name: str, t: Tensor, want: torch.dtype) -> None:
    """Raise the error that says why ``name[i]`` (``t``) does not fit ``params[i]`` (``p``)."""
    if p.dtype not in DTYPE_CODES:
        raise TypeError(f"params[{i}] must have dtype float32, float64, float16 or bfloat16, got {p.dtype}")
    if t.dtype != want:
        raise TypeError(f"{name}[{i}] must have dtype {want} (params[{i}] is {p.dtype}), got {t.dtype}")
    if t.layout != torch.strided:
        raise ValueError(f"{name}[{i}] must be a dense (strided) tensor, got layout {t.layout}")
    if t.shape != p.shape:
        raise ValueError(f"{name}[{i}] must have params[{i}]'s shape {tuple(p.shape)}, got {tuple(t.shape)}")
    if t.device != p.device:
        raise ValueError(f"{name}[{i}] is on {t.device} but params[{i}] is on {p.device}")
    raise ValueError(f"{name}[{i}] must be contiguous (call .contiguous() once and keep it)")


def _check_finite(grads: list[Tensor]) -> None:
    if not grads:
        return
    ok = torch.stack([torch.isfinite(g).all().cpu() for g in grads])
    if not bool(ok.all()):
        i = int((~ok).nonzero()[0, 0])
        raise ValueError(f"grads[{i}] contains NaN or Inf values (check_finite=True)")


@torch.library.custom_op(
    "pykernels::adamw_step", mutates_args=("params", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs")
)
def _adamw_step_op(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    max_exp_avg_sqs: list[Tensor],
    corrections: list[Tensor],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: float,
    maximize: bool,
    alpha: float,
    v0_weight: float,
) -> None:
    _run_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, corrections, lr, beta1, beta2, eps,
              weight_decay, step, maximize, alpha, v0_weight)


def _run_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, corrections, lr, beta1, beta2, eps,
              weight_decay, step, maximize, alpha, v0_weight) -> None:
    # max_exp_avg_sqs / corrections are empty lists when absent (the schema has no optional list).
    bc1, bc2 = bias_corrections(beta1, beta2, step, v0_weight)
    scalars = {
        "lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay,
        "bc1": bc1, "bc2": bc2, "alpha": alpha, "maximize": maximize, "step": step, "v0_weight": v0_weight,
    }
    groups = group_by(params, lambda t: (t.device, t.dtype))
    for (device, _dtype), idx in groups.items():

        def pick(lst, idx=idx):  # an empty list (no amsgrad / no correction) becomes None
            return [lst[i] for i in idx] if lst else None

        name, impl = backend.select(OP, device)
        with nvtx.range(f"pykernels.adamw_step[{name}]"):
            impl(pick(params), pick(grads), pick(exp_avgs), pick(exp_avg_sqs), pick(max_exp_avg_sqs),
                 pick(corrections), scalars)


@_adamw_step_op.register_fake
def _(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, corrections, lr, beta1, beta2, eps,
      weight_decay, step, maximize, alpha, v0_weight) -> None:
    return None


# ---- backends: one (device, param dtype) group of contiguous tensors; each updates in place --------


@backend.register(OP, "reference", devices=("cpu", "cuda"))
def _reference(params, grads, exp_avgs, exp_avg_sqs, max_list, corr_list, s: dict) -> None:
    reference_adamw_step(
        params, grads, exp_avgs, exp_avg_sqs, max_list, corr_list,
        lr=s["lr"], beta1=s["beta1"], beta2=s["beta2"], eps=s["eps"], weight_decay=s["weight_decay"],
        step=s["step"], maximize=s["maximize"], alpha=s["alpha"], v0_weight=s["v0_weight"],
    )


def _ptrs(lst: list[Tensor] | None) -> list[int]:
    return [] if lst is None else [t.data_ptr() for t in lst]


@backend.register(OP, "cpu", devices=("cpu",), unavailable=backend.cpu_ext_unavailable)
def _cpu(params, grads, exp_avgs, exp_avg_sqs, max_list, corr_list, s: dict) -> None:
    _C.adamw_step(
        _ptrs(params), _ptrs(grads), _ptrs(exp_avgs), _ptrs(exp_avg_sqs), _ptrs(max_list), _ptrs(corr_list),
        [t.numel() for t in params], DTYPE_CODES[params[0].dtype], s["lr"], s["beta1"], s["beta2"],
        s["eps"], s["weight_decay"], s["bc1"], s["bc2"], s["alpha"], bool(s["maximize"]),
    )


def _tables(params, grads, exp_avgs, exp_avg_sqs, max_list, corr_list, chunk: int):
    device = params[0].device
    pointers = pointer_table([params, grads, exp_avgs, exp_avg_sqs, max_list, corr_list], device)
    chunks = chunk_table([t.numel() for t in params], chunk, device)
    return pointers, chunks, numel_table(params, device)


@backend.register(OP, "triton", devices=backend.triton_devices, unavailable=_triton_unavailable)
def _triton(params, grads, exp_avgs, exp_avg_sqs, max_list, corr_list, s: dict) -> None:
    from kernels.triton import adamw_step as tr

    pointers, chunks, numels = _tables(
        params, grads, exp_avgs, exp_avg_sqs, max_list, corr_list, tr.chunk_size()
    )
    tr.adamw_step(
        pointers, chunks, numels, param_dtype=params[0].dtype, state_dtype=exp_avgs[0].dtype,
        amsgrad=max_list is not None, has_correction=corr_list is not None, scalars=s,
    )


@backend.register(OP, "cuda", devices=("cuda",), unavailable=backend.cuda_ext_unavailable)
def _cuda_impl(params, grads, exp_avgs, exp_avg_sqs, max_list, corr_list, s: dict) -> None:
    device = params[0].device
    pointers, chunks, numels = _tables(
        params, grads, exp_avgs, exp_avg_sqs, max_list, corr_list, _cuda.adamw_step_chunk
    )
    with torch.cuda.device(device):
        stream = torch.cuda.current_stream(device).cuda_stream
        _cuda.adamw_step(
            pointers.data_ptr(), chunks.data_ptr(), numels.data_ptr(), len(params), chunks.shape[1],
            max_list is not None, corr_list is not None, DTYPE_CODES[params[0].dtype], s["lr"], s["beta1"],
            s["beta2"], s["eps"], s["weight_decay"], s["bc1"], s["bc2"], s["alpha"], bool(s["maximize"]),
            stream,
        )
