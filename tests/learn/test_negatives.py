"""Shipped negatives (issue 18): floor noises the owner did not teach, a class of the model's own
(``_negatives``) that is answered ``background`` above its threshold and left out below it."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from simple_print import SimpleFeaturePrint

from device.audio.sources import AUDIO_EXTENSIONS
from device.cli.learn import _print_summary
from device.learn.dataset import load_dataset, scan_folder
from device.learn.negatives import FORMAT_VERSION, NegativesError, ShippedNegatives, make_negatives, read_negatives
from device.learn.openset import NEGATIVES_THRESHOLD
from device.learn.training import Trainer, TrainingConfig
from device.learn import load_classifier

REPO = Path(__file__).resolve().parents[2]


class NegativesPrint(SimpleFeaturePrint):
    """The small test feature print, shipping negatives from a test file."""

    def __init__(self, negatives: Path | None) -> None:
        super().__init__()
        self.shipped_negatives = str(negatives) if negatives else None


def _copy(dev_data: Path, dest: Path, spec: dict[str, tuple[str, int, int]]) -> Path:
    """``dest/<name>/`` holds clips ``first:last`` of dev label ``kind`` for each ``name: (kind, first, last)``."""
    for name, (kind, first, last) in spec.items():
        (dest / name).mkdir(parents=True, exist_ok=True)
        for f in sorted((dev_data / kind).glob("*.flac"))[first:last]:
            shutil.copy2(f, dest / name / f.name)
    return dest


def _negatives_file(tmp_path: Path, dev_data: Path, spec: dict[str, tuple[str, int, int]]) -> Path:
    clips = scan_folder(_copy(dev_data, tmp_path / "negatives-src", spec), AUDIO_EXTENSIONS).clips
    negatives = make_negatives(SimpleFeaturePrint(), clips, tmp_path / "negatives-cache", 1, {"source": "test"})
    path = tmp_path / "negatives.npz"
    path.write_bytes(negatives.to_bytes())
    return path


CFG = TrainingConfig(classifier="logistic", augment_copies=1, min_level_db=-70.0, shipped_negatives=True)


def test_the_kinds_not_taught_join_background_and_a_kind_named_like_a_label_lends_its_recordings(tmp_path, dev_data):
    negatives = _negatives_file(tmp_path, dev_data, {"hammering": ("hammering", 0, 8), "chair_drag": ("chair_drag", 0, 8),
                                                     "vacuum_cleaner": ("vacuum_cleaner", 20, 28)})
    owner = _copy(dev_data, tmp_path / "owner", {"background": ("background", 0, 8), "crying_baby": ("crying_baby", 0, 8),
                                                 "vacuum_cleaner": ("vacuum_cleaner", 0, 8)})
    trainer = Trainer(NegativesPrint(negatives), CFG, state_dir=tmp_path / "state")
    result = trainer.train(load_dataset(owner), tmp_path / "m.model")
    used = result.report["shipped_negatives"]
    assert used["used"] == {"chair_drag": 8, "hammering": 8}  # as many per kind as the owner's median label
    assert used["named_like_a_label"] == ["vacuum_cleaner"] and used["claimed"] == {} and used["clips"] == 16
    # the owner teaches vacuum_cleaner: the shipped vacuum cleaner's 8 recordings are examples of it
    assert used["examples"] == {"vacuum_cleaner": 8}
    # 16 shipped clips for 24 of the owner's and 8 examples: a gated class of their own
    assert ("shipped negatives as a gated class of their own (0.50 of your clips with the shipped examples; up to 0.3 "
            "they join background): "
            "chair_drag (8), hammering (8); named like your labels, their recordings joined your examples: "
            "vacuum_cleaner (8)") in result.report["notes"]
    # a class of its own, never answered: the owner's labels are what the model says
    assert result.model.labels == ["_negatives", "background", "crying_baby", "vacuum_cleaner"]
    assert result.model.taught_labels == result.model.output_labels(False) == ["background", "crying_baby", "vacuum_cleaner"]
    saved = load_classifier(tmp_path / "m.model")
    assert saved.labels == result.model.labels and saved.negatives_threshold == NEGATIVES_THRESHOLD
    assert result.report["shipped_negatives"]["as"] == "_negatives"
    # the training figures follow what the model answers: no _negatives row, its clips counted as background
    assert result.report["labels"] == result.model.taught_labels
    assert result.report["validation"] is not None and "_negatives" not in json.dumps(result.report["validation"])
    # when they are few beside the owner's clips (here: a higher bar) they join background: no class of their own
    many = dataclasses.replace(CFG, merge_negatives_share=0.7)
    merged = Trainer(NegativesPrint(negatives), many, state_dir=tmp_path / "state").train(load_dataset(owner), tmp_path / "b.model")
    assert merged.model.labels == ["background", "crying_baby", "vacuum_cleaner"]
    assert merged.report["shipped_negatives"]["as"] == "background" and merged.report["refit"]["clips"] == 24 + 8 + 16
    assert any(n.startswith("shipped negatives as background (0.50 of your clips with the shipped examples; up to 0.7")
               for n in merged.report["notes"])
    assert result.report["refit"]["clips"] == 24 + 8 + 16  # the final model trained on them
    # the summary says whose: the owner counted 24 clips, not 48
    out = io.StringIO()
    result.report["report"] = str(tmp_path / "m.model.report.json")  # what `cadence train` adds before printing
    _print_summary(result, out, drawn=False)
    assert ("final model: trained again on all 48 clips (24 yours + 8 shipped examples + 16 shipped negatives, "
            "+ 48 augmented copies)") in out.getvalue()
    # without the examples (TrainingConfig.shipped_examples): the named kind is left out, as it was
    alone = Trainer(NegativesPrint(negatives), dataclasses.replace(CFG, shipped_examples=False), state_dir=tmp_path / "state")
    plain = alone.train(load_dataset(owner), tmp_path / "c.model")
    assert plain.report["shipped_negatives"]["examples"] == {} and plain.report["refit"]["clips"] == 24 + 16
    assert any(n.endswith("; left out, named like your labels: vacuum_cleaner") for n in plain.report["notes"])


def test_the_negatives_are_balanced_against_the_labels_with_their_examples(tmp_path, dev_data):
    """Two labels named like shipped kinds get 8 examples each (4 + 8 clips): the median label is 12, so the
    untaught kind ships 10 (all it has) — as many as the labels the model is trained on hold, not the owner's 4."""
    negatives = _negatives_file(tmp_path, dev_data, {"hammering": ("hammering", 10, 18), "chair_drag": ("chair_drag", 0, 10),
                                                     "vacuum_cleaner": ("vacuum_cleaner", 20, 28)})
    owner = load_dataset(_copy(dev_data, tmp_path / "owner", {"background": ("background", 0, 4),
                                                               "hammering": ("hammering", 0, 4),
                                                               "vacuum_cleaner": ("vacuum_cleaner", 0, 4)}))
    report = Trainer(NegativesPrint(negatives), CFG, state_dir=tmp_path / "state").train(owner, tmp_path / "m.model").report
    assert report["shipped_negatives"]["examples"] == {"hammering": 8, "vacuum_cleaner": 8}
    assert report["shipped_negatives"]["used"] == {"chair_drag": 10} and report["refit"]["clips"] == 12 + 16 + 10
    alone = Trainer(NegativesPrint(negatives), dataclasses.replace(CFG, shipped_examples=False), state_dir=tmp_path / "state")
    without = alone.train(owner, tmp_path / "n.model").report
    assert without["shipped_negatives"]["used"] == {"chair_drag": 4}
    # the reject option's thresholds come from the owner's own recordings, not the examples (other rooms)
    for label in ("hammering", "vacuum_cleaner"):
        held_out = [r["reject_option"]["per_label"][label]["held_out_windows"] for r in (report, without)]
        assert held_out[0] == held_out[1] > 0, label


