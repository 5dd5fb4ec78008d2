"""pyvision.models.vit: attention against torch's MultiheadAttention, shapes, timm/DINO-format
checkpoints written by the test (prefixes, extra heads, resized position embedding), freezing, errors."""

import pytest
import torch

from pyvision.models.vit import (
    VisionTransformer,
    freeze_until_block,
    load_vit_checkpoint,
    resize_pos_embed,
    vit_base,
)


def tiny(**kw):
    return VisionTransformer(**{"image_size": 16, "patch_size": 4, "embed_dim": 24, "depth": 2,
                                "num_heads": 3, "mlp_ratio": 2.0, **kw})


def test_attention_matches_torch_multihead_attention():
    torch.manual_seed(0)
    m = tiny().eval()
    attn = m.blocks[0].attn
    ref = torch.nn.MultiheadAttention(24, 3, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(attn.qkv.weight)
        ref.in_proj_bias.copy_(attn.qkv.bias)
        ref.out_proj.weight.copy_(attn.proj.weight)
        ref.out_proj.bias.copy_(attn.proj.bias)
    x = torch.randn(2, 5, 24)
    torch.testing.assert_close(attn(x), ref(x, x, x, need_weights=False)[0], rtol=1e-5, atol=1e-5)


def test_shapes_and_other_image_sizes():
    m = tiny(num_classes=7)
    assert m(torch.randn(2, 3, 16, 16)).shape == (2, 7)
    # 24×20 images: 6×5 grid, position embedding interpolated from the 4×4 one.
    assert tiny()(torch.randn(2, 3, 24, 20)).shape == (2, 24)
    assert m.forward_features(torch.randn(1, 3, 16, 16)).shape == (1, 17, 24)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        m(torch.randn(1, 3, 15, 16))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        tiny(num_heads=5)


def test_vit_base_parameter_count_matches_timm():
    # timm's vit_base_patch16_224 without classifier (num_classes=0): 85,798,656 parameters.
    assert sum(p.numel() for p in vit_base().parameters()) == 85_798_656


def test_dino_checkpoint_with_prefixes_and_heads_loads(tmp_path):
    torch.manual_seed(1)
    src = tiny().eval()
    for p in src.parameters():
        torch.nn.init.normal_(p, std=0.2)
    sd = {f"module.backbone.{k}": v for k, v in src.state_dict().items()}
    # DINO's training checkpoint: the projection head lives beside the backbone.
    sd["module.head.mlp.0.weight"] = torch.randn(8, 24)
    sd["module.head.last_layer.weight_v"] = torch.randn(16, 8)
    path = tmp_path / "dino.pth"
    torch.save({"teacher": sd, "epoch": 3}, path)
    dst = tiny().eval()
    skipped = load_vit_checkpoint(dst, path)
    assert sorted(skipped) == ["head.last_layer.weight_v", "head.mlp.0.weight"]
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(dst(x), src(x))


def test_timm_checkpoint_at_other_resolution_resizes_pos_embed(tmp_path):
    src = tiny(image_size=32, num_classes=5)
    from safetensors.torch import save_file

    path = tmp_path / "timm.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    dst = tiny(image_size=16, num_classes=3)
    skipped = load_vit_checkpoint(dst, path)
    assert sorted(skipped) == ["head.bias", "head.weight"]
    torch.testing.assert_close(dst.pos_embed, resize_pos_embed(src.pos_embed.detach(), (4, 4)))
    torch.testing.assert_close(dst.blocks[1].mlp.fc2.weight, src.blocks[1].mlp.fc2.weight)


def test_resize_pos_embed_identity_and_constant():
    pe = torch.randn(1, 17, 6)
    torch.testing.assert_close(resize_pos_embed(pe, (4, 4)), pe)
    const = torch.ones(1, 10, 2)
    torch.testing.assert_close(resize_pos_embed(const, (5, 5)), torch.ones(1, 26, 2))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_vit_checkpoint(tiny(), tmp_path / "nope.pth")
    sd = tiny().state_dict()
    del sd["blocks.1.attn.qkv.weight"]
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="blocks.1.attn.qkv.weight"):
        load_vit_checkpoint(tiny(), tmp_path / "partial.pth")


def test_freeze_until_block():
    m = tiny(depth=3)
    freeze_until_block(m, 2)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in m.named_parameters() if n.startswith(("blocks.2.", "norm."))}
    freeze_until_block(m, 0)
    assert all(p.requires_grad for p in m.parameters())
    with pytest.raises(ValueError, match="grad_from_block"):
        freeze_until_block(m, 4)
