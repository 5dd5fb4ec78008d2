"""Multi-tensor AdamW step in Triton: one launch for a whole list of tensors.

Semantics are those of ``kernels.reference.adamw_step`` (torch.optim.AdamW's order of operations).
The op layer passes the tables of ``kernels._multi_tensor``: a pointer table (6, n) — params, grads,
exp_avgs, exp_avg_sqs, max_exp_avg_sqs, corrections — a chunk table (2, C) and the numels (n,).
Program c handles chunk c: CHUNK elements of one tensor, BLOCK at a time. Every pointer is read from
the table and cast to the element type, which also works under the interpreter.

The scalars (1 − lr·wd, lr/bc1, √bc2, ...) are formed in double precision on the host and read from a
small float64 tensor; the kernel rounds each once to the compute type, as torch does.
"""

import torch
import triton
import triton.language as tl

from kernels.backend import triton_interpreting

_TL_DTYPES = {
    torch.float32: tl.float32,
    torch.float64: tl.float64,
    torch.float16: tl.float16,
    torch.bfloat16: tl.bfloat16,
}


def chunk_size() -> int:
    """Elements per chunk of the chunk table (small under the interpreter, so tests cover many chunks)."""
    return 1024 if triton_interpreting() else 16384


def block_size() -> int:
    return 512 if triton_interpreting() else 1024


@triton.jit
def _adamw_step_kernel(
    pointers,
    chunks,
    numels,
    n,
    n_chunks,
    scalars,
    P_DTYPE: tl.constexpr,
    S_DTYPE: tl.constexpr,
    AMSGRAD: tl.constexpr,
    HAS_CORRECTION: tl.constexpr,
    LERP_SMALL: tl.constexpr,
    IS_F64: tl.constexpr,
    CHUNK: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    t = tl.load(chunks + pid)
    start = tl.load(chunks + n_chunks + pid)
    end = tl.minimum(start + CHUNK, tl.load(numels + t))
    p_ptr = tl.load(pointers + t).to(tl.pointer_type(P_DTYPE))
    g_ptr = tl.load(pointers + n + t).to(tl.pointer_type(P_DTYPE))
    m_ptr = tl.load(pointers + 2 * n + t).to(tl.pointer_type(S_DTYPE))
    v_ptr = tl.load(pointers + 3 * n + t).to(tl.pointer_type(S_DTYPE))

    decay = tl.load(scalars + 0).to(S_DTYPE)
    w = tl.load(scalars + 1).to(S_DTYPE)
    omw = 1.0 - w  # torch's lerp forms 1 - weight in the compute type
    beta2 = tl.load(scalars + 2).to(S_DTYPE)
    omb2 = tl.load(scalars + 3).to(S_DTYPE)
    neg_step = tl.load(scalars + 4).to(S_DTYPE)
    bc2_sqrt = tl.load(scalars + 5).to(S_DTYPE)
    eps = tl.load(scalars + 6).to(S_DTYPE)
    neg_lr_alpha = tl.load(scalars + 7).to(S_DTYPE)
    gsign = tl.load(scalars + 8).to(S_DTYPE)

    for k in range(0, CHUNK, BLOCK):
        offs = start + k + tl.arange(0, BLOCK)
        mask = offs < end
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(S_DTYPE) * gsign
        p = tl.load(p_ptr + offs, mask=mask, other=0.0).to(S_DTYPE) * decay
        m = tl.load(m_ptr + offs, mask=mask, other=0.0)
        v = tl.load(v_ptr + offs, mask=mask, other=0.0)
        diff = g - m
        if LERP_SMALL:  # noqa: SIM108 - a constexpr branch (torch's two forms of lerp)
            m = m + w * diff
        else:
            m = g - diff * omw
        v = v * beta2
        v = v + omb2 * g * g
        tl.store(m_ptr + offs, m, mask=mask)
        tl.store(v_ptr + offs, v, mask=mask)
        second = v
        if AMSGRAD:
            vmax_ptr = tl.load(pointers + 4 * n + t).to(tl.pointer_type(S_DTYPE))
            vmax = tl.load(vmax_ptr + offs, mask=mask, other=0.0)
            second = tl.maximum(vmax, v)
            tl.store(vmax_ptr + offs, second, mask=mask)
        if IS_F64:  # noqa: SIM108 - a constexpr branch: only one sqrt is compiled
            root = tl.sqrt(second)
        else:
            root = tl.sqrt_rn(second)  # correctly rounded, as torch's sqrt (tl.sqrt may be approximate)
        denom = root / bc2_sqrt + eps
        p = p + neg_step * m / denom
        if HAS_CORRECTION:
            c_ptr = tl.load(pointers + 5 * n + t).to(tl.pointer_type(S_DTYPE))
            c = tl.load(c_ptr + offs, mask=mask, other=0.0)
            p = p + neg_lr_alpha * c
        tl.store(p_ptr + offs, p.to(P_DTYPE), mask=mask)


def adamw_step(
    pointers: torch.Tensor,
    chunks: torch.Tensor,
    numels: torch.Tensor,
    *,
    param_dtype: torch.dtype,
    state_dtype: torch.dtype,
    amsgrad: bool,
    has_correction: bool,
    scalars: dict[str, float],
) -> None:
    """Launch the kernel over the tables (built with ``chunk_size()``); returns without synchronizing."""
    n = pointers.shape[1]
    n_chunks = chunks.shape[1]
    if n == 0 or n_chunks == 0:
        return
    s = scalars
    # Double-precision scalars from a small device tensor: scalar kernel arguments would be rounded to
    # float32 under the interpreter, and the kernel rounds each one once to the compute type anyway.
    values = torch.tensor(
        [
            1.0 - s["lr"] * s["weight_decay"],
            1.0 - s["beta1"],
            s["beta2"],
            1.0 - s["beta2"],
            -(s["lr"] / s["bc1"]),
            s["bc2"] ** 0.5,
            s["eps"],
            -(s["lr"] * s["alpha"]),
            -1.0 if s["maximize"] else 1.0,
        ],
        dtype=torch.float64,
    ).to(pointers.device, non_blocking=True)
    _adamw_step_kernel[(n_chunks,)](
        pointers,
        chunks,
        numels,
        n,
        n_chunks,
        values,
        P_DTYPE=_TL_DTYPES[param_dtype],
        S_DTYPE=_TL_DTYPES[state_dtype],
        AMSGRAD=amsgrad,
        HAS_CORRECTION=has_correction,
        LERP_SMALL=abs(1.0 - s["beta1"]) < 0.5,
        IS_F64=state_dtype == torch.float64,
        CHUNK=chunk_size(),
        BLOCK=block_size(),
    )
