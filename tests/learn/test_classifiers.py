"""The two sound classifiers on real (small) feature prints of the dev set."""

from __future__ import annotations

import numpy as np
import pytest

from device.components import CadenceError, Examples, PersistenceError, QuantizedFeature, UpdatableEstimator
from device.learn import (
    Adam,
    ClipVote,
    FeatureInputError,
    FeaturePrintMismatchError,
    FullyConnectedNetworkClassifier,
    FullyConnectedNetworkModel,
    LogisticRegressionClassifier,
    as_matrix,
    classify_clip,
    load_classifier,
)


def split(dev_features, scales, seed=0, n_train=160):
    """(training Examples, test floats, test labels) of whole-clip features."""
    _, labels, feats = dev_features
    x = feats.astype(np.float32) * scales
    y = np.array(labels)
    order = np.random.default_rng(seed).permutation(len(y))
    tr, te = order[:n_train], order[n_train:]
    return Examples.of(x[tr], y[tr], chunk_size=64), x[te], y[te]


def test_logistic_regression_learns_dev_sounds(dev_features, simple_print):
    train, x_test, y_test = split(dev_features, simple_print.scales)
    model = LogisticRegressionClassifier(l2_penalty=1e-2, max_iterations=300).fit(train)
    assert np.mean(np.array(model.predict(x_test)) == y_test) > 0.75  # 7 classes: chance is ~0.2
    probs = model.apply(x_test[0])
    assert set(probs) == set(dev_features[1])
    assert abs(sum(probs.values()) - 1) < 1e-5


def test_network_learns_and_is_updatable(dev_features, simple_print):
    train, x_test, y_test = split(dev_features, simple_print.scales)
    est = FullyConnectedNetworkClassifier((32,), batch_size=16, learning_rate=3e-3, max_iterations=40, random_seed=3)
    assert isinstance(est, UpdatableEstimator)
    model = est.fit(train)
    assert np.mean(np.array(model.predict(x_test)) == y_test) > 0.75
    # the same seed gives the same model
    again = est.fit(train)
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(a, b)


def test_network_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5)).astype(np.float32)
    y = np.array(["a", "b", "c"] * 4)
    est = FullyConnectedNetworkClassifier((7, 4), dropout=0.0, l2_penalty=0.0, learning_rate=1e-3)
    model = est.start(Examples.of(x, y))
    model.mean, model.std = np.zeros(5, np.float32), np.ones(5, np.float32)
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
    grad_first = model.optimizer.moments[0][0] / 0.1
    model.weights = before
    eps = 1e-6
    for (i, j) in [(0, 0), (2, 3), (4, 6)]:
        model.weights[0][i, j] += eps
        up = loss()
        model.weights[0][i, j] -= 2 * eps
        down = loss()
        model.weights[0][i, j] += eps
        assert (up - down) / (2 * eps) == pytest.approx(grad_first[i, j], rel=1e-2, abs=1e-6)


def test_adam_is_its_own_small_object():
    opt = Adam(learning_rate=0.1)
    params = [np.array([1.0, -1.0], dtype=np.float32)]
    opt.reset(params)
    for _ in range(3):
        params = opt.update(params, [2 * params[0]])  # gradient of ||p||^2
    assert opt.step == 3 and np.all(np.abs(params[0]) < 1.0)
    meta, arrays = opt.state()
    again = Adam.from_state(meta, arrays)
    assert again.step == 3 and again.get_params() == opt.get_params()
    np.testing.assert_array_equal(again.update(params, [params[0]])[0], opt.update(params, [params[0]])[0])


def test_unknown_label_in_an_update_is_one_line(dev_features, simple_print):
    train, _, _ = split(dev_features, simple_print.scales)
    est = FullyConnectedNetworkClassifier((16,), random_seed=1)
    model = est.start(train)
    with pytest.raises(CadenceError, match="'door' is not one of the model's labels") as info:
        est.update(model, np.zeros((1, train.dimension), np.float32), ["door"])
    assert "\n" not in str(info.value)


def test_save_load_resumes_exactly(tmp_path, dev_features, simple_print):
    train, _, _ = split(dev_features, simple_print.scales)
    chunks = list(train)
    est = FullyConnectedNetworkClassifier((16,), batch_size=8, dropout=0.2, random_seed=5)
    model = est.start(train)
    est.update(model, *chunks[0])
    path = est.save(model, tmp_path / "m.cadence")
    loaded = est.load(path)
    assert isinstance(loaded, FullyConnectedNetworkModel) and loaded.optimizer.step == model.optimizer.step
    est.update(model, *chunks[1])
    est.update(loaded, *chunks[1])
    for a, b in zip(model.state()[1].values(), loaded.state()[1].values()):
        np.testing.assert_array_equal(a, b)


