"""Where vitscope keeps what it derives once per machine (converted checkpoints, seeded weights)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$VITSCOPE_CACHE_DIR``, default ``~/.cache/vitscope``."""
    root = os.environ.get("VITSCOPE_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "vitscope"
