import dataclasses

import pytest
import torch
from torch import nn

from pyvision.models.clip import (
    CLIP,
    CLIP_PRESETS,
    CLIPConfig,
    TextConfig,
    VisionConfig,
    clip_config_from_state_dict,
    load_clip_checkpoint,
    rope2d_angles,
)

TINY = CLIP_PRESETS["tiny"]
ONE_LAYER = CLIPConfig(
    VisionConfig(16, 8, 32, 1, 2, 2.0, 16, "quick_gelu"),
    TextConfig(8, 49408, 32, 2, 1, 2.0, 16, "quick_gelu"),
)
# OpenAI CLIP's state-dict keys for one block per tower (openai/CLIP clip/model.py names).
BLOCK = [
    "ln_1.weight",
    "ln_1.bias",
    "attn.in_proj_weight",
    "attn.in_proj_bias",
    "attn.out_proj.weight",
    "attn.out_proj.bias",
    "ln_2.weight",
    "ln_2.bias",
    "mlp.c_fc.weight",
    "mlp.c_fc.bias",
    "mlp.c_proj.weight",
    "mlp.c_proj.bias",
]
OPENAI_KEYS = {
    "visual.conv1.weight",
    "visual.class_embedding",
    "visual.positional_embedding",
    "visual.ln_pre.weight",
    "visual.ln_pre.bias",
    "visual.ln_post.weight",
    "visual.ln_post.bias",
    "visual.proj",
    "token_embedding.weight",
    "positional_embedding",
    "ln_final.weight",
    "ln_final.bias",
    "text_projection",
    "logit_scale",
    *(f"visual.transformer.resblocks.0.{k}" for k in BLOCK),
    *(f"transformer.resblocks.0.{k}" for k in BLOCK),
}


def test_openai_key_layout():
    assert set(CLIP(ONE_LAYER).state_dict()) == OPENAI_KEYS


def test_pe_key_layout():
    cfg = dataclasses.replace(
        ONE_LAYER, vision=dataclasses.replace(ONE_LAYER.vision, pool="attn", rope2d=True)
    )
    extra = set(CLIP(cfg).state_dict()) - OPENAI_KEYS
    assert extra == {
        "visual.attn_pool.probe",
        "visual.attn_pool.attn.in_proj_weight",
        "visual.attn_pool.attn.in_proj_bias",
        "visual.attn_pool.attn.out_proj.weight",
        "visual.attn_pool.attn.out_proj.bias",
        "visual.attn_pool.layernorm.weight",
        "visual.attn_pool.layernorm.bias",
        "visual.attn_pool.mlp.c_fc.weight",
        "visual.attn_pool.mlp.c_fc.bias",
        "visual.attn_pool.mlp.c_proj.weight",
        "visual.attn_pool.mlp.c_proj.bias",
    }


def test_text_block_matches_nn_multihead_attention():
    # An independent path: OpenAI's text block is nn.MultiheadAttention + MLP with the same parameter names.
    torch.manual_seed(0)
    model = CLIP(ONE_LAYER).eval()
    blk = model.transformer.resblocks[0]
    mha = nn.MultiheadAttention(32, 2, batch_first=True)
    mha.load_state_dict(blk.attn.state_dict())
    x = torch.randn(3, 7, 32)
    mask = torch.full((7, 7), float("-inf")).triu(1)
    h = x + mha(blk.ln_1(x), blk.ln_1(x), blk.ln_1(x), attn_mask=mask, need_weights=False)[0]
    ref = h + blk.mlp(blk.ln_2(h))
    torch.testing.assert_close(blk(x, mask=mask), ref, rtol=1e-5, atol=1e-5)


def test_rope2d_angles_by_hand():
    # head_dim 8: d = 4 per axis, f = [1, 1/100]; grid 1 x 2 with a class token: patch positions (y=1, x=1..2)
    a = rope2d_angles(1, 2, 8, cls_token=True)
    f = [1.0, 0.01]
    expect = torch.tensor(
        [
            [1 * f[0], 1 * f[0], 1 * f[1], 1 * f[1], 1 * f[0], 1 * f[0], 1 * f[1], 1 * f[1]],
            [2 * f[0], 2 * f[0], 2 * f[1], 2 * f[1], 1 * f[0], 1 * f[0], 1 * f[1], 1 * f[1]],
            [0.0] * 8,
        ]
    )
    torch.testing.assert_close(a, expect)


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "module", "safetensors"])
def test_loader_roundtrip_and_config_inference(tmp_path, wrap):
    torch.manual_seed(1)
    model = CLIP(TINY).eval()
    sd = model.state_dict()
    path = tmp_path / ("ck.safetensors" if wrap == "safetensors" else "ck.pt")
    if wrap == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        obj = {"state_dict": sd} if wrap == "state_dict" else sd
        if wrap == "module":
            obj = {f"module.{k}": v for k, v in sd.items()}
        torch.save(obj, path)
    # Inference reads every size off the tensors; heads cannot be read (width / 64, as in OpenAI and PE)
    # and the activation is a property of the training run (QuickGELU unless PE).
    inferred = clip_config_from_state_dict(torch.load(path) if wrap == "plain" else sd)
    assert inferred == dataclasses.replace(
        TINY,
        vision=dataclasses.replace(TINY.vision, heads=1, act="quick_gelu"),
        text=dataclasses.replace(TINY.text, heads=1, act="quick_gelu"),
    )
    loaded = load_clip_checkpoint(path, "tiny")
    assert loaded.config == TINY
    images, tokens = (
        torch.randn(2, 3, 32, 32),
        torch.tensor([[49406, 320, 49407, 0], [49406, 1929, 320, 49407]]),
    )
    torch.testing.assert_close(loaded(images, tokens), model(images, tokens))


def test_pe_config_inferred(tmp_path):
    cfg = dataclasses.replace(TINY, vision=dataclasses.replace(TINY.vision, pool="attn", rope2d=True))
    model = CLIP(cfg).eval()
    torch.save(model.state_dict(), tmp_path / "pe.pt")
    inferred = clip_config_from_state_dict(torch.load(tmp_path / "pe.pt"))
    assert (
        inferred.vision.layers == 4 and inferred.vision.patch_size == 8 and inferred.vision.image_size == 32
    )
    assert inferred.vision.pool == "attn" and inferred.vision.rope2d and inferred.vision.act == "gelu"
    loaded = load_clip_checkpoint(tmp_path / "pe.pt", cfg)
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded.encode_image(x), model.encode_image(x))
    # other grid sizes interpolate the position embedding
    assert loaded.encode_image(torch.randn(1, 3, 48, 40)).shape == (1, 64)


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_clip_checkpoint(tmp_path / "nope.pt")
    sd = CLIP(TINY).state_dict()
    sd.pop("visual.proj")
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="visual.proj"):
        load_clip_checkpoint(tmp_path / "bad.pt")
    torch.save({"visual.trunk.x": torch.zeros(1)}, tmp_path / "timm.pt")
    with pytest.raises(NotImplementedError, match="timm"):
        load_clip_checkpoint(tmp_path / "timm.pt")
    with pytest.raises(ValueError, match="patch size"):
        CLIP(TINY).encode_image(torch.randn(1, 3, 30, 30))
