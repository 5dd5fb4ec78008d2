"""kernels.nn group convolutions: equivariance, invariance of a pooled net, the eval cache, helpers.

Equivariance error ‖f(R·x) − R·f(x)‖ / ‖f(x)‖ on a disk-masked smooth random image, measured on the
inner disk (away from the zero padding). Quarter turns are exact on the pixel grid (every basis, any N
divisible by 4). Rotations by 45° (N = 8) need an interpolated input: ``rotate_image`` (bicubic
grid_sample), whose own round-trip error is printed as the floor; the numbers of our bases and of
e2cnn's R2Conv at the same N and kernel size are printed by ``test_equivariance_45_degrees`` (run with
-s to see them) and bounded loosely.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F

import kernels
from kernels.nn import (
    GroupBatchNorm,
    GroupConv2d,
    GroupConv2p1d,
    GroupFieldNorm,
    GroupPointwise,
    GroupPool,
    rotate_fields,
)

SIZE = 33  # odd: the rotation centre is a pixel


def smooth_disk_image(batch: int, channels: int, size: int = SIZE, sigma: float = 1.5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, size, size, generator=g, dtype=torch.float64)
    r = torch.arange(-6, 7, dtype=torch.float64)
    blur = torch.exp(-(r**2) / (2 * sigma**2))
    blur = (blur[:, None] * blur[None, :] / blur.sum() ** 2)[None, None].expand(channels, 1, 13, 13)
    x = F.conv2d(x, blur, padding=6, groups=channels)
    return x * disk(size, size / 2 - 3)


def disk(size: int, radius: float) -> torch.Tensor:
    c = (size - 1) / 2
    i = torch.arange(size, dtype=torch.float64) - c
    return ((i[:, None] ** 2 + i[None, :] ** 2) <= radius**2).double()


def rotate_image(x: torch.Tensor, quarter_fraction: float) -> torch.Tensor:
    """Rotate (…, H, W) maps by quarter_fraction · 90° about the centre pixel (bicubic interpolation),
    in the sense of torch.rot90(x, 1, (-2, -1)) (checked by test_rotate_image_direction)."""
    theta = quarter_fraction * math.pi / 2
    shape = x.shape
    flat = x.reshape(-1, 1, *shape[-2:])
    cos, sin = math.cos(theta), math.sin(theta)
    # output pixel (row u, col v) samples the input at R⁻¹(u, v) = (u cos + v sin, −u sin + v cos);
    # grid_sample wants (x = col, y = row) in [-1, 1] (align_corners=True: the centre pixel is 0).
    mat = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype)
    grid = F.affine_grid(mat.expand(flat.shape[0], 2, 3), list(flat.shape), align_corners=True)
    out = F.grid_sample(flat, grid, mode="bicubic", padding_mode="zeros", align_corners=True)
    return out.reshape(shape)


def rotate_group_maps(y: torch.Tensor, N: int, steps: int) -> torch.Tensor:
    """R·y for regular fields (B, F·N, H, W): rotate every map by steps·2π/N and roll orientations."""
    maps = rotate_image(y, 4 * steps / N)
    b, c = y.shape[:2]
    return torch.roll(maps.reshape(b, c // N, N, *y.shape[2:]), steps, dims=2).reshape(y.shape)


def rel_error(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    return ((a - b) * mask).norm().item() / (b * mask).norm().item()


def test_rotate_image_direction():
    x = smooth_disk_image(1, 2)
    torch.testing.assert_close(rotate_image(x, 1.0), torch.rot90(x, 1, (-2, -1)), rtol=0, atol=1e-9)
    torch.testing.assert_close(
        rotate_fields(torch.arange(8.0).reshape(1, 8, 1, 1), 4)[0, :, 0, 0],
        torch.tensor([3.0, 0, 1, 2, 7, 4, 5, 6]),
    )


@pytest.mark.parametrize(
    "basis, N", [("rot90", 4), ("bconv", 4), ("bconv", 8), ("fourier", 8), ("fourier", 16)]
)
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_quarter_turns_are_exact(basis, N, backend):
    if backend not in kernels.available_backends("rotate_filter_bank", "cpu"):
        pytest.skip(f"{backend} backend unavailable")
    lift = GroupConv2d(2, 3, 5, group=N, lifting=True, basis=basis, dtype=torch.float64)
    layer = GroupConv2d(3, 2, 3, group=N, basis=basis, dtype=torch.float64)
    with torch.no_grad():
        lift.bias.normal_()
        layer.bias.normal_()
    x = smooth_disk_image(2, 2)
    with kernels.use_backend(backend):
        f = lambda t: layer(torch.relu(lift(t)))  # noqa: E731
        y = f(x)
        for turns in (1, 2, 3):
            err = (f(torch.rot90(x, turns, (-2, -1))) - rotate_fields(y, N, turns)).norm() / y.norm()
            assert err <= 1e-6, (basis, N, turns, err.item())
    assert y.shape == (2, 2 * N, SIZE, SIZE)


def test_bconv_n4_equals_rot90():
    a = GroupConv2d(2, 3, 5, group=4, basis="bconv")
    b = GroupConv2d(2, 3, 5, group=4, basis="rot90")
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.weight(), b.weight())


def _layer_errors(make, N: int, x: torch.Tensor, steps: int = 1) -> float:
    layer = make()
    layer.eval()
    with torch.no_grad():
        y = layer(x)
        y_rot = layer(rotate_image(x, 4 * steps / N))
    mask = disk(SIZE, SIZE / 2 - 6)
    return rel_error(y_rot, rotate_group_maps(y, N, steps), mask)


def _e2cnn_error(N: int, k: int, x: torch.Tensor) -> float:
    from e2cnn import gspaces
    from e2cnn import nn as enn

    gs = gspaces.Rot2dOnR2(N)
    conv = (
        enn.R2Conv(
            enn.FieldType(gs, x.shape[1] * [gs.trivial_repr]),
            enn.FieldType(gs, 4 * [gs.regular_repr]),
            kernel_size=k,
            padding=k // 2,
        )
        .double()
        .eval()
    )
    mask = disk(SIZE, SIZE / 2 - 6)
    with torch.no_grad():
        run = lambda t: conv(enn.GeometricTensor(t, conv.in_type)).tensor  # noqa: E731
        y = run(x)
        # e2cnn's sense of rotation and of the orientation roll: the pairing exact at 90°.
        best = min(
            ((sense, roll) for sense in (1, -1) for roll in (1, -1)),
            key=lambda p: rel_error(
                run(torch.rot90(x, p[0], (-2, -1))),
                _roll(torch.rot90(y, p[0], (-2, -1)), N, p[1] * N // 4),
                mask,
            ),
        )
        sense, roll = best
        exact = rel_error(
            run(torch.rot90(x, sense, (-2, -1))),
            _roll(torch.rot90(y, sense, (-2, -1)), N, roll * N // 4),
            mask,
        )
        assert exact < 1e-6, exact
        y45 = run(rotate_image(x, sense * 4 / N))
        return rel_error(y45, _roll(rotate_image(y, sense * 4 / N), N, roll), mask)


def _roll(y: torch.Tensor, N: int, steps: int) -> torch.Tensor:
    b, c = y.shape[:2]
    return torch.roll(y.reshape(b, c // N, N, *y.shape[2:]), steps, dims=2).reshape(y.shape)


def test_equivariance_45_degrees():
    """N = 8, k = 5, lifting 1 → 4 regular fields, rotation by 45°. Printed: the input-rotation floor,
    ours per basis, e2cnn's R2Conv. Bounds are loose (regressions, not a claim of precision)."""
    torch.manual_seed(0)
    x = smooth_disk_image(2, 1, seed=3)
    mask = disk(SIZE, SIZE / 2 - 6)
    floor = rel_error(rotate_image(rotate_image(x, 0.5), -0.5), x, mask)
    errors = {}
    for basis in ("bconv", "fourier"):
        errors[basis] = _layer_errors(
            lambda b=basis: GroupConv2d(
                1, 4, 5, group=8, lifting=True, basis=b, bias=False, dtype=torch.float64
            ),
            8,
            x,
        )
    with contextlib.suppress(ImportError):  # e2cnn comes with the recon extra
        errors["e2cnn R2Conv"] = _e2cnn_error(8, 5, x)
    print(
        f"\n45° equivariance error, N=8 k=5 (input round-trip floor {floor:.3e}): "
        + ", ".join(f"{k} {v:.3e}" for k, v in errors.items())
    )
    # B-Conv with random (white) tap values is far from band-limited: its 45° copies are poor (~0.47).
    assert errors["fourier"] < 0.05 and errors["bconv"] < 0.6
    if "e2cnn R2Conv" in errors:
        assert errors["fourier"] < 1.5 * errors["e2cnn R2Conv"]
    assert errors["fourier"] < errors["bconv"]


