"""CLIP-style image and text towers (Radford et al., 2021) in plain torch, with OpenAI CLIP's parameter
names, plus the Perception Encoder variant (Bolya et al., 2025: 2-D RoPE, attention pooling).

Layout (OpenAI's, which open_clip and Meta's PE-Core checkpoints share)::

    visual.conv1.weight  visual.class_embedding  visual.positional_embedding  visual.ln_pre.*
    visual.transformer.resblocks.{i}.{ln_1, attn.in_proj_weight, attn.in_proj_bias, attn.out_proj,
                                      ln_2, mlp.c_fc, mlp.c_proj[, ls_1.gamma, ls_2.gamma]}
    visual.ln_post.*  [visual.attn_pool.{probe, attn.*, layernorm, mlp.*}]  visual.proj
    token_embedding.weight  positional_embedding  transformer.resblocks.{i}.*  ln_final.*
    text_projection  logit_scale

so ``load_clip_checkpoint`` needs no renaming beyond unwrapping (``state_dict``/``weights`` entries,
``module.`` prefixes, TorchScript archives as OpenAI ships them); what differs between the families is
architecture, which ``clip_config_from_state_dict`` reads off the tensors' shapes and key names.
Not supported (raise ``NotImplementedError``): open_clip models with a timm trunk (``visual.trunk.*``)
or a Hugging Face text tower (``text.transformer.*``).

Both towers take ``after_block(i, x) -> x``, called after residual block ``i``, and ``project=False``
(the pooled feature before the projection), which is how Q-CLIP inserts its adapters without copying
the forward pass.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from pyvision.models.checkpoint import read_state_dict

__all__ = [
    "CLIP",
    "CLIP_PRESETS",
    "CLIPConfig",
    "TextConfig",
    "VisionConfig",
    "clip_config_from_state_dict",
    "load_clip_checkpoint",
    "read_clip_state_dict",
]

BlockHook = Callable[[int, torch.Tensor], torch.Tensor]


@dataclass
class VisionConfig:
    image_size: int = 224
    patch_size: int = 32
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    output_dim: int = 512
    act: str = "quick_gelu"  # OpenAI: QuickGELU; open_clip (LAION) and PE: "gelu"
    pool: str = "tok"  # "tok": class token (OpenAI); "attn": attention pooling (PE)
    rope2d: bool = False  # PE: 2-D rotary position embedding in every block
    layer_scale: bool = False  # ls_1/ls_2 gammas (PE-G, not PE-Core-L)
    attn_pool_heads: int = 8


@dataclass
class TextConfig:
    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    heads: int = 8
    layers: int = 12
    mlp_ratio: float = 4.0
    output_dim: int = 512
    act: str = "quick_gelu"


@dataclass
class CLIPConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)


CLIP_PRESETS: dict[str, CLIPConfig] = {
    # Tests and CPU runs: 32x32 images, 4 layers of width 64 in both towers (Q-CLIP shares adapters
    # between towers, which needs equal widths).
    "tiny": CLIPConfig(
        VisionConfig(32, 8, 64, 4, 4, 4.0, 64, "gelu"), TextConfig(16, 49408, 64, 4, 4, 4.0, 64, "gelu")
    ),
    "ViT-B-32": CLIPConfig(VisionConfig(224, 32, 768, 12, 12, 4.0, 512), TextConfig()),
    "ViT-B-16": CLIPConfig(VisionConfig(224, 16, 768, 12, 12, 4.0, 512), TextConfig()),
    "ViT-L-14": CLIPConfig(
        VisionConfig(224, 14, 1024, 24, 16, 4.0, 768), TextConfig(77, 49408, 768, 12, 12, 4.0, 768)
    ),
    # The backbone Q-CLIP releases: PE-Core-L14-336 (vision and text both 1024 wide, 24 layers).
    "PE-Core-L14-336": CLIPConfig(
        VisionConfig(336, 14, 1024, 24, 16, 4.0, 1024, "gelu", "attn", True),
        TextConfig(32, 49408, 1024, 16, 24, 4.0, 1024, "gelu"),
    ),
    "PE-Core-B16-224": CLIPConfig(
        VisionConfig(224, 16, 768, 12, 12, 4.0, 1024, "gelu", "attn", True),
        TextConfig(32, 49408, 1024, 16, 24, 4.0, 1024, "gelu"),
    ),
}


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def _act(name: str) -> nn.Module:
    if name == "gelu":
        return nn.GELU()
    if name == "quick_gelu":
        return QuickGELU()
    raise ValueError(f"act must be 'gelu' or 'quick_gelu', got {name!r}")


class Attention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention``'s parameter names (packed q/k/v in
    ``in_proj_weight``), optional rotary embedding on q and k, and cross-attention when ``kv`` is given."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        x: torch.Tensor,
        kv: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        rope: torch.Tensor | None = None,
    ) -> torch.Tensor:
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        kv = x if kv is None else kv
        split = lambda t: t.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, h, S, d)
        q, k, v = split(F.linear(x, w_q, b_q)), split(F.linear(kv, w_k, b_k)), split(F.linear(kv, w_v, b_v))
        if rope is not None:
            q, k = _apply_rope(q, rope), _apply_rope(k, rope)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).flatten(2))


def _rotate_pairs(t: torch.Tensor) -> torch.Tensor:
    """(..., 2n) with pairs (a, b) → pairs (-b, a): rotation by +90° in each consecutive pair."""
    a, b = t.unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((-b, a), dim=-1).flatten(-2)


def _apply_rope(t: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """t · cos θ + rot90(t) · sin θ per consecutive channel pair; ``angles`` (S, d) broadcast over (B, h)."""
    return t * angles.cos().to(t.dtype) + _rotate_pairs(t) * angles.sin().to(t.dtype)


def rope2d_angles(
    grid_h: int,
    grid_w: int,
    head_dim: int,
    cls_token: bool,
    theta: float = 10000.0,
    device: torch.device | None = None,
) -> torch.Tensor:
    """PE's 2-D RoPE angles, (grid_h·grid_w [+1], head_dim).

    Half of each head's channels rotate with the column x, half with the row y: with d = head_dim/2 and
    f_j = θ^(-2j/d) (j < d/2), the angles are [x·f_0, x·f_0, x·f_1, x·f_1, …, y·f_0, y·f_0, …]. With a
    class token, patch positions start at 1 and a zero row is appended at the *end* of the sequence —
    exactly as the released PE code does (so the class token at sequence position 0 takes patch (1, 1)'s
    angles and the last patch gets none); pretrained PE weights were trained with this layout.
    """
    if head_dim % 4:
        raise ValueError(f"2-D RoPE needs head_dim divisible by 4, got {head_dim}")
    d = head_dim // 2
    freqs = 1.0 / theta ** (torch.arange(0, d, 2, device=device)[: d // 2].float() / d)
    off = 1 if cls_token else 0
    ys = torch.arange(grid_h, device=device).float() + off
    xs = torch.arange(grid_w, device=device).float() + off
    ang_y = (ys[:, None] * freqs).repeat_interleave(2, -1)[:, None].expand(grid_h, grid_w, d)
    ang_x = (xs[:, None] * freqs).repeat_interleave(2, -1)[None, :].expand(grid_h, grid_w, d)
    angles = torch.cat([ang_x, ang_y], dim=-1).reshape(grid_h * grid_w, head_dim)
    if cls_token:
        angles = torch.cat([angles, angles.new_zeros(1, head_dim)])
    return angles


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class ResidualAttentionBlock(nn.Module):
    """x + attn(ln_1 x), then + mlp(ln_2 x) (pre-norm), each branch optionally scaled (layer scale)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, act: str, layer_scale: bool = False):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, hidden))
        self.mlp.add_module("gelu", _act(act))
        self.mlp.add_module("c_proj", nn.Linear(hidden, width))
        self.ls_1 = LayerScale(width) if layer_scale else nn.Identity()
        self.ls_2 = LayerScale(width) if layer_scale else nn.Identity()

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, rope: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.ls_1(self.attn(self.ln_1(x), mask=mask, rope=rope))
        return x + self.ls_2(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    def __init__(
        self, width: int, layers: int, heads: int, mlp_ratio: float, act: str, layer_scale: bool = False
    ):
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, mlp_ratio, act, layer_scale) for _ in range(layers)
        )

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        rope: torch.Tensor | None = None,
        after_block: BlockHook | None = None,
    ) -> torch.Tensor:
        for i, block in enumerate(self.resblocks):
            x = block(x, mask=mask, rope=rope)
            if after_block is not None:
                x = after_block(i, x)
        return x


