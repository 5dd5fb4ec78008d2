"""CLIP's byte-pair-encoding tokenizer (Radford et al., 2021) in plain Python.

Text is cleaned (HTML entities unescaped, whitespace collapsed, lower-cased), split into words,
numbers (one digit per piece) and punctuation runs, each piece mapped byte-wise onto printable unicode
characters and merged by the 48,894 ranked BPE merges of ``data/bpe_simple_vocab_16e6.txt.gz`` (the
file OpenAI released with CLIP, vendored with its MIT license). The vocabulary is 49,408 tokens: 256
byte characters, the same with the end-of-word mark ``</w>``, one token per merge, then
``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407). OpenAI CLIP, open_clip and Meta's Perception
Encoder all use this tokenizer; they differ only in context length (77 / 77 / 32 for PE-Core-L14).

``regex`` (for ``\\p{L}``/``\\p{N}``) is used when installed; otherwise the stdlib ``re`` equivalents
(``[^\\W\\d_]`` for letters, ``\\d`` for numbers) give the same pieces on everything but rare numeric
symbols such as "½".
"""

from __future__ import annotations

import functools
import gzip
import html
import os
from pathlib import Path

import torch

try:
    import regex as _re

    _PATTERN = (
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
        r"""[^\s\p{L}\p{N}]+"""
    )
except ImportError:  # pragma: no cover - depends on the environment
    import re as _re

    _PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+"""

__all__ = ["SimpleTokenizer", "default_bpe_path"]

_VOCAB_SIZE = 49408


def default_bpe_path() -> Path:
    return Path(__file__).parent / "data" / "bpe_simple_vocab_16e6.txt.gz"


@functools.lru_cache
def _byte_to_unicode() -> dict[int, str]:
    """A reversible map from the 256 byte values onto printable unicode characters: printable Latin-1
    bytes map to themselves, the others to code points from 256 on, in byte order. The dict's order
    (printable bytes first, then the others) is the order of the first 256 vocabulary entries."""
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in keep}
    rest = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + n) for n, b in enumerate(rest)})
    return table


def _clean(text: str) -> str:
    try:  # ftfy repairs mojibake; optional, as in the original tokenizer's intent
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


class SimpleTokenizer:
    """``tok(texts) -> LongTensor (N, context_length)``: start token, BPE ids, end token, zero padding.

    A text longer than the context is truncated and its last position set to the end token, so
    ``argmax`` over a row always finds the end token (CLIP pools the text feature there).
    """

    def __init__(self, bpe_path: str | os.PathLike | None = None, context_length: int = 77):
        path = Path(bpe_path) if bpe_path is not None else default_bpe_path()
        if not path.is_file():
            raise FileNotFoundError(f"BPE vocabulary {str(path)!r} does not exist")
        if context_length < 2:
            raise ValueError(f"context_length must be >= 2 (start and end tokens), got {context_length}")
        self.context_length = context_length
        with gzip.open(path) as f:
            lines = f.read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : _VOCAB_SIZE - 256 * 2 - 2 + 1]]
        chars = list(_byte_to_unicode().values())
        vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        if len(vocab) != _VOCAB_SIZE:
            raise ValueError(f"{str(path)!r} does not hold CLIP's merges: vocabulary of {len(vocab)} tokens")
        self.encoder = {tok: i for i, tok in enumerate(vocab)}
        self.decoder = {i: tok for tok, i in self.encoder.items()}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.sot = self.encoder["<|startoftext|>"]
        self.eot = self.encoder["<|endoftext|>"]
        self.vocab_size = len(vocab)
        self._byte_enc = _byte_to_unicode()
        self._byte_dec = {c: b for b, c in self._byte_enc.items()}
        self._pattern = _re.compile(_PATTERN, _re.IGNORECASE)
        self._cache = {"<|startoftext|>": ["<|startoftext|>"], "<|endoftext|>": ["<|endoftext|>"]}

    def _bpe(self, piece: str) -> list[str]:
        if piece in self._cache:
            return self._cache[piece]
        word = list(piece[:-1]) + [piece[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self._cache[piece] = word
        return word

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without start/end tokens."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        ids = []
        for piece in self._pattern.findall(_clean(text)):
            mapped = "".join(self._byte_enc[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self._bpe(mapped))
        return ids

    def decode(self, ids: list[int]) -> str:
        text = "".join(self.decoder[int(i)] for i in ids)
        raw = bytearray(
            self._byte_dec[c] for c in text.replace("<|startoftext|>", "").replace("<|endoftext|>", "")
        )
        return raw.decode("utf-8", errors="replace").replace("</w>", " ").strip()

    def __call__(self, texts: str | list[str]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.sot] + self.encode(text) + [self.eot]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot
            out[row, : len(ids)] = torch.tensor(ids)
        return out