def _three_layer_net(N: int, basis: str) -> torch.nn.Module:
    return torch.nn.Sequential(
        GroupConv2d(1, 4, 5, group=N, lifting=True, basis=basis, dtype=torch.float64),
        GroupBatchNorm(4, N, dtype=torch.float64),
        GroupPointwise("relu"),
        GroupConv2d(4, 4, 3, group=N, basis=basis, dtype=torch.float64),
        GroupFieldNorm(4, N, dtype=torch.float64),
        GroupPointwise("elu"),
        GroupConv2d(4, 3, 3, group=N, basis=basis, dtype=torch.float64),
        GroupPool(N, "max"),
    )


@pytest.mark.parametrize("basis, N", [("rot90", 4), ("fourier", 8)])
def test_pooled_three_layer_net_is_invariant(basis, N):
    net = _three_layer_net(N, basis)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, GroupBatchNorm | GroupFieldNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
    x = smooth_disk_image(3, 1, seed=5)
    feats = net(x).mean((-2, -1))  # global average pool → (B, 3): invariant
    for turns in (1, 2, 3):
        torch.testing.assert_close(
            net(torch.rot90(x, turns, (-2, -1))).mean((-2, -1)), feats, rtol=1e-9, atol=1e-9
        )
    assert feats.std() > 1e-3  # not a trivially constant output


