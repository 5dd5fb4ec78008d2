"""DUN-SRE on real-data files (``--data-dir``): scans written here from the cine phantom × coil maps
(one as ISMRMRD with 2× readout oversampling, two as plain (frames, coils, ky, kx) HDF5, one
prospectively undersampled that must be skipped); the file-level split, the shaping of a scan
(frames, k-space centre, coil compression, normalisation), one training step lowers the loss, a
CLI run writes its directory, and ``--resume`` gives the identical curve."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from pyrecon.data.ocmr import save_ismrmrd
from pyrecon.data.phantoms import cine_phantom, coil_maps
from pyrecon.dunsre.train import (
    TrainConfig,
    build_model,
    make_family,
    mse_loss,
    prepare_scan,
    real_data_split,
    run,
    sample_mask,
    train_step,
)
from pyrecon.ops.fft import fft2c
from pyrecon.ops.sense import sense_adjoint

T, C, H, W = 6, 3, 20, 18  # the scans: more frames, coils and pixels than the config asks for


def _scan(seed: int) -> torch.Tensor:
    x, _ = cine_phantom(T, H, W, seed=seed)
    s = coil_maps(C, H, W, seed=seed)
    return fft2c(s[None] * x[:, None]).to(torch.complex64)  # (T, C, H, W)


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "ocmr"
    d.mkdir()
    save_ismrmrd(d / "fs_0001.h5", _scan(1), oversampling=2)
    for i in (2, 3):
        with h5py.File(d / f"fs_000{i}.h5", "w") as f:
            f["kspace"] = _scan(i).numpy()
    rows = torch.zeros(T, H, dtype=torch.bool)
    for t in range(T):
        rows[t, t % 4 :: 4] = True  # prospective undersampling: different rows per frame
    with h5py.File(d / "us_0004.h5", "w") as f:
        f["kspace"] = (_scan(4) * rows[:, None, :, None]).numpy()
    (d / "notes.txt").write_text("not a scan")
    return d


TINY = dict(stages=2, features=2, dc_features=2, frames=4, size=16, coils=2, accel=4, center_lines=2,
            n_train=4, n_val=1, epochs=2)


def test_split_is_file_level_fixed_and_skips_undersampled(data_dir):
    cfg = TrainConfig(**TINY, data_dir=str(data_dir))
    split = real_data_split(cfg)
    names = lambda k: sorted(p.name for p in split[k])  # noqa: E731
    assert names("skipped") == ["us_0004.h5"]
    assert len(split["val"]) == 1 and len(split["train"]) == 2
    assert sorted(names("train") + names("val")) == ["fs_0001.h5", "fs_0002.h5", "fs_0003.h5"]
    assert real_data_split(cfg) == split  # fixed by data_seed
    vals = {real_data_split(TrainConfig(**TINY, data_dir=str(data_dir), data_seed=s))["val"][0].name
            for s in range(6)}
    assert len(vals) > 1  # the seed chooses the split
    assert len(real_data_split(TrainConfig(**{**TINY, "n_train": 1}, data_dir=str(data_dir)))["train"]) == 1
    with pytest.raises(ValueError, match="fully sampled scans"):
        real_data_split(TrainConfig(**{**TINY, "n_val": 3}, data_dir=str(data_dir)))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        real_data_split(TrainConfig(**TINY, data_dir=str(data_dir / "nowhere")))


def test_prepare_scan_frames_crop_coils_and_normalisation():
    k = _scan(5)
    # two coils' worth of information in three coils: compression to 2 loses nothing
    k = torch.stack([k[:, 0], k[:, 1], 0.5 * k[:, 0] - 2j * k[:, 1]], dim=1)
    cfg = TrainConfig(**TINY)
    x, smaps, kp = prepare_scan(k, cfg)
    assert x.shape == (4, 16, 16) and smaps.shape == (2, 16, 16) and kp.shape == (4, 2, 16, 16)
    assert x.abs().max().item() == pytest.approx(1.0)
    # frames ⌊i·6/4⌋ = 0, 1, 3, 4 and the centred 16 × 16 block of k-space (rows 2..17, columns 1..16)
    block = k[[0, 1, 3, 4], :, 2:18, 1:17]
    ratio = kp.norm() / block.norm()
    per_frame = lambda a: torch.linalg.vector_norm(a, dim=(1, 2, 3))  # noqa: E731
    torch.testing.assert_close(per_frame(kp), ratio * per_frame(block), rtol=1e-4, atol=0)
    # the reference is the coil combination of the full data: zero-filled at R = 1
    torch.testing.assert_close(sense_adjoint(kp[None], smaps[None], torch.ones(1))[0], x)
    # a scan the size of the config keeps its k-space up to the scale (one coil, no compression)
    one = _scan(6)[:4, :1, 2:18, 1:17]
    _, _, k1 = prepare_scan(one, TrainConfig(**{**TINY, "coils": 1}))
    scale = (one.abs().max() / k1.abs().max()).item()
    torch.testing.assert_close(k1 * scale, one, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="cannot give"):
        prepare_scan(k[:3], cfg)


def test_real_batch_one_step_lowers_the_loss(data_dir):
    cfg = TrainConfig(**TINY, data_dir=str(data_dir))
    x, smaps, k = make_family(cfg, "train")[0]
    mask = sample_mask(cfg, 0)[None]
    y = k[None] * mask[:, :, None]
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = train_step(model, opt, x[None], smaps[None], mask, y)
    with torch.no_grad():
        after = mse_loss(model(y, smaps[None], mask), x[None]).item()
    assert after < before


def _read(p):
    return [{k: v for k, v in json.loads(s).items() if k != "seconds"} for s in p.read_text().splitlines()]


def test_cli_run_on_a_directory_and_resume(data_dir, tmp_path):
    from pyrecon.cli import main as cli_main

    argv = ["train", "--model", "dun-sre", "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(data_dir),
            "--name", "ocmr", "--epochs", "2", "--size", "16", "--frames", "4", "--coils", "2",
            "--stages", "2", "--features", "2", "--dc-features", "2", "--n-val", "1", "--n-train", "4",
            "--center-lines", "2",
            "--accel", "4"]
    assert cli_main(argv) == 0
    rd = tmp_path / "runs" / "ocmr"
    for name in ("config.json", "metrics.jsonl", "checkpoint.safetensors", "curves.png", "val_frame.png",
                 "results.json", "data_split.json"):
        assert (rd / name).is_file(), name
    assert json.loads((rd / "config.json").read_text())["data_dir"] == str(data_dir)
    split = json.loads((rd / "data_split.json").read_text())
    assert len(split["train"]) == 2 and split["skipped"] == ["us_0004.h5"]
    full = _read(rd / "metrics.jsonl")
    assert len(full) == 2 and all(np.isfinite(r["val_psnr"]) for r in full)

    cfg = TrainConfig(**{**TINY, "name": "ocmr"}, data_dir=str(data_dir))
    assert cfg == TrainConfig(**json.loads((rd / "config.json").read_text()))
    run(cfg, tmp_path / "cut", progress=False, stop_after=1)
    _, resumed = run(cfg, tmp_path / "cut", resume=True, progress=False)
    assert _read(tmp_path / "cut" / "metrics.jsonl") == full
    assert resumed == json.loads((rd / "results.json").read_text())
