"""Model files with the shipped negatives' class (``_negatives``): hand-edited metadata is refused on
load with one line, and what lists a model's labels to the owner never shows ``_negatives``."""

from __future__ import annotations

import numpy as np
import pytest

from device.components import PersistenceError
from device.learn import load_classifier
from device.learn.logistic import LogisticRegressionModel
from device.learn.registry import list_versions, publish


def _model(labels: list[str], **metadata) -> LogisticRegressionModel:
    n = len(labels)
    return LogisticRegressionModel(labels, np.zeros(2), np.ones(2), np.zeros((2, n)), np.zeros(n), metadata=dict(metadata))


@pytest.mark.parametrize("threshold", ["0.5", "abc", [0.5], {"t": 0.5}, None, True])
def test_a_negatives_threshold_that_is_not_a_number_is_refused(tmp_path, threshold):
    path = _model(["_negatives", "background", "knock"], negatives_threshold=threshold).save(tmp_path / "m.model")
    with pytest.raises(PersistenceError, match="negatives_threshold .* is not a number"):
        load_classifier(path)


@pytest.mark.parametrize("labels", [["background", "knock", "knock"], ["_negatives", "background", "background", "knock"]])
def test_a_label_twice_is_refused(tmp_path, labels):
    path = _model(labels).save(tmp_path / "m.model")
    with pytest.raises(PersistenceError, match="a label appears twice"):
        load_classifier(path)


def test_model_versions_list_the_taught_labels_only(tmp_path):
    publish(_model(["_negatives", "background", "knock"], negatives_threshold=0.9), tmp_path / "sound.model")
    assert [v["labels"] for v in list_versions(tmp_path / "sound.model")] == [["background", "knock"]]


@pytest.mark.parametrize("labels", ["background", {"background": 1, "knock": 2}, None])
def test_labels_that_are_not_a_list_are_refused(tmp_path, labels):
    from device.components import load_state, save_state

    meta, arrays = load_state(_model(["background", "knock"]).save(tmp_path / "m.model"))
    meta = {**meta, "labels": labels}
    path = save_state(tmp_path / "bad.model", meta.pop("kind"), meta, arrays)
    with pytest.raises(PersistenceError, match="labels .*not a list"):  # was: one label per character of a string
        load_classifier(path)


def test_a_version_the_daemon_would_refuse_is_listed_as_not_ok_and_never_rolled_back_to(tmp_path):
    from device.components import load_state, save_state
    from device.learn.registry import RegistryError, rollback, versions_dir

    model = tmp_path / "sound.model"
    publish(_model(["background", "knock"]), model)
    # an older version whose container is intact but whose model is not (a threshold out of range)
    meta, arrays = load_state(_model(["_negatives", "background", "knock"], negatives_threshold=1.5).save(tmp_path / "x"))
    bad = save_state(versions_dir(model) / "00000000T000000Z-bad.model", meta.pop("kind"), meta, arrays)
    listed = {v["path"]: v for v in list_versions(model)}
    assert listed[str(bad)]["ok"] is False and "negatives_threshold 1.5" in listed[str(bad)]["error"]
    before = model.read_bytes()
    with pytest.raises(RegistryError, match="cannot be read"):
        rollback(model, to="00000000T000000Z-bad")
    assert model.read_bytes() == before


@pytest.mark.parametrize("labels", [["+", "background", "knock"], ["background", "step  up", "step up"],
                                    ["background", "curl (left)", "curl left"]])
def test_a_model_trained_under_the_label_rules_of_before_still_loads(tmp_path, labels):
    """Until 2026-12-08 a label needed no letter or digit and keys kept runs of `_`: a model trained then
    loads (a sound model that no longer loaded left the device without one); new training refuses them."""
    from device.learn.labels import labels_problem

    assert load_classifier(_model(labels).save(tmp_path / "m.model")).labels == labels
    assert labels_problem(labels) is not None and labels_problem(labels, saved=True) is None
