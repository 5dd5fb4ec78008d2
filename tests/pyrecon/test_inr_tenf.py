import argparse
import dataclasses
import json

import pytest
import torch

from kernels.runs import RunDir
from pyrecon.inr.hash_inr import simulate_dynamic
from pyrecon.inr.tenf import (
    PRESETS,
    TenFConfig,
    add_arguments,
    aggregate,
    block_match,
    extract_groups,
    fit_tenf,
    main,
    make_groups,
    patch_positions,
    tucker_groups,
)
from pyrecon.ops.sense import sense_adjoint

TINY = dataclasses.replace(TenFConfig(), **PRESETS["tiny"])


def _rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g))


def test_patch_positions_cover_the_border():
    pos = patch_positions(10, 7, 4, 3)
    assert pos[:, 0].unique().tolist() == [0, 3, 6] and pos[:, 1].unique().tolist() == [0, 3]
    assert len(pos) == 6


def test_block_match_finds_the_duplicate_patch():
    x = _rand(3, 12, 12, seed=1)
    x[:, 8:12, 8:12] = x[:, 0:4, 0:4]  # position (8, 8) duplicates position (0, 0)
    pos = patch_positions(12, 12, 4, 4)
    members = block_match(x, pos, 4, 2, search=12)
    assert members[:, 0].tolist() == list(range(len(pos)))  # the reference first
    i0 = int(((pos[:, 0] == 0) & (pos[:, 1] == 0)).nonzero())
    i8 = int(((pos[:, 0] == 8) & (pos[:, 1] == 8)).nonzero())
    assert members[i0, 1].item() == i8 and members[i8, 1].item() == i0
    with pytest.raises(ValueError, match="search"):
        block_match(x, pos, 4, 3, search=0)


def test_extract_then_aggregate_is_identity_and_counts_by_hand():
    x = _rand(2, 9, 8, seed=2)
    groups = make_groups(x, 4, 2, 3, search=8)
    torch.testing.assert_close(aggregate(extract_groups(x, groups), groups, (2, 9, 8)), x)
    t = extract_groups(x, groups)
    assert t.shape == (len(groups.pos), 16, 3, 2)
    # the reference entry of group 0 is the top-left patch itself
    torch.testing.assert_close(t[0, :, 0, 1], x[1, 0:4, 0:4].reshape(-1))
    # weighted average: a group tensor of ones aggregates to 1 everywhere
    ones = torch.ones_like(t)
    torch.testing.assert_close(aggregate(ones, groups, (2, 9, 8)), torch.ones_like(x))


def test_tucker_matches_the_loop():
    core, u = _rand(2, 3, 2, 2, seed=3), torch.randn(2, 4, 3)
    v, w = torch.randn(2, 5, 2), torch.randn(2, 6, 2)
    out = tucker_groups(core, u, v, w)
    ref = torch.zeros(2, 4, 5, 6, dtype=core.dtype)
    for g in range(2):
        for a in range(3):
            for b in range(2):
                for c in range(2):
                    ref[g] += core[g, a, b, c] * u[g, :, a, None, None] * v[g, None, :, b, None] \
                        * w[g, None, None, :, c]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def data():
    return simulate_dynamic(TINY.frames, TINY.size, TINY.coils, TINY.accel, center_lines=TINY.center_lines)


def test_tiny_fit_lowers_dc_and_beats_zero_filled(data):
    images, records = fit_tenf(data, TINY, progress=False)
    assert records[-1]["dc"] < 0.1 * records[0]["dc"]
    zf = sense_adjoint(data.kspace[None], data.smaps[None], data.mask)[0]
    err = ((images - data.images).norm() / data.images.norm()).item()
    assert err < 0.85 * ((zf - data.images).norm() / data.images.norm()).item()


def test_resume_and_cli(tmp_path, data):
    cfg = dataclasses.replace(TINY, iters=6, log_every=2, checkpoint_every=3)
    _, full = fit_tenf(data, cfg, run=RunDir(tmp_path / "a"), progress=False)
    fit_tenf(data, cfg, run=RunDir(tmp_path / "b"), stop_after=5, progress=False)
    _, resumed = fit_tenf(data, cfg, run=RunDir(tmp_path / "b", resume=True), resume=True, progress=False)

    def strip(rs):
        return [{k: v for k, v in r.items() if k != "time_s"} for r in rs]

    assert strip(resumed) == strip(full)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--preset", "tiny", "--iters", "3", "--out", str(tmp_path), "--name", "c"])
    assert main(args) == 0
    for f in ("config.json", "metrics.jsonl", "checkpoint.safetensors", "recon.png", "loss.png"):
        assert (tmp_path / "c" / f).is_file(), f
    assert "nrmse" in json.loads((tmp_path / "c" / "summary.json").read_text())


def test_radial_fit_lowers_dc_and_beats_the_gridded_adjoint():
    cfg = dataclasses.replace(TINY, spokes=6, iters=80)
    d = simulate_dynamic(cfg.frames, cfg.size, cfg.coils, cfg.accel, spokes=cfg.spokes)
    images, records = fit_tenf(d, cfg, progress=False)
    assert records[-1]["dc"] < 0.1 * records[0]["dc"]
    zf = d.zero_filled()
    assert ((images - d.images).norm() / d.images.norm()) < 0.95 * ((zf - d.images).norm() / d.images.norm())
