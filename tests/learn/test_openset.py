"""The reject option: thresholds from held-out folds, streamed fitting, the model file, the trainer and CLI."""

from __future__ import annotations

import numpy as np
import pytest
from simple_print import SimpleFeaturePrint

from device.components import PersistenceError, load_state, save_state
from device.learn import load_classifier
from device.learn.dataset import load_dataset
from device.learn.openset import OTHER, RejectSettings, array_chunks, fit_reject_option
from device.learn.training import Trainer, TrainingConfig, TrainingError


def clusters(n_per=150, d=40, seed=0, labels=("a", "b", "background", "c")):
    """Gaussian windows around one centre per label; 5 windows per recording; every third row a copy."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(labels), d)) * 3
    names, rows = [], []
    for i, label in enumerate(labels):
        rows.append(centres[i] + rng.normal(size=(n_per, d)) * (1 + 0.3 * i))
        names += [label] * n_per
    x = np.concatenate(rows).astype(np.float32)
    groups = [f"{name}/{i // 5}" for i, name in enumerate(names)]
    return x, np.array(names), groups, np.arange(len(x)) % 3 == 2, centres, list(labels)


def test_taught_windows_are_kept_at_the_quantile_and_far_ones_rejected():
    x, names, groups, copy, centres, labels = clusters()
    settings = RejectSettings(components=8)
    option, report = fit_reject_option(array_chunks(x), labels, names, groups, copy, settings)
    assert option is not None and report["factor"] > 0
    # held out, each taught label keeps about the quantile of its windows
    for label in ("a", "b", "c"):
        assert report["per_label"][label]["held_out_accepted"] == pytest.approx(settings.quantile, abs=0.06)
    assert report["per_label"]["background"]["threshold"] is None  # a silent label never fires: no threshold
    rng = np.random.default_rng(5)
    index = np.repeat([0, 1, 3], 100)  # new windows of a, b and c
    fresh = (centres[index] + rng.normal(size=(300, 40)) * (1 + 0.3 * index)[:, None]).astype(np.float32)
    kept = ~option.rejects(fresh, index)
    assert kept.mean() >= settings.quantile - 0.1
    far = (np.random.default_rng(2).normal(size=(50, 40)) * 3 + 40).astype(np.float32)
    assert option.rejects(far, np.zeros(50, dtype=int)).all()
    assert not option.rejects(far, np.full(50, labels.index("background"))).any()  # background: never rejected
    # the quantile is the knob: lower keeps fewer windows, without refitting
    tighter = option.with_quantile(settings.quantile - 0.1)
    assert np.all(tighter.thresholds[np.isfinite(option.thresholds)] < option.thresholds[np.isfinite(option.thresholds)])
    assert (~tighter.rejects(fresh, index)).mean() < kept.mean()


def test_fitting_streams_chunks_and_gives_the_same_option_whatever_their_size():
    x, names, groups, copy, _, labels = clusters(n_per=60)
    one, _ = fit_reject_option(array_chunks(x, 10_000), labels, names, groups, copy, RejectSettings(components=8))
    many, _ = fit_reject_option(array_chunks(x, 7), labels, names, groups, copy, RejectSettings(components=8))
    np.testing.assert_allclose(one.thresholds, many.thresholds, rtol=1e-4)
    probe = x[::5]
    idx = np.arange(len(probe)) % len(labels)
    np.testing.assert_allclose(one.distances(probe, idx), many.distances(probe, idx), rtol=1e-3)


def test_a_label_taught_in_one_session_still_gets_a_threshold():
    """Ten clips of one `cadence record` session are one recording: dealt clip by clip instead."""
    x, names, groups, copy, _, labels = clusters(n_per=60)
    groups = ["one session" if n == "a" else g for n, g in zip(names, groups)]
    clips = [f"clip{i // 3}" for i in range(len(x))]
    option, report = fit_reject_option(array_chunks(x), labels, names, groups, copy, RejectSettings(components=8), clips=clips)
    assert report["one_recording"] == ["a"] and report["per_label"]["a"]["held_out_windows"] > 0
    assert np.isfinite(option.thresholds[labels.index("a")])
    # not enough labels with windows: no option, and the report says why
    none, why = fit_reject_option(array_chunks(x[:60]), labels, names[:60], groups[:60], copy[:60])
    assert none is None and "fewer than two labels" in why["note"]


def test_a_label_of_few_recordings_gets_its_own_threshold_whatever_the_fold_seed():
    """Its recordings all dealt into one fold, a label had no held-out distance and took the median of the
    other labels' medians — another label's scale (a 3-recording crying baby rejected whole)."""
    x, names, groups, copy, _, labels = clusters(n_per=60)
    x[names == "a"] *= 4  # a's distances are of another scale than the others'
    groups = [f"a/{i % 2}" if n == "a" else g for i, (n, g) in enumerate(zip(names, groups))]
    for seed in range(12):
        option, report = fit_reject_option(array_chunks(x), labels, names, groups, copy,
                                           RejectSettings(components=8, seed=seed))
        a = report["per_label"]["a"]
        assert a["held_out_windows"] > 0, seed
        assert a["threshold"] == pytest.approx(report["factor"] * a["median_distance"]), seed
        assert a["held_out_accepted"] > 0.5, seed


def test_the_trainer_fits_it_and_the_model_file_carries_it(tmp_path, small_data, capsys):
    from device.cli import build_parser
    from device.cli.learn import run_train

    fp = SimpleFeaturePrint()
    data = load_dataset(small_data)
    cfg = TrainingConfig(classifier="logistic", augment_copies=0, min_level_db=-70.0)
    result = Trainer(fp, cfg, state_dir=tmp_path / "state").train(data, tmp_path / "m.model")
    model = load_classifier(result.model_path, feature_print=fp)
    assert model.reject_option is not None and model.output_labels()[-1] == OTHER
    reject = result.report["reject_option"]
    assert reject["quantile"] == cfg.reject_quantile == 0.90 and set(reject["per_label"]) == set(model.labels)
    assert model.metadata["reject_option"]["factor"] == pytest.approx(reject["factor"])
    probs = model.classify(np.zeros(fp.dimension, dtype=np.float32))
    assert set(probs) == {*model.labels, OTHER} and sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    # turned off at training: the plain classifier, and the CLI says so
    out = tmp_path / "plain.model"
    args = build_parser().parse_args(["train", "sound", str(small_data), "--out", str(out), "--state-dir",
                                      str(tmp_path / "state"), "--quiet", "--no-reject"])
    assert run_train(args, feature_print=fp) == 0
    assert "reject option: off" in capsys.readouterr().out
    plain = load_classifier(out)
    assert plain.reject_option is None and plain.output_labels() == plain.labels
    assert not any(k.startswith("openset_") for k in load_state(out)[1])


def test_owner_labels_starting_with_an_underscore_are_refused(tmp_path, small_data, capsys):
    from device.cli import main

    (small_data / "crying_baby").rename(small_data / "_other")
    with pytest.raises(TrainingError, match="'_other'.*rename that folder"):
        Trainer(SimpleFeaturePrint(), TrainingConfig(), state_dir=tmp_path).train(load_dataset(small_data), tmp_path / "m")
    assert main(["train", "sound", str(small_data), "--out", str(tmp_path / "m"), "--state-dir", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadence: error:") and "\n" not in err and "'_other'" in err


def test_a_model_of_the_old_format_is_refused_with_one_line(tmp_path, small_data, capsys):
    from device.cli import main

    fp = SimpleFeaturePrint()
    cfg = TrainingConfig(classifier="logistic", augment_copies=0)
    path = Trainer(fp, cfg, state_dir=tmp_path / "state").train(load_dataset(small_data), tmp_path / "m.model").model_path
    meta, arrays = load_state(path)
    old = {k: v for k, v in meta.items() if k not in ("kind", "openset")} | {"model_version": 2}
    save_state(tmp_path / "old.model", meta["kind"], old, {k: v for k, v in arrays.items() if not k.startswith("openset_")})
    with pytest.raises(PersistenceError, match="retrain it with 'cadence train sound'") as caught:
        load_classifier(tmp_path / "old.model")
    assert "\n" not in str(caught.value) and "format 2" in str(caught.value)
    clip = next(small_data.glob("*/*.flac"))
    assert main(["classify", str(clip), "--model", str(tmp_path / "old.model")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadence: error:") and "\n" not in err and "retrain" in err
    # a damaged reject option is refused too, not half-used
    broken = {k: (v[:3] if k == "openset_thresholds" else v) for k, v in arrays.items()}
    save_state(tmp_path / "broken.model", meta["kind"], {k: v for k, v in meta.items() if k != "kind"}, broken)
    with pytest.raises(PersistenceError, match="inconsistent"):
        load_classifier(tmp_path / "broken.model")
