"""A small Vision Transformer (Dosovitskiy et al., 2021) in plain torch, with timm/DINO parameter names.

Parameter names follow ``timm``'s ``VisionTransformer`` and DINO's ``vision_transformer.py``
(``cls_token``, ``pos_embed``, ``patch_embed.proj``, ``blocks.<i>.{norm1,attn.qkv,attn.proj,norm2,
mlp.fc1,mlp.fc2}``, ``norm``, ``head``), so a DINO ``dino_vitbase16_pretrain.pth`` or a timm state_dict
saved to a local file loads with ``load_vit_checkpoint`` without renaming. The position embedding is
resized (bicubic, as timm and DINO do) when the checkpoint was trained at another image size.

``num_classes=0`` gives the class-token feature after the final norm (``embed_dim``-d), which is how the
GCD methods use it. ``freeze_until_block(model, k)`` trains only blocks ``k..depth-1`` and the final
norm, like SimGCD's ``--grad_from_block``.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from pyvision.models.checkpoint import read_state_dict

__all__ = ["VisionTransformer", "freeze_until_block", "load_vit_checkpoint", "vit_base", "vit_small",
           "vit_tiny"]


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_channels: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)


class Attention(nn.Module):
    """Multi-head self-attention: softmax(Q Kᵀ / √d_head) V per head, heads concatenated, then ``proj``."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT with a class token and learned position embeddings.

    Input (B, in_channels, H, W) with H, W multiples of ``patch_size`` → logits (B, num_classes), or the
    normed class-token feature (B, embed_dim) when ``num_classes == 0``. Images of another size than
    ``image_size`` are accepted: the position embedding is interpolated on the fly.
    """

    def __init__(self, image_size: int = 224, patch_size: int = 16, in_channels: int = 3,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, num_classes: int = 0):
        super().__init__()
        for name, v in (("image_size", image_size), ("patch_size", patch_size), ("embed_dim", embed_dim),
                        ("depth", depth), ("num_heads", num_heads), ("in_channels", in_channels)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if image_size % patch_size:
            raise ValueError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})")
        self.patch_size = patch_size
        self.embed_dim = self.num_features = embed_dim
        self.patch_embed = PatchEmbed(patch_size, in_channels, embed_dim)
        n_patches = (image_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _pos_embed_for(self, h: int, w: int) -> torch.Tensor:
        n_old = self.pos_embed.shape[1] - 1
        if h * w == n_old and h == w:
            return self.pos_embed
        return resize_pos_embed(self.pos_embed, (h, w))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → all tokens after the final norm, (B, 1 + H·W/p², embed_dim)."""
        if x.dim() != 4:
            raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[-1] % self.patch_size or x.shape[-2] % self.patch_size:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not a multiple of patch_size "
                             f"{self.patch_size}")
        tokens = self.patch_embed(x)
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self._pos_embed_for(gh, gw)
        for blk in self.blocks:
            tokens = blk(tokens)
        return self.norm(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)[:, 0])


def resize_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(1, 1 + g², D) class + square-grid position embedding → (1, 1 + grid[0]·grid[1], D), bicubic."""
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]
    g = int(math.isqrt(patches.shape[1]))
    if g * g != patches.shape[1]:
        raise ValueError(f"position embedding has {patches.shape[1]} patch tokens, not a square grid")
    d = patches.shape[-1]
    patches = patches.reshape(1, g, g, d).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=grid, mode="bicubic", align_corners=False)
    return torch.cat([cls, patches.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], d)], dim=1)


def vit_tiny(**kwargs) -> VisionTransformer:
    return VisionTransformer(**{"embed_dim": 192, "depth": 12, "num_heads": 3, **kwargs})


def vit_small(**kwargs) -> VisionTransformer:
    return VisionTransformer(**{"embed_dim": 384, "depth": 12, "num_heads": 6, **kwargs})


def vit_base(**kwargs) -> VisionTransformer:
    return VisionTransformer(**{"embed_dim": 768, "depth": 12, "num_heads": 12, **kwargs})


def freeze_until_block(model: VisionTransformer, grad_from_block: int) -> None:
    """Train only ``blocks[grad_from_block:]`` and the final ``norm`` (SimGCD's ``--grad_from_block``);
    0 trains everything. Everything else gets ``requires_grad = False``."""
    depth = len(model.blocks)
    if not 0 <= grad_from_block <= depth:
        raise ValueError(f"grad_from_block must be in [0, {depth}], got {grad_from_block}")
    for name, p in model.named_parameters():
        if grad_from_block == 0:
            p.requires_grad = True
        elif name.startswith("blocks."):
            p.requires_grad = int(name.split(".")[1]) >= grad_from_block
        else:
            p.requires_grad = name.startswith("norm.") or name.startswith("head.")


_PREFIXES = ("module.", "backbone.", "encoder.")


def load_vit_checkpoint(model: VisionTransformer, path: str | os.PathLike) -> list[str]:
    """Load a timm/DINO-format ViT checkpoint into ``model``.

    Accepts a state_dict, or a dict holding one under ``state_dict``/``model``/``teacher`` (DINO's full
    training checkpoints), from ``torch.save`` or a ``.safetensors`` file. ``module.``/``backbone.``/
    ``encoder.`` prefixes are stripped; DINO's projection head (``head.mlp``, ``head.last_layer``) and
    a classifier ``head.*`` that does not fit are skipped; ``pos_embed`` is resized to the model's grid.
    Every backbone tensor must be present with the right shape, else ValueError. Returns the skipped
    names.
    """
    cleaned = read_state_dict(path, "ViT", wrappers=("state_dict", "model", "teacher"), prefixes=_PREFIXES)
    own = model.state_dict()
    skipped = []
    for k in list(cleaned):
        if k.startswith("head.") and (k not in own or own[k].shape != cleaned[k].shape):
            skipped.append(k)
            del cleaned[k]
    if "pos_embed" in cleaned and cleaned["pos_embed"].shape != own["pos_embed"].shape:
        n = own["pos_embed"].shape[1] - 1
        g = int(math.isqrt(n))
        cleaned["pos_embed"] = resize_pos_embed(cleaned["pos_embed"].float(), (g, g))
    missing = [k for k in own if k not in cleaned and not k.startswith("head.")]
    bad = [k for k in cleaned if k in own and own[k].shape != cleaned[k].shape]
    unexpected = [k for k in cleaned if k not in own]
    if missing or bad:
        raise ValueError(f"checkpoint {str(path)!r} does not fit this ViT: missing {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, wrong shape {bad[:5]}")
    for k in unexpected:
        skipped.append(k)
        del cleaned[k]
    model.load_state_dict(cleaned, strict=False)
    return skipped
