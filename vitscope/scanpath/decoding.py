"""Incremental steps of an `nn.TransformerDecoder`: one new token per sequence and step.

Re-running the decoder over the whole prefix at every step costs O(T²) token passes, and
with S sampled sequences per scene it also re-projects every scene's encoder output S
times per step and layer. `StepDecoder` feeds only the newest token:

* self-attention keys and values of earlier tokens stay in per-row caches (R, H, T, dh);
* cross-attention keys and values are projected once per scene (B, H, N+1, dh), and the S
  sequences of a scene attend to them as S query positions of one attention call;
* rows whose sequence has ended leave the caches (`compact`), so one long scanpath does
  not keep the work of the finished ones alive.

The arithmetic is that of `nn.TransformerDecoderLayer` in eval mode (post-norm, no
dropout), so outputs agree with a full re-run up to float rounding. Rows are scene-major:
row r is sample r % S of scene r // S.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class StepDecoder:
    """Caches and live rows of B scenes × S sequences decoded step by step.

    `memory` (B, N+1, d) is the encoder output, `memory_pad` (B, N+1) True at padding;
    `steps` bounds the number of tokens per sequence. `live` (R,) holds the row indices
    (into B·S) whose caches are kept, in increasing order.
    """

    def __init__(
        self, decoder: nn.TransformerDecoder, memory: Tensor, memory_pad: Tensor, samples: int, steps: int
    ) -> None:
        self.layers = [_post_norm(layer) for layer in decoder.layers]
        if decoder.norm is not None:
            raise ValueError("StepDecoder supports decoders without a final norm (OAT's)")
        self.scenes, self.samples = memory.shape[0], samples
        rows, d = self.scenes * samples, memory.shape[-1]
        self.heads = self.layers[0].self_attn.num_heads
        shape = (rows, self.heads, steps, d // self.heads)
        self.keys = [memory.new_empty(shape) for _ in self.layers]
        self.values = [memory.new_empty(shape) for _ in self.layers]
        self.cross = [_cross_keys_values(layer.multihead_attn, memory) for layer in self.layers]
        self.attend = ~memory_pad[:, None, None, :]  # (B, 1, 1, N+1): True where a key is real
        self.live = torch.arange(rows, device=memory.device)

    def step(self, x: Tensor, t: int) -> Tensor:
        """Hidden states (R, d) of token `t` of every live row, given its embeddings `x` (R, d)."""
        for k, layer in enumerate(self.layers):
            x = self._layer(k, layer, x, t)
        return x

    def to_grid(self, x: Tensor) -> Tensor:
        """Live rows' values (R, ...) as (B, S, ...), zero for rows no longer live."""
        grid = x.new_zeros((self.scenes * self.samples, *x.shape[1:]))
        grid[self.live] = x
        return grid.view(self.scenes, self.samples, *x.shape[1:])

    def compact(self, keep: Tensor, t: int) -> None:
        """Keep only the live rows where `keep` (R,) bool is True, after step `t`."""
        idx = keep.nonzero()[:, 0]
        self.live = self.live[idx]
        self.keys = [_rows(c, idx, t + 1) for c in self.keys]
        self.values = [_rows(c, idx, t + 1) for c in self.values]

    def _heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.heads, -1))  # (..., d) -> (..., H, dh)

    def _layer(self, k: int, layer: nn.TransformerDecoderLayer, x: Tensor, t: int) -> Tensor:
        sa = layer.self_attn
        q, key, value = F.linear(x, sa.in_proj_weight, sa.in_proj_bias).chunk(3, dim=-1)
        self.keys[k][:, :, t], self.values[k][:, :, t] = self._heads(key), self._heads(value)
        past_k, past_v = self.keys[k][:, :, : t + 1], self.values[k][:, :, : t + 1]
        attended = F.scaled_dot_product_attention(self._heads(q)[:, :, None], past_k, past_v)
        x = layer.norm1(x + sa.out_proj(attended.flatten(1)))
        x = layer.norm2(x + self._cross(k, layer.multihead_attn, x))
        return layer.norm3(x + layer.linear2(layer.activation(layer.linear1(x))))

    def _cross(self, k: int, attn: nn.MultiheadAttention, x: Tensor) -> Tensor:
        """Cross-attention of the live rows; each scene's S rows are S queries of one call."""
        d = x.shape[-1]
        q = F.linear(x, attn.in_proj_weight[:d], attn.in_proj_bias[:d])
        queries = self._heads(self.to_grid(q)).transpose(1, 2)  # (B, H, S, dh)
        keys, values = self.cross[k]
        out = F.scaled_dot_product_attention(queries, keys, values, attn_mask=self.attend)
        return attn.out_proj(out.transpose(1, 2).reshape(-1, d)[self.live])


def _rows(cache: Tensor, idx: Tensor, filled: int) -> Tensor:
    """Rows `idx` of a cache (R, H, T, dh) whose first `filled` steps are written (only those copied)."""
    out = cache.new_empty((len(idx), *cache.shape[1:]))
    out[:, :, :filled] = cache[idx, :, :filled]
    return out


def _post_norm(layer: nn.Module) -> nn.TransformerDecoderLayer:
    if not isinstance(layer, nn.TransformerDecoderLayer) or layer.norm_first:
        raise ValueError("StepDecoder supports post-norm nn.TransformerDecoderLayer layers (OAT's)")
    return layer


def _cross_keys_values(attn: nn.MultiheadAttention, memory: Tensor) -> tuple[Tensor, Tensor]:
    """Keys and values (B, H, N+1, dh) of a cross-attention over the encoder output."""
    d = memory.shape[-1]
    w, b = attn.in_proj_weight, attn.in_proj_bias
    keys = F.linear(memory, w[d : 2 * d], b[d : 2 * d])
    values = F.linear(memory, w[2 * d :], b[2 * d :])
    return (
        keys.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2),
        values.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2),
    )
