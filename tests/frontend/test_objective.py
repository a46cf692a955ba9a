"""Where a job's class numbers come from, read from its summary, and the notes that say what is missing."""

from __future__ import annotations

from frontend.objective import available_metrics, class_notes, left_out_text, objective_of
from tests.utils.components import text_of

BACKBONE_MODEL = {"spec": "imgfocus:dinov2-s", "classifier": False, "labels": []}


def test_the_objective_is_read_from_the_summary_else_from_the_model_block():
    assert objective_of({"objective": "probe", "probe": {"held_out_accuracy": 0.8}}).name == "probe"
    assert objective_of({"model": BACKBONE_MODEL}).name == "task-free"  # an eigencam summary
    assert objective_of({"model": {**BACKBONE_MODEL, "classifier": True}}).name == "classifier"
    old = objective_of({})  # results stored before the model block came from classifiers
    assert old.name == "classifier" and old.has_classes and old.spec == "this model"


def test_metrics_come_from_the_summary_else_from_the_arrays_produced():
    summary = {"metrics": ["layer_impact", "cls_cosine_drop", "embedding_taylor_raw"]}
    assert available_metrics(summary, ["accuracy_drop"]) == ["cls_cosine_drop", "layer_impact"]
    assert available_metrics({}, ["prob_drop", "prob_after", "taylor"]) == ["prob_drop", "taylor"]
    assert "accuracy_drop" in available_metrics({}, [])  # a record listing no arrays: offer all


def test_left_out_reasons_are_grouped_and_named_readably():
    objective = objective_of(
        {
            "model": BACKBONE_MODEL,
            "left_out": {"accuracy_drop": "no classes", "prob_drop": "no classes", "taylor": "taylor=false"},
        }
    )
    expected = "accuracy drop and probability drop — no classes; gradient estimate (Taylor) — taylor=false"
    assert left_out_text(objective) == f"Left out: {expected}."
    assert left_out_text(objective, ["taylor"]) == "Left out: gradient estimate (Taylor) — taylor=false."
    assert left_out_text(objective_of({})) == ""


def test_a_classifier_gets_no_note_and_a_probe_its_accuracy():
    ids = ("no-classifier", "probe")
    assert class_notes(objective_of({}), ids, "x") == []
    probe = {"held_out_accuracy": 0.8666, "train_images": 40, "test_images": 10, "classes": ["a", "b"]}
    [note] = class_notes(objective_of({"model": BACKBONE_MODEL, "probe": probe}), ids, "x")
    assert note.id == "probe"
    assert text_of(note).startswith("Class metrics from a linear probe (held-out accuracy 0.87; 40 training")