def test_group_conv_shapes_bias_and_errors():
    layer = GroupConv2d(3, 5, 3, group=8, basis="fourier")
    assert layer.bank.coeffs.shape == (5, 3, 8, 4)  # fourier k=3: ring 0 (m 0), ring 1 (m 0, 1)
    y = layer(torch.randn(2, 24, 9, 11))
    assert y.shape == (2, 40, 9, 11)
    with torch.no_grad():
        layer.bias.copy_(torch.arange(5.0))
    y = GroupConv2d(3, 5, 3, group=8)(torch.zeros(1, 24, 4, 4))
    assert y.abs().max() == 0
    y = layer(torch.zeros(1, 24, 4, 4))
    assert torch.equal(y[0, :, 0, 0], torch.arange(5.0).repeat_interleave(8))
    with pytest.raises(ValueError, match="expects input"):
        layer(torch.randn(2, 23, 9, 9))
    with pytest.raises(ValueError, match="kernel_size must be an odd"):
        GroupConv2d(3, 5, 4)
    with pytest.raises(ValueError, match="rot90"):
        GroupConv2d(3, 5, 3, group=8, basis="rot90")
    with pytest.raises(ValueError, match="basis must be one of"):
        GroupConv2d(3, 5, 3, basis="gauss")
    assert "basis='fourier'" in repr(layer)


def test_init_scale_matches_he():
    for basis in ("bconv", "fourier"):
        layer = GroupConv2d(16, 16, 5, group=8, basis=basis)
        w = layer.weight()
        want = math.sqrt(2.0 / (16 * 8 * 25))
        assert 0.5 * want < w.std().item() < 1.5 * want, (basis, w.std().item(), want)


def test_eval_cache_and_invalidation():
    layer = GroupConv2d(2, 3, 3, group=4)
    x = torch.randn(1, 8, 6, 6)
    layer.eval()
    with torch.no_grad():
        w1 = layer.weight()
        assert layer.weight() is w1  # cached
        layer.bank.coeffs.add_(1.0)  # in-place update bumps the version counter
        w2 = layer.weight()
    assert w2 is not w1 and not torch.equal(w1, w2)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    state["bank.coeffs"].normal_()
    layer.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(layer.weight(), layer.bank.expand())
    # gradients wanted in eval mode: not served from the cache
    layer(x).sum().backward()
    assert layer.bank.coeffs.grad is not None and layer.bank.coeffs.grad.abs().sum() > 0
    with torch.inference_mode():
        w3 = layer.weight()
    layer.train()
    assert layer.bank._cache is None
    assert layer.weight() is not w3
    with torch.no_grad():  # training mode never caches
        assert layer.weight() is not layer.weight()


def test_optimizer_step_refreshes_eval_cache():
    layer = GroupConv2d(2, 3, 3, group=4)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    x = torch.randn(2, 8, 7, 7)
    layer(x).square().mean().backward()
    layer.eval()
    with torch.no_grad():
        before = layer(x)
    opt.step()
    with torch.no_grad():
        after = layer(x)
        layer.train()
        fresh = layer(x)
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, fresh)


