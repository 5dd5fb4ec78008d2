"""``python -m kernels demo`` (make demo): every backend of every op here, timed beside its anchor.

Each section prints, per backend available on this machine: the median time, the speedup over the
anchor (the torch code a user would otherwise write) and the error against the reference backend.
Triton without a GPU runs in its interpreter (numpy): correct and far slower, so it gets tiny inputs.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch

import kernels
import kernels.optim

ROW = "{:38s} {:>9s} {:>12s} {:>10s} {:>11s}"


def _median_ms(fn: Callable[[], object], rounds: int, device: torch.device) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def _interpreted(backend_name: str, device: torch.device) -> bool:
    return backend_name == "triton" and device.type == "cpu"


def _print_row(label: str, backend_name: str, ms: float, anchor_ms: float, err: float) -> None:
    print(ROW.format(label, backend_name, f"{ms:.2f}", f"{anchor_ms / ms:.2f}x", f"{err:.2e}"))


def _header(title: str) -> None:
    print(f"\n{title}")
    print(ROW.format("case", "backend", "ms (median)", "vs anchor", "rel. error"))


def newton_schulz(device: torch.device) -> None:
    from kernels.reference import newton_schulz as reference

    _header(f"newton_schulz (5 steps, quintic) on {device}; anchor = per-layer loop of plain torch NS5")
    # Same-shape layers go in one batched call, as kernels.optim.Muon groups them.
    groups = {
        "resnet18 conv 3x3 64->64 (x4)": (4, 64, 576),
        "resnet18 conv 3x3 128->128 (x3)": (3, 128, 1152),
        "vit-tiny qkv (x12)": (12, 576, 192),
        "vit-tiny mlp fc1 (x12)": (12, 768, 192),
    }
    small = {"small batch (2, 32, 48)": (2, 32, 48)}
    for backend_name in kernels.available_backends("newton_schulz", device):
        interpreted = _interpreted(backend_name, device)
        rounds = 1 if interpreted else 3
        for label, shape in (small if interpreted else groups).items():
            G = torch.randn(*shape, device=device, dtype=torch.float32)
            expected = reference(G)
            anchor_ms = _median_ms(lambda G=G: [reference(layer) for layer in G], rounds, device)
            with kernels.use_backend(backend_name):
                out = kernels.newton_schulz(G)
                ms = _median_ms(lambda G=G: kernels.newton_schulz(G), rounds, device)
            err = ((out - expected).abs().max() / expected.abs().max()).item()
            _print_row(label, backend_name, ms, anchor_ms, err)


def resnet18_shapes() -> list[tuple[int, ...]]:
    """torchvision resnet18: conv1, bn1, 4 stages of 2 BasicBlocks (conv-bn-conv-bn, downsample), fc."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            c_in = cin if block == 0 else cout
            shapes += [(cout, c_in, 3, 3), (cout,), (cout,), (cout, cout, 3, 3), (cout,), (cout,)]
            if block == 0 and (stride != 1 or c_in != cout):
                shapes += [(cout, c_in, 1, 1), (cout,), (cout,)]
        cin = cout
    return shapes + [(1000, 512), (1000,)]


def vit_s16_shapes() -> list[tuple[int, ...]]:
    """ViT-S/16 (timm vit_small_patch16_224): width 384, 12 blocks, 6 heads, MLP 1536, 1000 classes."""
    d, mlp = 384, 1536
    shapes: list[tuple[int, ...]] = [(1, 1, d), (1, 197, d), (d, 3, 16, 16), (d,)]
    for _ in range(12):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,)]  # norm1, qkv, proj
        shapes += [(d,), (d,), (mlp, d), (mlp,), (d, mlp), (d,)]  # norm2, fc1, fc2
    return shapes + [(d,), (d,), (1000, d), (1000,)]


def adamw_step(device: torch.device) -> None:
    _header(f"kernels.optim.AdamW step on {device}; anchor = torch.optim.AdamW(fused=True), same start")
    for backend_name in kernels.available_backends("adamw_step", device):
        interpreted = _interpreted(backend_name, device)
        shapes = [(7,), (33, 5), (4, 3, 3, 3)] if interpreted else resnet18_shapes()
        rounds = 2 if interpreted or backend_name == "reference" else 7
        start = [torch.randn(s, device=device) for s in shapes]
        grads = [torch.randn_like(p) for p in start]

        def make(cls, start=start, grads=grads, **kw):
            params = [torch.nn.Parameter(p.clone()) for p in start]
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            return params, cls(params, lr=1e-3, weight_decay=1e-2, **kw)

        theirs, anchor = make(torch.optim.AdamW, fused=True)
        ours, opt = make(kernels.optim.AdamW)
        with kernels.use_backend(backend_name):
            for _ in range(3):  # the same three steps from the same start
                opt.step()
                anchor.step()
            err = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(ours, theirs, strict=True))
            ms = _median_ms(opt.step, rounds, device)
        anchor_ms = _median_ms(anchor.step, rounds, device)
        name = "tiny" if interpreted else "resnet18"
        label = f"{name}: {sum(p.numel() for p in ours):,} fp32 in {len(ours)} tensors"
        _print_row(label, backend_name, ms, anchor_ms, err)


