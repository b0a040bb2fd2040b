"""The two sound classifiers on real feature prints of the dev set."""

from __future__ import annotations

import numpy as np
import pytest

from device.components import AnnotatedFeature, PersistenceError, UpdatableEstimator
from device.learn import (
    FeaturePrintMismatchError,
    FullyConnectedNetworkClassifier,
    FullyConnectedNetworkModel,
    LogisticRegressionClassifier,
    as_feature_matrix,
    load_classifier,
)


def split(dev_features, seed=0, n_train=160):
    names, labels, feats = dev_features
    order = np.random.default_rng(seed).permutation(len(labels))
    train = [AnnotatedFeature(feats[i], labels[i]) for i in order[:n_train]]
    test = [AnnotatedFeature(feats[i], labels[i]) for i in order[n_train:]]
    return train, test


def test_logistic_regression_learns_dev_sounds(dev_features, simple_print):
    train, test = split(dev_features)
    model = LogisticRegressionClassifier(l2_penalty=1e-2, max_iterations=300).fit(train)
    acc = model.evaluate(test).accuracy
    assert acc > 0.75  # 7 classes: chance is ~0.2
    probs = model.apply(test[0].feature)
    assert set(probs) == set(dev_features[1])
    assert abs(sum(probs.values()) - 1) < 1e-5


def test_network_learns_and_is_updatable(dev_features):
    train, test = split(dev_features)
    est = FullyConnectedNetworkClassifier((32,), batch_size=16, learning_rate=3e-3, max_iterations=40, random_seed=3)
    assert isinstance(est, UpdatableEstimator)
    model = est.fit(train)
    assert model.evaluate(test).accuracy > 0.75
    # the same seed gives the same model
    again = est.fit(train)
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(a, b)


def test_network_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5)).astype(np.float32)
    y = np.array(["a", "b", "c"] * 4)
    est = FullyConnectedNetworkClassifier((7, 4), dropout=0.0, l2_penalty=0.0, learning_rate=1e-3)
    model = est.make_transformer(["a", "b", "c"], statistics=(np.zeros(5, np.float32), np.ones(5, np.float32)))
    model.weights = [w.astype(np.float64) for w in model.weights]
    model.biases = [b.astype(np.float64) for b in model.biases]
    yi = np.array([model.labels.index(v) for v in y])

    def loss():
        logits = model.forward(x.astype(np.float64))[0]
        logits = logits - logits.max(1, keepdims=True)
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return -np.log(p[np.arange(len(yi)), yi]).mean()

    # capture the gradient from one Adam step: with zero moments, m = 0.1 g
    before = [w.copy() for w in model.weights]
    est._step(model, x.astype(np.float64), yi)
    grad_first = model.moments["mw"][0] / 0.1
    model.weights = before
    eps = 1e-6
    for (i, j) in [(0, 0), (2, 3), (4, 6)]:
        model.weights[0][i, j] += eps
        up = loss()
        model.weights[0][i, j] -= 2 * eps
        down = loss()
        model.weights[0][i, j] += eps
        assert (up - down) / (2 * eps) == pytest.approx(grad_first[i, j], rel=1e-2, abs=1e-6)


def test_new_label_in_a_later_batch_gets_an_output(dev_features):
    names, labels, feats = dev_features
    est = FullyConnectedNetworkClassifier((16,), random_seed=1)
    model = est.make_transformer()
    labels = np.array(labels)
    first = [AnnotatedFeature(f, l) for f, l in zip(feats, labels) if l in ("ball_drop", "hammering")]
    later = [AnnotatedFeature(f, l) for f, l in zip(feats, labels) if l == "crying_baby"]
    est.update(model, first)
    assert model.labels == ["ball_drop", "hammering"]
    est.update(model, later)
    assert model.labels == ["ball_drop", "crying_baby", "hammering"]
    assert model.weights[-1].shape[1] == 3 and model.moments["vw"][-1].shape[1] == 3


