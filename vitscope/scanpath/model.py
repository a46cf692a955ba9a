"""OAT, the Object-level Attention Transformer (Fang et al., ECCV 2024), as published.

Token layout (N objects per scene, padded to the batch's largest N):

* encoder input: the N object tokens, then ONE target token (index N). An object token is
  appearance (d/2) ‖ position (d/2); position = [W_row ‖ W_col ‖ W_flag] from the frozen
  Gaussian table (`pe.py`) with flag 0; the target token has the target's crop and cell and
  flag 1.
* decoder input: BOS (a learned appearance at the grid centre (R//2, C//2), flag 0), then the
  object tokens of the previous fixations with flag 1 on the target, plus a 1-D sinusoidal
  order encoding; causal self-attention, cross-attention to the encoder output.
* output, "Object Attention": for N_c pointer heads O_k = (W_e^k H_e)(W_d^k H_d)ᵀ/√d over
  the N+1 encoder outputs, a zero column appended for PAD, Linear(N_c→1) mixes the heads.
  Logits (B, T, N+2): objects 0..N−1, EOS = N (pointing at the target token), PAD = N+1.
  Padded objects are masked; at the first step EOS and PAD are masked, so every scanpath has
  at least one fixation; decoding never emits PAD.

Decoding (`greedy`, `sample`) feeds one token per step through `decoding.StepDecoder`, which
caches keys and values; every step draws for all B·S sequences, so samples depend only on
the batch and the generator, not on when sequences end.

Appearance: "cnn" (published) takes uint8 crops (…, 3, h, w), h×w = 150×93 by default,
through Conv(3→16,5)→ReLU→MaxPool5→Conv(16→32,3)→ReLU→MaxPool3→Linear→d/2, trained end to
end; "vit" takes precomputed per-object features (…, F) through Linear(F→d/2).

When d ≠ 512 the positional half is d/2 wide: each of row/col/flag gets ceil(d/6) dims of
its own fitted table, truncated to d/2 (see `pe.py`), so the Gaussian similarity survives
without a learned projection.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitscope.contracts.errors import UserError
from vitscope.scanpath.decoding import StepDecoder
from vitscope.scanpath.pe import component_dim, fit_position_table, position_embedding

COMPACT_AT = 0.75  # drop finished rows from the decoding caches once a quarter of them has ended


@dataclass(frozen=True)
class OATConfig:
    """Hyper-parameters of OAT; the defaults are the published ones."""

    d_model: int = 512
    encoder_layers: int = 4
    decoder_layers: int = 4
    heads: int = 4
    ffn: int = 512
    dropout: float = 0.1
    pointer_heads: int = 2
    appearance: Literal["cnn", "vit"] = "cnn"
    feature_dim: int = 0
    feature_model: str = ""  # the model spec whose features a "vit" appearance reads (informative)
    crop_size: tuple[int, int] = (150, 93)
    pe_size: int = 14
    sigma: float = 2.0
    max_len: int = 60

    def __post_init__(self) -> None:
        if self.d_model % 2 or self.d_model % self.heads:
            raise UserError(f"d_model {self.d_model} must be even and divisible by heads {self.heads}")
        if self.appearance not in ("cnn", "vit"):
            raise UserError(f"appearance must be 'cnn' or 'vit', got {self.appearance!r}")
        if self.appearance == "vit" and self.feature_dim <= 0:
            raise UserError("appearance 'vit' needs feature_dim > 0 (the size of the per-object features)")
        if self.appearance == "cnn":
            CropCNN.flat_dim(self.crop_size)

    def to_json(self) -> str:
        """Return the config as JSON text."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OATConfig:
        """Build a config from a dict, ignoring unknown keys (newer checkpoints)."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "crop_size" in kwargs:
            kwargs["crop_size"] = tuple(kwargs["crop_size"])
        return cls(**kwargs)


@dataclass(frozen=True)
class SceneInputs:
    """A batch of B scenes, objects padded to N.

    `appearance` (B, N, 3, h, w) uint8 crops or (B, N, F) float features;
    `target_appearance` (B, 3, h, w) or (B, F); `rows`, `cols` (B, N) long cells;
    `object_mask` (B, N) bool, True for real objects; `target` (B,) long; `grid` (B, 2) long
    (rows, cols) of each scene's grid.
    """

    appearance: Tensor
    target_appearance: Tensor
    rows: Tensor
    cols: Tensor
    object_mask: Tensor
    target: Tensor
    grid: Tensor

    def to(self, device: torch.device | str) -> SceneInputs:
        """Return the batch on `device`."""
        return SceneInputs(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def n_objects(self) -> int:
        """N, the padded number of objects (EOS index)."""
        return int(self.rows.shape[1])


@dataclass(frozen=True)
class Memory:
    """Encoder state for decoding: `encoded` (B, N+1, d); `pad` (B, N+1) bool, True = padding;
    `tokens` (B, N, d) decoder embeddings of the objects (flag 1 on the target); `bos` (B, d)."""

    encoded: Tensor
    pad: Tensor
    tokens: Tensor
    bos: Tensor


class CropCNN(nn.Module):
    """OAT's appearance encoder A: (…, 3, h, w) uint8 crops -> (…, out_dim)."""

    def __init__(self, crop_size: tuple[int, int], out_dim: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 5), nn.ReLU(), nn.MaxPool2d(5), nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(3)
        )
        self.proj = nn.Linear(self.flat_dim(crop_size), out_dim)

    @staticmethod
    def flat_dim(crop_size: tuple[int, int]) -> int:
        """Flattened feature size for a crop size (32·9·5 = 1440 at 150×93)."""
        h, w = (((s - 4) // 5 - 2) // 3 for s in crop_size)
        if h < 1 or w < 1:
            raise UserError(f"crop size {crop_size} is too small for the appearance CNN (min 29x29)")
        return 32 * h * w

    def forward(self, crops: Tensor) -> Tensor:
        lead = crops.shape[:-3]
        x = crops.reshape(-1, *crops.shape[-3:]).float() / 255.0 - 0.5
        return self.proj(self.features(x).flatten(1)).reshape(*lead, -1)


def check_cells(cells: Tensor, config: OATConfig) -> None:
    """Raise `UserError` when grid cells (…, 2) fall outside the positional table of `config`."""
    if cells.numel() and int(cells.max()) >= config.pe_size:
        raise UserError(
            f"grid cells reach {tuple(cells.amax(dim=tuple(range(cells.dim() - 1))).tolist())} but the "
            f"positional table has {config.pe_size} rows; train a model with a larger pe_size"
        )


def sinusoidal(length: int, dim: int) -> Tensor:
    """The standard 1-D sinusoidal encoding, (length, dim)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


class OAT(nn.Module):
    """The OAT scanpath model: `forward` gives teacher-forced logits; `greedy` and `sample`
    (module functions) decode autoregressively."""

    pe_table: Tensor
    order_pe: Tensor

    def __init__(self, config: OATConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or OATConfig()
        half = c.d_model // 2
        self.appearance: nn.Module = (
            CropCNN(c.crop_size, half) if c.appearance == "cnn" else nn.Linear(c.feature_dim, half)
        )
        # fitted offline, frozen: a buffer so it is saved with the weights but never trained
        self.register_buffer("pe_table", fit_position_table(c.pe_size, component_dim(half), c.sigma))
        self.register_buffer("order_pe", sinusoidal(c.max_len + 1, c.d_model), persistent=False)
        self.bos_appearance = nn.Parameter(torch.zeros(half))
        enc_layer = nn.TransformerEncoderLayer(c.d_model, c.heads, c.ffn, c.dropout, batch_first=True)
        dec_layer = nn.TransformerDecoderLayer(c.d_model, c.heads, c.ffn, c.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(enc_layer, c.encoder_layers, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(dec_layer, c.decoder_layers)
        self.point_enc = nn.Linear(c.d_model, c.d_model * c.pointer_heads, bias=False)
        self.point_dec = nn.Linear(c.d_model, c.d_model * c.pointer_heads, bias=False)
        self.mix = nn.Linear(c.pointer_heads, 1)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def _position(self, rows: Tensor, cols: Tensor, flags: Tensor) -> Tensor:
        width = self.config.d_model // 2
        return position_embedding(self.pe_table, rows, cols, flags, width)

    def encode(self, x: SceneInputs) -> Memory:
        """Run the appearance encoder and the transformer encoder; returns the `Memory`.

        Cells must lie inside the positional table (`check_cells`; `trial_tensors` checks
        on the host, so that no step waits for the device).
        """
        app = self.appearance(x.appearance)  # (B, N, d/2)
        tgt_app = self.appearance(x.target_appearance)  # (B, d/2)
        zeros = torch.zeros_like(x.rows)
        is_target = torch.arange(x.n_objects, device=x.rows.device)[None] == x.target[:, None]
        src = torch.cat([app, self._position(x.rows, x.cols, zeros)], dim=-1)
        b = torch.arange(len(x.target), device=x.rows.device)
        t_rows, t_cols = x.rows[b, x.target], x.cols[b, x.target]
        tgt = torch.cat([tgt_app, self._position(t_rows, t_cols, torch.ones_like(t_rows))], dim=-1)
        pad = torch.cat([~x.object_mask, torch.zeros_like(x.object_mask[:, :1])], dim=1)
        encoded = self.encoder(torch.cat([src, tgt[:, None]], dim=1), src_key_padding_mask=pad)
        tokens = torch.cat([app, self._position(x.rows, x.cols, is_target)], dim=-1)
        centre = x.grid // 2
        bos_pos = self._position(centre[:, 0], centre[:, 1], torch.zeros_like(centre[:, 0]))
        bos = torch.cat([self.bos_appearance.expand(len(bos_pos), -1), bos_pos], dim=-1)
        return Memory(encoded, pad, tokens, bos)

    def decode_logits(self, memory: Memory, prev: Tensor) -> Tensor:
        """Logits of the next object after each prefix.

        `prev` (B, T) long: the fixations so far (entries < 0 are padding, ignored by the
        causal mask for earlier steps). Returns (B, T+1, N+2): step t predicts fixation t
        given BOS and prev[:, :t].
        """
        steps = prev.shape[1] + 1
        if steps > self.order_pe.shape[0]:
            raise UserError(f"scanpaths longer than max_len={self.config.max_len} fixations")
        gathered = memory.tokens.gather(
            1, prev.clamp(min=0)[..., None].expand(-1, -1, memory.tokens.shape[-1])
        )
        tokens = torch.cat([memory.bos[:, None], gathered], dim=1) + self.order_pe[:steps]
        causal = nn.Transformer.generate_square_subsequent_mask(steps, device=prev.device, dtype=tokens.dtype)
        # the hint spares the decoder comparing the mask with a causal one, a device sync per call
        hidden = self.decoder(
            tokens, memory.encoded, tgt_mask=causal, memory_key_padding_mask=memory.pad, tgt_is_causal=True
        )
        return self._point(memory, hidden)

    def _point(self, memory: Memory, hidden: Tensor, first: slice = slice(0, 1)) -> Tensor:
        """Pointer logits (B, T, N+2) of `hidden` (B, T, d); positions `first` are a scanpath's
        first step (no EOS, no PAD)."""
        c = self.config
        b, t, _ = hidden.shape
        e = self.point_enc(memory.encoded).view(b, -1, c.pointer_heads, c.d_model)
        q = self.point_dec(hidden).view(b, t, c.pointer_heads, c.d_model)
        scores = torch.einsum("btkd,bnkd->btnk", q, e) / math.sqrt(c.d_model)  # (B, T, N+1, heads)
        scores = torch.cat([scores, scores.new_zeros(b, t, 1, c.pointer_heads)], dim=2)
        logits = self.mix(scores).squeeze(-1).float()  # (B, T, N+2)
        n = memory.tokens.shape[1]
        blocked = torch.cat([memory.pad[:, :n], memory.pad.new_zeros(b, 2)], dim=1)[:, None].expand(-1, t, -1)
        blocked = blocked.clone()
        blocked[:, first, n:] = True  # first step: neither EOS nor PAD, a scanpath has >= 1 fixation
        return logits.masked_fill(blocked, float("-inf"))

    def forward(self, x: SceneInputs, fixations: Tensor) -> Tensor:
        """Teacher-forced logits: `fixations` (B, L) long padded with -1; returns (B, L+1, N+2)."""
        return self.decode_logits(self.encode(x), fixations)


def loss_targets(fixations: Tensor, n_objects: int) -> Tensor:
    """Targets for `OAT.forward`: (B, L+1) = fixations, then EOS (= N), then PAD (= N+1)."""
    b, length = fixations.shape
    lengths = (fixations >= 0).sum(dim=1)
    out = torch.full((b, length + 1), n_objects + 1, dtype=torch.long, device=fixations.device)
    out[:, :length] = torch.where(fixations >= 0, fixations, n_objects + 1)
    out[torch.arange(b, device=fixations.device), lengths] = n_objects
    return out


def scanpath_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy over non-PAD steps (scalar); PAD = logits.shape[-1] − 1."""
    pad = logits.shape[-1] - 1
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=pad)


@dataclass(frozen=True)
class Decoded:
    """Autoregressive decoding of B scenes × S samples.

    `indices` (B, S, L) long object indices, −1 after the end; `lengths` (B, S);
    `stopped` (B, S) bool, True where EOS ended the scanpath (False: cut at max_len);
    `chosen_prob` (B, S, L+1) probability of each emitted token, the EOS step included,
    0 after the end; `step_probs` (B, S, L+1, N+2) full distributions, when requested.
    """

    indices: Tensor
    lengths: Tensor
    stopped: Tensor
    chosen_prob: Tensor
    step_probs: Tensor | None = None

    def scanpaths(self) -> list[list[list[int]]]:
        """Return the scanpaths as nested lists [scene][sample] -> object indices."""
        idx, lens = self.indices.tolist(), self.lengths.tolist()
        return [
            [row[:n] for row, n in zip(rows, ns, strict=True)] for rows, ns in zip(idx, lens, strict=True)
        ]


@torch.no_grad()
def _decode(
    model: OAT,
    x: SceneInputs,
    samples: int,
    generator: torch.Generator | None,
    max_len: int | None,
    keep_probs: bool,
    memory: Memory | None = None,
) -> Decoded:
    """One loop over steps for all B·S sequences; `generator` None means greedy (argmax);
    `memory`: the scenes' encoding when already computed (in eval mode)."""
    with _eval_mode(model):  # dropout off while decoding
        max_len = min(max_len or model.config.max_len, model.config.max_len)
        memory = model.encode(x) if memory is None else memory
        n, b = x.n_objects, len(x.target)
        steps = StepDecoder(model.decoder, memory.encoded, memory.pad, samples, max_len + 1)
        rows, dev = b * samples, memory.bos.device
        scene = torch.arange(rows, device=dev) // samples
        prev = torch.full((rows, max_len), -1, dtype=torch.long, device=dev)
        chosen_prob = torch.zeros(rows, max_len + 1, device=dev)
        done = torch.zeros(rows, dtype=torch.bool, device=dev)
        stopped = torch.zeros_like(done)
        all_probs = []
        for t in range(max_len + 1):
            probs = _next_distribution(model, memory, steps, scene, prev, t, final=t == max_len)
            # every step draws for all B·S rows, finished or not, so the random stream (and the
            # samples) do not depend on when rows finish
            pick = (
                probs.argmax(-1)
                if generator is None
                else torch.multinomial(probs, 1, generator=generator)[:, 0]
            )
            chosen_prob[:, t] = torch.where(done, 0.0, probs.gather(1, pick[:, None])[:, 0])
            if keep_probs:
                all_probs.append(torch.where(done[:, None], 0.0, probs))
            ended = pick == n
            stopped |= ended & ~done & (t < max_len)
            if t < max_len:
                prev[:, t] = torch.where(done | ended, -1, pick)
            done |= ended
            remaining = int((~done).sum())  # the one device sync per step
            if remaining == 0:
                break
            if remaining <= COMPACT_AT * len(steps.live):
                steps.compact(~done[steps.live], t)
        return _package(prev, chosen_prob, stopped, all_probs, b, samples, max_len)


def _next_distribution(
    model: OAT, memory: Memory, steps: StepDecoder, scene: Tensor, prev: Tensor, t: int, final: bool
) -> Tensor:
    """Probabilities (B·S, N+2) of token `t` of every row (rows no longer live: any valid
    distribution); PAD is a training-time filler and never predicted; at the length limit
    (`final`) only EOS remains."""
    live, n = steps.live, memory.tokens.shape[1]
    # the first token is BOS, then the object of the previous fixation (finished rows: any)
    last = prev[live, t - 1].clamp(min=0) if t else None
    token = memory.bos[scene[live]] if last is None else memory.tokens[scene[live], last]
    hidden = steps.to_grid(steps.step(token + model.order_pe[t], t))  # (B, S, d)
    logits = model._point(memory, hidden, slice(None) if t == 0 else slice(0, 0)).flatten(0, 1)
    logits[:, n + 1] = float("-inf")
    if final:
        logits[:, :n] = float("-inf")
    return logits.softmax(-1)


def _package(
    prev: Tensor, chosen_prob: Tensor, stopped: Tensor, all_probs: list[Tensor], b: int, s: int, max_len: int
) -> Decoded:
    lengths = (prev >= 0).sum(dim=1)
    step_probs = None
    if all_probs:
        stacked = torch.stack(all_probs, dim=1)
        pad = max_len + 1 - stacked.shape[1]
        step_probs = F.pad(stacked, (0, 0, 0, pad)).view(b, s, max_len + 1, -1)
    return Decoded(
        prev.view(b, s, max_len),
        lengths.view(b, s),
        stopped.view(b, s),
        chosen_prob.view(b, s, -1),
        step_probs,
    )


def greedy(model: OAT, x: SceneInputs, max_len: int | None = None, keep_probs: bool = False) -> Decoded:
    """Greedy decoding (one scanpath per scene, S = 1) until EOS or `max_len`."""
    return _decode(model, x, 1, None, max_len, keep_probs)


def sample(
    model: OAT,
    x: SceneInputs,
    n: int = 100,
    generator: torch.Generator | None = None,
    max_len: int | None = None,
    keep_probs: bool = False,
) -> Decoded:
    """Multinomial sampling of `n` scanpaths per scene (S = n); seeded by `generator`."""
    if generator is None:
        generator = torch.Generator(device=x.rows.device).manual_seed(0)
    return _decode(model, x, n, generator, max_len, keep_probs)


@torch.no_grad()
def greedy_and_sample(
    model: OAT, x: SceneInputs, n: int, generator: torch.Generator, max_len: int | None = None
) -> tuple[Decoded, Decoded]:
    """`greedy` and `sample` of the same scenes from one run of the encoder."""
    with _eval_mode(model):
        memory = model.encode(x)
        first = _decode(model, x, 1, None, max_len, False, memory)
        return first, _decode(model, x, n, generator, max_len, False, memory)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Dropout off inside the block; the model's own mode back after it."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def save_checkpoint(
    model: OAT, folder: Path, extra: dict[str, Any] | None = None, dtype: torch.dtype = torch.float16
) -> None:
    """Write `config.json` (the config plus `extra`, e.g. training info) and `model.safetensors`.

    Floating-point weights are stored in `dtype` (float16 by default: half the size, and the
    model loads them into float32).
    """
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(folder / "model.safetensors"))
    meta = {"model": asdict(model.config), **(extra or {})}
    (folder / "config.json").write_text(json.dumps(meta, indent=2))


def load_checkpoint(folder: Path, device: torch.device | str = "cpu") -> OAT:
    """Load a checkpoint folder written by `save_checkpoint`; returns the model in eval mode."""
    from safetensors.torch import load_file

    cfg_path, weights = folder / "config.json", folder / "model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise UserError(f"{folder} is not a scanpath checkpoint (needs config.json and model.safetensors)")
    try:
        model = OAT(OATConfig.from_dict(json.loads(cfg_path.read_text())["model"]))
        model.load_state_dict(load_file(str(weights), device="cpu"))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"{folder}: the scanpath checkpoint does not load ({exc})") from exc
    return model.to(device).eval()
