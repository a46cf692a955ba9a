"""`vitscope bench capture`: cost of capturing every layer's attention vs the plain SDPA forward."""

from __future__ import annotations

import argparse
from typing import Any

from vitscope.bench.common import emit, environment, timed


def register(sub: Any) -> None:
    """Add the `capture` benchmark."""
    p = sub.add_parser("capture", help="attention capture (all layers) vs plain SDPA forward")
    p.add_argument("--model", default="random:vit-base")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--repeats", type=int, default=10)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Time both passes in the same run; print one JSON line with both figures and their ratio."""
    import torch

    from vitscope.vit.models import intervene, load_model

    lm = load_model(args.model, device=args.device)
    lm.to(args.device, getattr(torch, args.dtype))
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(args.batch, 3, *lm.layout.image_size, generator=g).to(args.device, lm.dtype)
    kept: list[torch.Tensor] = []

    def plain() -> None:
        with torch.no_grad():
            lm.forward(x)

    def captured() -> None:
        kept.clear()
        with torch.no_grad(), intervene(lm.parts, capture=True, sink=lambda _l, p: kept.append(p)):
            lm.forward(x)

    t_plain = timed(plain, args.device, repeats=args.repeats)
    t_capture = timed(captured, args.device, repeats=args.repeats)
    emit(
        {
            "bench": "capture",
            "model": args.model,
            "batch": args.batch,
            "dtype": args.dtype,
            "plain_sdpa_ms": 1e3 * t_plain,
            "capture_all_layers_ms": 1e3 * t_capture,
            "capture_cost": t_capture / t_plain,
            "speedup": t_plain / t_capture,
            "captured_bytes": sum(p.numel() * p.element_size() for p in kept),
            **environment(args.device),
        }
    )
    return 0