def aggregate(device: torch.device) -> None:
    _header(f"aggregate (weighted mean of S clients) on {device}; anchor = (torch.stack(clients) * w).sum(0)")
    for backend_name in kernels.available_backends("aggregate", device):
        interpreted = _interpreted(backend_name, device)
        clients, numel, rounds = (4, 10_000, 2) if interpreted else (10, 2_000_000, 5)
        xs = [torch.randn(numel, device=device) for _ in range(clients)]
        w = torch.rand(clients, device=device) + 0.5
        w_norm = (w / w.sum())[:, None]
        expected = (torch.stack(xs).double() * w_norm.double()).sum(0)
        anchor_ms = _median_ms(lambda xs=xs, w_norm=w_norm: (torch.stack(xs) * w_norm).sum(0), rounds, device)
        with kernels.use_backend(backend_name):
            out = kernels.aggregate(xs, w)
            ms = _median_ms(lambda xs=xs, w=w: kernels.aggregate(xs, w), rounds, device)
        err = ((out.double() - expected).abs().max() / expected.abs().max()).item()
        _print_row(f"S={clients} x {numel / 1e6:g}M fp32", backend_name, ms, anchor_ms, err)


def clip_and_noise(device: torch.device) -> None:
    _header(
        f"clip_and_noise (clip to ||u|| <= C, add N(0, s^2) from Philox) on {device}; "
        "anchor = vector_norm, mul, randn, add"
    )
    max_norm, noise_std, seed = 1.0, 0.01, 2026
    for backend_name in kernels.available_backends("clip_and_noise", device):
        interpreted = _interpreted(backend_name, device)
        numel = 20_000 if interpreted else 11_000_000
        rounds = 1 if interpreted or backend_name == "reference" else 5
        u = torch.randn(numel, device=device)

        def anchor(u=u):
            norm = torch.linalg.vector_norm(u)
            return u * torch.clamp(max_norm / norm, max=1.0) + noise_std * torch.randn_like(u)

        with kernels.use_backend("reference"):
            expected, _ = kernels.clip_and_noise(u, max_norm, noise_std, seed)
        anchor_ms = _median_ms(anchor, rounds, device)
        with kernels.use_backend(backend_name):
            out, norm = kernels.clip_and_noise(u, max_norm, noise_std, seed)
            ms = _median_ms(lambda u=u: kernels.clip_and_noise(u, max_norm, noise_std, seed), rounds, device)
        # Same (seed, offset) -> the same Philox noise on every backend, up to float rounding.
        err = ((out - expected).abs().max() / expected.abs().max()).item()
        label = f"{numel / 1e6:g}M fp32, ||u|| = {norm.item():.0f}"
        _print_row(label, backend_name, ms, anchor_ms, err)


def hash_grid_encode(device: torch.device) -> None:
    _header(
        f"hash_grid_encode (d=3, L=16, F=2, T=2^19) forward + backward on {device}; "
        "anchor = the pure-torch reference"
    )
    config = dict(n_levels=16, base_resolution=16, per_level_scale=1.5)
    for backend_name in kernels.available_backends("hash_grid_encode", device):
        interpreted = _interpreted(backend_name, device)
        points = 64 if interpreted else 1 << 16
        x = torch.rand(points, 3, device=device)
        table = ((torch.rand(16, 1 << 19, 2, device=device) - 0.5) * 2e-4).requires_grad_(True)

        def step(x=x, table=table):
            out = kernels.hash_grid_encode(x, table, **config)
            (grad,) = torch.autograd.grad(out, table, torch.ones_like(out))
            return out, grad

        with kernels.use_backend("reference"):
            expected, expected_grad = step()
            anchor_ms = _median_ms(step, 1 if interpreted else 3, device)
        with kernels.use_backend(backend_name):
            out, grad = step()
            ms = _median_ms(step, 1 if interpreted else 3, device)
        err = max(((out - expected).abs().max() / expected.abs().max()).item(),
                  ((grad - expected_grad).abs().max() / expected_grad.abs().max()).item())
        _print_row(f"{points:,} points", backend_name, ms, anchor_ms, err)


