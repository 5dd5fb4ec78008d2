"""kernels.runs: atomic checkpoints of nested state, RNG capture/restore, metrics truncation on resume."""

import json
import random

import numpy as np
import pytest
import torch

from kernels.runs import RunDir, capture_rng, load_state, plot_curves, restore_rng, save_state


def _draw(g, ng):
    return (torch.rand(3), np.random.rand(), random.random(), torch.rand(2, generator=g), ng.random())


def test_rng_capture_restore_replays_every_stream(tmp_path):
    g, ng = torch.Generator().manual_seed(3), np.random.default_rng(5)
    gens = {"g": g, "n": ng}
    save_state(tmp_path / "rng.safetensors", {"rng": capture_rng(gens)})
    first = _draw(g, ng)
    restore_rng(load_state(tmp_path / "rng.safetensors")["rng"], gens)
    second = _draw(g, ng)
    assert torch.equal(first[0], second[0]) and torch.equal(first[3], second[3])
    assert first[1:3] == second[1:3] and first[4] == second[4]


def test_nested_state_roundtrip(tmp_path):
    state = {"model": {"w": torch.randn(2, 3), "b": torch.randn(3, dtype=torch.bfloat16)},
             "round": 7, "lr": 0.25, "name": "x", "none": None,
             "clients": [torch.randn(4), (1, "a")], "arr": np.arange(5, dtype=np.int32)}
    save_state(tmp_path / "c.safetensors", state)
    back = load_state(tmp_path / "c.safetensors")
    assert torch.equal(back["model"]["w"], state["model"]["w"])
    assert back["model"]["b"].dtype == torch.bfloat16
    assert back["round"] == 7 and back["lr"] == 0.25 and back["name"] == "x" and back["none"] is None
    assert torch.equal(back["clients"][0], state["clients"][0]) and back["clients"][1] == (1, "a")
    assert np.array_equal(back["arr"], state["arr"])


def test_save_state_rejects_unknown_types(tmp_path):
    with pytest.raises(TypeError, match="object"):
        save_state(tmp_path / "c.safetensors", {"x": object()})
    assert not (tmp_path / "c.safetensors").exists()


def test_interrupted_write_keeps_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save_state(path, {"v": torch.ones(2)})

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_state(path, {"v": torch.zeros(2)})
    monkeypatch.undo()
    assert torch.equal(load_state(path)["v"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary left behind


def test_rundir_refuses_to_mix_runs_and_truncates_on_resume(tmp_path):
    run = RunDir(tmp_path / "r")
    run.write_config({"a": 1})
    for r in range(5):
        run.log({"round": r, "acc": r / 10, "np": np.float32(0.5)})
    run.save_checkpoint({"round": 2})
    with pytest.raises(FileExistsError, match="resume"):
        RunDir(tmp_path / "r")
    resumed = RunDir(tmp_path / "r", resume=True)
    resumed.truncate_metrics("round", resumed.load_checkpoint()["round"])
    assert [m["round"] for m in resumed.metrics()] == [0, 1, 2]
    assert json.loads((tmp_path / "r" / "config.json").read_text()) == {"a": 1}
    fresh = RunDir(tmp_path / "r", overwrite=True)
    assert fresh.metrics() == [] and not fresh.has_checkpoint()


def test_plot_writes_png(tmp_path):
    p = plot_curves(tmp_path / "acc.png", {"a": [(0, 0.1), (1, 0.5)], "b": [(0, 0.2), (1, 0.3)]},
                    xlabel="round", ylabel="acc")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_figure_is_atomic_and_closes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kernels.runs import save_figure

    fig, _ = plt.subplots()
    out = save_figure(fig, tmp_path / "sub" / "f.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    assert sorted(x.name for x in out.parent.iterdir()) == ["f.png"]  # no temporary file left
    fig, _ = plt.subplots()
    with pytest.raises(ValueError):  # a failed write leaves neither a half file nor an open figure
        save_figure(fig, tmp_path / "sub" / "g.png", format="no-such-format")
    assert not plt.fignum_exists(fig.number)
    assert sorted(x.name for x in out.parent.iterdir()) == ["f.png"]


def test_cosine_lr_by_hand():
    from kernels.runs import cosine_lr

    # warm-up 2 of 6 steps: 1/2, 2/2 of base, then ½(1 + cos(π·j/4)) for j = 0..4, held after the end
    got = [cosine_lr(0.4, t, 6, warmup=2) for t in range(8)]
    want = [0.2, 0.4, 0.4, 0.2 * (1 + 2**-0.5), 0.2, 0.2 * (1 - 2**-0.5), 0.0, 0.0]
    assert got == pytest.approx(want, abs=1e-15)
    # a floor of 10%: from 1 down to 0.1; halfway 0.55
    assert [cosine_lr(1.0, t, 2, floor=0.1) for t in (0, 1, 2)] == pytest.approx([1.0, 0.55, 0.1])


def test_optimizer_state_round_trips_through_a_checkpoint(tmp_path):
    from kernels.runs import load_optimizer_state, optimizer_state

    w = torch.nn.Parameter(torch.randn(3, 2))
    opt = torch.optim.Adam([w], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    save_state(tmp_path / "o.safetensors", {"opt": optimizer_state(opt)})
    fresh = torch.optim.Adam([w], lr=0.5)
    load_optimizer_state(fresh, load_state(tmp_path / "o.safetensors")["opt"])
    assert fresh.param_groups[0]["lr"] == 0.1
    torch.testing.assert_close(fresh.state[w]["exp_avg_sq"], opt.state[w]["exp_avg_sq"], rtol=0, atol=0)
    assert float(fresh.state[w]["step"]) == 2


def test_load_checkpoint_refuses_another_config(tmp_path):
    import dataclasses

    @dataclasses.dataclass
    class Cfg:
        lr: float = 0.1

    rd = RunDir(tmp_path / "r")
    rd.save_checkpoint({"config": dataclasses.asdict(Cfg()), "epoch": 3})
    assert rd.load_checkpoint(config=Cfg())["epoch"] == 3
    with pytest.raises(ValueError, match="configuration differs"):
        rd.load_checkpoint(config=Cfg(lr=0.2))
