"""Classification and regression metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from device.components import UNKNOWN, ClassificationMetrics, RegressionMetrics, mean_absolute_error, root_mean_squared_error


def test_classification_metrics_values():
    m = ClassificationMetrics().update(["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"])
    assert m.accuracy == pytest.approx(3 / 5)
    assert m.labels == ["a", "b", "c"]
    assert m.precision("b") == pytest.approx(2 / 3)
    assert m.recall("a") == pytest.approx(1 / 2)
    assert m.f1("c") == 0.0
    assert m.confusion_matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    d = m.to_dict()
    assert d["accuracy"] == pytest.approx(0.6) and d["per_class"]["b"]["support"] == 2
    assert "confusion" in m.format_table()


def test_incremental_equals_batch_and_merge():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 200).tolist()
    pred = [t if rng.random() < 0.7 else int(rng.integers(0, 4)) for t in true]
    whole = ClassificationMetrics().update(true, pred)
    parts = ClassificationMetrics().update(true[:70], pred[:70]) + ClassificationMetrics().update(true[70:], pred[70:])
    inc = ClassificationMetrics()
    for t, p in zip(true, pred):
        inc.add(t, p)
    for other in (parts, inc):
        assert other.accuracy == pytest.approx(whole.accuracy)
        order = [other.labels.index(lab) for lab in whole.labels]
        assert (other.confusion_matrix[np.ix_(order, order)] == whole.confusion_matrix).all()


def test_unknown_labels_are_counted_explicitly_when_labels_fixed():
    m = ClassificationMetrics(["dog", "cat"]).update(["dog", "cat", "dog"], ["dog", "bird", "fish"])
    assert m.unknown_count == 2
    assert m.labels == ["dog", "cat", UNKNOWN]
    assert m.confusion_matrix[0].tolist() == [1, 0, 1]
    assert m.accuracy == pytest.approx(1 / 3)


def test_metrics_errors_and_empty():
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        ClassificationMetrics().update(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="unique"):
        ClassificationMetrics(["a", "a"])
    assert math.isnan(ClassificationMetrics().accuracy)
    assert ClassificationMetrics().to_dict()["accuracy"] is None


def test_regression_metrics():
    assert mean_absolute_error([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert root_mean_squared_error([0, 0], [3, 4]) == pytest.approx(math.sqrt(12.5))
    r = RegressionMetrics().update([1.0], [2.0]).update([1.0], [1.0])
    assert r.to_dict()["mae"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        RegressionMetrics().update([1, 2], [1])


def test_table_keeps_labels_with_a_common_prefix_apart():
    from device.components import ClassificationMetrics

    m = ClassificationMetrics(["hammer_drop", "hammering"])
    m.update(["hammer_drop", "hammering", "hammering"], ["hammer_drop", "hammer_drop", "hammering"])
    lines = m.format_table().splitlines()
    header = lines[lines.index(next(line for line in lines if line.startswith("confusion"))) + 1]
    assert header.split() == ["1", "2"]
    assert any(line.split()[:2] == ["1", "hammer_drop"] for line in lines)
    assert any(line.split() == ["2", "hammering", "1", "1"] for line in lines)


def test_a_label_with_nothing_to_measure_reads_n_a_in_the_table():
    # a label without validation clips printed 0.000 0.000 0.000, which reads as a failed label
    from device.components.metrics import ClassificationMetrics

    m = ClassificationMetrics(labels=["a", "b", "c"]).update(["a", "a", "b"], ["a", "c", "b"])
    rows = {line.split()[0]: line.split()[1:] for line in m.format_table().splitlines()[1:4]}
    assert rows["a"] == ["1.000", "0.500", "0.667", "2"]
    assert rows["c"] == ["0.000", "n/a", "0.000", "0"]  # predicted once, never present: a real 0 precision
    m = ClassificationMetrics(labels=["a", "b", "c"]).update(["a", "b"], ["a", "b"])
    assert m.format_table().splitlines()[3].split()[1:] == ["n/a", "n/a", "n/a", "0"]


def test_a_pair_with_two_unknown_labels_is_one_unknown_item():
    # both labels of a pair outside the fixed set were counted twice: more unknown items than items
    m = ClassificationMetrics(["dog", "cat"])
    m.add("bird", "fish")
    assert (m.count, m.unknown_count) == (1, 1)
    merged = m + ClassificationMetrics(["dog", "cat"]).update(["owl"], ["dog"])
    assert (merged.count, merged.unknown_count) == (2, 2)
    # a label the fixed set never had, arriving by a merge, is an unknown item too
    merged = ClassificationMetrics(["dog"]) + ClassificationMetrics().update(["dog", "cow"], ["dog", "dog"])
    assert (merged.count, merged.unknown_count) == (2, 1)


def test_the_table_prints_the_json_figures():
    m = ClassificationMetrics(["a", "b", "c"]).update(["a", "a", "b", "x", "x"], ["a", "c", "b", "a", "y"])
    d = m.to_dict()
    lines = m.format_table().splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[1 : 1 + len(d["labels"])]}
    for label, row in d["per_class"].items():
        assert int(rows[label][-1]) == row["support"]
        assert row["predicted"] == sum(r[d["labels"].index(label)] for r in d["confusion"])
    assert sum(int(r[-1]) for r in rows.values()) == d["count"] == 5
    assert f"{d['unknown_count']} of them with a label outside" in m.format_table()
    assert d["unknown_count"] == 2


def test_figures_with_nothing_to_measure_are_null_in_the_json_as_the_table_says_n_a():
    m = ClassificationMetrics(["a", "b", "_other"]).update(["a", "a", "b"], ["a", "b", "b"])
    rows = m.to_dict()["per_class"]
    assert rows["_other"] == {"precision": None, "recall": None, "f1": None, "support": 0, "predicted": 0}
    assert rows["a"]["recall"] == pytest.approx(0.5) and rows["a"]["precision"] == pytest.approx(1.0)
    m.update(["c"], ["_other"])  # predicted, never true: precision 0 is measured, recall is not
    rows = m.to_dict()["per_class"]
    assert rows["_other"]["precision"] == 0.0 and rows["_other"]["recall"] is None and rows["_other"]["f1"] == 0.0
    assert "n/a" in m.format_table().splitlines()[3]


def test_two_different_labels_outside_the_set_are_not_a_right_answer():
    """Both land in the <unknown> cell of the diagonal; they are not the same label (was: counted right)."""
    m = ClassificationMetrics(["a", "b"]).update(["x", "a"], ["y", "a"])
    assert m.accuracy == pytest.approx(0.5) and m.unknown_count == 1 and m.unknown_mismatches == 1
    m.update(["x"], ["x"])  # the same label outside the set on both sides is right
    assert m.accuracy == pytest.approx(2 / 3)
    merged = m + ClassificationMetrics(["a", "b"]).update(["z"], ["b"])
    assert merged.accuracy == pytest.approx(2 / 4) and merged.unknown_mismatches == 1 and merged.unknown_count == 3
    assert f"accuracy {merged.accuracy:.4f}" in merged.format_table()


def test_a_merge_keeps_wrong_answers_wrong_and_counts_each_unknown_item_once():
    """Deals that taught different labels, pooled with +: a wrong cell of one whose label the other does
    not hold must not become a right one on the merged <unknown> diagonal (found by review rev5)."""
    d1 = ClassificationMetrics(["background", "a", "d", "_other"])
    d1.add("a", "a")
    d2 = ClassificationMetrics(["background", "a", "e", "_other"])
    d2.add("e", "<silent>")  # a taught clip all below the volume gate: wrong
    assert d2.accuracy == 0.0 and d2.unknown_count == 1
    merged = d1 + d2
    assert merged.accuracy == pytest.approx(0.5) and merged.unknown_count == 1 and merged.unknown_mismatches == 1
    y = ClassificationMetrics(["a", "c"])
    y.add("c", "zzz")
    pooled = ClassificationMetrics(["a", "b"]) + y
    assert pooled.accuracy == 0.0 and pooled.unknown_count == 1
    # the <unknown> row agrees with the accuracy, and the JSON says how many
    z = ClassificationMetrics(["a"]).update(["p", "a"], ["q", "a"])
    row = z.to_dict()["per_class"]["<unknown>"]
    assert z.accuracy == pytest.approx(0.5) and row["precision"] == 0.0 and row["recall"] == 0.0
    assert z.to_dict()["unknown_mismatches"] == 1 and z.macro_f1 == pytest.approx(0.5)