def test_a_kind_whose_every_clip_the_owner_holds_lends_none_and_is_said_left_out(tmp_path, dev_data):
    negatives = _negatives_file(tmp_path, dev_data, {"vacuum_cleaner": ("vacuum_cleaner", 0, 6),
                                                     "hammering": ("hammering", 0, 6)})
    owner = _copy(dev_data, tmp_path / "owner", {"background": ("background", 0, 6),
                                                 "vacuum_cleaner": ("vacuum_cleaner", 0, 6)})
    report = Trainer(NegativesPrint(negatives), CFG, state_dir=tmp_path / "state").train(
        load_dataset(owner), tmp_path / "m.model").report
    assert report["shipped_negatives"]["examples"] == {} and report["shipped_negatives"]["used"] == {"hammering": 6}
    assert any(n.endswith("hammering (6); left out, named like your labels: vacuum_cleaner") for n in report["notes"])


def test_a_shipped_kind_the_owner_calls_otherwise_is_claimed_by_the_data_and_left_out(tmp_path, dev_data):
    # the same vacuum cleaner (one SNU recording): the owner's clips and the shipped ones
    negatives = _negatives_file(tmp_path, dev_data, {"vacuum_cleaner": ("vacuum_cleaner", 5, 10),
                                                     "crying_baby": ("crying_baby", 12, 22)})
    owner = _copy(dev_data, tmp_path / "owner", {"background": ("background", 0, 5), "hoover": ("vacuum_cleaner", 0, 5),
                                                 "hammering": ("hammering", 0, 5)})
    trainer = Trainer(NegativesPrint(negatives), CFG, state_dir=tmp_path / "state")
    report = trainer.train(load_dataset(owner), tmp_path / "m.model").report["shipped_negatives"]
    assert set(report["claimed"]) == {"vacuum_cleaner"} and report["claimed"]["vacuum_cleaner"]["label"] == "hoover"
    assert report["used"] == {"crying_baby": 5}