def test_fingerprint_mismatch_is_refused(tmp_path, dev_features, simple_print):
    train, x_test, _ = split(dev_features, simple_print.scales, n_train=120)
    model = LogisticRegressionClassifier(max_iterations=50).fit(train)
    model.metadata["feature_print_fingerprint"] = simple_print.fingerprint()
    model.save(tmp_path / "m.cadence")
    loaded = load_classifier(tmp_path / "m.cadence", feature_print=simple_print)
    np.testing.assert_allclose(loaded.predict_proba(x_test), model.predict_proba(x_test))
    assert loaded.metadata["created"] == model.metadata["created"]
    from simple_print import SimpleFeaturePrint

    with pytest.raises(FeaturePrintMismatchError, match="retrain"):
        load_classifier(tmp_path / "m.cadence", feature_print=SimpleFeaturePrint(variant="other"))


def test_corrupt_and_old_model_files_give_clear_errors(tmp_path, dev_features, simple_print):
    train, _, _ = split(dev_features, simple_print.scales, n_train=80)
    model = LogisticRegressionClassifier(max_iterations=20).fit(train)
    path = model.save(tmp_path / "m.cadence")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PersistenceError):
        load_classifier(path)
    # a model of the clip-level format (1) is refused with one line
    from device.components import save_state

    meta, arrays = model.state()
    save_state(tmp_path / "old.cadence", model.kind, meta | {"model_version": 1}, arrays)
    with pytest.raises(PersistenceError, match="older Cadence.*retrain") as info:
        load_classifier(tmp_path / "old.cadence")
    assert "\n" not in str(info.value)


def test_every_accepted_form_agrees_and_others_are_refused(dev_features, simple_print):
    _, labels, feats = dev_features
    scales = simple_print.scales
    as_float = feats.astype(np.float32) * scales
    quantised = [QuantizedFeature(f, scales) for f in feats[:5]]
    np.testing.assert_allclose(as_matrix(quantised), as_float[:5])
    np.testing.assert_allclose(as_matrix(quantised[0]), as_float[:1])
    np.testing.assert_allclose(as_matrix(feats[:5], scales), as_float[:5])
    np.testing.assert_allclose(as_matrix(as_float[0]), as_float[:1])
    model = LogisticRegressionClassifier(max_iterations=60).fit(Examples.of(as_float[::2], np.array(labels)[::2]))
    model.feature_scales = scales  # what the trainer stores
    p = model.predict_proba(as_float[1::2])
    np.testing.assert_allclose(model.predict_proba(feats[1::2]), p, atol=1e-6)
    np.testing.assert_allclose(model.predict_proba([QuantizedFeature(f, scales) for f in feats[1::2]]), p, atol=1e-6)
    for bad in [(feats[0], scales), {"values": feats[0], "scales": scales}, [feats[0], feats[1]], [], feats.astype(np.int32)]:
        with pytest.raises(FeatureInputError) as info:
            model.predict_proba(bad)
        assert "\n" not in str(info.value)
    model.feature_scales = None
    with pytest.raises(FeatureInputError, match="int8 features need the feature scales"):
        model.predict_proba(feats[:2])


def test_a_clip_is_the_highest_mean_window_probability():
    vote = ClipVote(["a", "b"], clips=2)
    vote.add(np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]), np.array([0, 0, 0]))  # mean b 0.533: not a majority of a
    vote.add(np.array([0.6, 0.4]), 1)
    assert vote.predicted() == ["b", "a"]
    assert vote.result(0).windows == 3 and vote.result(0).probabilities["b"] == pytest.approx(1.6 / 3)
    assert ClipVote(["a", "b"]).result().label is None

    class Fixed:  # what classify_clip asks of a model: the answers it gives (ClassifierModel.predict_open)
        def output_labels(self, reject=True):
            return ["a", "b"]

        def predict_open(self, batch, *, reject=True):
            assert reject is False  # a clip's label is the classifier's, not the reject option's
            return np.array([[0.9, 0.1] if w[0] > 0 else [0.2, 0.8] for w in batch])

    windows = [np.array([1.0])] + [np.array([-1.0])] * 150  # more than one batch
    assert classify_clip(Fixed(), iter(windows), batch=64).label == "b"


def test_bad_parameters_and_data_are_rejected():
    with pytest.raises(ValueError):
        FullyConnectedNetworkClassifier(dropout=1.0)
    with pytest.raises(ValueError):
        LogisticRegressionClassifier(l2_penalty=-1)
    with pytest.raises(CadenceError, match="two labels"):
        LogisticRegressionClassifier().fit(Examples.of(np.zeros((3, 2), np.float32), ["a"] * 3))
    with pytest.raises(CadenceError, match="float"):
        Examples.of(np.zeros((3, 2), np.int8), ["a", "b", "a"])
