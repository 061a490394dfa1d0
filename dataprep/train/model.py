"""A GPT-style decoder (pre-norm, SDPA attention, tied embeddings) and a classifier head."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SIZES = {
    "tiny": (2, 2, 64),
    "small": (6, 6, 384),
    "gpt2-124m": (12, 12, 768),
}


@dataclass(frozen=True)
class ModelShape:
    vocab_size: int
    seq_len: int
    n_layer: int
    n_head: int
    d_model: int
    n_classes: int = 0  # > 0: a classifier head instead of the language-model head

    def params(self) -> int:
        """Non-embedding parameter count, for FLOPs estimates."""
        return 12 * self.n_layer * self.d_model**2

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward), PaLM appendix B."""
        embedding = self.padded_vocab() * self.d_model
        attention = 12 * self.n_layer * self.d_model * self.seq_len
        return 6 * (self.params() + embedding) + attention

    def padded_vocab(self) -> int:
        return math.ceil(self.vocab_size / 64) * 64  # matmul-friendly


def shape_for(name: str, vocab_size: int, seq_len: int, **overrides: int | None) -> ModelShape:
    n_layer, n_head, d_model = SIZES[name]
    n_layer = overrides.get("n_layer") or n_layer
    n_head = overrides.get("n_head") or n_head
    d_model = overrides.get("d_model") or d_model
    n_classes = overrides.get("n_classes") or 0
    return ModelShape(vocab_size, seq_len, n_layer, n_head, d_model, n_classes)


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model),
            nn.GELU(approximate="tanh"),
            nn.Linear(4 * d_model, d_model),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        self.shape = shape
        vocab = shape.padded_vocab()
        self.tok = nn.Embedding(vocab, shape.d_model)
        self.pos = nn.Embedding(shape.seq_len, shape.d_model)
        self.blocks = nn.ModuleList(
            Block(shape.d_model, shape.n_head) for _ in range(shape.n_layer)
        )
        self.ln_f = nn.LayerNorm(shape.d_model)
        if shape.n_classes:
            self.head = nn.Linear(shape.d_model, shape.n_classes)
        else:
            self.head = nn.Linear(shape.d_model, vocab, bias=False)
            self.head.weight = self.tok.weight  # tied
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        # (batch, time) positions, not (time,): per-sample gradients (DP-SGD) need the batch
        positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        x = self.tok(ids) + self.pos(positions)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits; or, given next-token `targets`, the mean loss, computed here so that
        torch.compile fuses it with the head (no float32 copy of the whole logits tensor)."""
        h = self.hidden(ids)
        if self.shape.n_classes:
            last = (
                (lengths - 1).clamp(min=0)
                if lengths is not None
                else ids.new_full((ids.shape[0],), ids.shape[1] - 1)
            )
            return self.head(h[torch.arange(ids.shape[0], device=ids.device), last])
        logits = self.head(h)
        if targets is None:
            return logits
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
