"""The token layout of a ViT: which tokens are prefix tokens and how patches form a grid.

Everything that needs to tell prefix tokens from patches, or turn a token axis into an
(h, w) grid, goes through `TokenLayout`; nothing else in vitscope slices `[:, 1:]` or
reshapes to a hard-coded size. The layout is derived from a probe forward pass by the
model loader (`vitscope.vit.models.loading`), never typed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TokenLayout:
    """Prefix tokens first, then the patch grid in row-major order.

    `prefix_roles` names each prefix token in order (`"cls"`, `"distillation"`, `"register"`);
    `grid` is (rows, cols) of patches for `image_size` (height, width) pixels.
    """

    prefix_roles: tuple[str, ...]
    grid: tuple[int, int]
    patch_size: int
    image_size: tuple[int, int]

    @property
    def n_prefix(self) -> int:
        """Number of prefix tokens (CLS, distillation, registers)."""
        return len(self.prefix_roles)

    @property
    def n_patches(self) -> int:
        """Number of patch tokens, rows * cols."""
        return self.grid[0] * self.grid[1]

    @property
    def n_tokens(self) -> int:
        """Sequence length: prefix tokens plus patches."""
        return self.n_prefix + self.n_patches

    @property
    def cls_index(self) -> int:
        """Index of the CLS token (the first prefix token in every supported family)."""
        return self.prefix_roles.index("cls")

    def patches(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """Return the patch-token slice of `x` along `dim` (prefix tokens dropped)."""
        return x.narrow(dim, self.n_prefix, self.n_patches)

    def to_grid(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Reshape a patch axis of length rows*cols at `dim` into two axes (rows, cols)."""
        dim = dim % x.dim()
        if x.shape[dim] != self.n_patches:
            raise ValueError(f"axis {dim} has {x.shape[dim]} entries, the grid needs {self.n_patches}")
        return x.unflatten(dim, self.grid)

    def patch_centers(self) -> torch.Tensor:
        """Return (n_patches, 2) pixel coordinates (y, x) of the patch centres, row-major."""
        rows = (torch.arange(self.grid[0], dtype=torch.float32) + 0.5) * self.patch_size
        cols = (torch.arange(self.grid[1], dtype=torch.float32) + 0.5) * self.patch_size
        yy, xx = torch.meshgrid(rows, cols, indexing="ij")
        return torch.stack([yy.flatten(), xx.flatten()], dim=1)

    def with_image_size(self, image_size: tuple[int, int]) -> TokenLayout:
        """Return the layout of the same model for another input size (interpolated positions)."""
        h, w = image_size
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        grid = (h // self.patch_size, w // self.patch_size)
        return TokenLayout(self.prefix_roles, grid, self.patch_size, (h, w))

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-ready description."""
        return {
            "prefix_tokens": list(self.prefix_roles),
            "grid": list(self.grid),
            "patch_size": self.patch_size,
            "image_size": list(self.image_size),
        }