@pytest.mark.parametrize("time_symmetric", [False, True])
def test_2p1d_rotation_and_time_reversal(time_symmetric):
    N = 4
    layer = GroupConv2p1d(
        2,
        3,
        3,
        3,
        group=N,
        lifting=True,
        basis="bconv",
        time_symmetric=time_symmetric,
        mid_channels=2,
        dtype=torch.float64,
    )
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.stack([smooth_disk_image(2, 2, seed=s) for s in range(5)], dim=2)  # (2, 2, T=5, H, W)
    y = layer(x)
    assert y.shape == (2, 3 * N, 5, SIZE, SIZE)
    torch.testing.assert_close(
        layer(torch.rot90(x, 1, (-2, -1))), rotate_fields(y, N), rtol=1e-10, atol=1e-10
    )
    group = GroupConv2p1d(3, 2, 3, 3, group=N, time_symmetric=time_symmetric, dtype=torch.float64)
    z = group(y)
    torch.testing.assert_close(group(rotate_fields(y, N)), rotate_fields(z, N), rtol=1e-10, atol=1e-10)
    reversed_err = (layer(x.flip(2)) - y.flip(2)).norm() / y.norm()
    if time_symmetric:
        assert reversed_err < 1e-12
        w_t = layer.temporal()
        torch.testing.assert_close(w_t, w_t.flip(-1))
        assert layer.temporal.coeffs.shape[-1] == 2
    else:
        assert reversed_err > 1e-3  # the constraint is what makes it commute


def test_2p1d_matches_two_explicit_convs():
    layer = GroupConv2p1d(2, 3, 3, 3, group=4, mid_channels=5, dtype=torch.float64)
    x = torch.randn(1, 8, 4, 6, 7, dtype=torch.float64)
    w_s = layer.spatial()
    frames = torch.stack([F.conv2d(x[:, :, t], w_s, padding=1) for t in range(4)], dim=2)
    w_t = layer.temporal()[:, :, 0, :]  # (12, 20, k_t)
    seq = frames.permute(0, 3, 4, 1, 2).reshape(-1, 20, 4)
    out = F.conv1d(seq, w_t, layer.bias.repeat_interleave(4), padding=1)
    want = out.reshape(1, 6, 7, 12, 4).permute(0, 3, 4, 1, 2)
    torch.testing.assert_close(layer(x), want)


def test_pool_and_norm_helpers():
    x = torch.randn(2, 12, 5, 5)
    torch.testing.assert_close(GroupPool(4, "max")(x), x.reshape(2, 3, 4, 5, 5).amax(2))
    torch.testing.assert_close(GroupPool(4, "mean")(x), x.reshape(2, 3, 4, 5, 5).mean(2))
    bn = GroupBatchNorm(3, 4)
    y = bn(x).reshape(2, 3, 4 * 25)
    torch.testing.assert_close(y.mean((0, 2)), torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(bn(rotate_fields(x, 4)), rotate_fields(bn(x), 4))
    fn = GroupFieldNorm(3, 4)
    torch.testing.assert_close(fn(rotate_fields(x, 4)), rotate_fields(fn(x), 4))
    with pytest.raises(ValueError, match="mode"):
        GroupPool(4, "min")
    with pytest.raises(ValueError, match="nonlinearity"):
        GroupPointwise("swish")


def test_training_lowers_loss():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        GroupConv2d(1, 4, 5, group=8, lifting=True, basis="fourier"),
        GroupPointwise(),
        GroupConv2d(4, 1, 3, group=8, basis="fourier"),
        GroupPool(8, "mean"),
    )
    x = smooth_disk_image(4, 1).float()
    target = x**2
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = F.mse_loss(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::6]


def test_torch_compile_fullgraph():
    layer = GroupConv2d(2, 3, 3, group=4, basis="bconv")
    x = torch.randn(1, 8, 7, 7)
    compiled = torch.compile(lambda t: layer(t).square().sum(), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), layer(x).square().sum())


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_gpu_layer_matches_cpu_and_is_equivariant(backend):
    layer = GroupConv2d(2, 3, 5, group=8, basis="fourier")
    x = smooth_disk_image(2, 16).float()
    want = layer(x)
    gpu = GroupConv2d(2, 3, 5, group=8, basis="fourier").cuda()
    gpu.load_state_dict(layer.state_dict())
    with kernels.use_backend(backend):
        y = gpu(x.cuda())
        y_rot = gpu(torch.rot90(x, 1, (-2, -1)).cuda())
        y.square().sum().backward()
    # cuDNN may run the conv in TF32 (torch's default for convolutions): 10-bit mantissas.
    torch.testing.assert_close(y.detach().cpu(), want.detach(), rtol=5e-3, atol=5e-3)
    torch.testing.assert_close(y_rot, rotate_fields(y.detach(), 8), rtol=5e-3, atol=5e-3)
    assert gpu.bank.coeffs.grad.abs().sum() > 0
