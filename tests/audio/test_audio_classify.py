"""A sound classifier on the feature print, trained and tested on real dev clips
(split by recording), and the classify / evaluate sound commands."""

from __future__ import annotations

import json

import numpy as np
import pytest

from device.audio.sources import AUDIO_EXTENSIONS
from device.cli import main

# 8 training clips per label (56 in all), 5 test clips per label from other
# recordings; the default feature print reaches 0.83 here (one clip of 35 is 0.03; see docs/audio.md
# for the full study), so 0.75 leaves room for a different draw, not for a broken print.
STATED_ACCURACY = 0.75


def test_classifier_on_held_out_recordings_beats_the_stated_accuracy(dev_split, trained_model, feature_print):
    model, _ = trained_model
    test = dev_split["test"]
    train_names = {path.name for path, _, _ in dev_split["train"]}
    assert not train_names & {path.name for path, _, _ in test}
    predicted = model.predict(np.stack([feature_print.dequantize(q) for _, _, q in test]))
    accuracy = np.mean([p == label for p, (_, label, _) in zip(predicted, test)])
    assert accuracy >= STATED_ACCURACY, f"accuracy {accuracy:.3f} on {len(test)} held-out clips"
    # the QuantizedFeature form is taken as it is
    path, label, q = test[0]
    from device.audio.sources import load_audio

    qf = feature_print.feature(load_audio(path))
    np.testing.assert_array_equal(qf.values, q)
    probs = model(qf)
    assert set(probs) == set(model.labels) and sum(probs.values()) == pytest.approx(1.0, abs=1e-5)


@pytest.fixture()
def eval_dir(tmp_path, dev_split):
    root = tmp_path / "eval"
    for path, label, _ in dev_split["test"][::4]:
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / path.name).symlink_to(path)
    (root / "crying_baby").mkdir(parents=True, exist_ok=True)
    (root / "crying_baby" / "broken.wav").write_bytes(b"RIFF....WAVEnot really")
    return root


def test_evaluate_sound_json(eval_dir, trained_model, capsys):
    _, model_path = trained_model
    assert main(["evaluate", "sound", str(eval_dir), "--model", str(model_path), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    n = sum(1 for _ in eval_dir.glob("*/*.flac"))
    assert result["count"] == n and 0.0 <= result["accuracy"] <= 1.0
    assert set(result["per_class"]) >= {"ball_drop", "crying_baby"}
    for stats in result["per_class"].values():
        assert set(stats) >= {"precision", "recall", "f1", "support"}
    confusion = np.array(result["confusion"])
    assert confusion.sum() == n and np.trace(confusion) / n == pytest.approx(result["accuracy"])
    assert "broken.wav" in captured.err and any("broken.wav" in s for s in result["skipped"])
    # the text form prints the table
    assert main(["evaluate", "sound", str(eval_dir), "--model", str(model_path)]) == 0
    assert "confusion" in capsys.readouterr().out
    # a folder without clips: one line naming every kind of file it reads (the one list of them)
    (eval_dir.parent / "empty" / "crying_baby").mkdir(parents=True)
    assert main(["evaluate", "sound", str(eval_dir.parent / "empty"), "--model", str(model_path)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no audio clips found" in err and all(s in err for s in AUDIO_EXTENSIONS)


def test_classify_json_and_text(dev_split, trained_model, capsys):
    _, model_path = trained_model
    path, label, _ = next(item for item in dev_split["test"] if item[1] == "vacuum_cleaner")
    assert main(["classify", str(path), "--model", str(model_path), "--json", "--min-volume-db", "-90"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["windows"] and out["clip"]["label"] in out["labels"]
    for w in out["windows"]:
        assert w["end"] - w["start"] <= 3.0 + 1e-6 and w["gated"] is False
        assert sum(w["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    for e in out["events"]:
        assert {"label", "confidence", "start", "end"} <= set(e) and e["label"] != "background"
    assert main(["classify", str(path), "--model", str(model_path)]) == 0
    text = capsys.readouterr().out
    assert "events:" in text and "whole clip:" in text


def test_cli_errors_are_one_line(tmp_path, trained_model, capsys, dev_split):
    _, model_path = trained_model
    clip = dev_split["test"][0][0]
    bad_model = tmp_path / "bad.cadence"
    bad_model.write_bytes(b"PK\x03\x04 truncated")
    cases = [
        ["classify", str(tmp_path / "none.wav"), "--model", str(model_path)],
        ["classify", str(clip), "--model", str(tmp_path / "missing.cadence")],
        ["classify", str(clip), "--model", str(bad_model)],
        ["classify", str(clip), "--model", str(model_path), "--window", "30"],
        ["evaluate", "sound", str(tmp_path / "nowhere"), "--model", str(model_path)],
    ]
    for argv in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("cadence: error:") and "\n" not in err, err


def test_too_short_and_cut_files_are_said_so(tmp_path, trained_model, dev_split, capsys):
    """A 0.1 s clip has no window: no label out of nothing; a file that ends before its
    header says is reported with what was analysed (issue 17 #4, #5)."""
    import soundfile as sf

    _, model_path = trained_model
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(1600, dtype=np.float32) + 0.1, 16000)
    assert main(["classify", str(short), "--model", str(model_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["windows"] == [] and out["clip"]["label"] is None and "too short" in out["clip"]["note"]
    assert main(["classify", str(short), "--model", str(model_path)]) == 0
    assert "whole clip: too short" in capsys.readouterr().out
    clip = dev_split["test"][0][0]
    data = clip.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    assert main(["classify", str(cut), "--model", str(model_path)]) == 0
    err = capsys.readouterr().err
    assert "cut.flac" in err and "analysed" in err
