"""Every component id of the dashboard, in one place (callbacks and tests import them from here).

Graphs get dict ids `{"type": "graph", "name": ...}` so one app-wide callback can set the export
format of every graph on the current page.
"""

from __future__ import annotations

from typing import Any

GRAPH_TYPE = "graph"


def graph(name: Any) -> dict[str, Any]:
    """The id of the graph called `name` (its export file is named after it too)."""
    return {"type": GRAPH_TYPE, "name": name}


def card(name: Any) -> dict[str, Any]:
    """The id of the card holding graph `name` (hidden when the job has nothing for it to show)."""
    return {"type": "card", "name": name}


# -- app shell (frontend/app.py) ---------------------------------------------------------------
EXPORT_FORMAT = "export-format"
COPY_LINK = "copy-link"
COPIED_URL = "copied-url"
API_STATUS = "api-status"
API_STATUS_INTERVAL = "api-status-interval"
RECENT_JOBS = "recent-jobs-store"
NAV_PATHS = "nav-paths"


class Tracker:
    """Ids of one page's job tracker (store of job ids, polling, progress, compute-missing button)
    and of the notes its views leave about their jobs (what a job lacks, and why)."""

    def __init__(self, prefix: str) -> None:
        self.state = f"{prefix}-state"
        self.url = f"{prefix}-url"
        self.ready = f"{prefix}-ready"
        self.interval = f"{prefix}-interval"
        self.progress = f"{prefix}-progress"
        self.notice = f"{prefix}-notice"
        self.compute = f"{prefix}-compute"
        self.missing = f"{prefix}-missing"
        self.remember = f"{prefix}-remember"
        self.notes = f"{prefix}-notes"
        self.drawn = f"{prefix}-drawn"


JOB_CANCEL = "job-cancel"
"""Pattern-matching type of the cancel button on a queued or running job's progress row ({"type", "job"})."""

# -- home (/) ----------------------------------------------------------------------------------
HOME = Tracker("home")
HOME_MODEL = "home-model"
HOME_MODEL_TEXT = "home-model-text"
HOME_SOURCE = "home-source"
HOME_SYNTH_N = "home-synth-n"
HOME_SYNTH_SEED = "home-synth-seed"
HOME_UPLOAD_IMAGES = "home-upload-images"
HOME_UPLOAD_ZIP = "home-upload-zip"
HOME_UPLOADED = "home-uploaded"
HOME_UPLOADED_LIST = "home-uploaded-list"
HOME_KINDS = "home-kinds"
HOME_LAUNCH = "home-launch"
HOME_LAUNCH_NOTICE = "home-launch-notice"
HOME_JOBS = "home-jobs"
HOME_JOBS_INTERVAL = "home-jobs-interval"
HOME_CLEAR = "home-clear"

# -- heads overview (/heads) ---------------------------------------------------------------------
HEADS = Tracker("heads")
HEADS_METRIC = "heads-metric"
HEADS_IMAGE = "heads-image"
HEADS_QUERY = "heads-q"
HEADS_SELECTION = "heads-selection"
HEADS_SELECTED_TEXT = "heads-selected-text"
HEADS_DETAIL_LINK = "heads-detail-link"
HEADS_IMPORTANCE = "heads-importance"
HEADS_PROB_AFTER = "heads-prob-after"
HEADS_ENTROPY = "heads-entropy"
HEADS_RINGS = "heads-rings"
HEADS_ENTROPY_HIST = "heads-entropy-hist"
HEADS_PATTERNS = "heads-patterns"
HEADS_PROTOTYPES = "heads-prototypes"
HEADS_SUMMARY = "heads-summary"
HEADS_NO_CLASSIFIER = "heads-no-classifier"
HEADS_PROBE = "heads-probe"

# -- head detail (/head) ------------------------------------------------------------------------
HEAD = Tracker("head")
HEAD_LAYER = "head-layer"
HEAD_HEAD = "head-head"
HEAD_IMAGE = "head-image"
HEAD_CLS = "head-cls"
HEAD_BACK_LINK = "head-back-link"
HEAD_OVERLAY = "head-overlay"
HEAD_MATRIX = "head-matrix"
HEAD_VALUES = "head-values"
HEAD_MODES = "head-modes"
HEAD_TOP5 = "head-top5"
HEAD_BIPARTITE = "head-bipartite"
HEAD_CAPTION = "head-caption"
HEAD_NO_CLASSIFIER = "head-no-classifier"
HEAD_PROBE = "head-probe"

# -- CAM (/cam) ---------------------------------------------------------------------------------
CAM = Tracker("cam")
CAM_UPLOAD = "cam-upload"
CAM_UPLOAD_NOTICE = "cam-upload-notice"
CAM_MODEL = "cam-model"
CAM_DATASET = "cam-dataset"
CAM_DATASET_GO = "cam-dataset-go"
CAM_IMAGE = "cam-image"
CAM_LAYER = "cam-layer"
CAM_OPACITY = "cam-opacity"
CAM_CMAP = "cam-cmap"
CAM_OVERLAY = "cam-overlay"
CAM_TOP5 = "cam-top5"
CAM_ROLLOUT = "cam-rollout"
CAM_GRADCAM = "cam-gradcam"
CAM_RANDOM = "cam-random"
CAM_RANK = "cam-rank"
CAM_PICTURE = "cam-picture"
CAM_PICTURE_FIELD = "cam-picture-field"
CAM_NO_CLASSIFIER = "cam-no-classifier"
CAM_TRUST = "cam-trust"
"""The Trust panel: its heading, the most faithful method and the per-method table."""
CAM_TRUST_BEST = "cam-trust-best"
CAM_TRUST_TABLE = "cam-trust-table"
CAM_TRUST_AUC = "cam-trust-auc"
CAM_TRUST_CURVES = "cam-trust-curves"
CAM_TRUST_CASCADE = "cam-trust-cascade"

# -- scanpath (/scanpath) -----------------------------------------------------------------------
SCAN = Tracker("scan")
SCAN_UPLOAD = "scan-upload"
SCAN_UPLOAD_NOTICE = "scan-upload-notice"
SCAN_MODEL = "scan-model"
SCAN_DATASET = "scan-dataset"
SCAN_DATASET_GO = "scan-dataset-go"
SCAN_IMAGE = "scan-image"
SCAN_FIGURE = "scan-figure"
SCAN_DENSITY = "scan-density"
SCAN_EDITS = "scan-edits"
SCAN_RERUN = "scan-rerun"
SCAN_CAPTION = "scan-caption"

# -- any job (/job) -----------------------------------------------------------------------------
JOB = Tracker("job")
JOB_CONTENT = "job-content"
