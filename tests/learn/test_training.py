"""The training loop: early stopping, checkpoints, resume equivalence, registry, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from simple_print import SimpleFeaturePrint

from device.components import EventRecorder, PersistenceError
from device.learn import load_classifier
from device.learn.dataset import load_dataset
from device.learn.registry import list_versions, rollback
from device.learn.checkpoint import checkpoint_dir_for
from device.learn.training import Trainer, TrainingConfig


def config(**kw):
    base = dict(classifier="network", augment_copies=0, max_epochs=6, checkpoint_every=2, keep_checkpoints=2, chunk_size=16, hidden_unit_counts=(16,),
                patience=100, seed=7, learning_rate=3e-3)
    base.update(kw)
    return TrainingConfig(**base)


def arrays_of(model):
    return model.state()[1]


def assert_same_model(a, b):
    xa, xb = arrays_of(a), arrays_of(b)
    assert sorted(xa) == sorted(xb)
    for k in xa:
        np.testing.assert_array_equal(xa[k], xb[k], err_msg=k)


class Interrupt(Exception):
    pass


def test_training_reports_epochs_and_publishes(tmp_path, small_data):
    rec = EventRecorder()
    fp = SimpleFeaturePrint()
    result = Trainer(fp, config(), state_dir=tmp_path / "state", on_event=rec).train(
        load_dataset(small_data), tmp_path / "models" / "sound.model"
    )
    train_events = rec.of("train")
    assert [e.item_count for e in train_events] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "accuracy", "validation_loss", "validation_accuracy"} <= set(train_events[-1].metrics)
    assert rec.of("preprocess")[-1].item_count == 60
    assert len(result.history) == 6
    assert result.validation is not None and result.validation.count > 0
    model = load_classifier(result.model_path, feature_print=fp)
    assert model.labels == ["ball_drop", "chair_drag", "crying_baby", "vacuum_cleaner"]
    md = model.metadata
    assert md["feature_print_fingerprint"] == fp.fingerprint() and md["created"]
    assert md["metrics"]["validation"]["accuracy"] == pytest.approx(result.validation.accuracy)
    # the best epoch is kept, and it is the one with the best validation accuracy
    best = max(result.history, key=lambda r: (r["validation_accuracy"], -r["validation_loss"]))
    assert md["best_epoch"] == best["epoch"]
    # the published model was trained again on all 60 clips for the best epoch count
    assert md["refit"] == {"epochs": best["epoch"], "clips": 60, "augmented_copies": 0}
    assert result.report["refit"]["clips"] == 60
    no_refit = Trainer(fp, config(refit=False), state_dir=tmp_path / "state").train(
        load_dataset(small_data), tmp_path / "models" / "other.model"
    )
    assert "refit" not in no_refit.model.metadata
    assert no_refit.validation.accuracy == pytest.approx(result.validation.accuracy)
    # checkpoints are removed once the model is published
    assert not checkpoint_dir_for(tmp_path / "state", result.model_path).exists()


def test_early_stopping_on_target_and_patience(tmp_path, small_data):
    data = load_dataset(small_data)
    r = Trainer(SimpleFeaturePrint(), config(max_epochs=50, target_accuracy=0.5), state_dir=tmp_path / "s").train(
        data, tmp_path / "a.model"
    )
    assert r.report["stop_reason"].startswith("target accuracy")
    assert r.history[-1]["validation_accuracy"] >= 0.5 and len(r.history) < 50
    r = Trainer(SimpleFeaturePrint(), config(max_epochs=200, patience=2, learning_rate=0.05), state_dir=tmp_path / "s").train(
        data, tmp_path / "b.model"
    )
    assert r.report["stop_reason"] == "no improvement for 2 epochs" and len(r.history) < 200
    best = r.report["best_epoch"]
    assert len(r.history) - best == 2


def crash_after_epoch_5(event):
    if event.origin == "train" and event.item_count == 5:
        raise Interrupt()


def interrupted(tmp_path, data):
    """(an uninterrupted run's result, the model path of a run stopped after epoch 5 under tmp_path/b)."""
    full = Trainer(SimpleFeaturePrint(), config(), state_dir=tmp_path / "a").train(data, tmp_path / "a" / "m.model")
    out = tmp_path / "b" / "m.model"
    with pytest.raises(Interrupt):
        Trainer(SimpleFeaturePrint(), config(), state_dir=tmp_path / "b", on_event=crash_after_epoch_5).train(data, out)
    return full, out


def test_resume_gives_the_same_model(tmp_path, small_data):
    data = load_dataset(small_data)
    full, out = interrupted(tmp_path, data)
    ckpts = sorted(checkpoint_dir_for(tmp_path / "b", out).glob("checkpoint-*.cadence"))
    assert [p.name for p in ckpts] == ["checkpoint-000002.cadence", "checkpoint-000004.cadence"]
    # the newest checkpoint is corrupt: it is skipped for the previous one
    raw = bytearray(ckpts[-1].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    ckpts[-1].write_bytes(bytes(raw))
    trainer = Trainer(SimpleFeaturePrint(), config(), state_dir=tmp_path / "b")
    resumed = trainer.train(data, out, resume=True)
    assert any("skipped checkpoint checkpoint-000004" in n for n in trainer.notes)
    assert any("after epoch 2" in n for n in trainer.notes)
    assert resumed.history == full.history
    assert_same_model(resumed.model, full.model)
    assert_same_model(load_classifier(out), load_classifier(full.model_path))


def test_resume_refuses_changed_settings(tmp_path, small_data):
    data = load_dataset(small_data)

    def crash(event):
        if event.origin == "train" and event.item_count == 3:
            raise Interrupt()

    with pytest.raises(Interrupt):
        Trainer(SimpleFeaturePrint(), config(), state_dir=tmp_path, on_event=crash).train(data, tmp_path / "m.model")
    from device.learn.training import TrainingError

    with pytest.raises(TrainingError, match="changed since this checkpoint"):
        Trainer(SimpleFeaturePrint(), config(learning_rate=0.01), state_dir=tmp_path).train(
            data, tmp_path / "m.model", resume=True
        )
    # without --resume it starts over
    result = Trainer(SimpleFeaturePrint(), config(learning_rate=0.01), state_dir=tmp_path).train(data, tmp_path / "m.model")
    assert len(result.history) == 6


def test_resume_if_interrupted_continues_the_same_training_and_starts_over_another(tmp_path, small_data):
    # `cadence retrain` after a power cut trained from the first epoch again: it now continues an
    # interrupted run of the same data and settings, and starts over (instead of refusing) otherwise
    data = load_dataset(small_data)
    full, out = interrupted(tmp_path, data)
    trainer = Trainer(SimpleFeaturePrint(), config(), state_dir=tmp_path / "b")
    resumed = trainer.train(data, out, resume="auto")
    assert any("after epoch 4" in n for n in trainer.notes)
    assert resumed.history == full.history
    assert_same_model(resumed.model, full.model)

    with pytest.raises(Interrupt):
        Trainer(SimpleFeaturePrint(), config(), state_dir=tmp_path / "b", on_event=crash_after_epoch_5).train(data, out)
    other = Trainer(SimpleFeaturePrint(), config(learning_rate=0.01), state_dir=tmp_path / "b")
    result = other.train(data, out, resume="auto")
    assert any("other data or settings: training from the start" in n for n in other.notes)
    assert not any("resumed" in n for n in other.notes) and len(result.history) == 6

    # the new settings' own run, interrupted early, resumes: the old run's later checkpoints were cleared
    # (kept by epoch, they pruned the new run's and made `auto` start over again)
    def crash_at_3(event):
        if event.origin == "train" and event.item_count == 3:
            raise Interrupt()

    out_c = tmp_path / "c" / "m.model"
    with pytest.raises(Interrupt):
        Trainer(SimpleFeaturePrint(), config(), state_dir=tmp_path / "c", on_event=crash_after_epoch_5).train(data, out_c)
    with pytest.raises(Interrupt):
        Trainer(SimpleFeaturePrint(), config(learning_rate=0.01), state_dir=tmp_path / "c", on_event=crash_at_3).train(
            data, out_c, resume="auto")
    again = Trainer(SimpleFeaturePrint(), config(learning_rate=0.01), state_dir=tmp_path / "c")
    finished = again.train(data, out_c, resume="auto")
    assert any("after epoch 2" in n for n in again.notes), again.notes
    assert finished.history == result.history


def test_retrain_asks_the_trainer_to_continue_an_interrupted_run(tmp_path, monkeypatch):
    from device.cli import build_parser
    from device.daemon import retrain
    from device.daemon.config import load_config

    config = tmp_path / "cadence.toml"
    config.write_text(f'[storage]\nstate_dir = "{tmp_path / "state"}"\n')
    seen = []
    monkeypatch.setattr(retrain, "_run_trainer", lambda cmd: (seen.append(cmd), (1, "stop here"))[1])
    with pytest.raises(retrain.RetrainError, match="stop here"):
        retrain._train_foreground(load_config(config), "exercise", tmp_path)
    args = build_parser().parse_args(seen[0][3:])  # after `python -m device`
    assert args.resume_if_interrupted and not args.resume


def test_logistic_from_cache_and_refit_without_extraction(tmp_path, small_data):
    fp = SimpleFeaturePrint()
    data = load_dataset(small_data)
    r1 = Trainer(fp, config(classifier="logistic"), state_dir=tmp_path).train(data, tmp_path / "m.model")
    calls = fp.calls
    assert calls == 60 and r1.validation.accuracy > 0.5
    # another estimator setting refits from the cache: nothing extracted again
    r2 = Trainer(fp, config(classifier="logistic", l2_penalty=1.0), state_dir=tmp_path).train(data, tmp_path / "m.model")
    assert fp.calls == calls and r2.report["feature_cache"]["reused"] == 60
    r3 = Trainer(fp, config(hidden_unit_counts=(8,)), state_dir=tmp_path).train(data, tmp_path / "m.model")
    assert fp.calls == calls and r3.model.weights[0].shape[1] == 8


def test_auto_classifier_follows_the_median_label(tmp_path, small_data, capsys):
    """`auto` (the default) picks logistic regression while the median label has few clips, the network from there on."""
    from device.cli import build_parser
    from device.cli.learn import run_train
    from device.learn import FullyConnectedNetworkModel, LogisticRegressionModel
    from device.learn.training import TrainingError

    assert TrainingConfig().classifier == "auto"
    data = load_dataset(small_data)  # 20, 20, 10 and 10 clips: the median label has 15
    few = Trainer(SimpleFeaturePrint(), config(classifier="auto"), state_dir=tmp_path).train(data, tmp_path / "a.model")
    assert isinstance(few.model, LogisticRegressionModel)
    assert few.report["classifier"] == "logistic" and few.report["classifier_requested"] == "auto"
    assert any("auto → logistic" in n and "median label has 15 clips" in n for n in few.report["notes"])
    many = Trainer(SimpleFeaturePrint(), config(classifier="auto", auto_network_min_clips=15), state_dir=tmp_path)
    result = many.train(data, tmp_path / "b.model")
    assert isinstance(result.model, FullyConnectedNetworkModel) and result.report["classifier"] == "network"
    assert len(result.history) == 6  # the network's epochs ran
    with pytest.raises(TrainingError, match="resolved"):
        TrainingConfig().estimator()
    with pytest.raises(TrainingError, match="unknown classifier 'forest'"):
        TrainingConfig(classifier="forest").validate()
    # the CLI's default is auto, and it says what it chose
    out = tmp_path / "c.model"
    args = build_parser().parse_args(["train", "sound", str(small_data), "--out", str(out),
                                      "--state-dir", str(tmp_path / "state"), "--quiet"])
    assert args.classifier == "auto" and run_train(args, feature_print=SimpleFeaturePrint()) == 0
    assert "note: classifier auto → logistic" in capsys.readouterr().out
    assert isinstance(load_classifier(out), LogisticRegressionModel)


def test_identical_audio_is_one_recording_and_named_when_labels_differ(tmp_path, small_data):
    """A copy under another label is label noise: the report names every copy (training
    keeps them); copies under one label are one recording for the validation split."""
    import shutil

    from device.learn.dataset import split_by_recording

    original = sorted((small_data / "ball_drop").iterdir())[0]
    shutil.copy(original, small_data / "chair_drag" / "copied_from_ball_drop.flac")
    for i in range(6):  # several copies, so a split by file would surely separate some
        shutil.copy(original, small_data / "ball_drop" / f"copy{i}.flac")
    data = load_dataset(small_data)
    trainer = Trainer(SimpleFeaturePrint(), config(classifier="logistic", validation_split=0.5), state_dir=tmp_path)
    result = trainer.train(data, tmp_path / "m.model")
    (warning,) = result.report["warnings"]
    assert "identical files under different labels" in warning and "chair_drag/copied_from_ball_drop.flac" in warning
    assert f"ball_drop/{original.name}" in warning and "ball_drop/copy5.flac" in warning
    used = result.report["clips"]["train"] + result.report["clips"]["validation"]
    assert used == len(data.clips) == 67
    # the same-label copies alone: they travel together in every split
    shutil.rmtree(small_data / "chair_drag")
    data = load_dataset(small_data)
    from device.learn.cache import FeatureCache
    from device.learn.training import resolve_duplicates

    with FeatureCache(tmp_path / "feature-cache", SimpleFeaturePrint()) as cache:
        hashes = cache.update(data.clips)[1]
    clips, warnings = resolve_duplicates(data.clips, hashes)
    assert warnings == [] and len(clips) == len(data.clips)
    copies = {c.path.name for c in clips if hashes[c.path] == hashes[original]}
    assert len(copies) == 7
    for seed in range(10):
        in_validation = {c.path.name for c in split_by_recording(clips, 0.5, seed)[1]}
        assert len({name in in_validation for name in copies}) == 1  # all together, on one side


def test_registry_keeps_versions_and_rolls_back(tmp_path, small_data):
    data = load_dataset(small_data)
    out = tmp_path / "models" / "sound.model"
    trainer = Trainer(SimpleFeaturePrint(), config(max_epochs=2), state_dir=tmp_path, keep_versions=3)
    first = trainer.train(data, out)
    first_bytes = out.read_bytes()
    trainer.config.classifier = "logistic"
    trainer.train(data, out)
    versions = list_versions(out)
    assert len(versions) == 2 and versions[-1]["current"] and not versions[0]["current"]
    target = rollback(out)
    assert out.read_bytes() == first_bytes and target["version"] == versions[0]["version"]
    assert load_classifier(out).kind == first.model.kind
    with pytest.raises(Exception, match="oldest"):
        rollback(out)
    for _ in range(3):
        trainer.train(data, out)
    assert len(list_versions(out)) == 3


@pytest.mark.parametrize("to", ["", "0", "000"])
def test_rollback_to_a_version_that_names_several_is_refused(tmp_path, small_data, to):
    # `models rollback --to 0` (or --to "") matched every version and silently switched to the
    # newest of them: not the version the owner meant, and the model changed all the same
    from device.learn.registry import RegistryError

    data = load_dataset(small_data)
    out = tmp_path / "models" / "sound.model"
    trainer = Trainer(SimpleFeaturePrint(), config(max_epochs=1), state_dir=tmp_path, keep_versions=3)
    trainer.train(data, out)
    trainer.train(data, out)
    first, second = list_versions(out)
    rollback(out, first["version"][:4])  # a unique prefix still picks its version
    current = out.read_bytes()
    with pytest.raises(RegistryError, match="names more than one version|no version ''") as info:
        rollback(out, to)
    assert "\n" not in str(info.value) and (not to or first["version"] in str(info.value))
    assert out.read_bytes() == current


def test_cli_train_writes_report_and_curve(tmp_path, small_data, capsys):
    from device.cli import build_parser
    from device.cli.learn import run_train

    out = tmp_path / "m" / "sound.model"
    args = build_parser().parse_args(
        ["train", "sound", str(small_data), "--out", str(out), "--state-dir", str(tmp_path / "state"),
         "--classifier", "network", "--max-epochs", "3", "--hidden-units", "16", "--quiet"]
    )
    assert run_train(args, feature_print=SimpleFeaturePrint()) == 0
    text = capsys.readouterr().out
    assert "validation metrics" in text and "confusion" in text and "accuracy" in text
    report = json.loads((tmp_path / "m" / "sound.model.report.json").read_text())
    assert report["epochs"] == 3 and len(report["history"]) == 3 and report["validation"]["accuracy"] is not None
    png = (tmp_path / "m" / "sound.model.curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_cli_models_list_and_rollback(tmp_path, small_data, capsys):
    from device.cli import main

    out = tmp_path / "sound.model"
    trainer = Trainer(SimpleFeaturePrint(), config(max_epochs=1), state_dir=tmp_path)
    trainer.train(load_dataset(small_data), out)
    trainer.train(load_dataset(small_data), out)
    assert main(["models", "list", str(out)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "created" in line]
    assert len(lines) == 2 and lines[1].lstrip().startswith("*")
    assert main(["models", "rollback", str(out)]) == 0
    assert main(["models", "list", str(out), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert [v["current"] for v in listing[str(out)]] == [True, False]
    assert main(["models", "rollback", str(tmp_path / "nothing.model")]) == 1
    assert "no saved versions" in capsys.readouterr().err


def test_corrupt_previous_model_is_not_archived(tmp_path, small_data):
    out = tmp_path / "sound.model"
    out.write_bytes(b"not a model")
    Trainer(SimpleFeaturePrint(), config(max_epochs=1), state_dir=tmp_path).train(load_dataset(small_data), out)
    assert len(list_versions(out)) == 1
    with pytest.raises(PersistenceError):
        load_classifier(tmp_path / "missing.model")


def test_training_from_a_csv_manifest(tmp_path, small_data):
    rows = ["path,label,recording"]
    for i, f in enumerate(sorted(small_data.rglob("*.flac"))):
        rows.append(f"{f.relative_to(small_data)},{f.parent.name},{f.parent.name}-{i % 3}")
    rows.append("missing/clip.wav,ball_drop,x")
    manifest = small_data / "clips.csv"
    manifest.write_text("\n".join(rows) + "\n")
    result = Trainer(SimpleFeaturePrint(), config(max_epochs=2), state_dir=tmp_path).train(
        load_dataset(manifest), tmp_path / "m.model"
    )
    # three recordings per label: one of them is held out
    assert result.report["clips"]["validation"] > 0
    assert any("missing/clip.wav" in s for s in result.report["skipped"])
    assert result.report["clips"]["total"] == 61


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dropout", "1.5"], "--dropout"),
        (["--learning-rate", "-1"], "--learning-rate"),
        (["--validation-split", "1"], "--validation-split"),
        (["--max-epochs", "0"], "--max-epochs"),
        (["--target-accuracy", "2"], "--target-accuracy"),
    ],
)
def test_bad_training_settings_are_one_line_errors(tmp_path, small_data, capsys, args, message):
    from device.cli import main

    code = main(["train", "sound", str(small_data), "--out", str(tmp_path / "m.model"), "--state-dir", str(tmp_path), *args])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("cadence: error:") and message in err and "\n" not in err
    assert not (tmp_path / "m.model").exists()


def test_a_label_without_a_usable_clip_stops_training(tmp_path, small_data):
    """All of a label's clips unreadable: training refuses instead of dropping the label
    unnoticed, unless told to (issue 17 #1)."""
    for clip in (small_data / "crying_baby").iterdir():
        clip.write_bytes(b"not audio at all")
    data = load_dataset(small_data)
    out = tmp_path / "m.model"
    with pytest.raises(Exception, match="no usable clip of crying_baby.*--allow-label-loss") as refused:
        Trainer(SimpleFeaturePrint(), config(max_epochs=2), state_dir=tmp_path).train(data, out)
    assert not out.exists()
    # the line says why (a failed training prints nothing else: there are no "skipped files above")
    assert str(small_data / "crying_baby") in str(refused.value) and "above" not in str(refused.value)
    result = Trainer(SimpleFeaturePrint(), config(max_epochs=2, allow_label_loss=True), state_dir=tmp_path).train(data, out)
    assert "crying_baby" not in result.model.labels
    assert any("left out, no usable clip: crying_baby" in w for w in result.report["warnings"])


def two_versions(tmp_path, small_data, max_epochs=1):
    """A model trained twice under tmp_path/models (two versions kept): its path."""
    out = tmp_path / "models" / "sound.model"
    trainer = Trainer(SimpleFeaturePrint(), config(max_epochs=max_epochs), state_dir=tmp_path, keep_versions=3)
    for _ in range(2):
        trainer.train(load_dataset(small_data), out)
    return out


def test_rolling_back_to_an_unreadable_version_says_so(tmp_path, small_data):
    out = two_versions(tmp_path, small_data, max_epochs=2)
    first = list_versions(out)[0]
    from pathlib import Path

    Path(first["path"]).write_bytes(b"damaged")
    current = out.read_bytes()
    with pytest.raises(Exception, match=f"version {first['version']} cannot be read .*the current model is kept"):
        rollback(out, first["version"])
    assert out.read_bytes() == current


def test_a_model_file_with_an_extra_member_is_refused_before_unpacking(tmp_path, small_data):
    """A model file carrying anything a classifier does not hold is refused, not loaded
    (issue 17 #2: an unused member accepted as the active model)."""
    import io
    import zipfile

    from device.components import decode_state, encode_state

    data = load_dataset(small_data)
    out = tmp_path / "m.model"
    Trainer(SimpleFeaturePrint(), config(max_epochs=1), state_dir=tmp_path).train(data, out)
    meta, arrays = decode_state(out.read_bytes())
    forged = tmp_path / "forged.model"
    forged.write_bytes(encode_state(meta.pop("kind"), meta, {**arrays, "payload": np.zeros(10, np.uint8)}))
    with pytest.raises(PersistenceError, match="unexpected members: 'payload.npy'"):
        load_classifier(forged)
    assert zipfile.is_zipfile(io.BytesIO(forged.read_bytes()))
    load_classifier(out)  # the honest file still loads


@pytest.mark.parametrize("label", ['a}}{{ states("x") }}', 'say "hi"', "a/b"])
def test_a_model_file_whose_labels_are_no_plain_names_is_refused(tmp_path, small_data, label):
    """A label reaches MQTT payloads and Home Assistant templates: a forged model file
    cannot bring one that is not a plain name."""
    from device.components import decode_state, encode_state

    out = tmp_path / "m.model"
    Trainer(SimpleFeaturePrint(), config(max_epochs=1), state_dir=tmp_path).train(load_dataset(small_data), out)
    meta, arrays = decode_state(out.read_bytes())
    meta["labels"] = [label] + meta["labels"][1:]
    forged = tmp_path / "forged.model"
    forged.write_bytes(encode_state(meta.pop("kind"), meta, arrays))
    with pytest.raises(PersistenceError, match="is not a valid name"):
        load_classifier(forged)


def test_labels_that_would_be_one_sensor_stop_training(tmp_path, small_data):
    """'crying baby' beside 'crying_baby' would be one Home Assistant entity."""
    import shutil

    shutil.copytree(small_data / "crying_baby", small_data / "crying baby")
    with pytest.raises(Exception, match="would have the same sensor id .* differ only in punctuation, case or accents"):
        Trainer(SimpleFeaturePrint(), config(max_epochs=1), state_dir=tmp_path).train(load_dataset(small_data),
                                                                                      tmp_path / "m.model")
    assert not (tmp_path / "m.model").exists()


def test_a_label_recorded_in_one_session_is_named_as_not_validated(tmp_path, small_data):
    """Its validation row is "n/a" (all its clips stay in training): the notes say which and why."""
    import dataclasses

    data = load_dataset(small_data)
    data = dataclasses.replace(data, clips=[dataclasses.replace(c, recording="one session") if c.label == "crying_baby" else c
                                            for c in data.clips])
    result = Trainer(SimpleFeaturePrint(), config(classifier="logistic"), state_dir=tmp_path).train(data, tmp_path / "m.model")
    split = result.report["split"]
    unvalidated = {label for label, n in split.items() if n["validation"] == 0}
    assert "crying_baby" in unvalidated and len(unvalidated) < len(split)  # (vacuum_cleaner is one recording too)
    said = [n for n in result.report["notes"] if n.startswith("not validated")]
    assert len(said) == 1 and "one recording" in said[0]
    assert {label for label in split if label in said[0]} == unvalidated


def test_labels_shipped_with_the_device_are_not_the_owners_to_validate():
    """`cadence train exercise` adds the shipped exercises as one recording each: they never validate, and
    saying so (or that validation "covers only 1 of 12 labels") would read as the owner's fault."""
    from device.learn.dataset import SHIPPED_RECORDING, Clip, validation_coverage

    def clip(label, recording):
        return Clip(Path(f"/x/{label}/{recording}.npy"), label, recording)

    shipped = [clip(s, f"{SHIPPED_RECORDING}{s}") for s in ("squat", "push_up", "sit_up", "lunge", "unknown")]
    mine = [clip("kettlebell", "take1"), clip("kettlebell", "take2")]
    assert validation_coverage(shipped + mine, [mine[0]]) == (None, None)
    once = [clip("rowing", "one session")]
    warning, note = validation_coverage(shipped + mine + once, [mine[0]])
    assert warning is None and note.startswith("not validated: rowing") and "squat" not in note
    # an owner's recordings of a shipped exercise make it the owner's to validate
    more = [clip("squat", "my squats")]
    warning, note = validation_coverage(shipped + mine + more, [mine[0]])
    assert warning is None and "not validated: squat" in note


def test_rollback_to_a_model_of_another_kind_is_refused(tmp_path, small_data):
    # a version of another kind (the shipped exercise model put among a sound model's versions)
    # was made the sound model: the daemon then refused the slot's model at its next load
    import shutil

    from device.learn.registry import RegistryError, versions_dir
    from device.pretrained import models_dir

    data = load_dataset(small_data)
    out = tmp_path / "models" / "sound.model"
    trainer = Trainer(SimpleFeaturePrint(), config(max_epochs=1), state_dir=tmp_path, keep_versions=3)
    trainer.train(data, out)
    stranger = versions_dir(out) / "0009-20260101T000000Z-00000000.model"
    shutil.copyfile(models_dir() / "exercise.model", stranger)
    current = out.read_bytes()
    with pytest.raises(RegistryError, match="another kind") as info:
        rollback(out, "0009")
    assert "\n" not in str(info.value) and "ExerciseFeatures" in str(info.value)
    assert out.read_bytes() == current
    listed = {v["version"]: v for v in list_versions(out)}
    assert listed[stranger.stem]["features"] == "ExerciseFeatures"


def test_rollback_brings_back_the_versions_own_report(tmp_path, small_data, capsys):
    # after `models rollback` the report and curve beside the model still described the newer version
    from device.cli import build_parser
    from device.cli.learn import run_train
    from device.learn.registry import versions_dir

    out = tmp_path / "m" / "sound.model"
    report = tmp_path / "m" / "sound.model.report.json"

    def train(*extra):
        args = build_parser().parse_args(["train", "sound", str(small_data), "--out", str(out), "--state-dir",
                                          str(tmp_path / "state"), "--quiet", *extra])
        assert run_train(args, feature_print=SimpleFeaturePrint()) == 0
        return json.loads(report.read_text())

    first = train("--classifier", "network", "--max-epochs", "2", "--hidden-units", "8")
    second = train("--classifier", "logistic")
    assert first["classifier"] != second["classifier"]
    older, newer = list_versions(out)
    rollback(out)
    assert json.loads(report.read_text()) == first
    rollback(out, newer["version"])
    assert json.loads(report.read_text()) == second
    # a model copied over the slot by hand is kept as a version before a rollback replaces it
    hand = out.read_bytes()
    (tmp_path / "m" / "sound.model").write_bytes(hand)  # same bytes: already a version, nothing added
    assert len(list_versions(out)) == 2
    copied = tmp_path / "copied.model"
    Trainer(SimpleFeaturePrint(), config(max_epochs=1, seed=7), state_dir=tmp_path / "s2").train(
        load_dataset(small_data), copied)
    out.write_bytes(copied.read_bytes())
    rollback(out, older["version"])
    assert any(v["version"] not in (older["version"], newer["version"]) for v in list_versions(out))
    assert json.loads(report.read_text()) == first
    assert sorted(p.name for p in (versions_dir(out) / ".reports").iterdir()) == sorted(
        f"{v['version']}{s}" for v in (older, newer) for s in (".report.json", ".curve.png"))


def test_a_failed_rollback_changes_nothing_and_a_stray_model_can_be_rolled_back_from(tmp_path, small_data):
    # review rev7: rollback archived an unreadable MODEL (moved it aside) before checking the version asked for,
    # so `--to 9999` left no model at all; and a model of another kind copied over the slot blocked every rollback
    import shutil

    from device.learn.registry import RegistryError
    from device.pretrained import models_dir

    out = two_versions(tmp_path, small_data)
    first, _second = list_versions(out)
    out.write_bytes(b"not a model")
    with pytest.raises(RegistryError, match="no version '9999'"):
        rollback(out, "9999")
    assert out.read_bytes() == b"not a model" and len(list_versions(out)) == 2
    shutil.copyfile(models_dir() / "exercise.model", out)  # the wrong file copied over the slot by mistake
    target = rollback(out, first["version"])
    assert target["version"] == first["version"] and load_classifier(out).labels == load_classifier(
        Path(first["path"])).labels
    assert any(v.get("features") == "ExerciseFeatures" for v in list_versions(out))  # kept, not lost


def test_rollback_keeps_the_report_of_a_version_trained_before_reports_were_kept(tmp_path, small_data, capsys):
    # review rev7: rolling back from a version without a kept report deleted the one beside the model for good
    import shutil

    from device.cli import build_parser
    from device.cli.learn import run_train
    from device.learn.registry import versions_dir

    out = tmp_path / "m" / "sound.model"
    report = tmp_path / "m" / "sound.model.report.json"
    for extra in (["--classifier", "logistic"], ["--classifier", "network", "--max-epochs", "2", "--hidden-units", "8"]):
        args = build_parser().parse_args(["train", "sound", str(small_data), "--out", str(out), "--state-dir",
                                          str(tmp_path / "state"), "--quiet", *extra])
        assert run_train(args, feature_print=SimpleFeaturePrint()) == 0
    newest = json.loads(report.read_text())
    shutil.rmtree(versions_dir(out) / ".reports")  # as a model trained before tonight has it
    older, newer = list_versions(out)
    rollback(out)
    assert not report.exists()  # the older version has no report: none, not the newer one's
    rollback(out, newer["version"])
    assert json.loads(report.read_text()) == newest  # kept with its version when it was rolled back from


def test_no_curve_drawn_leaves_no_earlier_curve_beside_the_model(tmp_path, small_data, monkeypatch, capsys):
    # without the plotting library the previous model's curve stayed beside the new one (and was kept as its own)
    from device.cli import build_parser
    from device.cli import learn as cli_learn

    out = tmp_path / "m" / "sound.model"
    curve = tmp_path / "m" / "sound.model.curve.png"
    out.parent.mkdir(parents=True)
    curve.write_bytes(b"\x89PNG an earlier model's curve")
    monkeypatch.setattr(cli_learn, "plot_curve", lambda *a, **k: False)
    args = build_parser().parse_args(["train", "sound", str(small_data), "--out", str(out), "--state-dir",
                                      str(tmp_path / "state"), "--quiet", "--classifier", "logistic"])
    assert cli_learn.run_train(args, feature_print=SimpleFeaturePrint()) == 0
    assert not curve.exists() and json.loads((tmp_path / "m" / "sound.model.report.json").read_text())["curve"] is None