def test_switched_off_or_without_background_training_is_as_before(tmp_path, dev_data, capsys):
    from device.cli import build_parser
    from device.cli.learn import run_train

    negatives = _negatives_file(tmp_path, dev_data, {"hammering": ("hammering", 0, 6)})
    owner = _copy(dev_data, tmp_path / "owner", {"background": ("background", 0, 6), "crying_baby": ("crying_baby", 0, 6)})
    fp = NegativesPrint(negatives)
    common = ["train", "sound", str(owner), "--state-dir", str(tmp_path / "state"), "--quiet", "--classifier", "logistic"]
    # by default on; 6 shipped clips beside 12 of the owner's: a gated class of their own (joined to
    # background they would cost a few-shot owner recall), said in a note
    assert run_train(build_parser().parse_args([*common, "--out", str(tmp_path / "auto.model")]), feature_print=fp) == 0
    said = "note: shipped negatives as a gated class of their own (0.50 of your clips; up to 0.3 they join background): hammering (6)"
    assert said in capsys.readouterr().out
    on = build_parser().parse_args([*common, "--out", str(tmp_path / "on.model"), "--shipped-negatives"])
    assert run_train(on, feature_print=fp) == 0
    assert said in capsys.readouterr().out
    assert build_parser().parse_args([*common, "--out", "x", "--no-shipped-examples"]).shipped_examples is False
    from device.cli.learn import config_from_args

    assert config_from_args(build_parser().parse_args([*common, "--out", "x", "--no-shipped-examples"])).shipped_examples is False
    assert config_from_args(build_parser().parse_args([*common, "--out", "x"])).shipped_examples is True
    off = build_parser().parse_args([*common, "--out", str(tmp_path / "off.model"), "--no-shipped-negatives"])
    assert run_train(off, feature_print=fp) == 0
    assert "shipped negatives" not in capsys.readouterr().out
    report = json.loads((tmp_path / "off.model.report.json").read_text())
    assert report["shipped_negatives"] is None and report["settings"]["shipped_negatives"] is False
    assert report["refit"]["clips"] == 12
    # a featurizer that ships none, or an owner without background: nothing added
    plain = Trainer(SimpleFeaturePrint(), CFG, state_dir=tmp_path / "state").train(load_dataset(owner), tmp_path / "p.model")
    assert plain.report["shipped_negatives"] is None and plain.report["refit"]["clips"] == 12
    no_bg = _copy(dev_data, tmp_path / "nobg", {"crying_baby": ("crying_baby", 0, 6), "chair_drag": ("chair_drag", 0, 6)})
    trainer = Trainer(fp, CFG, state_dir=tmp_path / "state")
    result = trainer.train(load_dataset(no_bg), tmp_path / "n.model")
    assert result.report["shipped_negatives"] is None and any("which these clips do not teach" in n for n in result.report["notes"])