def nufft(device: torch.device) -> None:
    try:
        import finufft
    except ImportError:
        finufft = None
    anchor_name = "finufft (same threads)" if finufft is not None and device.type == "cpu" else "reference"
    _header(f"nufft2d type 2 + type 1, tol 1e-6 on {device}; anchor = {anchor_name}")
    n, coils, spokes, readout = 128, 4, 100, 256
    angles = torch.arange(spokes, dtype=torch.float64) * math.pi * (math.sqrt(5) - 1) / 2  # golden angle
    radius = torch.linspace(-math.pi, math.pi, readout + 1, dtype=torch.float64)[:-1]
    k = torch.stack([radius[None, :] * angles.cos()[:, None], radius[None, :] * angles.sin()[:, None]], -1)
    k = k.reshape(-1, 2).to(device)
    image = torch.randn(1, coils, n, n, dtype=torch.complex64, device=device)
    samples = torch.randn(1, coils, k.shape[0], dtype=torch.complex64, device=device)

    def ours(image=image, samples=samples):
        return kernels.nufft2d_type2(image, k, tol=1e-6), kernels.nufft2d_type1(samples, k, (n, n), tol=1e-6)

    if anchor_name.startswith("finufft"):
        kx, ky = (k[:, 0].float().numpy().copy(), k[:, 1].float().numpy().copy())  # fp32: complex64
        img, smp = image[0].numpy(), samples[0].numpy()
        threads = torch.get_num_threads()

        def anchor():
            return (finufft.nufft2d2(kx, ky, img, eps=1e-6, nthreads=threads),
                    finufft.nufft2d1(kx, ky, smp, (n, n), eps=1e-6, nthreads=threads))
    else:
        def anchor():
            with kernels.use_backend("reference"):
                return ours()

    with kernels.use_backend("reference"):
        expected = ours()
    anchor_ms = _median_ms(anchor, 3, device)
    for backend_name in kernels.available_backends("nufft", device):
        if _interpreted(backend_name, device):
            continue  # the interpreter would take minutes at this size; tests cover it on tiny inputs
        with kernels.use_backend(backend_name):
            out = ours()
            ms = _median_ms(ours, 3, device)
        err = max(((o - e).abs().max() / e.abs().max()).item() for o, e in zip(out, expected, strict=True))
        _print_row(f"{n}², {coils} coils, {spokes}x{readout} radial", backend_name, ms, anchor_ms, err)


def rotate_filter_bank(device: torch.device) -> None:
    try:
        from e2cnn import gspaces
        from e2cnn import nn as enn
    except ImportError:
        enn = None
    anchor_name = "e2cnn R2Conv.expand_parameters" if enn is not None else "reference"
    _header(f"rotate_filter_bank (C8, 8->8 fields, k=5) fwd + bwd on {device}; anchor = {anchor_name}")
    from kernels.nn.group_basis import make_basis

    basis = make_basis("bconv", 5, 8, device=device)
    coeffs = torch.randn(8, 8, 8, 25, device=device, requires_grad=True)
    grad_w = torch.randn(64, 64, 5, 5, device=device)  # stands in for conv2d's weight gradient

    def ours():
        w = kernels.rotate_filter_bank(coeffs, basis, 8)
        (grad,) = torch.autograd.grad(w, coeffs, grad_w)
        return w, grad

    if enn is not None:
        gs = gspaces.Rot2dOnR2(8)
        ft = enn.FieldType(gs, 8 * [gs.regular_repr])
        conv = enn.R2Conv(ft, ft, kernel_size=5, padding=2).to(device)

        def anchor():
            w = conv.expand_parameters()[0]
            return torch.autograd.grad(w, conv.weights, grad_w)[0]
    else:
        def anchor():
            with kernels.use_backend("reference"):
                return ours()

    anchor_ms = _median_ms(anchor, 20, device)
    with kernels.use_backend("reference"):
        expected, expected_grad = ours()
    for backend_name in kernels.available_backends("rotate_filter_bank", device):
        if _interpreted(backend_name, device):
            continue  # ~9 s per call in the interpreter at this size; tests cover it on tiny banks
        with kernels.use_backend(backend_name):
            w, grad = ours()
            ms = _median_ms(ours, 20, device)
        err = max(((w - expected).abs().max() / expected.abs().max()).item(),
                  ((grad - expected_grad).abs().max() / expected_grad.abs().max()).item())
        _print_row("64x64x5x5 bank, B=25", backend_name, ms, anchor_ms, err)


SECTIONS = (newton_schulz, adamw_step, aggregate, clip_and_noise, hash_grid_encode, nufft, rotate_filter_bank)


def run(device: torch.device) -> None:
    kernels.info()
    torch.manual_seed(0)
    for section in SECTIONS:
        section(device)