class AttentionPooling(nn.Module):
    """PE's pooling head: one learned probe attends over the tokens, then a residual MLP."""

    def __init__(self, width: int, heads: int, act: str, mlp_ratio: float = 4.0):
        super().__init__()
        self.probe = nn.Parameter(torch.randn(1, 1, width))
        self.attn = Attention(width, heads)
        self.layernorm = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, int(width * mlp_ratio)))
        self.mlp.add_module("gelu", _act(act))
        self.mlp.add_module("c_proj", nn.Linear(int(width * mlp_ratio), width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.probe.expand(x.shape[0], -1, -1).to(x.dtype)
        q = self.attn(q, kv=x)
        return (q + self.mlp(self.layernorm(q)))[:, 0]


class VisionTransformer(nn.Module):
    """(B, 3, H, W) images → (B, output_dim) features (or (B, width) with ``project=False``).
    H and W must be multiples of the patch size; other grid sizes interpolate the position embedding."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.conv1 = nn.Conv2d(3, w, cfg.patch_size, cfg.patch_size, bias=False)
        scale = w**-0.5
        self.grid = cfg.image_size // cfg.patch_size
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid**2 + 1, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, cfg.layers, cfg.heads, cfg.mlp_ratio, cfg.act, cfg.layer_scale)
        self.ln_post = nn.LayerNorm(w)
        if cfg.pool == "attn":
            self.attn_pool = AttentionPooling(w, cfg.attn_pool_heads, cfg.act)
        elif cfg.pool != "tok":
            raise ValueError(f"vision pool must be 'tok' or 'attn', got {cfg.pool!r}")
        self.proj = nn.Parameter(scale * torch.randn(w, cfg.output_dim))

    def _pos_embed(self, gh: int, gw: int) -> torch.Tensor:
        pos = self.positional_embedding
        if gh == gw == self.grid:
            return pos
        grid = pos[1:].reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bilinear", align_corners=False)
        return torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(gh * gw, -1)])

    def forward(
        self, images: torch.Tensor, after_block: BlockHook | None = None, project: bool = True
    ) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        p = self.cfg.patch_size
        if images.shape[-1] % p or images.shape[-2] % p:
            raise ValueError(f"image size {tuple(images.shape[-2:])} is not a multiple of the patch size {p}")
        x = self.conv1(images)
        gh, gw = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1).to(x.dtype), x], dim=1)
        x = self.ln_pre(x + self._pos_embed(gh, gw).to(x.dtype))
        rope = None
        if self.cfg.rope2d:
            rope = rope2d_angles(gh, gw, self.cfg.width // self.cfg.heads, True, device=x.device)
        x = self.ln_post(self.transformer(x, rope=rope, after_block=after_block))
        pooled = self.attn_pool(x) if self.cfg.pool == "attn" else x[:, 0]
        return pooled @ self.proj if project else pooled


class CLIP(nn.Module):
    """Image tower ``visual`` and the text tower (top-level attributes, as in OpenAI's layout)."""

    def __init__(self, config: CLIPConfig | str = "tiny"):
        super().__init__()
        if isinstance(config, str):
            if config not in CLIP_PRESETS:
                raise ValueError(f"unknown CLIP preset {config!r}; known: {sorted(CLIP_PRESETS)}")
            config = CLIP_PRESETS[config]
        if not isinstance(config, CLIPConfig):
            raise TypeError(f"config must be a CLIPConfig or a preset name, got {type(config).__name__}")
        self.config = config
        self.visual = VisionTransformer(config.vision)
        t = config.text
        self.token_embedding = nn.Embedding(t.vocab_size, t.width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(t.context_length, t.width))
        self.transformer = Transformer(t.width, t.layers, t.heads, t.mlp_ratio, t.act)
        self.ln_final = nn.LayerNorm(t.width)
        self.text_projection = nn.Parameter(t.width**-0.5 * torch.randn(t.width, t.output_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.register_buffer(
            "causal_mask", torch.full((t.context_length,) * 2, float("-inf")).triu(1), persistent=False
        )

    def encode_image(self, images: torch.Tensor, **kw) -> torch.Tensor:
        return self.visual(images, **kw)

    def encode_text(
        self,
        tokens: torch.Tensor,
        embeddings: torch.Tensor | None = None,
        after_block: BlockHook | None = None,
        project: bool = True,
    ) -> torch.Tensor:
        """(N, L) token ids → (N, output_dim). ``embeddings`` (N, L, width) replaces the token embedding
        lookup (learned prompt context); ``tokens`` still locates the end token (its argmax), where the
        feature is pooled."""
        if tokens.dim() != 2 or tokens.dtype != torch.long:
            raise ValueError(
                f"tokens must be a (N, L) int64 tensor, got {tuple(tokens.shape)} {tokens.dtype}"
            )
        n, seq = tokens.shape
        if seq > self.config.text.context_length:
            raise ValueError(
                f"tokens hold {seq} positions, the context length is {self.config.text.context_length}"
            )
        x = self.token_embedding(tokens) if embeddings is None else embeddings
        x = x + self.positional_embedding[:seq].to(x.dtype)
        x = self.ln_final(
            self.transformer(x, mask=self.causal_mask[:seq, :seq].to(x.dtype), after_block=after_block)
        )
        pooled = x[torch.arange(n, device=x.device), tokens.argmax(-1)]
        return pooled @ self.text_projection if project else pooled

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Cosine-similarity logits (B_images, N_texts) scaled by exp(logit_scale)."""
        img = F.normalize(self.encode_image(images), dim=-1)
        txt = F.normalize(self.encode_text(tokens), dim=-1)
        return self.logit_scale.exp() * img @ txt.T


def read_clip_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a local CLIP checkpoint, unwrapped: a plain ``torch.save``'d state dict, one nested
    under ``state_dict``/``weights``/``model``, a safetensors file, or OpenAI's TorchScript archive;
    ``module.`` prefixes (DDP) are removed."""
    sd = read_state_dict(path, "CLIP", wrappers=("state_dict", "weights", "model"))
    # TorchScript extras that are not weights.
    for extra in ("input_resolution", "context_length", "vocab_size"):
        sd.pop(extra, None)
    return sd


def clip_config_from_state_dict(sd: dict[str, torch.Tensor]) -> CLIPConfig:
    """Architecture from tensor shapes and key names (heads = width / 64, as in OpenAI CLIP and PE)."""
    if any(k.startswith("visual.trunk.") for k in sd):
        raise NotImplementedError("open_clip checkpoints with a timm image trunk are not supported")
    if any(k.startswith("text.") for k in sd):
        raise NotImplementedError("open_clip checkpoints with a Hugging Face text tower are not supported")
    for need in (
        "visual.conv1.weight",
        "visual.positional_embedding",
        "visual.proj",
        "token_embedding.weight",
        "positional_embedding",
        "text_projection",
    ):
        if need not in sd:
            raise ValueError(f"not a CLIP state dict in OpenAI/open_clip/PE layout: missing {need!r}")
    conv = sd["visual.conv1.weight"]
    width, patch = conv.shape[0], conv.shape[-1]
    grid = math.isqrt(sd["visual.positional_embedding"].shape[0] - 1)

    def count(prefix: str) -> int:
        return len({k[len(prefix) :].split(".")[0] for k in sd if k.startswith(prefix)})

    pe = "visual.attn_pool.probe" in sd
    act = "gelu" if pe else "quick_gelu"  # OpenAI-trained weights use QuickGELU; override for LAION ones
    vlayers = count("visual.transformer.resblocks.")
    vision = VisionConfig(
        grid * patch,
        patch,
        width,
        vlayers,
        width // 64,
        sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width,
        sd["visual.proj"].shape[1],
        act,
        "attn" if pe else "tok",
        pe,
        "visual.transformer.resblocks.0.ls_1.gamma" in sd,
    )
    tw = sd["token_embedding.weight"].shape[1]
    text = TextConfig(
        sd["positional_embedding"].shape[0],
        sd["token_embedding.weight"].shape[0],
        tw,
        tw // 64,
        count("transformer.resblocks."),
        sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / tw,
        sd["text_projection"].shape[1],
        act,
    )
    return CLIPConfig(vision, text)


def load_clip_checkpoint(
    path: str | os.PathLike, config: CLIPConfig | str | None = None, act: str | None = None
) -> CLIP:
    """A ``CLIP`` with the weights of a local OpenAI CLIP / open_clip / PE-Core checkpoint.

    ``config`` (a preset name or config) is inferred from the file when omitted; ``act`` overrides the
    inferred activation (open_clip's LAION-trained ViTs use "gelu", OpenAI's "quick_gelu"). Every tensor
    must match: missing or unexpected keys raise ``ValueError`` listing them.
    """
    sd = read_clip_state_dict(path)
    if config is None:
        config = clip_config_from_state_dict(sd)
    elif isinstance(config, str):  # a preset name: needed where heads != width / 64 (the tiny config)
        if config not in CLIP_PRESETS:
            raise ValueError(f"unknown CLIP preset {config!r}; known: {sorted(CLIP_PRESETS)}")
        config = CLIP_PRESETS[config]
    if act is not None:
        config = dataclasses.replace(
            config,
            vision=dataclasses.replace(config.vision, act=act),
            text=dataclasses.replace(config.text, act=act),
        )
    model = CLIP(config)
    sd.pop("attn_mask", None)  # PE registers its causal mask as a buffer in some exports
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {str(path)!r} does not fit the CLIP config: missing {missing[:8]}"
            f"{'…' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
            f"{'…' if len(unexpected) > 8 else ''}"
        )
    return model.eval()
