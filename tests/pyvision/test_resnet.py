"""pyvision.models.resnet: shapes, torchvision-format checkpoints written by the test, bad input."""

import pytest
import torch

from pyvision.models.resnet import load_resnet_checkpoint, resnet18, resnet34


@pytest.mark.parametrize("ctor,blocks", [(resnet18, (2, 2, 2, 2)), (resnet34, (3, 4, 6, 3))])
def test_structure_and_shapes(ctor, blocks):
    m = ctor(num_classes=7, width=8)
    for i, n in enumerate(blocks):
        assert len(getattr(m, f"layer{i + 1}")) == n
    y = m(torch.randn(2, 3, 64, 48))
    assert y.shape == (2, 7)
    f = ctor(num_classes=0, width=8)(torch.randn(2, 3, 64, 48))
    assert f.shape == (2, 64)


def test_full_width_parameter_count_matches_torchvision():
    # torchvision's resnet18 has 11,689,512 parameters and resnet34 21,797,672 (1000 classes).
    assert sum(p.numel() for p in resnet18().parameters()) == 11_689_512
    assert sum(p.numel() for p in resnet34().parameters()) == 21_797_672


def test_checkpoint_roundtrip_skips_other_head(tmp_path):
    src = resnet18(num_classes=10, width=8).eval()
    for p in src.parameters():
        torch.nn.init.normal_(p)
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = resnet18(num_classes=3, width=8).eval()
    skipped = load_resnet_checkpoint(dst, path)
    assert sorted(skipped) == ["fc.bias", "fc.weight"]
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(dst.forward_features(x), src.forward_features(x))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_resnet_checkpoint(resnet18(width=8), tmp_path / "nope.pth")
    torch.save(resnet18(width=16).state_dict(), tmp_path / "wide.pth")
    with pytest.raises(ValueError, match="does not fit"):
        load_resnet_checkpoint(resnet18(width=8), tmp_path / "wide.pth")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        resnet18(width=8)(torch.randn(3, 32, 32))
