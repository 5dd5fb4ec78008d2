import json

import numpy as np
import pytest
import torch

from pyvision.data.vqa import (
    SyntheticVQAConfig,
    make_synthetic_vqa,
    mos_from_strengths,
    normalize_frames,
    read_video,
    read_vqa_records,
    split_by_source,
)
from pyvision.qclip.losses import qclip_loss
from pyvision.qclip.metrics import srcc
from pyvision.qclip.model import QCLIP, QCLIPConfig
from pyvision.qclip.train import TrainConfig, train


@pytest.fixture(autouse=True)
def one_thread():
    # On a shared 2-core box torch's default threads oversubscribe: 1 thread is ~20x faster here.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _write_video(path, frames=6, size=16, fps=5):
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for t in range(frames):
            img = np.full((size, size, 3), 20 * t, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_real_layouts(tmp_path):
    kv = tmp_path / "konvid"
    _write_video(kv / "KoNViD_1k_videos" / "123.mp4")
    _write_video(kv / "KoNViD_1k_videos" / "456.mp4")
    (kv / "KoNViD_1k_mos.csv").write_text("flickr_id,mos,extra\n123,3.5,x\n456,2.25,y\n")
    recs = read_vqa_records(kv, "konvid")
    assert [r.mos for r in recs] == [3.5, 2.25] and recs[0].path.name == "123.mp4"
    frames = read_video(recs[0].path, size=8)
    assert frames.shape == (6, 8, 8, 3) and frames.dtype == np.uint8
    assert frames[5].mean() > frames[0].mean() + 50  # decoded in order
    vqc = tmp_path / "vqc"
    _write_video(vqc / "Video" / "A001.mp4")
    (vqc / "labels.txt").write_text("Video/A001.mp4, 10.0, 30.0, 80.2\n\n")
    assert read_vqa_records(vqc, "live-vqc")[0].mos == pytest.approx(80.2)
    lsvq = tmp_path / "lsvq"
    _write_video(lsvq / "ia-batch1" / "v.mp4")
    (lsvq / "LSVQ_whole_test.csv").write_text("name,mos\nia-batch1/v,61.5\n")
    assert read_vqa_records(lsvq, "lsvq", table="LSVQ_whole_test.csv")[0].path == lsvq / "ia-batch1" / "v.mp4"


def test_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_vqa_records(tmp_path / "nowhere", "konvid")
    with pytest.raises(FileNotFoundError, match="KoNViD_1k_mos.csv"):
        read_vqa_records(tmp_path, "konvid")
    (tmp_path / "KoNViD_1k_mos.csv").write_text("flickr_id,mos\n999,3.0\n")
    with pytest.raises(FileNotFoundError, match="999.mp4"):
        read_vqa_records(tmp_path, "konvid")
    (tmp_path / "labels.txt").write_text("a.mp4, 1, 2\n")
    with pytest.raises(ValueError, match="labels.txt:1"):
        read_vqa_records(tmp_path, "youtube-ugc", check_files=False)
    with pytest.raises(ValueError, match="dataset must be"):
        read_vqa_records(tmp_path, "kadid")
    with pytest.raises(FileNotFoundError, match="v.mp4"):
        read_video(tmp_path / "v.mp4")


def test_synthetic_set_and_split():
    cfg = SyntheticVQAConfig(n_sources=4, clips_per_source=3, frames=5, size=16, seed=3)
    a, b = make_synthetic_vqa(cfg), make_synthetic_vqa(cfg)
    assert (
        a.videos.shape == (12, 5, 16, 16, 3) and torch.equal(a.videos, b.videos) and torch.equal(a.mos, b.mos)
    )
    assert a.mos.min() >= 1 and a.mos.max() <= 5
    # noise-free MOS by hand: no distortion → 5; blur at 1 and noise at 0.5 → 1 + 4·exp(−(1.2 + 0.5))
    assert mos_from_strengths(np.zeros(5)) == pytest.approx(5.0)
    assert mos_from_strengths(np.array([1.0, 0.5, 0, 0, 0])) == pytest.approx(1 + 4 * np.exp(-1.7))
    tr, va, te = split_by_source(a.source, seed=0)
    groups = [set(a.source[i].tolist()) for i in (tr, va, te)]
    assert (
        all(groups)
        and not (groups[0] & groups[1])
        and not (groups[0] & groups[2])
        and not (groups[1] & groups[2])
    )
    assert len(tr) + len(va) + len(te) == 12
    x = normalize_frames(a.videos[0], "pe")
    assert x.shape == (5, 3, 16, 16) and x.min() >= -1 and x.max() <= 1


def test_training_beats_no_training():
    data = make_synthetic_vqa(SyntheticVQAConfig(n_sources=6, clips_per_source=12, frames=4, size=32, seed=0))
    x = torch.stack([normalize_frames(v) for v in data.videos])
    y = data.mos
    torch.manual_seed(0)
    model = QCLIP(QCLIPConfig())
    with torch.no_grad():
        before = srcc(model(x), y)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(40):
        b = rng.choice(len(y), 24, replace=False)
        loss = qclip_loss(model(x[b]), y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = srcc(model(x), y)
    assert after > before + 0.15, (before, after)


def test_run_dir_resume_gives_identical_curve(tmp_path):
    kw = dict(
        runs_dir=str(tmp_path),
        n_sources=4,
        clips_per_source=4,
        video_frames=4,
        frames=2,
        epochs=2,
        batch_size=4,
        sampler="framediff",
    )
    train(TrainConfig(name="full", **kw), progress=False)
    train(TrainConfig(name="cut", **kw), progress=False, stop_after=1)
    train(TrainConfig(name="cut", **kw), resume=True, progress=False)
    read = lambda n: [json.loads(line) for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
    full, cut = read("full"), read("cut")
    assert len(full) == len(cut) == 2
    for a, b in zip(full, cut, strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }
    for f in ("config.json", "checkpoint.safetensors", "curves.png", "scatter.png"):
        assert (tmp_path / "full" / f).is_file()