def test_the_file_rebuilds_identically_and_a_damaged_one_is_refused(tmp_path, dev_data):
    spec = {"hammering": ("hammering", 0, 3), "chair_drag": ("chair_drag", 0, 3)}
    first = _negatives_file(tmp_path / "a", dev_data, spec).read_bytes()
    second = _negatives_file(tmp_path / "b", dev_data, spec).read_bytes()
    assert first == second
    loaded = ShippedNegatives.from_bytes(first)
    assert loaded.kinds == ["chair_drag", "hammering"] and loaded.meta["format_version"] == FORMAT_VERSION
    assert len(loaded.clips) == 6 and len(loaded.entries) == 12  # each clip and its one copy
    with pytest.raises(Exception, match="not a Cadence file|truncated"):
        ShippedNegatives.from_bytes(first[: len(first) // 2])
    with pytest.raises(NegativesError):
        read_negatives(tmp_path / "missing.npz")


def test_the_shipped_file_is_pinned_in_the_manifest_and_verified(tmp_path):
    from device.pretrained import ModelFileError, model_path

    manifest = json.loads((REPO / "models" / "manifest.json").read_text())
    entry = manifest["files"]["sound-negatives.npz"]
    assert entry["built_by"].startswith("make sound-negatives") and len(entry["sha256"]) == 64
    negatives = read_negatives("sound-negatives.npz")  # verified against the pinned SHA-256
    assert negatives.kinds == ["ball_drop", "chair_drag", "hammer_drop", "hammering", "vacuum_cleaner"]
    assert "MIT" in negatives.meta["licence"] and negatives.meta["copies"] == 8
    assert all(c["name"].startswith("snu_") for c in negatives.clips)  # only the MIT floor noises ship
    # an altered file is refused
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    data = bytearray((REPO / "models" / "sound-negatives.npz").read_bytes())
    data[len(data) // 2] ^= 1
    (tmp_path / "sound-negatives.npz").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="does not match its pinned SHA-256"):
        model_path("sound-negatives.npz", directory=tmp_path)


def _gated_model(probabilities: list[float], **metadata: float):
    """A model over ``_negatives, background, knock`` answering ``probabilities`` for every window."""
    from device.learn.logistic import LogisticRegressionModel

    bias = np.log(np.asarray(probabilities, dtype=np.float64))
    return LogisticRegressionModel(["_negatives", "background", "knock"], np.zeros(2), np.ones(2), np.zeros((2, 3)), bias,
                                   metadata=dict(metadata))


def test_a_window_the_negatives_hold_above_the_threshold_is_background_below_it_they_are_left_out():
    window = np.zeros((1, 2), dtype=np.float32)
    held = _gated_model([0.95, 0.02, 0.03])
    assert held.classify(window) == {"background": 1.0, "knock": 0.0}  # silent, not 'knock' and not '_negatives'
    half = _gated_model([0.6, 0.1, 0.3])  # the argmax would be _negatives: below the gate the owner's label keeps it
    assert half.classify(window) == pytest.approx({"background": 0.25, "knock": 0.75})
    assert _gated_model([0.6, 0.1, 0.3], negatives_threshold=0.5).classify(window) == {"background": 1.0, "knock": 0.0}
    assert held.output_labels() == held.taught_labels == ["background", "knock"]


def test_a_model_file_with_negatives_round_trips_and_inconsistent_ones_are_refused(tmp_path):
    from device.components import PersistenceError

    path = _gated_model([0.6, 0.1, 0.3], negatives_threshold=0.8).save(tmp_path / "m.model")
    back = load_classifier(path)
    assert back.negatives_threshold == 0.8 and back.classify(np.zeros((1, 2), np.float32))["knock"] == pytest.approx(0.75)
    bad = _gated_model([0.6, 0.1, 0.3], negatives_threshold=1.5).save(tmp_path / "bad.model")
    with pytest.raises(PersistenceError, match="negatives_threshold 1.5 is not between 0 and 1"):
        load_classifier(bad)
    from device.learn.logistic import LogisticRegressionModel

    lone = LogisticRegressionModel(["_negatives", "knock"], np.zeros(2), np.ones(2), np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(PersistenceError, match="'_negatives' class without 'background'"):
        load_classifier(lone.save(tmp_path / "lone.model"))
