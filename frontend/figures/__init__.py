"""Figure builders: pure functions from arrays to `go.Figure` (no I/O, no Dash, no state).

One module per page (`heads`, `head`, `cam`, `scanpath`) and `common` for what they share; the
builders are re-exported here, so pages write `from frontend import figures as F; F.pattern_map`.
Shapes use the analyses' names: L layers, H heads, R rings, N images, T tokens, (h, w) the
patch grid.
"""

from frontend.figures.cam import (
    Placement,
    faithfulness_by_layer,
    faithfulness_curves,
    method_label,
    placed_overlay_figure,
    randomization_curve,
    rank_corr_line,
)
from frontend.figures.common import (
    CLS_COLOR,
    FONT,
    HIGHLIGHT,
    MUTED,
    PATCH_COLOR,
    TEMPLATE,
    Head,
    base_layout,
    empty_figure,
    graph_config,
    head_customdata,
    image_source,
    layer_colors,
    outline_cell,
    overlay_figure,
    ring_trace,
    top5_bars,
)
from frontend.figures.head import (
    BLOCKS,
    attention_matrix,
    bipartite,
    block_max,
    mode_blocks,
    pruning_modes,
    value_histogram,
)
from frontend.figures.heads import (
    density_grid,
    entropy_by_layer,
    entropy_histogram,
    importance_heatmap,
    pattern_map,
    prob_after_line,
    prototypes_figure,
    ring_bars,
)
from frontend.figures.scanpath import density_bars, scanpath_figure

__all__ = [
    "BLOCKS",
    "CLS_COLOR",
    "FONT",
    "HIGHLIGHT",
    "MUTED",
    "PATCH_COLOR",
    "TEMPLATE",
    "Head",
    "Placement",
    "attention_matrix",
    "base_layout",
    "bipartite",
    "block_max",
    "density_bars",
    "density_grid",
    "empty_figure",
    "entropy_by_layer",
    "entropy_histogram",
    "faithfulness_by_layer",
    "faithfulness_curves",
    "graph_config",
    "head_customdata",
    "image_source",
    "importance_heatmap",
    "layer_colors",
    "method_label",
    "mode_blocks",
    "outline_cell",
    "overlay_figure",
    "pattern_map",
    "placed_overlay_figure",
    "prob_after_line",
    "prototypes_figure",
    "pruning_modes",
    "randomization_curve",
    "rank_corr_line",
    "ring_bars",
    "ring_trace",
    "scanpath_figure",
    "top5_bars",
    "value_histogram",
]