def test_save_load_resumes_exactly(tmp_path, dev_features, simple_print):
    train, _ = split(dev_features)
    est = FullyConnectedNetworkClassifier((16,), batch_size=8, dropout=0.2, random_seed=5)
    model = est.make_transformer()
    est.update(model, train[:80])
    model.metadata["feature_print_fingerprint"] = simple_print.fingerprint()
    path = est.save(model, tmp_path / "m.cadence")
    loaded = est.load(path)
    assert isinstance(loaded, FullyConnectedNetworkModel) and loaded.step == model.step
    est.update(model, train[80:160])
    est.update(loaded, train[80:160])
    for a, b in zip(model.weights + model.moments["vw"], loaded.weights + loaded.moments["vw"]):
        np.testing.assert_array_equal(a, b)


def test_fingerprint_mismatch_is_refused(tmp_path, dev_features, simple_print):
    train, test = split(dev_features, n_train=120)
    model = LogisticRegressionClassifier(max_iterations=50).fit(train)
    model.metadata["feature_print_fingerprint"] = simple_print.fingerprint()
    model.save(tmp_path / "m.cadence")
    loaded = load_classifier(tmp_path / "m.cadence", feature_print=simple_print)
    np.testing.assert_allclose(loaded.predict_proba([t.feature for t in test]), model.predict_proba([t.feature for t in test]))
    assert loaded.metadata["created"] == model.metadata["created"]
    from simple_print import SimpleFeaturePrint

    with pytest.raises(FeaturePrintMismatchError, match="retrain"):
        load_classifier(tmp_path / "m.cadence", feature_print=SimpleFeaturePrint(variant="other"))


def test_corrupt_model_file_gives_clear_error(tmp_path, dev_features):
    train, _ = split(dev_features, n_train=80)
    path = LogisticRegressionClassifier(max_iterations=20).fit(train).save(tmp_path / "m.cadence")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PersistenceError):
        load_classifier(path)


def test_int8_inputs_are_dequantised_and_standardised(dev_features, simple_print):
    _, labels, feats = dev_features
    as_float = feats.astype(np.float32) * simple_print.scales
    m1 = as_feature_matrix(list(feats[:5]), simple_print.scales)
    np.testing.assert_allclose(m1, as_float[:5])
    # (values, scales) pairs carry their own scales
    m2 = as_feature_matrix([(f, simple_print.scales) for f in feats[:5]])
    np.testing.assert_allclose(m2, as_float[:5])
    order = np.random.default_rng(0).permutation(len(labels))
    tr, te = order[:150], order[150:]
    data_int = [AnnotatedFeature(feats[i], labels[i]) for i in tr]
    data_float = [AnnotatedFeature(as_float[i], labels[i]) for i in tr]
    p_int = LogisticRegressionClassifier(max_iterations=100).fit(data_int).predict(feats[te])
    p_float = LogisticRegressionClassifier(max_iterations=100).fit(data_float).predict(as_float[te])
    # per-dimension scales cancel out in standardisation
    assert np.mean(np.array(p_int) == np.array(p_float)) > 0.97


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        FullyConnectedNetworkClassifier(dropout=1.0)
    with pytest.raises(ValueError):
        LogisticRegressionClassifier(l2_penalty=-1)


def test_quantised_items_agree_with_bare_int8_in_both_input_spaces(dev_features, simple_print):
    _, labels, feats = dev_features
    offsets = np.full(feats.shape[1], 3.0, dtype=np.float32)
    items = [(f, simple_print.scales, offsets) for f in feats]  # (values, scales, offsets)
    data = [AnnotatedFeature(f, l) for f, l in zip(feats[::2], labels[::2])]
    # fitted on bare int8 with no known scales: the model works on int8 values
    raw = LogisticRegressionClassifier(max_iterations=60).fit(data)
    assert raw.input_space == "quantized"
    np.testing.assert_allclose(raw.predict_proba(items[1::2]), raw.predict_proba(feats[1::2]), atol=1e-6)
    # fitted with the feature print's scales/offsets: floats, and bare int8 is dequantised
    est = LogisticRegressionClassifier(max_iterations=60, feature_scales=simple_print.scales, feature_offsets=offsets)
    fl = est.fit(data)
    assert fl.input_space == "float"
    dequantised = feats[1::2].astype(np.float32) * simple_print.scales + offsets
    np.testing.assert_allclose(fl.predict_proba(items[1::2]), fl.predict_proba(feats[1::2]), atol=1e-6)
    np.testing.assert_allclose(fl.predict_proba(dequantised), fl.predict_proba(feats[1::2]), atol=1e-5)
