"""pyvision.data.emert: generator structure (the ER/FER gap, shared world), the real-layout loader on
files the test writes, and the claim of the method: eyes carry the felt emotion the face may hide."""

import numpy as np
import pytest
import torch
from PIL import Image

from pyvision.data.emert import CLASSES, COARSE, EmotionData, load_emer, make_emert_data, to_coarse
from pyvision.emert.train import PRESETS, EMERTConfig, fit


def test_generator_shapes_gap_and_determinism():
    d = make_emert_data(400, seed=1, frames=3, image_size=16, steps=6, gap=0.3)
    assert d.face.shape == (400, 3, 3, 16, 16) and d.eye.shape == (400, 6, 39) and d.eye2.shape == (400, 6, 2)
    assert float(d.face.min()) >= 0 and float(d.face.max()) <= 1
    assert 0.24 < float((d.er != d.fer).float().mean()) < 0.36  # the ER/FER gap ≈ gap
    assert set(d.er.tolist()) == set(range(7))
    again = make_emert_data(400, seed=1, frames=3, image_size=16, steps=6, gap=0.3)
    torch.testing.assert_close(again.eye, d.eye)
    assert len(d.subset([0, 5])) == 2 and set(d.batch([1, 2])) >= {"face", "eye", "eye2", "er", "fer", "reg"}
    assert to_coarse(torch.arange(7)).tolist() == list(COARSE)
    with pytest.raises(ValueError, match="gap"):
        make_emert_data(4, gap=1.0)
    with pytest.raises(ValueError, match="n must be"):
        make_emert_data(0)


def test_generator_eyes_follow_felt_emotion_across_seeds():
    # Class means of the eye features are the same task for two sample seeds (one world_seed).
    a = make_emert_data(700, seed=0, image_size=8, steps=8)
    b = make_emert_data(700, seed=1, image_size=8, steps=8)
    ma = torch.stack([a.eye[a.er == c].mean((0, 1)) for c in range(7)])
    mb = torch.stack([b.eye[b.er == c].mean((0, 1)) for c in range(7)])
    corr = np.corrcoef(ma.flatten().numpy(), mb.flatten().numpy())[0, 1]
    assert corr > 0.8


def _write_emer(root, n=3, frames=5, steps=7):
    rng = np.random.default_rng(0)
    rows = ["sample_id,subject,er_label,fer_label,valence,arousal,intensity"]
    for i in range(n):
        sid = f"s{i}"
        (root / "face" / sid).mkdir(parents=True)
        for f in range(frames):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
                root / "face" / sid / f"{f:03d}.png"
            )
        (root / "eye").mkdir(exist_ok=True)
        (root / "eye2").mkdir(exist_ok=True)
        np.savetxt(
            root / "eye" / f"{sid}.csv",
            rng.standard_normal((steps, 39)),
            delimiter=",",
            header=",".join(f"f{j}" for j in range(39)),
            comments="",
        )
        np.savetxt(root / "eye2" / f"{sid}.csv", np.arange(steps * 2).reshape(steps, 2), delimiter=",")
        rows.append(f"{sid},p{i % 2},{CLASSES[i]},{i + 1},0.5,-0.25,{i}")
    (root / "annotations.csv").write_text("\n".join(rows) + "\n")


def test_loader_reads_the_layout(tmp_path):
    _write_emer(tmp_path)
    d = load_emer(tmp_path, frames=4, image_size=16, steps=4)
    assert isinstance(d, EmotionData)
    assert d.face.shape == (3, 4, 3, 16, 16) and d.eye.shape == (3, 4, 39) and d.eye2.shape == (3, 4, 2)
    assert d.er.tolist() == [0, 1, 2] and d.fer.tolist() == [1, 2, 3] and d.subject.tolist() == [0, 1, 0]
    # 7 rows resampled to 4: rows 0, 2, 4, 6 of arange(14).reshape(7, 2).
    torch.testing.assert_close(d.eye2[0, :, 0], torch.tensor([0.0, 4.0, 8.0, 12.0]))
    torch.testing.assert_close(d.reg[2], torch.tensor([0.5, -0.25, 2.0]))
    # The first frame file, resized, is the first frame.
    im = Image.open(tmp_path / "face" / "s0" / "000.png").convert("RGB").resize((16, 16), Image.BILINEAR)
    torch.testing.assert_close(
        d.face[0, 0], torch.tensor(np.asarray(im), dtype=torch.float32).permute(2, 0, 1) / 255
    )


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_emer(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="annotations.csv"):
        load_emer(tmp_path)
    _write_emer(tmp_path)
    (tmp_path / "eye2" / "s1.csv").unlink()
    with pytest.raises(FileNotFoundError, match="s1.csv"):
        load_emer(tmp_path)
    np.savetxt(tmp_path / "eye2" / "s1.csv", np.zeros((3, 5)), delimiter=",")
    with pytest.raises(ValueError, match="T×2"):
        load_emer(tmp_path)
    (tmp_path / "annotations.csv").write_text("sample_id,subject,er_label,fer_label\ns0,p,joy,0\n")
    with pytest.raises(ValueError, match="'joy'"):
        load_emer(tmp_path)


FAST = PRESETS["tiny"]


def _er_accuracy(protocol, seed):
    from pyvision.emert.train import prepare_data

    cfg = EMERTConfig(protocol=protocol, seed=seed, data_seed=seed, **FAST)
    data = prepare_data(cfg)
    idx = np.arange(len(data))
    return fit(cfg, data, idx[:220], idx[220:])[1]


def test_removing_the_eyes_lowers_er_accuracy():
    """All modalities vs face only on the same split (seed 0): with P(displayed ≠ felt) = 0.35 the face
    caps ER near 0.65 while the eyes carry the felt emotion (a linear probe on this generator: face→ER
    0.65, eyes→ER 0.84, all→ER 0.89). Measured here: 0.675 (all) vs 0.487 (face); the margin asked is
    0.1. Both beat chance (1/7)."""
    full = _er_accuracy("er7", 0)
    face = _er_accuracy("er7-face", 0)
    assert full["er_war"] > face["er_war"] + 0.1, (full["er_war"], face["er_war"])
    assert face["er_war"] > 1 / 7 + 0.1 and full["fer_war"] > 1 / 7 + 0.1
