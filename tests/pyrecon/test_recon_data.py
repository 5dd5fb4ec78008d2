"""pyrecon.data.phantoms and pyrecon.sampling: cine phantom, coil maps, k-t masks, radial trajectory."""

import math

import pytest
import torch

from pyrecon.data.phantoms import add_kspace_noise, cine_phantom, coil_maps, random_cine_params
from pyrecon.sampling import GOLDEN_ANGLE, acceleration, kt_mask, radial_trajectory, vista_mask

# ---- cine phantom ---------------------------------------------------------------------------------


def test_cine_phantom_shape_range_and_motion():
    x, params = cine_phantom(T=8, H=48, W=40, seed=1)
    assert x.shape == (8, 48, 40) and x.dtype == torch.complex64
    mag = x.abs()
    assert mag.min() >= 0 and mag.max() <= 1 + 1e-6
    assert mag.max() > 0.8  # the blood pool is bright
    # the heart moves: frames differ, by a visible but local amount
    diff = (mag[0] - mag[4]).abs()
    assert diff.max() > 0.3
    assert (diff > 0.05).float().mean() < 0.2
    assert isinstance(params, dict) and params == random_cine_params(1)


def test_cine_phantom_is_periodic_in_T():
    params = random_cine_params(2)
    params["cycles"] = 2
    x, _ = cine_phantom(T=12, H=32, W=32, params=params, dtype=torch.complex128)
    # two heartbeats in 12 frames: frame t equals frame t + 6 up to the breathing drift, which is off
    no_breath = dict(params, breath_amplitude=0.0)
    x, _ = cine_phantom(T=12, H=32, W=32, params=no_breath, dtype=torch.complex128)
    torch.testing.assert_close(x[:6], x[6:])
    assert (x[:6] - x[:1]).abs().max() > 0.1  # but not constant
    # one heartbeat: frame T would be frame 0 — the series at 2T frames has frame 2t = frame t at T
    one = dict(random_cine_params(3), cycles=1)
    a, _ = cine_phantom(T=6, H=32, W=32, params=one, dtype=torch.complex128)
    b, _ = cine_phantom(T=12, H=32, W=32, params=one, dtype=torch.complex128)
    torch.testing.assert_close(a, b[::2])


def test_cine_phantom_seeds_and_params():
    a, pa = cine_phantom(T=4, H=32, W=32, seed=0)
    b, pb = cine_phantom(T=4, H=32, W=32, seed=1)
    assert pa != pb and (a - b).abs().max() > 0.1
    c, _ = cine_phantom(T=4, H=32, W=32, params=pa)
    assert torch.equal(a, c)
    flat = dict(pa, phase_amplitude=0.0)
    d, _ = cine_phantom(T=4, H=32, W=32, params=flat)
    assert d.imag.abs().max() < 1e-6 and (a.angle().abs().max() > 0.01)
    with pytest.raises(ValueError, match="params is missing"):
        cine_phantom(T=4, H=32, W=32, params={"cycles": 1})
    with pytest.raises(TypeError, match="dtype"):
        cine_phantom(T=4, H=32, W=32, dtype=torch.float32)
    with pytest.raises(ValueError, match="T must be"):
        cine_phantom(T=0)


def test_coil_maps_normalized_smooth_and_distinct():
    s = coil_maps(8, 40, 36, seed=0, dtype=torch.complex128)
    assert s.shape == (8, 40, 36) and s.dtype == torch.complex128
    torch.testing.assert_close((s.abs() ** 2).sum(0), torch.ones(40, 36, dtype=torch.float64))
    # smooth: neighbouring pixels differ by a small fraction of the range
    assert (s[:, 1:] - s[:, :-1]).abs().max() < 0.2
    # coils see different regions
    assert (s[0].abs() - s[4].abs()).abs().max() > 0.3
    assert not torch.equal(coil_maps(4, 8, 8, seed=0), coil_maps(4, 8, 8, seed=1))
    with pytest.raises(ValueError, match="C must be"):
        coil_maps(0, 8, 8)


def test_add_kspace_noise_hits_the_snr_and_keeps_the_mask():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(1, 4, 3, 32, 16, dtype=torch.complex128, generator=g)
    mask = kt_mask(4, 32, 16, 4, seed=0)
    y = y * mask[None, :, None]
    noisy = add_kspace_noise(y, mask, snr_db=10.0, seed=1)
    noise = noisy - y
    sampled = mask[None, :, None].expand_as(y) != 0
    assert torch.equal(noise[~sampled], torch.zeros_like(noise[~sampled]))
    snr = 10 * torch.log10((y.abs() ** 2)[sampled].mean() / (noise.abs() ** 2)[sampled].mean())
    assert abs(float(snr) - 10.0) < 0.3
    assert torch.equal(noisy, add_kspace_noise(y, mask, snr_db=10.0, seed=1))
    with pytest.raises(ValueError, match="snr_db"):
        add_kspace_noise(y, mask, snr_db=float("nan"))


