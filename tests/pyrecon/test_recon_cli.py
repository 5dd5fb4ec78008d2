"""python -m pyrecon: the lazy method registry (train/fit), `list`, and the `recon` baselines command."""

import json
import sys
import textwrap

import h5py
import numpy as np
import pytest

from pyrecon import cli
from pyrecon.data.phantoms import cine_phantom, coil_maps
from pyrecon.ops.fft import fft2c


def test_list_prints_the_registry(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name, path in cli.METHODS.items():
        assert name in out and path in out


def test_contract_registry():
    assert cli.METHODS == {
        "dun-sre": "pyrecon.dunsre.train",
        "plain-unrolled": "pyrecon.dunsre.train",
        "tenf-inr": "pyrecon.inr.tenf",
        "hash-inr": "pyrecon.inr.hash_inr",
        "t1rho-inr": "pyrecon.inr.t1rho",
    }


def test_missing_module_gives_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(cli.METHODS, "ghost", "pyrecon.no_such_package.train")
    assert cli.main(["train", "--model", "ghost"]) == 2
    err = capsys.readouterr().err
    assert "pyrecon.no_such_package.train" in err and "does not exist yet" in err
    with pytest.raises(cli.MethodUnavailable, match="does not exist yet"):
        cli.load_method("ghost")
    with pytest.raises(ValueError, match="unknown method"):
        cli.load_method("nope")


def test_missing_dependency_and_incomplete_module(tmp_path, monkeypatch):
    (tmp_path / "needs_dep.py").write_text("import not_a_real_dependency_xyz\n")
    (tmp_path / "no_main.py").write_text("def add_arguments(parser):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.METHODS, "dep", "needs_dep")
    monkeypatch.setitem(cli.METHODS, "half", "no_main")
    with pytest.raises(cli.MethodUnavailable, match="not_a_real_dependency_xyz"):
        cli.load_method("dep")
    with pytest.raises(cli.MethodUnavailable, match="does not define main"):
        cli.load_method("half")


def test_train_and_fit_dispatch_to_the_module(tmp_path, monkeypatch, capsys):
    (tmp_path / "fake_method.py").write_text(
        textwrap.dedent(
            """
            def add_arguments(parser):
                parser.add_argument("--epochs", type=int, default=1)

            def main(args):
                print("ran", getattr(args, "model", None), getattr(args, "method", None), args.epochs)
                return 7
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("fake_method", None)
    monkeypatch.setitem(cli.METHODS, "fake-a", "fake_method")
    monkeypatch.setitem(cli.METHODS, "fake-b", "fake_method")
    assert cli.main(["train", "--model", "fake-a", "--epochs", "3"]) == 7
    assert "ran fake-a None 3" in capsys.readouterr().out
    assert cli.main(["fit", "--epochs", "2", "--method", "fake-b"]) == 7
    assert "ran None fake-b 2" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "fake-a", "--unknown-flag"])
    with pytest.raises(SystemExit):
        cli.main(["train"])  # --model is required


def test_recon_on_the_phantom_writes_a_run(tmp_path, capsys):
    argv = ["recon", "--frames", "4", "--size", "32", "--coils", "2", "--accel", "4", "--ls-iters", "5"]
    argv += ["--cg-iters", "5", "--runs", str(tmp_path), "--name", "r"]
    assert cli.main(argv) == 0
    run = tmp_path / "r"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["method"] for r in rows] == ["zero-filled", "cg-sense", "lplus-s"]
    assert rows[1]["psnr"] > rows[0]["psnr"]
    assert json.loads((run / "config.json").read_text())["accel"] == 4.0
    assert (run / "recon.png").stat().st_size > 1000
    with pytest.raises(FileExistsError):  # a second run into the same directory is refused
        cli.main(argv)


def test_recon_on_an_hdf5_file(tmp_path, capsys):
    x, _ = cine_phantom(4, 32, 32, seed=3, dtype=__import__("torch").complex128)
    s = coil_maps(3, 32, 32, seed=3, dtype=x.dtype)
    k = fft2c(s[None] * x[:, None]).numpy()  # (T, C, H, W)
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = k.astype(np.complex64)
    argv = [
        "recon",
        "--h5",
        str(path),
        "--accel",
        "4",
        "--baseline",
        "zero-filled",
        "cg-sense",
        "--snr",
        "30",
    ]
    argv += ["--cg-iters", "5", "--runs", str(tmp_path), "--name", "h5run", "--center-lines", "8"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "4 frames, 3 coils, 32x32" in out
    rows = [json.loads(line) for line in (tmp_path / "h5run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[1]["psnr"] > rows[0]["psnr"]
