"""`python -m pyvision train --task emert|myopia`: run directory contents, and --resume after an interrupt
continues on the same curve as an uninterrupted run."""

import json

import pytest

import pyvision.emert.train as emert_train
import pyvision.myopia.train as myopia_train
from pyvision.cli import main

EMERT = [
    "--n-samples",
    "30",
    "--frames",
    "2",
    "--image-size",
    "16",
    "--steps",
    "4",
    "--face-width",
    "2",
    "--lstm-hidden",
    "8",
    "--d",
    "16",
    "--epochs",
    "2",
    "--n-folds",
    "2",
    "--batch-size",
    "16",
]
MYOPIA = ["--n-samples", "16", "--image-size", "16", "--width", "2", "--epochs", "3", "--batch-size", "8"]


def _curve(path):
    return [
        {k: v for k, v in json.loads(line).items() if k != "seconds"}
        for line in path.read_text().splitlines()
    ]


def _interrupted(monkeypatch, module, after):
    real, calls = module._train_epoch, {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] > after:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(module, "_train_epoch", flaky)


@pytest.mark.parametrize(
    "task,args,module,after", [("emert", EMERT, emert_train, 3), ("myopia", MYOPIA, myopia_train, 2)]
)
def test_run_dir_and_resume(tmp_path, monkeypatch, task, args, module, after):
    base = ["train", "--task", task, *args, "--out", str(tmp_path)]
    assert main([*base, "--name", "full"]) == 0
    full = tmp_path / "full"
    for f in ("config.json", "metrics.jsonl", "checkpoint.safetensors", "curves.png", "results.json"):
        assert (full / f).is_file(), f
    if task == "myopia":
        assert (full / "calibration.png").is_file()
    with monkeypatch.context() as m:
        _interrupted(m, module, after)
        with pytest.raises(KeyboardInterrupt):
            main([*base, "--name", "cut"])
    assert len(_curve(tmp_path / "cut" / "metrics.jsonl")) == after
    with pytest.raises(FileExistsError):
        main([*base, "--name", "cut"])
    assert main([*base, "--name", "cut", "--resume"]) == 0
    assert _curve(tmp_path / "cut" / "metrics.jsonl") == _curve(full / "metrics.jsonl")
