"""Where a job's class-based numbers come from: the model's classifier, a linear probe, or nowhere.

A checkpoint without a classification head loads as a backbone (`summary.model.classifier` false).
Its analyses leave out every class-based array unless a linear probe was fitted on labelled
images, and say why in `summary.left_out`. The pages read that here: which importance metrics a
job has, what to call what is missing, and the notes that say so. A page never shows a number
from an invented head: a view without its arrays is replaced by its task-free counterpart or a note.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dash import html

from frontend.components import notice
from frontend.state import METRICS

CLASSIFIER, PROBE, TASK_FREE = "classifier", "probe", "task-free"
RESULT_LABELS: dict[str, str] = {
    **METRICS,
    "taylor_raw": "Gradient estimate (Taylor)",
    "embedding_taylor_raw": "CLS change estimate (task-free Taylor)",
    "prob_after": "probability after pruning each head",
    "prob_base": "unpruned probability",
    "predictions": "predictions",
    "target_prob": "class probability per pruning mode",
    "cls_cosine": "CLS cosine per pruning mode",
    "top5_idx": "top-5 predictions",
    "top5_prob": "top-5 predictions",
    "gradcam": "Grad-CAM",
    "rank_corr_gradcam": "Grad-CAM's randomized-weights check",
}
"""Readable names of result arrays and metrics, for the notes that list what a job left out."""


@dataclass(frozen=True)
class Objective:
    """How a job's class-based numbers were made (`name`: classifier, probe or task-free), the model
    spec, what the job left out ({array or metric: reason}) and its probe ({held_out_accuracy, ...})."""

    name: str
    spec: str
    left_out: dict[str, str] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)

    @property
    def has_classes(self) -> bool:
        """True when class-based numbers exist (from the classifier or from a probe)."""
        return self.name != TASK_FREE


def objective_of(summary: Mapping[str, Any]) -> Objective:
    """The objective of a job's summary: its `objective` when it names one, else a probe when it has
    one, else what `model.classifier` says (results stored before that block had a classifier)."""
    model = summary.get("model") or {}
    probe = _mapping(summary.get("probe"))
    name = summary.get("objective")
    if name not in (CLASSIFIER, PROBE, TASK_FREE):
        name = PROBE if probe else CLASSIFIER if model.get("classifier", True) else TASK_FREE
    left_out = {str(k): str(v) for k, v in _mapping(summary.get("left_out")).items()}
    return Objective(str(name), str(model.get("spec") or "this model"), left_out, probe)


def _mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping (a summary field may be absent or null), else an empty dict."""
    return dict(value) if isinstance(value, Mapping) else {}


def available_metrics(summary: Mapping[str, Any], produced: Iterable[str]) -> list[str]:
    """The importance metrics (keys of `METRICS`, in its order) a head-importance job has: those its
    summary's `metrics` lists, else those among the arrays it `produced`; all of them when neither
    says (a record of an older API lists no arrays)."""
    listed = summary.get("metrics")
    have = set(listed) if isinstance(listed, list) else set(produced)
    return [name for name in METRICS if name in have] if have else list(METRICS)


def result_label(name: str) -> str:
    """A readable name of a result array or metric: `accuracy drop` for `accuracy_drop`."""
    label = RESULT_LABELS.get(name, name.replace("_", " "))
    first = label.split(" ", 1)[0]
    # a capital that only starts the sentence goes; a name's (CLS, Grad-CAM) stays
    return label[0].lower() + label[1:] if first.isalpha() and first[1:].islower() else label


def left_out_text(objective: Objective, names: Iterable[str] | None = None) -> str:
    """`Left out: a and b — reason; c — reason.` for what the job left out (only `names`, when
    given); empty when it left nothing out."""
    wanted = set(names) if names is not None else None
    grouped: dict[str, list[str]] = {}
    for name, reason in objective.left_out.items():
        label = result_label(name)
        if (wanted is None or name in wanted) and label not in grouped.setdefault(reason, []):
            grouped[reason].append(label)
    parts = [f"{_joined(labels)} — {reason}" for reason, labels in grouped.items() if labels]
    return f"Left out: {'; '.join(parts)}." if parts else ""


def _joined(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def no_classifier_note(
    note_id: str, lead: str, objective: Objective, names: Iterable[str] | None = None
) -> html.Div:
    """The note (id `note_id`) a view shows in place of class-based numbers: `lead`, then the job's
    reasons for what it left out (of `names`, or all)."""
    return notice(" ".join(filter(None, (lead, left_out_text(objective, names)))), "info", note_id=note_id)


def probe_note(note_id: str, objective: Objective) -> html.Div:
    """The note (id `note_id`) saying that the class metrics come from a linear probe, with its
    held-out accuracy and image counts when the summary gives them."""
    probe = objective.probe
    facts = []
    if isinstance(probe.get("held_out_accuracy"), int | float):
        facts.append(f"held-out accuracy {float(probe['held_out_accuracy']):.2f}")
    if probe.get("train_images") is not None and probe.get("test_images") is not None:
        facts.append(f"{probe['train_images']} training and {probe['test_images']} test images")
    detail = f" ({'; '.join(facts)})" if facts else ""
    text = f"Class metrics from a linear probe{detail}: this model is a backbone ({objective.spec})."
    return notice(text, "info", note_id=note_id)


def class_notes(objective: Objective, note_ids: tuple[str, str], missing: str) -> list[html.Div]:
    """The notes a head-importance view shows about its classes: for a backbone without a probe (id
    `note_ids[0]`) that `missing` needs a classifier and what the job left out; with a probe (id
    `note_ids[1]`) where its classes come from; none for a classifier."""
    if objective.name == TASK_FREE:
        lead = f"No classifier: this model is a backbone ({objective.spec}); {missing}."
        return [no_classifier_note(note_ids[0], lead, objective)]
    if objective.name == PROBE:
        return [probe_note(note_ids[1], objective)]
    return []