# ---- masks and trajectories -----------------------------------------------------------------------


@pytest.mark.parametrize("accel", [4, 8, 12, 16, 20, 21])
def test_kt_mask_acceleration_centre_and_frames(accel):
    T, H, W = 16, 96, 20
    m = kt_mask(T, H, W, accel, seed=accel)
    assert m.shape == (T, H, W) and m.dtype == torch.float32
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert abs(acceleration(m) / accel - 1) < 0.05
    # whole lines along kx
    assert torch.equal(m, m[:, :, :1].expand_as(m))
    lines = m[:, :, 0]
    assert (lines[:, H // 2] == 1).all() and (lines[:, H // 2 - 1] == 1).all()
    # frames differ
    assert len({tuple(row.tolist()) for row in lines}) > T // 2
    # variable density: more lines near the centre than at the edges
    centre = lines[:, H // 4 : 3 * H // 4].mean()
    edge = torch.cat([lines[:, : H // 4], lines[:, 3 * H // 4 :]], dim=1).mean()
    assert centre > edge


def test_kt_mask_centre_band_and_seed():
    m = kt_mask(8, 64, 8, 4, center_lines=8, seed=0)
    assert (m[:, 28:36] == 1).all()  # 16 lines per frame: the full 8-line centre band
    assert not torch.equal(m, kt_mask(8, 64, 8, 4, seed=1))
    assert torch.equal(m, kt_mask(8, 64, 8, 4, seed=0))
    with pytest.raises(ValueError, match="accel"):
        kt_mask(8, 64, 8, 0.5)


@pytest.mark.parametrize("accel", [8, 16, 20])
def test_vista_mask_density_coverage_and_interleaving(accel):
    T, H, W = 24, 96, 4
    m = vista_mask(T, H, W, accel, seed=0)
    assert m.shape == (T, H, W) and m.dtype == torch.float32
    assert abs(acceleration(m) / accel - 1) < 0.05
    assert torch.equal(m, m[:, :, :1].expand_as(m))
    lines = m[:, :, 0]
    assert (lines[:, H // 2] == 1).all()  # DC every frame
    assert all(not torch.equal(lines[t], lines[t + 1]) for t in range(T - 1))  # consecutive frames differ
    # spread in k-t: the time average covers most of k-space (a random draw of the same density leaves
    # more holes), denser at the centre than at the edges
    covered = (lines.sum(0) > 0).float().mean()
    assert covered > 0.6
    centre = lines[:, H // 4 : 3 * H // 4].mean()
    edge = torch.cat([lines[:, : H // 4], lines[:, 3 * H // 4 :]], dim=1).mean()
    assert centre > 1.5 * edge
    # lines within a frame are spread out: no gap is more than a few times the mean spacing at the centre
    gaps = torch.diff(torch.nonzero(lines[0]).flatten())
    assert gaps.max() <= H // 2
    assert not torch.equal(m, vista_mask(T, H, W, accel, seed=1))
    with pytest.raises(ValueError, match="power"):
        vista_mask(T, H, W, accel, power=-1)


def test_radial_trajectory():
    k = radial_trajectory(5, 16, frames=3)
    assert k.shape == (3, 80, 2) and k.dtype == torch.float64
    assert k.abs().max() <= math.pi + 1e-12
    # spoke 1 of frame 0 at the golden angle: its last point is κ (sin θ, cos θ), κ = 2π·7/16
    kap = 2 * math.pi * 7 / 16
    torch.testing.assert_close(
        k[0, 31],
        torch.tensor([kap * math.sin(GOLDEN_ANGLE), kap * math.cos(GOLDEN_ANGLE)], dtype=torch.float64),
    )
    assert not torch.allclose(k[0], k[1])  # golden angle continues across frames
    u = radial_trajectory(4, 8, frames=2, golden=False)
    assert torch.equal(u[0], u[1])
    torch.testing.assert_close(
        u[0, 8 + 5],
        torch.tensor(
            [math.pi / 4 * math.sin(math.pi / 4), math.pi / 4 * math.cos(math.pi / 4)], dtype=torch.float64
        ),
    )


def test_radial_trajectory_from_phantominator():
    k = radial_trajectory(3, 16, frames=2, golden=False, source="phantominator")
    assert k.shape == (2, 48, 2) and k.dtype == torch.float64
    assert k.abs().max() <= math.pi + 1e-12
    # uniform angles π·s/6 over all 6 spokes: spoke 0 lies along kx from −π to π
    torch.testing.assert_close(k[0, :16, 0], torch.zeros(16, dtype=torch.float64))
    torch.testing.assert_close(k[0, :16, 1], torch.linspace(-math.pi, math.pi, 16, dtype=torch.float64))
    # spoke 3 (the first of frame 1) is at π/2: along ky
    torch.testing.assert_close(k[1, :16, 1], torch.zeros(16, dtype=torch.float64), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="source"):
        radial_trajectory(3, 16, source="bart")
