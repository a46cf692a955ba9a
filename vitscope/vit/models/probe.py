"""A backbone with a linear classification head fitted on its CLS embedding (a probe).

A backbone (`LoadedModel.classifier` False) has no classes: `forward` returns the final CLS
embedding. `with_probe(lm, head)` returns the same model (same weights, same parts) whose
`forward`, and so `resume`, returns the head's logits on that embedding, and whose `labels`
are the head's classes, so class-based analyses run on it unchanged. How a head is fitted is
`vitscope.vit.analysis.probe`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from vitscope.vit.models.loading import LoadedModel


@dataclass(frozen=True)
class LinearHead:
    """Logits = embedding @ weight.T + bias: `weight` (C, D), `bias` (C,), float32; `labels` the C classes."""

    weight: torch.Tensor
    bias: torch.Tensor
    labels: tuple[str, ...]

    def __call__(self, embedding: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) in float32 of embeddings (B, D) of any dtype (a bfloat16 pass is read in float32)."""
        return torch.addmm(self.bias, embedding.to(self.weight.dtype), self.weight.T)

    def to(self, device: str | torch.device) -> LinearHead:
        """The same head on `device` (still float32)."""
        return LinearHead(self.weight.to(device), self.bias.to(device), self.labels)


@dataclass
class ProbedModel(LoadedModel):
    """A backbone whose `forward` returns `head`'s logits (B, C) on its final CLS embedding.

    `classifier` stays False (the checkpoint has no classification head); `labels` are the head's.
    """

    head: LinearHead = field(kw_only=True)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Probe logits (B, C) for pixel values (B, 3, h, w)."""
        return self.head(super().forward(pixel_values))

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> ProbedModel:
        """Move the weights in place (the head keeps float32); return self."""
        super().to(device, dtype)
        self.head = self.head.to(device)
        return self


def with_probe(lm: LoadedModel, head: LinearHead) -> ProbedModel:
    """`lm` (a backbone) with `head` as its classifier: forward returns logits, labels are the head's.

    Raises `ValueError` for a model that has a classifier or a head of another width.
    """
    if lm.classifier:
        raise ValueError(f"{lm.spec} has a classifier already: a probe is for backbones")
    width = int(lm.model.config.hidden_size)
    if head.weight.shape[1] != width:
        raise ValueError(f"the probe reads {head.weight.shape[1]}-d embeddings, {lm.spec} gives {width}-d")
    base = {f.name: getattr(lm, f.name) for f in fields(LoadedModel)}
    return ProbedModel(**{**base, "labels": list(head.labels)}, head=head.to(lm.device))


def probe_head(lm: LoadedModel) -> LinearHead | None:
    """The probe head of a `ProbedModel`, None for any other model."""
    return lm.head if isinstance(lm, ProbedModel) else None
